"""``meshopt render``: turntable GIFs (and PNG frames or a contact sheet) of meshes.

Each input gets ``OUT/NAME/`` with ``turntable.gif``, ``metrics.json`` (mesh size, seconds and the
resolved settings) and, when asked, ``frames/*.png`` and ``sheet.png``; the folder appears complete
or not at all. With one input and ``-o FILE.gif`` only that GIF is written (``FILE-frames/`` and
``FILE-sheet.png`` beside it when asked). Rendering a mesh takes seconds, so a stop request lets the
mesh in progress finish and starts no other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from meshopt_cli import __version__, console
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, make_jobs, read_inputs, source_name
from meshopt_cli.command import Command, Payload
from meshopt_cli.defaults import DEFAULT_DISTANCE
from meshopt_cli.fields import setting

DEFAULT_MESH = "builtin:teapot"


def _check_colour(text: str) -> None:
    from meshopt_cli.turntable import parse_color

    parse_color(text)


@dataclass
class RenderSettings:
    frames: int = setting(90, ge=1)  # views evenly spaced in azimuth
    elevation: float = setting(30.0)  # degrees
    distance: float = setting(DEFAULT_DISTANCE, gt=0)  # the mesh is normalised to [-1, 1]
    size: int = setting(256, ge=1)  # pixels, square
    background: str = setting("white", check=_check_colour)  # white, black, grey, #rrggbb or r,g,b in [0, 1]
    texture_size: int = setting(4, ge=1)  # texture cube size T sampled from the mesh's texture
    fps: float = setting(12.0, gt=0)  # GIF frame rate


@dataclass(frozen=True)
class RenderOptions:
    png: bool = False  # also every frame as PNG
    sheet: bool = False  # also a contact sheet


@dataclass
class RenderFigures:
    frames: int
    faces: int
    vertices: int


def plan(arguments: list[str], settings: RenderSettings, options: RenderOptions, batch: BatchOptions) -> list[Job]:
    """The jobs of one call: ``OUT/NAME`` folders, or the ``-o FILE.gif`` of a single input."""
    inputs = read_inputs(arguments) if arguments else [DEFAULT_MESH]
    if not inputs:
        raise console.UsageError("no mesh given on standard input ('-')")
    if batch.out.suffix.lower() == ".gif":
        if len(inputs) != 1:
            raise console.UsageError(f"-o {batch.out}: a .gif path takes one mesh; give a folder for {len(inputs)}")
        return [Job(index=0, input=inputs[0], name=batch.out.stem, folder=batch.out)]
    return make_jobs(inputs, [source_name(i) for i in inputs], batch.out)


def run_job(job: Job, payload: Payload[RenderSettings, RenderOptions], context: Context) -> JobResult:
    """Render one mesh's turntable and write its outputs; raises ValueError on a bad input."""
    import torch

    from meshopt_cli.export import check_writable, run_record, staged_folder, write_json
    from meshopt_cli.mesh import load_mesh, normalize_vertices
    from meshopt_cli.turntable import contact_sheet, parse_color, render_views, write_gif, write_png

    started = time.perf_counter()
    settings, options = payload.settings, payload.options
    single_file = job.folder.suffix.lower() == ".gif"
    frames_dir = job.folder.with_name(job.folder.stem + "-frames") if single_file else None
    sheet_path = job.folder.with_name(job.folder.stem + "-sheet.png") if single_file else None
    if single_file:
        for path in [job.folder] + ([frames_dir] if options.png else []) + ([sheet_path] if options.sheet else []):
            check_writable(path, job.force)
    else:
        check_writable(job.folder, job.force)
    mesh = load_mesh(job.input)
    vertices, faces = mesh.to_torch(context.device)
    vertices = normalize_vertices(vertices)
    textures = torch.tensor(mesh.texture_cubes(settings.texture_size), device=context.device)
    with console.progress_bar(context.progress) as bar:
        task = bar.add_task(f"render {job.name}", total=settings.frames)
        images = render_views(
            vertices,
            faces,
            textures,
            frames=settings.frames,
            elevation=settings.elevation,
            distance=settings.distance,
            image_size=settings.size,
            background=parse_color(settings.background),
            progress=lambda n: bar.advance(task, n),
        )

    def write_frames(folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        digits = len(str(settings.frames - 1))
        return [write_png(folder / f"{k:0{digits}d}.png", image) for k, image in enumerate(images)]

    if single_file:
        job.folder.parent.mkdir(parents=True, exist_ok=True)
        written = write_frames(frames_dir) if options.png else []
        if options.sheet:
            written.append(write_png(sheet_path, contact_sheet(images)))
        written.insert(0, write_gif(job.folder, images, settings.fps))
    else:
        with staged_folder(job.folder, job.force) as staging:
            names = ["turntable.gif"] + (["frames"] if options.png else []) + (["sheet.png"] if options.sheet else [])
            write_gif(staging / "turntable.gif", images, settings.fps)
            if options.png:
                write_frames(staging / "frames")
            if options.sheet:
                write_png(staging / "sheet.png", contact_sheet(images))
            seconds = time.perf_counter() - started
            write_json(
                staging / "metrics.json",
                {
                    "meshopt": __version__,
                    "input": job.input,
                    "name": job.name,
                    "mesh": {"vertices": int(mesh.num_vertices), "faces": int(mesh.num_faces)},
                    "seconds": round(seconds, 3),
                    **run_record(context.device, payload.preset, settings, "done", names + ["metrics.json"]),
                },
            )
        written = [job.folder / n for n in names + ["metrics.json"]]
    extra = f" (+{len(written) - 1} more files)" if len(written) > 1 else ""
    console.info(f"wrote {job.folder / 'turntable.gif' if not single_file else job.folder}{extra}", context.quiet)
    return JobResult(
        files=[str(p) for p in written],
        metrics=RenderFigures(frames=settings.frames, faces=int(mesh.num_faces), vertices=int(mesh.num_vertices)),
    )


FILES = ("turntable.gif", "metrics.json")  # what every complete result folder holds
COMMAND = Command(
    name="render", settings=RenderSettings, options=RenderOptions, default_preset="default", plan=plan, run=run_job, files=FILES
)  # reads: the mesh (the default)
