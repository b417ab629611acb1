"""``meshopt fit``: deform a template (a sphere by default) until its silhouettes match a target's.

Targets are meshes (their silhouettes are rendered from the training views) or images with known
cameras (``--images``). Each input gets a folder ``OUT/<name>/`` with ``fitted.obj``,
``turntable.gif``, ``compare.png`` (target vs fitted silhouettes) and ``metrics.json``; the folder
appears complete or not at all.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from meshopt_cli import __version__, console
from meshopt_cli.batch import BatchOptions, Context, Job, check_folder_name, make_jobs, read_inputs, run_batch, source_name

SHEET_VIEWS = 4  # columns of training views and of held-out views in compare.png


@dataclass
class FitOptions:
    """Everything of one ``meshopt fit`` call but the shared batch options (picklable: the payload)."""

    preset: str | None = None
    config: str | None = None
    overrides: dict = field(default_factory=dict)
    images: bool = False
    cameras: str | None = None
    azimuth: float | None = None
    elevation: float | None = None
    distance: float | None = None
    holdout: int = 0
    name: str | None = None
    settings: object = None  # FitSettings, resolved by prepare()
    preset_used: str = ""


def check_usage(sources: list[str], options: FitOptions) -> None:
    if not sources:
        raise console.UsageError("no target given (a mesh file, builtin:NAME, '-' for paths on stdin, or --images IMAGE... with --cameras)")
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


def prepare(arguments: list[str], batch: BatchOptions, options: FitOptions) -> list[Job]:
    """Resolve the settings (usage errors) and plan the jobs: one per mesh target, or one for all
    the images of ``--images``."""
    from meshopt_cli.optimize.settings import SettingsError, resolve_named

    sources = read_inputs(arguments)
    check_usage(sources, options)
    try:
        options.settings, options.preset_used = resolve_named(options.preset, options.overrides, options.config)
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    check_template(options.settings.init)
    if options.images:
        name = options.name or (Path(options.cameras).stem if options.cameras else Path(sources[0]).stem) or "images"
        return [Job(index=0, input=", ".join(sources), name=name, folder=batch.out / name, extra={"images": sources})]
    if options.name:
        return make_jobs(sources, [options.name], batch.out)
    return make_jobs(sources, [source_name(s) for s in sources], batch.out)


def run(arguments: list[str], batch: BatchOptions, options: FitOptions) -> int:
    """Fit every input; one failing input is reported and skipped (see :mod:`meshopt_cli.batch`)."""
    return run_batch("meshopt_cli.commands.fit:run_job", prepare(arguments, batch, options), options, batch)


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


def build_target(job: Job, options: FitOptions, device):
    from meshopt_cli.optimize.targets import image_target, mesh_target

    if "images" in job.extra:
        return image_target(job.extra["images"], options.cameras, job.name, device, options.holdout,
                            options.azimuth, options.elevation, options.distance)
    return mesh_target(job.input, options.settings.views, options.settings.heldout_views, device)


def run_job(job: Job, options: FitOptions, context: Context) -> dict:
    """Fit one input and write its folder; returns its summary (see :func:`meshopt_cli.batch.execute`)."""
    from meshopt_cli.export import check_writable, staged_folder, write_json
    from meshopt_cli.optimize.evaluate import evaluate
    from meshopt_cli.optimize.fit import fit

    started, cpu_started = time.perf_counter(), time.process_time()
    settings, device, folder = options.settings, context.device, job.folder
    check_writable(folder, job.force)
    target = build_target(job, options, device)
    template_vertices, faces, closed = load_template(settings.init, settings.init_scale, device)
    fill_back = settings.fill_back or not closed
    run_settings = settings if fill_back == settings.fill_back else _with(settings, fill_back=True)

    with console.progress_bar(context.progress) as bar:
        task = bar.add_task(f"fit {job.name}", total=settings.affine_iterations + settings.iterations)
        result = fit(template_vertices, faces, target, run_settings, progress=lambda n: bar.advance(task, n))
    figures = evaluate(result.vertices, faces, target, settings.eval_image_size, fill_back=True)
    status = "failed" if result.failure else "interrupted" if result.interrupted else "done"

    with staged_folder(folder, job.force) as staging:
        files = write_outputs(staging, target, result, settings, device)
        seconds = time.perf_counter() - started
        metrics = build_metrics(job, options, target, result, figures, run_settings, device, seconds,
                                time.process_time() - cpu_started, files + ["metrics.json"], closed, status)
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
        console.info(f"{job.name}: interrupted; saved the state after {done} of "
                     f"{settings.affine_iterations + settings.iterations} iterations as a partial result", context.quiet)
    console.info(line, context.quiet)
    error = f"{job.name}: {result.failure}; saved the last finite state in {folder} (try a lower --lr)" if result.failure else None
    return {"status": status, "error": error, "files": [str(folder / f) for f in files + ["metrics.json"]],
            "metrics": {"heldout_iou": heldout, "train_iou": figures["train_iou"], "voxel_iou": voxel,
                        "iterations": done}}


def _with(settings, **changes):
    import dataclasses

    return dataclasses.replace(settings, **changes)


def write_outputs(folder: Path, target, result, settings, device) -> list[str]:
    """fitted.obj (in the target's own frame), turntable.gif, compare.png; returns the file names."""
    import numpy as np
    import torch

    from meshopt_cli.mesh import save_obj
    from meshopt_cli.optimize.targets import MeshTarget, normalize_to_ball
    from meshopt_cli.turntable import render_views, write_gif, write_png

    vertices = result.vertices.detach().cpu().numpy().astype(np.float64)
    faces = result.faces.detach().cpu().numpy()
    if isinstance(target, MeshTarget):  # back from the unit ball to the target's coordinates
        vertices = vertices / target.scale + target.centre
    save_obj(folder / "fitted.obj", vertices.astype(np.float32), faces)

    shown, _, _ = normalize_to_ball(result.vertices.detach().cpu().numpy())
    frames = render_views(torch.tensor(shown, device=device), result.faces, frames=settings.turntable_frames,
                          elevation=30.0, image_size=settings.turntable_size)
    write_gif(folder / "turntable.gif", frames)
    write_png(folder / "compare.png", comparison_sheet(target, result, settings.eval_image_size))
    return ["fitted.obj", "turntable.gif", "compare.png"]


def comparison_sheet(target, result, size: int, per_set: int = SHEET_VIEWS):
    """Target vs fitted silhouettes ``[3 S + labels, columns S, 3]`` uint8: a row of target masks, a
    row of fitted masks and a row of both overlaid (grey: both, red: target only, blue: fitted only),
    for up to ``per_set`` training views and ``per_set`` held-out views."""
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
    band = 14
    sheet = np.full((band + 3 * size, len(columns) * size, 3), 255, np.uint8)
    for c, (_, t, f) in enumerate(columns):
        x = slice(c * size, (c + 1) * size)
        tb, fb = t > 0.5, f > 0.5
        for row, mask in ((0, tb), (1, fb)):
            y0 = band + row * size
            sheet[y0:y0 + size, x][mask] = (40, 40, 40)
        overlay = sheet[band + 2 * size:band + 3 * size, x]
        overlay[tb & fb] = (120, 120, 120)
        overlay[tb & ~fb] = (220, 40, 40)
        overlay[~tb & fb] = (40, 90, 220)
        sheet[band:, c * size] = 200  # column separators
    sheet[band + size, :] = 200
    sheet[band + 2 * size, :] = 200
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for c, (label, _, _) in enumerate(columns):
        draw.text((c * size + 3, 2), label[: max(4, size // 5)], fill=(0, 0, 0))
    return np.asarray(image)


def build_metrics(job, options, target, result, figures, settings, device, seconds, cpu_seconds, files, closed, status) -> dict:
    from meshopt_cli.export import run_record
    from meshopt_cli.optimize.targets import MeshTarget
    from meshopt_cli.optimize.views import DISTANCE, ELEVATION

    is_mesh = isinstance(target, MeshTarget)
    target_info = {"kind": "mesh", "source": job.input,
                   "normalization": {"centre": [float(x) for x in target.centre], "scale": float(target.scale),
                                     "note": "silhouettes and IoUs are of the mesh moved into the unit ball: (v - centre) * scale"}
                   } if is_mesh else {"kind": "images", "images": job.extra["images"], "cameras": options.cameras,
                                      "holdout": options.holdout}
    views = {"train": len(target.train), "heldout": len(target.heldout) if target.heldout is not None else 0,
             "heldout_cameras": list(target.heldout.labels) if target.heldout is not None else []}
    if is_mesh:
        views.update({"train_elevation": ELEVATION, "distance": DISTANCE})
    rounded = lambda xs: [round(x, 6) for x in xs]  # noqa: E731
    return {
        "meshopt": __version__,
        "input": job.input,
        "name": job.name,
        "target": target_info,
        "template": {"source": settings.init, "vertices": int(result.vertices.shape[0]), "faces": int(result.faces.shape[0]),
                     "closed": bool(closed), "fill_back": bool(settings.fill_back)},
        "views": views,
        "iterations": {"affine": len(result.affine_curve), "vertices": len(result.loss_curve),
                       "planned": settings.affine_iterations + settings.iterations},
        "loss_curve": rounded(result.loss_curve),
        "silhouette_loss_curve": rounded(result.silhouette_curve),
        "affine_loss_curve": rounded(result.affine_curve),
        "final_loss_terms": {k: round(v, 6) for k, v in result.final_terms.items()},
        "affine": {"scale": result.scale, "translation": result.translation},
        "iou": {"train": figures["train_iou"], "heldout": figures["heldout_iou"],
                "train_per_view": figures["train_ious"], "heldout_per_view": figures["heldout_ious"],
                "image_size": settings.eval_image_size, "threshold": 0.5},
        "voxel_iou": figures["voxel_iou"],
        "voxel_iou_note": figures["voxel_iou_note"],
        "voxel_resolution": 32,
        "seconds": {"total": round(seconds, 3), "fit": round(result.seconds, 3)},
        "cpu_seconds": round(cpu_seconds, 3),
        **run_record(device, options.preset_used, settings, status, files, result.failure),
    }
