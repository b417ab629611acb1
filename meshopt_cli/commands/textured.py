"""What ``style`` and ``dream`` share: a textured-mesh command around :mod:`meshopt_cli.optimize.textured`.

Both take meshes, optimize their vertices and per-face texture cubes for a loss of rendered views,
and write ``OUT/NAME/`` complete or not at all: ``STEM.obj`` + ``.mtl`` + ``.png`` (the input's UV
layout kept when it has one), ``turntable.gif``, ``before-after.png`` and ``metrics.json``. A command
built on this module supplies its settings (a :class:`TexturedCommandSettings`), its network and loss,
and the figures only it has; :func:`load_subject`, :func:`optimize` and :func:`finish` do the rest,
with ``--checkpoint-every``/``--resume`` at ``OUT/NAME.checkpoint.pt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from meshopt_cli import __version__, console, memory, precision, stop
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, check_folder_name, make_jobs, source_name
from meshopt_cli.checkpoints import load_checkpoint, save_checkpoint
from meshopt_cli.command import Command, Payload
from meshopt_cli.fields import as_dict, setting
from meshopt_cli.optimize.textured import TexturedSettings
from meshopt_cli.precision import PRECISIONS

SHEET_AZIMUTHS = (0.0, 90.0, 180.0, 270.0)
SHEET_ELEVATION = 30.0
NETWORK_NAMES = {"vgg": "VGG", "googlenet": "GoogLeNet"}
FILES = ("turntable.gif", "before-after.png", "loss.png", "metrics.json")  # besides STEM.obj, .mtl, .png
TEXTURE_MODES = ("uv", "cubes")
OWN_IMAGE_CAP = 1024  # --texture-resolution 0: the input's own image, at most this many pixels per side
GENERATED_SIDE = 512  # --texture-resolution 0 on a generated (xatlas) layout


@dataclass
class TexturedCommandSettings(TexturedSettings):
    """The loop's settings plus what both commands add: texture cube size and output sizes."""

    # uv: optimize a texture image through the mesh's UV layout (xatlas makes one for meshes
    # without); cubes: T³ colours per face, the paper's representation
    texture: str = setting("cubes", choices=TEXTURE_MODES)
    texture_size: int = setting(4, ge=1, le=32, why="T³ colours per face, each with 5 more floats to optimize")
    # side of the optimized image with --texture uv (the longer one; the aspect is kept); 0: the
    # input's own image capped at 1024 px, or 512 px for a generated layout
    texture_resolution: int = setting(0, ge=0, le=4096, why="each texel is 4 more floats (logit + Adam's state)")
    turntable_frames: int = setting(36, ge=1, le=3600, why="one frame every 0.1 degrees")
    turntable_size: int = setting(128, ge=1, le=4096, why="frames are drawn at twice the size for anti-aliasing")
    sheet_size: int = setting(128, ge=1, le=4096, why="views are drawn at twice the size for anti-aliasing")
    precision: str = setting("auto", choices=PRECISIONS)  # of the backbone network (meshopt_cli/precision.py)


@dataclass(frozen=True)
class TexturedOptions:
    """What one ``style`` or ``dream`` call asks beyond its settings and the batch options."""

    weights: str = "imagenet"  # imagenet, random, or a state-dict file
    name: str | None = None
    checkpoint_every: int = 0
    resume: bool = False


@dataclass(frozen=True)
class Kind:
    """What tells the textured commands apart: the command's name (also the progress label), the
    stem of its result mesh, and the backbone's key in metrics.json's timings."""

    name: str
    stem: str
    network_key: str


