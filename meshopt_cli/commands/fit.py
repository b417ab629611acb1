"""``meshopt fit``: deform a template (a sphere by default) until its silhouettes match a target's.

Targets are meshes (their silhouettes are rendered from the training views) or images with known
cameras (``--images``). Each input gets a folder ``OUT/<name>/`` with ``fitted.obj``,
``turntable.gif``, ``compare.png`` (target vs fitted silhouettes) and ``metrics.json``; the folder
appears complete or not at all.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from meshopt_cli import __version__, console, stop
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, check_folder_name, make_jobs, read_inputs, source_name
from meshopt_cli.command import Command, Payload
from meshopt_cli.fields import setting
from meshopt_cli.optimize.fit import FitLoopSettings

SHEET_VIEWS = 4  # columns of training views and of held-out views in compare.png


@dataclass
class FitSettings(FitLoopSettings):
    # training views: azimuths every 360/views degrees, elevation 30, distance 2.732
    views: int = setting(24, ge=1, le=360, why="one view per degree of azimuth")
    # evaluation views at other azimuths and elevations (mesh targets)
    heldout_views: int = setting(12, ge=0, le=360, why="one view per degree of azimuth")
    # IoU figures are measured at this size
    eval_image_size: int = setting(128, ge=1, le=1024, why="masks are drawn at twice the size for anti-aliasing")
    init: str = setting("builtin:sphere")  # the template
    init_scale: float = setting(1.0, gt=0)  # the template is centred and scaled into a ball of this radius
    turntable_frames: int = setting(36, ge=1, le=3600, why="one frame every 0.1 degrees")
    turntable_size: int = setting(128, ge=1, le=4096, why="frames are drawn at twice the size for anti-aliasing")


@dataclass(frozen=True)
class FitOptions:
    """What one ``meshopt fit`` call asks beyond its settings and the batch options."""

    images: bool = False  # the arguments are images of one object
    cameras: str | None = None
    azimuth: float | None = None
    elevation: float | None = None
    distance: float | None = None
    holdout: int = 0
    name: str | None = None


@dataclass
class FitFigures:
    heldout_iou: float | None
    train_iou: float
    voxel_iou: float | None
    iterations: int


def check_usage(sources: list[str], options: FitOptions) -> None:
    if not sources:
        raise console.UsageError(
            "no target given (a mesh file, builtin:NAME, '-' for paths on stdin, or --images IMAGE... with --cameras)"
        )
    if not options.images:
        if options.cameras is not None:
            raise console.UsageError("--cameras goes with --images (the arguments are then images)")
        if any(x is not None for x in (options.azimuth, options.elevation, options.distance)):
            raise console.UsageError("--azimuth/--elevation/--distance describe the camera of one image (with --images)")
        if options.holdout:
            raise console.UsageError("--holdout goes with --images (mesh targets have --heldout-views)")
    else:
        if options.cameras is not None and any(x is not None for x in (options.azimuth, options.elevation, options.distance)):
            raise console.UsageError("give the cameras either in --cameras or as --azimuth/--elevation/--distance, not both")
        if options.holdout < 0:
            raise console.UsageError("--holdout must not be negative")
    check_folder_name(options.name)
    if options.name is not None and len(sources) > 1 and not options.images:
        raise console.UsageError("--name names the result of one input; several inputs are named after themselves")


def images_name(sources: list[str]) -> str:
    """The result name of an ``--images`` fit: what the images' names share (``chair`` for
    chair_000.png ... chair_007.png), else the first image's name."""
    stems = [Path(s).stem for s in sources]
    shared = os.path.commonprefix(stems).rstrip("_-. 0123456789")
    return shared or stems[0] or "images"


