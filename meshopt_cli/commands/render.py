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

from meshopt_cli import __version__, console, memory
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, make_jobs, read_inputs, source_name
from meshopt_cli.command import Command, Payload
from meshopt_cli.fields import setting

DEFAULT_MESH = "builtin:teapot"


def _check_colour(text: str) -> None:
    from meshopt_cli.turntable import parse_color

    parse_color(text)


@dataclass
class RenderSettings:
    frames: int = setting(90, ge=1, le=3600, why="one frame every 0.1 degrees")  # views evenly spaced in azimuth
    elevation: float = setting(30.0)  # degrees
    distance: float | None = setting(None, gt=0)  # None: its bounding sphere fills the view (turntable.framing_distance)
    size: int = setting(256, ge=1, le=4096, why="frames are drawn at twice the size for anti-aliasing")  # pixels, square
    background: str = setting("white", check=_check_colour)  # white, black, grey, #rrggbb or r,g,b in [0, 1]
    # uv: a mesh with a UV-mapped image is drawn through it (full resolution, mipmapped); other
    # meshes (colours per face or vertex) and --texture cubes: T³ colour cubes per face
    texture: str = setting("uv", choices=("uv", "cubes"))
    # texture cube size T sampled from the mesh's texture (--texture cubes, or meshes without a UV image)
    texture_size: int = setting(4, ge=1, le=64, why="T³ colours per face: 262144 at 64")
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


def smallest_job(settings: RenderSettings, options: RenderOptions) -> memory.Estimate:
    """What the settings alone need (a mesh of no faces): the program, one frame's maps, the GIF."""
    return memory.render_estimate(0, 0, settings.texture_size, settings.frames, settings.size, 1)


def check_file_size(source: str, budget: int) -> None:
    """Refuse a mesh file whose parsing alone would pass the budget (before reading it)."""
    path = Path(source)
    if source.startswith("builtin:") or not path.is_file():
        return
    estimate = memory.Estimate({"meshopt itself": memory.current_rss()})
    estimate.add("reading the file", memory.obj_parse_bytes(path.stat().st_size))
    memory.check(estimate, budget, f"reading {source} ({memory.format_size(path.stat().st_size)})")


def uses_uv(mesh, settings: RenderSettings) -> bool:
    """Whether ``mesh`` is drawn through its UV-mapped image (``--texture uv`` and it has one)."""
    return settings.texture == "uv" and mesh.has_uv_layout


def plan_memory(mesh, settings: RenderSettings, budget: int) -> tuple[int, int, memory.Estimate]:
    """``(texture size used, frames per batch, estimate)`` for rendering ``mesh`` within ``budget``
    bytes; :class:`~meshopt_cli.memory.OverBudget` when even one frame at a time does not fit. A
    mesh whose faces are one colour each renders the same images with 1³ cubes as with T³."""
    t = 1 if mesh.uniform_faces or uses_uv(mesh, settings) else settings.texture_size
    v, f = int(mesh.num_vertices), int(mesh.num_faces)
    fixed = memory.render_estimate(v, f, t, settings.frames, settings.size, 1)
    fixed.parts["meshopt itself"] = memory.current_rss()
    held = fixed.total - fixed.parts["rasterization"]
    chunk = memory.frames_per_chunk(budget - held, v, f, t, settings.frames, settings.size)
    estimate = memory.render_estimate(v, f, t, settings.frames, settings.size, chunk)
    estimate.parts["meshopt itself"] = fixed.parts["meshopt itself"]
    return t, chunk, estimate


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
    budget = context.memory_budget or memory.default_budget()
    check_file_size(job.input, budget)
    with console.job_progress(f"render {job.name}", settings.frames, context.progress) as progress:
        mesh = load_mesh(job.input)
        texture_size, chunk, estimate = plan_memory(mesh, settings, budget)
        memory.check(estimate, budget, f"rendering {mesh.num_faces} faces with --texture-size {texture_size}")
        vertices, faces = mesh.to_torch(context.device)
        vertices = normalize_vertices(vertices)
        uv = {}
        if uses_uv(mesh, settings):
            from meshopt_cli.mesh import uv_texture

            layout = uv_texture(mesh)
            uv = {
                "uvs": torch.from_numpy(layout.uvs).to(context.device),
                "texture_image": torch.from_numpy(layout.image).to(context.device),
            }
            textures = None
        else:
            cubes = torch.from_numpy(mesh.texture_cubes(texture_size))  # no copy on the CPU
            textures = cubes.to(context.device)
        progress.stage("rendering")
        images = render_views(
            vertices,
            faces,
            textures,
            frames=settings.frames,
            elevation=settings.elevation,
            distance=settings.distance,
            image_size=settings.size,
            background=parse_color(settings.background),
            batch_size=chunk,
            progress=progress.advance,
            **uv,
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
                    "texture": (
                        {"mode": "uv", "image_size": list(uv["texture_image"].shape[:2])}
                        if uv
                        else {"mode": "cubes", "texture_size": texture_size}
                    ),
                    "seconds": round(seconds, 3),
                    "memory": {
                        "budget": int(budget),
                        "estimate": estimate.as_dict(),
                        "frames_per_batch": chunk,
                        "texture_size_used": texture_size,
                    },
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
    name="render",
    settings=RenderSettings,
    options=RenderOptions,
    default_preset="default",
    plan=plan,
    run=run_job,
    files=FILES,
    memory=smallest_job,
)  # reads: the mesh (the default)