def plan_jobs(
    inputs: list[str],
    settings: TexturedCommandSettings,
    options: TexturedOptions,
    suffix: str,
    batch: BatchOptions,
    extra: dict | None = None,
) -> list[Job]:
    """One job per mesh, folders ``OUT/<mesh>-<suffix>`` (or ``--name``); usage errors raise, a
    ``--precision`` the device cannot run among them."""
    from meshopt_cli.devices import resolve_device

    if batch.cluster is None:  # on a cluster the device is the worker's: a task says so if it cannot
        try:
            precision.choose(settings.precision, resolve_device(batch.device))
        except ValueError as problem:
            raise console.UsageError(str(problem)) from None
    if not inputs:
        raise console.UsageError("no mesh given ('-' read no paths from standard input)")
    check_folder_name(options.name)
    if options.name is not None and len(inputs) > 1:
        raise console.UsageError("--name names the result of one input; several inputs are named after themselves")
    if options.checkpoint_every < 0:
        raise console.UsageError("--checkpoint-every must not be negative")
    names = [options.name] if options.name else [f"{source_name(i)}-{suffix}" for i in inputs]
    return make_jobs(inputs, names, batch.out, [dict(extra or {}) for _ in inputs])


# ---------------------------------------------------------------- the input


@dataclass
class Subject:
    """One input mesh, normalised: ``vertices [V, 3]`` = (mesh vertices − ``centre``) · ``scale``,
    ``faces [F, 3]`` int64, ``textures [F, T, T, T, 3]`` in [0, 1] sampled from its texture; with
    ``--texture uv``, ``textures`` is the texture image ``[H, W, 3]`` at the optimized resolution,
    ``uvs [F, 3, 2]`` its layout and ``layout`` the :class:`~meshopt_cli.mesh.UVTexture` it came from."""

    mesh: Any  # meshopt_cli.mesh.Mesh
    centre: Any  # [3] float64
    scale: float
    vertices: Any
    faces: Any
    textures: Any
    uvs: Any = None
    layout: Any = None

    def texture_record(self) -> dict:
        """metrics.json's ``texture``: the mode, and the layout and image sizes of --texture uv."""
        if self.uvs is None:
            return {"mode": "cubes", "texture_size": int(self.textures.shape[1])}
        return {
            "mode": "uv",
            "layout": "generated (xatlas)" if self.layout.generated else "the input's own",
            "optimized_image_size": list(self.textures.shape[:2]),
            "written_image_size": list(self.layout.image.shape[:2]),
        }


def uv_resolution(image_hw, generated: bool, asked: int) -> tuple[int, int]:
    """(H, W) of the image optimized with --texture uv: ``asked`` px on the longer side (aspect
    kept), else the input's own size capped at :data:`OWN_IMAGE_CAP`, or :data:`GENERATED_SIDE`."""
    h, w = int(image_hw[0]), int(image_hw[1])
    if generated and not asked:
        return GENERATED_SIDE, GENERATED_SIDE
    longest = max(h, w)
    target = asked or min(longest, OWN_IMAGE_CAP)
    if target == longest:
        return h, w
    return max(1, round(h * target / longest)), max(1, round(w * target / longest))


def memory_estimate(
    network: str, settings: TexturedCommandSettings, vertices: int = 0, faces: int = 0, texture_hw: tuple[int, int] | None = None
) -> memory.Estimate:
    """The peak of one job on a mesh of ``vertices`` and ``faces`` (0, 0: what the settings alone need);
    with ``--texture uv``, of an optimized image of ``texture_hw`` (default: the largest the settings allow)."""
    pixels = 0
    if settings.texture == "uv":
        side = settings.texture_resolution or OWN_IMAGE_CAP
        h, w = texture_hw or (side, side)
        pixels = int(h) * int(w)
    return memory.textured_estimate(
        network,
        vertices,
        faces,
        settings.texture_size,
        settings.batch_views,
        settings.image_size,
        (settings.turntable_frames, settings.turntable_size),
        texture_pixels=pixels,
    )


