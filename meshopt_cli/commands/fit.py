"""``meshopt fit``: deform a template (a sphere by default) until its silhouettes match a target's.

Targets are meshes (their silhouettes are rendered from the training views) or images with known
cameras (``--images``). Each input gets a folder ``OUT/<name>/`` with ``fitted.obj``,
``turntable.gif``, ``compare.png`` (target vs fitted silhouettes) and ``metrics.json``; the folder
appears complete or not at all.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from meshopt_cli import __version__, console

SHEET_VIEWS = 4  # columns of training views and of held-out views in compare.png


@dataclass
class FitJob:
    """One input: a mesh source, or a set of images with their cameras."""

    label: str  # what the user typed (for messages)
    name: str  # output folder name
    source: str | None = None
    images: list[str] = field(default_factory=list)


@dataclass
class FitOptions:
    out: Path = Path("meshopt-out")
    preset: str = "default"
    overrides: dict = field(default_factory=dict)
    device: str = "auto"
    images: bool = False
    cameras: str | None = None
    azimuth: float | None = None
    elevation: float | None = None
    distance: float | None = None
    holdout: int = 0
    name: str | None = None
    force: bool = False
    quiet: bool = False
    json: bool = False


def _unique_names(names: list[str]) -> list[str]:
    taken: dict[str, int] = {}
    unique = []
    for name in names:
        count = taken.get(name, 0) + 1
        taken[name] = count
        unique.append(name if count == 1 else f"{name}-{count}")
    return unique


def source_name(source: str) -> str:
    if source.startswith("builtin:"):
        return source.split(":")[1] or "mesh"
    return Path(source).stem or "mesh"


def plan_jobs(sources: list[str], options: FitOptions) -> list[FitJob]:
    """The inputs of one call: every mesh source, or (``--images``) one job with all images."""
    if options.images:
        if options.name:
            name = options.name
        elif options.cameras:
            name = Path(options.cameras).stem
        else:
            name = Path(sources[0]).stem
        return [FitJob(label=", ".join(sources), name=name or "images", images=list(sources))]
    names = [options.name] if options.name else _unique_names([source_name(s) for s in sources])
    return [FitJob(label=s, name=n, source=s) for s, n in zip(sources, names)]


def read_sources(sources: list[str]) -> list[str]:
    """``-`` stands for the paths on standard input, one per line."""
    out = []
    for source in sources:
        if source == "-":
            out.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            out.append(source)
    return out


def check_usage(sources: list[str], options: FitOptions) -> None:
    if not sources:
        raise console.UsageError("no target given (a mesh file, builtin:NAME, or --images IMAGE... with --cameras)")
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
    if options.name is not None:
        if not options.name or "/" in options.name or options.name in (".", ".."):
            raise console.UsageError(f"--name must be a plain folder name, got {options.name!r}")
        if len(sources) > 1 and not options.images:
            raise console.UsageError("--name names the result of one input; several inputs are named after themselves")


def load_template(settings, device):
    """The template mesh, centred and scaled into a ball of radius ``init_scale``."""
    import numpy as np
    import torch

    from meshopt_cli.mesh import MeshError, load_mesh
    from meshopt_cli.mesh.topology import is_closed_and_consistent
    from meshopt_cli.optimize.targets import normalize_to_ball

    try:
        mesh = load_mesh(settings.init, textures=False)
    except MeshError as problem:
        raise console.UsageError(f"--init: {problem}") from None
    vertices, _, _ = normalize_to_ball(mesh.vertices, settings.init_scale)
    closed = is_closed_and_consistent(np.asarray(mesh.faces))
    return (torch.tensor(vertices, device=device), torch.tensor(np.asarray(mesh.faces, np.int64), device=device), closed)


def build_target(job: FitJob, options: FitOptions, settings, device):
    from meshopt_cli.optimize.targets import image_target, mesh_target

    if job.images:
        return image_target(job.images, options.cameras, job.name, device, options.holdout,
                            options.azimuth, options.elevation, options.distance)
    return mesh_target(job.source, settings.views, settings.heldout_views, device)


def run(sources: list[str], options: FitOptions) -> int:
    """Fit every input; one failing input is reported and skipped. Exit status 0 or 1."""
    from meshopt_cli.devices import resolve_device
    from meshopt_cli.optimize.settings import SettingsError, resolve

    sources = read_sources(sources)
    check_usage(sources, options)
    try:
        settings = resolve(options.preset, options.overrides)
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    device = resolve_device(options.device)
    template = load_template(settings, device)
    failures = 0
    for job in plan_jobs(sources, options):
        try:
            summary = fit_one(job, options, settings, template, device)
        except (ValueError, OSError) as problem:  # MeshError, TargetError, OutputExists: one line each
            message = str(problem) if isinstance(problem, ValueError) else _os_message(problem, options.out / job.name)
            console.error(message)
            if options.json:
                print(json.dumps({"input": job.label, "error": message}), flush=True)
            failures += 1
            continue
        if options.json:
            print(json.dumps(summary), flush=True)
        if summary.get("interrupted"):
            raise KeyboardInterrupt
    return 1 if failures else 0


def _os_message(problem: OSError, folder: Path) -> str:
    """One line for a failed write (a full disk, a folder we may not write to)."""
    where = problem.filename or folder
    return f"{where}: cannot write the result ({problem.strerror or problem})"


def fit_one(job: FitJob, options: FitOptions, settings, template, device) -> dict:
    """Fit one input and write its folder; returns the summary (``--json``)."""
    from meshopt_cli.export import check_writable, staged_folder, write_json
    from meshopt_cli.optimize.evaluate import evaluate
    from meshopt_cli.optimize.fit import fit

    started, cpu_started = time.perf_counter(), time.process_time()
    folder = options.out / job.name
    check_writable(folder, options.force)
    target = build_target(job, options, settings, device)
    template_vertices, faces, closed = template
    fill_back = settings.fill_back or not closed
    run_settings = settings if fill_back == settings.fill_back else _with(settings, fill_back=True)

    with console.progress_bar(not options.quiet) as bar:
        task = bar.add_task(f"fit {job.name}", total=settings.affine_iterations + settings.iterations)
        result = fit(template_vertices, faces, target, run_settings, progress=lambda n: bar.advance(task, n))
    figures = evaluate(result.vertices, faces, target, settings.eval_image_size, fill_back=True)

    with staged_folder(folder, options.force) as staging:
        files = write_outputs(staging, job, target, result, figures, settings, device)
        seconds = time.perf_counter() - started
        metrics = build_metrics(job, options, target, result, figures, run_settings, device, seconds,
                                time.process_time() - cpu_started, files + ["metrics.json"], closed)
        write_json(staging / "metrics.json", metrics)

    heldout = figures["heldout_iou"]
    voxel = figures["voxel_iou"]
    hint = "--holdout N keeps N images out" if job.images else "--heldout-views is 0"
    line = f"{job.name}: held-out IoU " + (f"{heldout:.3f}" if heldout is not None else f"n/a (no held-out views; {hint})")
    line += f", train IoU {figures['train_iou']:.3f}"
    if voxel is not None:
        line += f", voxel IoU {voxel:.3f}"
    line += f" ({seconds:.0f} s); files in {folder}"
    if result.interrupted:
        console.info(f"interrupted: saved the state after {len(result.loss_curve)} of {settings.iterations} iterations", options.quiet)
    console.info(line, options.quiet)
    return {"input": job.label, "name": job.name, "folder": str(folder), "heldout_iou": heldout,
            "train_iou": figures["train_iou"], "voxel_iou": voxel, "seconds": round(seconds, 2),
            "interrupted": result.interrupted}


def _with(settings, **changes):
    import dataclasses

    return dataclasses.replace(settings, **changes)


def write_outputs(folder: Path, job: FitJob, target, result, figures, settings, device) -> list[str]:
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


def build_metrics(job, options, target, result, figures, settings, device, seconds, cpu_seconds, files, closed) -> dict:
    from meshopt_cli.export import run_record
    from meshopt_cli.optimize.targets import MeshTarget
    from meshopt_cli.optimize.views import DISTANCE, ELEVATION

    is_mesh = isinstance(target, MeshTarget)
    target_info = {"kind": "mesh", "source": job.source,
                   "normalization": {"centre": [float(x) for x in target.centre], "scale": float(target.scale),
                                     "note": "silhouettes and IoUs are of the mesh moved into the unit ball: (v - centre) * scale"}
                   } if is_mesh else {"kind": "images", "images": job.images, "cameras": options.cameras,
                                      "holdout": options.holdout}
    views = {"train": len(target.train), "heldout": len(target.heldout) if target.heldout is not None else 0,
             "heldout_cameras": list(target.heldout.labels) if target.heldout is not None else []}
    if is_mesh:
        views.update({"train_elevation": ELEVATION, "distance": DISTANCE})
    rounded = lambda xs: [round(x, 6) for x in xs]  # noqa: E731
    return {
        "meshopt": __version__,
        "input": job.label,
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
        **run_record(device, options.preset, settings, result.interrupted, files),
    }