def plan(arguments: list[str], settings: FitSettings, options: FitOptions, batch: BatchOptions) -> list[Job]:
    """One job per mesh target, or one for all the images of ``--images``; usage errors raise."""
    sources = read_inputs(arguments)
    check_usage(sources, options)
    check_template(settings.init)
    if options.images:
        name = options.name or images_name(sources)
        described = sources[0] if len(sources) == 1 else f"{sources[0]} and {len(sources) - 1} more images"
        return [Job(index=0, input=described, name=name, folder=batch.out / name, extra={"images": sources})]
    if options.name:
        return make_jobs(sources, [options.name], batch.out)
    return make_jobs(sources, [source_name(s) for s in sources], batch.out)


def check_template(source: str) -> None:
    """A template that cannot be loaded is a usage error (a bad --init), found before any input runs."""
    from meshopt_cli.mesh import MeshError, load_mesh

    try:
        load_mesh(source, textures=False)
    except MeshError as problem:
        raise console.UsageError(f"--init: {problem}") from None


@functools.lru_cache(maxsize=4)
def load_template(source: str, scale: float, device):
    """The template mesh centred and scaled into a ball of radius ``scale`` (once per process)."""
    import numpy as np
    import torch

    from meshopt_cli.mesh import MeshError, load_mesh
    from meshopt_cli.mesh.topology import is_closed_and_consistent
    from meshopt_cli.optimize.targets import normalize_to_ball

    try:
        mesh = load_mesh(source, textures=False)
    except MeshError as problem:
        raise ValueError(f"--init: {problem}") from None
    vertices, _, _ = normalize_to_ball(mesh.vertices, scale)
    closed = is_closed_and_consistent(np.asarray(mesh.faces))
    return (torch.tensor(vertices, device=device), torch.tensor(np.asarray(mesh.faces, np.int64), device=device), closed)


def build_target(job: Job, settings: FitSettings, options: FitOptions, device):
    from meshopt_cli.optimize.targets import image_target, mesh_target

    if "images" in job.extra:
        return image_target(
            job.extra["images"],
            options.cameras,
            job.name,
            device,
            options.holdout,
            options.azimuth,
            options.elevation,
            options.distance,
        )
    return mesh_target(job.input, settings.views, settings.heldout_views, device)


def check_memory(target, template_vertices, template_faces, settings: FitSettings, context: Context) -> None:
    """Refuse the fit (:class:`~meshopt_cli.memory.OverBudget`) before its loop when its estimate
    with this target and template exceeds the budget."""
    from meshopt_cli import memory
    from meshopt_cli.optimize.carve import CARVE_IMAGE_SIZE

    target_vertices = getattr(target, "vertices", None)
    target_faces = getattr(target, "faces", None)
    estimate = memory.fit_estimate(
        len(target_vertices) if target_vertices is not None else 0,
        len(target_faces) if target_faces is not None else 0,
        len(template_vertices),
        len(template_faces),
        settings,
        CARVE_IMAGE_SIZE,
    )
    estimate.parts["meshopt itself"] = memory.current_rss()
    memory.check(estimate, context.memory_budget or memory.default_budget(), f"fitting {len(template_faces)} template faces")