def load_subject(
    job: Job, settings: TexturedCommandSettings, force: bool, device, network: str | None = None, budget: int | None = None
) -> Subject:
    """Check that the result may be written, then load and normalise the job's mesh; with a
    ``network`` ("vgg", "googlenet"), refuse it (:class:`~meshopt_cli.memory.OverBudget`) before
    sampling its cubes when the job would need more than ``budget`` bytes (default: the default budget)."""
    import numpy as np
    import torch

    from meshopt_cli.export import check_writable
    from meshopt_cli.mesh import box_normalization, load_mesh

    check_writable(job.folder, force)
    mesh = load_mesh(job.input)
    if network is not None:
        estimate = memory_estimate(network, settings, int(mesh.num_vertices), int(mesh.num_faces))
        estimate.parts["meshopt itself"] = memory.current_rss()
        texture = f"--texture-size {settings.texture_size}"
        if settings.texture == "uv":
            texture = f"--texture uv at up to {settings.texture_resolution or OWN_IMAGE_CAP} px"
        memory.check(estimate, budget or memory.default_budget(), f"{mesh.num_faces} faces with {texture}")
    centre, scale = box_normalization(mesh.vertices)
    vertices = torch.tensor((mesh.vertices - centre) * scale, dtype=torch.float32, device=device)
    faces = torch.tensor(np.asarray(mesh.faces, np.int64), device=device)
    if settings.texture == "uv":
        from meshopt_cli.mesh import uv_texture
        from meshopt_cli.mesh.uvtexture import resize_image

        layout = uv_texture(mesh, settings.texture_resolution or GENERATED_SIDE)
        h, w = uv_resolution(layout.image.shape[:2], layout.generated, settings.texture_resolution)
        image = resize_image(layout.image, h, w)
        if layout.generated:
            layout.image = image  # a generated layout is written at the optimized size
        return Subject(
            mesh=mesh,
            centre=centre,
            scale=scale,
            vertices=vertices,
            faces=faces,
            textures=torch.tensor(image, device=device),
            uvs=torch.tensor(layout.uvs, device=device),
            layout=layout,
        )
    return Subject(
        mesh=mesh,
        centre=centre,
        scale=scale,
        vertices=vertices,
        faces=faces,
        textures=torch.tensor(mesh.texture_cubes(settings.texture_size), device=device),
    )


# ---------------------------------------------------------------- checkpoints


def checkpoint_path(out: Path, name: str) -> Path:
    """Where ``--checkpoint-every`` saves and ``--resume`` reads: ``OUT/NAME.checkpoint.pt``."""
    return out / f"{name}.checkpoint.pt"


def comparable(settings) -> dict:
    """The settings a resumed run must share with the saved one (not the step count or output sizes)."""
    values = as_dict(settings)
    for key in ("iterations", "turntable_frames", "turntable_size", "sheet_size"):
        values.pop(key)
    return values


# ---------------------------------------------------------------- the loop


@dataclass
class Optimized:
    """A finished (or stopped) loop and its checkpoint bookkeeping."""

    result: Any  # meshopt_cli.optimize.textured.TexturedResult
    checkpoint: Path
    checkpointing: bool  # --checkpoint-every was on
    resumed: bool


def optimize(
    kind: Kind,
    job: Job,
    payload: Payload,
    context: Context,
    subject: Subject,
    textures,
    loss,
    background,
    meta: dict,
    **loop_options,
) -> Optimized:
    """The shared loop with a progress bar and checkpoints; ``meta`` (what a resumed run must share
    besides the mesh, the weights and the settings) is saved with every checkpoint."""
    from meshopt_cli.optimize.textured import optimize_textured

    settings, options = payload.settings, payload.options
    meta = {
        "input": job.input,
        **meta,
        "faces": int(subject.mesh.num_faces),
        "vertices": int(subject.mesh.num_vertices),
        "weights": str(options.weights),
        "settings": comparable(settings),
    }
    saved_at = checkpoint_path(job.folder.parent, job.name)
    resume = load_checkpoint(saved_at, meta) if options.resume else None
    keep = (lambda state: save_checkpoint(saved_at, state, meta)) if options.checkpoint_every > 0 else None
    with console.job_progress(f"{kind.name} {job.name}", settings.iterations, context.progress, "optimizing") as bar:
        if resume is not None:
            bar.advance(resume["step"])

        def progress(step, terms):
            bar.advance(1, "optimizing · " + " ".join(f"{k} {v:.3g}" for k, v in terms.items()))

        result = optimize_textured(
            subject.vertices,
            subject.faces,
            textures,
            settings,
            loss,
            background,
            progress,
            checkpoint_every=options.checkpoint_every,
            on_checkpoint=keep,
            resume=resume,
            should_stop=stop.requested,
            uvs=subject.uvs,
            **loop_options,
        )
    return Optimized(result=result, checkpoint=saved_at, checkpointing=keep is not None, resumed=resume is not None)