def run_job(job: Job, payload: Payload[FitSettings, FitOptions], context: Context) -> JobResult:
    """Fit one input and write its folder (see :func:`meshopt_cli.batch.execute`)."""
    from meshopt_cli.export import check_writable, staged_folder, write_json
    from meshopt_cli.optimize.evaluate import divergence, evaluate
    from meshopt_cli.optimize.fit import fit

    started, cpu_started = time.perf_counter(), time.process_time()
    settings, options, device, folder = payload.settings, payload.options, context.device, job.folder
    check_writable(folder, job.force)
    with console.job_progress(f"fit {job.name}", settings.affine_iterations + settings.iterations, context.progress) as progress:
        progress.stage("loading and rendering the target")
        target = build_target(job, settings, options, device)
        template_vertices, faces, closed = load_template(settings.init, settings.init_scale, device)
        check_memory(target, template_vertices, faces, settings, context)
        fill_back = settings.fill_back or not closed
        run_settings = settings if fill_back == settings.fill_back else dataclasses.replace(settings, fill_back=True)
        progress.stage("optimizing")
        result = fit(template_vertices, faces, target, run_settings, progress=progress.advance, should_stop=stop.requested)
        progress.stage("evaluating")
        figures = evaluate(result.vertices, result.faces, target, settings.eval_image_size, fill_back=True)
    if not result.failure and not result.interrupted:
        result.failure = divergence(result.vertices, figures["train_iou"])
    status = "failed" if result.failure else "interrupted" if result.interrupted else "done"

    with staged_folder(folder, job.force) as staging:
        files = write_outputs(staging, target, result, settings, device)
        seconds = time.perf_counter() - started
        metrics = build_metrics(
            job,
            payload,
            target,
            result,
            figures,
            run_settings,
            device,
            seconds,
            time.process_time() - cpu_started,
            files + ["metrics.json"],
            closed,
            status,
        )
        write_json(staging / "metrics.json", metrics)

    heldout = figures["heldout_iou"]
    voxel = figures["voxel_iou"]
    hint = "--holdout N keeps N images out" if "images" in job.extra else "--heldout-views is 0"
    line = f"{job.name}: held-out IoU " + (f"{heldout:.3f}" if heldout is not None else f"n/a (no held-out views; {hint})")
    line += f", train IoU {figures['train_iou']:.3f}"
    if voxel is not None:
        line += f", voxel IoU {voxel:.3f}"
    line += f" ({seconds:.0f} s); files in {folder}"
    done = len(result.affine_curve) + len(result.loss_curve)
    if result.interrupted:
        console.info(
            f"{job.name}: interrupted; saved the state after {done} of "
            f"{settings.affine_iterations + settings.iterations} iterations as a partial result",
            context.quiet,
        )
    console.info(line, context.quiet)
    error = (
        f"{job.name}: {result.failure}; saved the last finite state in {folder} (try a lower --lr)" if result.failure else None
    )
    return JobResult(
        status=status,
        error=error,
        files=[str(folder / f) for f in files + ["metrics.json"]],
        metrics=FitFigures(heldout_iou=heldout, train_iou=figures["train_iou"], voxel_iou=voxel, iterations=done),
    )


def write_outputs(folder: Path, target, result, settings, device) -> list[str]:
    """fitted.obj (in the target's own frame), turntable.gif, compare.png, loss.png; returns the file names."""
    import numpy as np
    import torch

    from meshopt_cli.mesh import save_obj
    from meshopt_cli.mesh.atomic import atomic_write_bytes
    from meshopt_cli.optimize.targets import MeshTarget, normalize_to_ball
    from meshopt_cli.plots import loss_plot_png
    from meshopt_cli.turntable import render_views, write_gif, write_png

    vertices = result.vertices.detach().cpu().numpy().astype(np.float64)
    faces = result.faces.detach().cpu().numpy()
    if isinstance(target, MeshTarget):  # back from the unit ball to the target's coordinates
        vertices = vertices / target.scale + target.centre
    save_obj(folder / "fitted.obj", vertices.astype(np.float32), faces)

    shown, _, _ = normalize_to_ball(result.vertices.detach().cpu().numpy())
    frames = render_views(
        torch.tensor(shown, device=device),
        result.faces,
        frames=settings.turntable_frames,
        elevation=30.0,
        image_size=settings.turntable_size,
    )
    write_gif(folder / "turntable.gif", frames)
    write_png(folder / "compare.png", comparison_sheet(target, result, settings.eval_image_size))
    curves = {"affine stage: silhouette": result.affine_curve, "silhouette": result.silhouette_curve, "total": result.loss_curve}
    if result.affine_curve:  # the vertex stage's steps follow the affine stage's on one axis
        pad = [float("nan")] * len(result.affine_curve)
        curves["silhouette"], curves["total"] = pad + result.silhouette_curve, pad + result.loss_curve
    atomic_write_bytes(folder / "loss.png", loss_plot_png(curves, "fit: loss per iteration", "iteration (affine, then vertices)"))
    return ["fitted.obj", "turntable.gif", "compare.png", "loss.png"]