def status_of(result) -> str:
    """``done``, ``interrupted`` (a stop request) or ``failed`` (a non-finite value) for a loop result."""
    return "failed" if result.failure else "interrupted" if result.interrupted else "done"


# ---------------------------------------------------------------- figures


def displacement(before, after) -> dict:
    """Max, mean and sum of squares of the per-vertex distance between ``before`` and ``after`` ``[V, 3]``."""
    moved = (after - before).norm(dim=1)
    return {
        "max": float(moved.max()) if len(moved) else 0.0,
        "mean": float(moved.mean()) if len(moved) else 0.0,
        "sum_of_squares": float((moved**2).sum()),
    }


def render_fixed(
    vertices, faces, textures, size: int, background=(1.0, 1.0, 1.0), light_intensity=None, framed_by=None, uvs=None
):
    """Views at :data:`SHEET_AZIMUTHS`, elevation 30: ``(rgb [N, 3, S, S], alpha [N, S, S])``.
    ``light_intensity``: (ambient, directional); default the renderer's own. ``framed_by``
    (vertices ``[V, 3]``): framed and lit like the turntable (``turntable.framing_distance`` of
    those vertices, ``camera_light``), for result images; None: the paper's camera and light, as
    the loops see the mesh. ``uvs [F, 3, 2]``: ``textures`` is a texture image ``[H, W, 3]``."""
    import torch

    from meshopt_cli.render import DEFAULT_DISTANCE, Renderer, get_points_from_angles
    from meshopt_cli.turntable import camera_light, framing_distance

    n = len(SHEET_AZIMUTHS)
    renderer = Renderer(image_size=size, background_color=tuple(background))
    if light_intensity is not None:
        renderer.light_intensity_ambient, renderer.light_intensity_directional = (float(x) for x in light_intensity)
    distance = DEFAULT_DISTANCE if framed_by is None else framing_distance(framed_by)
    renderer.eye = get_points_from_angles(
        torch.full((n,), distance), torch.full((n,), SHEET_ELEVATION), torch.tensor(SHEET_AZIMUTHS)
    ).to(vertices.device)
    if framed_by is not None:
        renderer.light_direction = camera_light(renderer.eye)
    with torch.no_grad():
        if uvs is None:
            rgb, _, alpha = renderer(
                vertices[None].expand(n, -1, -1),
                faces[None].expand(n, -1, -1),
                textures[None].expand(n, *textures.shape),
                mode=None,
            )
        else:
            rgb, _, alpha = renderer(
                vertices[None].expand(n, -1, -1), faces[None].expand(n, -1, -1), uvs=uvs[None], texture_image=textures[None]
            )
    return rgb.clamp(0, 1), alpha


def colour_stats(rgb, alpha) -> dict:
    """Mean and standard deviation of the colours inside the silhouettes (alpha > 0.5)."""
    inside = alpha > 0.5
    pixels = rgb.permute(0, 2, 3, 1)[inside]
    if len(pixels) == 0:
        return {"mean": [0.0, 0.0, 0.0], "std": [0.0, 0.0, 0.0]}
    return {
        "mean": [round(float(x), 5) for x in pixels.mean(0)],
        "std": [round(float(x), 5) for x in pixels.std(0, unbiased=False)],
    }


def step_timings(result, seconds: float, network: str) -> dict:
    """metrics.json's ``seconds``: totals and the mean split of a step."""

    def mean(xs):
        return round(sum(xs) / len(xs), 5) if xs else None

    return {
        "total": round(seconds, 3),
        "optimize": round(result.seconds, 3),
        "per_step": mean(result.step_seconds) or 0.0,
        "renderer_forward_per_step": mean(result.render_seconds),
        f"{network}_forward_per_step": mean(result.loss_seconds),
        "backward_and_adam_per_step": mean(result.backward_seconds),
        "note": f"the backward pass goes through {NETWORK_NAMES[network]} and the renderer together; autograd does not split it",
    }


def sheet(rows):
    """Rows of views ``[(rgb [N, 3, S, S], alpha [N, S, S]), ...]`` on white -> ``[R S, N S, 3]`` uint8."""
    import numpy as np

    out = []
    for rgb, alpha in rows:
        a = alpha[:, None]
        img = rgb * a + (1 - a)  # composite on white
        img = (img.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()
        out.append(np.concatenate(list(img), axis=1))
    return np.concatenate(out, axis=0)


# ---------------------------------------------------------------- the result


def write_result(staging: Path, stem: str, subject: Subject, result, settings, before, after) -> list[str]:
    """Write one optimized mesh into ``staging``: ``STEM.obj`` + ``.mtl`` + ``.png`` (the input's UV
    layout kept by :func:`~meshopt_cli.mesh.save_mesh`; vertices back in the input's frame),
    ``turntable.gif`` (elevation 30, white), ``before-after.png`` (``before``/``after``:
    :func:`render_fixed` views) and ``loss.png`` (the loss curves). Returns the sorted file names, ``metrics.json`` included (the
    caller writes that one)."""
    import numpy as np

    from meshopt_cli.mesh import save_mesh
    from meshopt_cli.mesh.atomic import atomic_write_bytes
    from meshopt_cli.plots import loss_plot_png
    from meshopt_cli.turntable import render_views, write_gif, write_png

    out_vertices = result.vertices.cpu().numpy().astype(np.float64) / subject.scale + subject.centre
    if subject.uvs is None:
        written = save_mesh(
            staging / f"{stem}.obj",
            subject.mesh,
            textures=result.textures.cpu().numpy(),
            vertices=out_vertices.astype(np.float32),
        )
        uv = {}
    else:  # the optimized image itself, in the layout it was optimized in, at the input's own size
        from meshopt_cli.mesh import save_uv_mesh
        from meshopt_cli.mesh.uvtexture import layout_mask, resize_image

        h, w = subject.layout.image.shape[:2]
        image = resize_image(result.textures.cpu().numpy(), h, w)
        if not subject.layout.generated:  # texels no face reads keep the input's pixels (mip averages moved them)
            image = np.where(layout_mask(subject.layout.uvs, h, w)[..., None], image, subject.layout.image)
        written = save_uv_mesh(
            staging / f"{stem}.obj", out_vertices.astype(np.float32), subject.mesh.faces, subject.layout.uvs, image
        )
        uv = {"uvs": subject.uvs, "texture_image": result.textures}
    frames = render_views(
        result.vertices,
        subject.faces,
        None if uv else result.textures,
        frames=settings.turntable_frames,
        elevation=30.0,
        image_size=settings.turntable_size,
        **uv,
    )
    write_gif(staging / "turntable.gif", frames)
    write_png(staging / "before-after.png", sheet([before, after]))
    atomic_write_bytes(staging / "loss.png", loss_plot_png(result.curves, f"{stem}: loss terms per step (unweighted)"))
    return sorted({Path(p).name for p in written} | set(FILES))


@dataclass
class Report:
    """A command's own part of the result: ``head``, its identity keys of metrics.json (after
    ``input``); ``weights``, loss term -> weight for ``weighted_final_terms``; ``extra``, its own
    figures; ``headline(metrics)``, the log line's figures; ``figures(result)``, the ``--json``
    line's metrics dataclass."""

    head: dict
    weights: dict
    extra: dict
    headline: Callable[[dict], str]
    figures: Callable[[Any], Any]


def reads(job: Job, payload: Payload) -> list[str]:
    """The files a textured job reads: the mesh, ``style``'s image, a ``--weights`` file."""
    weights = payload.options.weights
    return (
        [job.input]
        + ([job.extra["image"]] if "image" in job.extra else [])
        + ([] if weights in ("imagenet", "random") else [weights])
    )


def command(kind: Kind, settings: type, plan, run) -> Command:
    """The :class:`~meshopt_cli.command.Command` of a textured command (default preset ``fast``)."""
    return Command(
        reads=reads,
        name=kind.name,
        settings=settings,
        options=TexturedOptions,
        default_preset="fast",
        plan=plan,
        run=run,
        files=(f"{kind.stem}.obj",) + FILES,
        memory=lambda settings, options: memory_estimate(kind.network_key, settings),
    )


def finish(
    kind: Kind,
    job: Job,
    payload: Payload,
    context: Context,
    subject: Subject,
    optimized: Optimized,
    initial_textures,
    network,
    used: precision.Precision,
    started: float,
    report: Report,
) -> JobResult:
    """Write the result folder (mesh, turntable, before-after, metrics.json), say how the run ended,
    tidy its checkpoint. ``initial_textures``: the cubes the loop started from; ``network``: the
    backbone (for its weights' source); ``used``: its precision."""
    from meshopt_cli.export import run_record, staged_folder, write_json
    from meshopt_cli.optimize.evaluate import divergence

    settings, options, result = payload.settings, payload.options, optimized.result
    force = job.force or options.resume  # resuming replaces the interrupted run's result
    uvs = subject.uvs
    before = render_fixed(
        subject.vertices, subject.faces, initial_textures, settings.sheet_size, framed_by=subject.vertices, uvs=uvs
    )
    after = render_fixed(
        result.vertices, subject.faces, result.textures, settings.sheet_size, framed_by=subject.vertices, uvs=uvs
    )
    if not result.failure and not result.interrupted:
        result.failure = divergence(result.vertices)
    status = status_of(result)
    mesh = subject.mesh
    with staged_folder(job.folder, force) as staging:
        files = write_result(staging, kind.stem, subject, result, settings, before, after)
        seconds = time.perf_counter() - started
        metrics = {
            "meshopt": __version__,
            "input": job.input,
            **report.head,
            "name": job.name,
            "mesh": {
                "vertices": int(mesh.num_vertices),
                "faces": int(mesh.num_faces),
                "uv_layout": bool(mesh.has_uv_layout),
                "normalization_scale": subject.scale,
            },
            "texture": subject.texture_record(),
            "weights": getattr(network, "weights_source", options.weights),
            "precision": {"asked": settings.precision, "used": used.name, "reason": used.reason},
            "steps": result.steps,
            "planned_steps": settings.iterations,
            "loss_curves": {k: [round(v, 6) for v in vs] for k, vs in result.curves.items()},
            "final_loss_terms": {k: vs[-1] for k, vs in result.curves.items()},
            "weighted_final_terms": {k: result.curves[k][-1] * w for k, w in report.weights.items() if k in result.curves},
            **report.extra,
            "vertex_displacement": dict(
                displacement(subject.vertices, result.vertices), frame="normalised ([-1, 1] bounding box)"
            ),
            "colours": {"before": colour_stats(*before), "after": colour_stats(*after)},
            "seconds": step_timings(result, seconds, kind.network_key),
            **run_record(context.device, payload.preset, settings, status, files, result.failure),
        }
        write_json(staging / "metrics.json", metrics)
    if result.interrupted:
        hint = f"; continue with --resume (checkpoint {optimized.checkpoint})" if optimized.checkpointing else ""
        console.info(
            f"{job.name}: interrupted; saved the state after {result.steps} of {settings.iterations} steps "
            f"as a partial result{hint}",
            context.quiet,
        )
    elif not result.failure and (optimized.checkpointing or optimized.resumed):
        optimized.checkpoint.unlink(missing_ok=True)  # finished: the checkpoint has served
    if result.steps:
        said = f"{report.headline(metrics)} ({seconds:.0f} s, {metrics['seconds']['per_step']:.3f} s/step)"
    else:  # nothing was optimized: no loss to quote
        said = (
            f"no steps ({'--iterations 0' if settings.iterations == 0 else 'stopped before the first'}): the result is the input"
        )
    console.info(f"{job.name}: {said}; files in {job.folder}", context.quiet)
    error = (
        f"{job.name}: {result.failure}; saved the last finite state in {job.folder} (try lower learning rates)"
        if result.failure
        else None
    )
    return JobResult(status=status, error=error, files=[str(job.folder / f) for f in files], metrics=report.figures(result))