# The overlay row of compare.png (RGB), named in the sheet's legend.
OVERLAY_COLOURS = {"both": (120, 120, 120), "target only": (220, 40, 40), "fit only": (40, 90, 220)}


def comparison_sheet(target, result, size: int, per_set: int = SHEET_VIEWS):
    """Target vs fitted silhouettes ``[14 + 3 S + 16, 64 + columns S, 3]`` uint8: a row of target
    masks, a row of fitted masks and a row of both overlaid (:data:`OVERLAY_COLOURS`), for up to
    ``per_set`` training views and ``per_set`` held-out views; the rows are named on the left, the
    overlay colours in a legend below, the views above."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from meshopt_cli.optimize.views import render_silhouettes

    columns = []  # (label, target mask, fitted mask)
    for which, title in (("train", "train"), ("heldout", "held-out")):
        views = target.train if which == "train" else target.heldout
        if views is None or len(views) == 0:
            continue
        picks = sorted({round(k * len(views) / per_set) % len(views) for k in range(min(per_set, len(views)))})
        with torch.no_grad():
            fitted = render_silhouettes(result.vertices, result.faces, views.subset(picks), size, fill_back=True)
        wanted = target.masks(which, size)[torch.as_tensor(picks, device=target.device)]
        for k, index in enumerate(picks):
            label = views.labels[index] if views.labels else str(index)
            columns.append((f"{title}: {label}", wanted[k].cpu().numpy(), fitted[k].cpu().numpy()))
    band, margin, legend = 14, 64, 16  # column titles, row names, colour legend (pixels)
    width = margin + len(columns) * size
    sheet = np.full((band + 3 * size + legend, width, 3), 255, np.uint8)
    for c, (_, t, f) in enumerate(columns):
        x = slice(margin + c * size, margin + (c + 1) * size)
        tb, fb = t > 0.5, f > 0.5
        for row, mask in ((0, tb), (1, fb)):
            y0 = band + row * size
            sheet[y0 : y0 + size, x][mask] = (40, 40, 40)
        overlay = sheet[band + 2 * size : band + 3 * size, x]
        overlay[tb & fb] = OVERLAY_COLOURS["both"]
        overlay[tb & ~fb] = OVERLAY_COLOURS["target only"]
        overlay[~tb & fb] = OVERLAY_COLOURS["fit only"]
        sheet[band : band + 3 * size, margin + c * size] = 200  # column separators
    sheet[band + size, margin:] = 200
    sheet[band + 2 * size, margin:] = 200
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for c, (label, _, _) in enumerate(columns):
        draw.text((margin + c * size + 3, 2), label[: max(4, size // 5)], fill=(0, 0, 0))
    for row, name in enumerate(("target", "fit", "overlay")):
        draw.text((4, band + row * size + size // 2 - 5), name, fill=(0, 0, 0))
    x, y = 4, band + 3 * size + 3
    for name, colour in OVERLAY_COLOURS.items():
        draw.rectangle((x, y, x + 9, y + 9), fill=colour)
        draw.text((x + 13, y - 1), name, fill=(0, 0, 0))
        x += 13 + 7 * len(name) + 12
    return np.asarray(image)


def build_metrics(job, payload, target, result, figures, settings, device, seconds, cpu_seconds, files, closed, status) -> dict:
    from meshopt_cli.export import run_record
    from meshopt_cli.optimize.evaluate import MASK_RULE
    from meshopt_cli.optimize.targets import MeshTarget
    from meshopt_cli.optimize.views import DISTANCE, ELEVATION

    is_mesh = isinstance(target, MeshTarget)
    target_info = (
        {
            "kind": "mesh",
            "source": job.input,
            "normalization": {
                "centre": [float(x) for x in target.centre],
                "scale": float(target.scale),
                "note": "silhouettes and IoUs are of the mesh moved into the unit ball: (v - centre) * scale",
            },
        }
        if is_mesh
        else {
            "kind": "images",
            "images": job.extra["images"],
            "cameras": payload.options.cameras,
            "holdout": payload.options.holdout,
        }
    )
    views = {
        "train": len(target.train),
        "heldout": len(target.heldout) if target.heldout is not None else 0,
        "heldout_cameras": list(target.heldout.labels) if target.heldout is not None else [],
    }
    if is_mesh:
        views.update({"train_elevation": ELEVATION, "distance": DISTANCE})
    rounded = lambda xs: [round(x, 6) for x in xs]  # noqa: E731
    return {
        "meshopt": __version__,
        "input": job.input,
        "name": job.name,
        "target": target_info,
        "template": {
            "source": settings.init,
            "vertices": int(result.vertices.shape[0]),
            "faces": int(result.faces.shape[0]),
            "closed": bool(closed) and result.carved_faces == 0,  # the fitted mesh's: a carve opens it
            "fill_back": bool(settings.fill_back) or result.carved_faces > 0,  # faces drawn from both sides at the end
            "subdivided_at_iteration": result.refined_at,  # vertex iteration of --refine-at (counts are the final mesh's)
            "carved_at_iteration": result.carved_at,  # vertex iteration of --carve-at
            "carved_faces": result.carved_faces,  # faces it removed (the fitted mesh is open when > 0)
            "relaxed_vertices": result.relaxed_vertices,  # vertices --relax moved (None: not run)
        },
        "views": views,
        "iterations": {
            "affine": len(result.affine_curve),
            "vertices": len(result.loss_curve),
            "planned": settings.affine_iterations + settings.iterations,
        },
        "loss_curve": rounded(result.loss_curve),
        "silhouette_loss_curve": rounded(result.silhouette_curve),
        "affine_loss_curve": rounded(result.affine_curve),
        "final_loss_terms": {k: round(v, 6) for k, v in result.final_terms.items()},
        "affine": {"scale": result.scale, "translation": result.translation},
        "iou": {
            "train": figures["train_iou"],
            "heldout": figures["heldout_iou"],
            "train_per_view": figures["train_ious"],
            "heldout_per_view": figures["heldout_ious"],
            "image_size": settings.eval_image_size,
            "mask_rule": MASK_RULE,
        },
        "voxel_iou": figures["voxel_iou"],
        "voxel_iou_note": figures["voxel_iou_note"],
        "voxel_resolution": 32,
        "seconds": {"total": round(seconds, 3), "fit": round(result.seconds, 3)},
        "cpu_seconds": round(cpu_seconds, 3),
        **run_record(device, payload.preset, settings, status, files, result.failure),
    }


def reads(job: Job, payload: Payload[FitSettings, FitOptions]) -> list[str]:
    """The files a fit reads: the target mesh, or the images and their cameras file; the template."""
    targets = job.extra["images"] + [payload.options.cameras] if "images" in job.extra else [job.input]
    return [p for p in targets if p is not None] + [payload.settings.init]


FILES = ("fitted.obj", "turntable.gif", "compare.png", "loss.png", "metrics.json")  # what every complete result folder holds


def smallest_job(settings: FitSettings, options: FitOptions):
    """What the settings alone need (an empty target, the template's own size not counted)."""
    from meshopt_cli import memory

    return memory.fit_estimate(0, 0, 0, 0, settings)


COMMAND = Command(
    name="fit",
    settings=FitSettings,
    options=FitOptions,
    default_preset="default",
    plan=plan,
    run=run_job,
    files=FILES,
    memory=smallest_job,
    reads=reads,
)
