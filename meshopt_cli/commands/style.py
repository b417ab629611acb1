"""``meshopt style MESH IMAGE``: the mesh's texture and shape take on the style of an image.

Writes ``OUT/NAME/`` (NAME: ``<mesh>-<image>`` or ``--name``), complete or not at all:
``stylized.obj`` + ``.mtl`` + ``.png`` (baked into the input's own UV layout when it has one, else a
per-face atlas), ``turntable.gif`` (elevation 30, white), ``before-after.png`` (a row of views of
the input, a row of the result) and ``metrics.json``.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from meshopt_cli import __version__, console
from meshopt_cli.batch import BatchOptions, Context, Job, check_folder_name, make_jobs, read_inputs, run_batch, source_name

SHEET_AZIMUTHS = (0.0, 90.0, 180.0, 270.0)
SHEET_ELEVATION = 30.0


@dataclass
class StyleOptions:
    """Everything of one ``style`` (or ``dream``) call but the shared batch options (picklable: the payload)."""

    preset: str | None = None
    config: str | None = None
    overrides: dict = field(default_factory=dict)
    weights: str = "imagenet"
    name: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    image: str | None = None  # style: the style image
    settings: object = None  # resolved by prepare()
    preset_used: str = ""


def check_common(inputs: list[str], options: StyleOptions) -> None:
    """Usage checks shared by style and dream."""
    if not inputs:
        raise console.UsageError("no mesh given ('-' read no paths from standard input)")
    check_folder_name(options.name)
    if options.name is not None and len(inputs) > 1:
        raise console.UsageError("--name names the result of one input; several inputs are named after themselves")
    if options.checkpoint_every < 0:
        raise console.UsageError("--checkpoint-every must not be negative")


@functools.lru_cache(maxsize=2)
def vgg_features(weights: str, seed: int, device, progress: bool):
    """VGG16 features on ``device``, loaded once per process."""
    from meshopt_cli.optimize.backbones import VGG16Features

    return VGG16Features(weights=weights, seed=seed, progress=progress).to(device)


def checkpoint_path(out: Path, name: str) -> Path:
    """Where ``--checkpoint-every`` saves and ``--resume`` reads: ``OUT/NAME.checkpoint.pt``."""
    return out / f"{name}.checkpoint.pt"


def _comparable(settings) -> dict:
    values = settings.as_dict()
    for key in ("iterations", "turntable_frames", "turntable_size", "sheet_size"):
        values.pop(key)
    return values


def save_checkpoint(path: Path, state: dict, meta: dict) -> None:
    """``torch.save`` of the loop's state plus ``meta``, atomically (temp file + rename)."""
    import os
    import tempfile

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save({"meta": meta, "state": state}, temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, meta: dict) -> dict:
    """The loop state saved at ``path``; a one-line ValueError when missing or from another run."""
    import torch

    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint to resume from (run with --checkpoint-every N first)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        saved_meta, state = saved["meta"], saved["state"]
    except Exception as problem:  # noqa: BLE001 - any unreadable file is one line
        raise ValueError(f"{path}: not a readable checkpoint ({problem})") from None
    for key, value in meta.items():
        if saved_meta.get(key) != value:
            raise ValueError(f"{path}: made with a different {key} ({saved_meta.get(key)!r}, now {value!r}); "
                             "resume with the same mesh, image and settings")
    return state


def normalization(vertices):
    """(centre [3], scale) of the paper's normalisation: the bounding box into [-1, 1] (longest side)."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    extent = float((hi - lo).max())
    return (lo + hi) / 2.0, (2.0 / extent if extent > 0 else 1.0)


def prepare(arguments: list[str], batch: BatchOptions, options: StyleOptions) -> list[Job]:
    """``MESH... IMAGE``: every mesh with the one style image (the last argument); usage errors raise."""
    from meshopt_cli.optimize.style import SettingsError, resolve_named

    if len(arguments) < 2:
        raise console.UsageError("give the mesh(es) and then the style image: meshopt style MESH... IMAGE")
    *meshes, options.image = arguments
    inputs = read_inputs(meshes)
    check_common(inputs, options)
    try:
        options.settings, options.preset_used = resolve_named(options.preset, options.overrides, options.config)
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    style = Path(options.image).stem or "style"
    names = [options.name] if options.name else [f"{source_name(i)}-{style}" for i in inputs]
    return make_jobs(inputs, names, batch.out, [{"image": options.image} for _ in inputs])


def run(arguments: list[str], batch: BatchOptions, options: StyleOptions) -> int:
    """Stylize every mesh (see :mod:`meshopt_cli.batch`); exit status 0, 1, 130."""
    return run_batch("meshopt_cli.commands.style:run_job", prepare(arguments, batch, options), options, batch)


def optimize_with_checkpoints(kind: str, job: Job, options: StyleOptions, context: Context, meta: dict, vertices, faces,
                              textures, loss, background, **loop_options):
    """The shared loop of style and dream with a progress bar and ``--checkpoint-every``/``--resume``
    at ``OUT/NAME.checkpoint.pt``. Returns (result, checkpoint path, saver or None, resumed state or None)."""
    from meshopt_cli.optimize.textured import optimize_textured

    settings = options.settings
    saved_at = checkpoint_path(job.folder.parent, job.name)
    resume = load_checkpoint(saved_at, meta) if options.resume else None
    keep = (lambda state: save_checkpoint(saved_at, state, meta)) if options.checkpoint_every > 0 else None
    with console.progress_bar(context.progress) as bar:
        task = bar.add_task(f"{kind} {job.name}", total=settings.iterations)
        if resume is not None:
            bar.advance(task, resume["step"])

        def progress(step, terms):
            text = " ".join(f"{k} {v:.3g}" for k, v in terms.items())
            bar.update(task, advance=1, description=f"{kind} {job.name} {text}") if hasattr(bar, "update") else bar.advance(task, 1)

        result = optimize_textured(vertices, faces, textures, settings.loop_settings(), loss, background, progress,
                                   checkpoint_every=options.checkpoint_every, on_checkpoint=keep, resume=resume,
                                   **loop_options)
    return result, saved_at, keep, resume


def displacement(before, after) -> dict:
    """Max, mean and sum of squares of the per-vertex distance between ``before`` and ``after`` ``[V, 3]``."""
    moved = (after - before).norm(dim=1)
    return {"max": float(moved.max()) if len(moved) else 0.0, "mean": float(moved.mean()) if len(moved) else 0.0,
            "sum_of_squares": float((moved ** 2).sum())}


def render_fixed(vertices, faces, textures, size: int, background=(1.0, 1.0, 1.0), light_intensity=None):
    """Views at :data:`SHEET_AZIMUTHS`, elevation 30: ``(rgb [N, 3, S, S], alpha [N, S, S])``.
    ``light_intensity``: (ambient, directional); default the renderer's own."""
    import torch

    from meshopt_cli.render import Renderer, get_points_from_angles

    n = len(SHEET_AZIMUTHS)
    renderer = Renderer(image_size=size, background_color=tuple(background))
    if light_intensity is not None:
        renderer.light_intensity_ambient, renderer.light_intensity_directional = (float(x) for x in light_intensity)
    renderer.eye = get_points_from_angles(torch.full((n,), 2.732), torch.full((n,), SHEET_ELEVATION),
                                          torch.tensor(SHEET_AZIMUTHS)).to(vertices.device)
    with torch.no_grad():
        rgb, _, alpha = renderer(vertices[None].expand(n, -1, -1), faces[None].expand(n, -1, -1),
                                 textures[None].expand(n, *textures.shape), mode=None)
    return rgb.clamp(0, 1), alpha


def colour_stats(rgb, alpha) -> dict:
    """Mean and standard deviation of the colours inside the silhouettes (alpha > 0.5)."""
    inside = alpha > 0.5
    pixels = rgb.permute(0, 2, 3, 1)[inside]
    if len(pixels) == 0:
        return {"mean": [0.0, 0.0, 0.0], "std": [0.0, 0.0, 0.0]}
    return {"mean": [round(float(x), 5) for x in pixels.mean(0)], "std": [round(float(x), 5) for x in pixels.std(0, unbiased=False)]}


def run_job(job: Job, options: StyleOptions, context: Context) -> dict:
    """Stylize one mesh and write its folder; returns its summary (see :func:`meshopt_cli.batch.execute`)."""
    import numpy as np
    import torch

    from meshopt_cli.export import check_writable, staged_folder, write_json
    from meshopt_cli.mesh import load_mesh
    from meshopt_cli.optimize.style import StyleLoss, load_style_image, style_tensor
    from meshopt_cli.render import get_backend

    started = time.perf_counter()
    settings, device, folder, name = options.settings, context.device, job.folder, job.name
    mesh_source, image_path = job.input, job.extra["image"]
    force = job.force or options.resume  # resuming replaces the interrupted run's result
    check_writable(folder, force)
    mesh = load_mesh(mesh_source)
    style_image = load_style_image(image_path)
    network = vgg_features(options.weights, settings.seed, device, not context.quiet)
    torch.manual_seed(settings.seed)

    centre, scale = normalization(np.asarray(mesh.vertices, np.float64))
    vertices = torch.tensor((mesh.vertices - centre) * scale, dtype=torch.float32, device=device)
    faces = torch.tensor(np.asarray(mesh.faces, np.int64), device=device)
    textures = torch.tensor(mesh.texture_cubes(settings.texture_size), device=device)
    background = [float(c) for c in style_image.reshape(-1, 3).mean(0)]
    loss = StyleLoss(network, style_tensor(style_image, settings.image_size, device), vertices, settings)
    meta = {"input": mesh_source, "image": str(Path(image_path).resolve()), "faces": int(mesh.num_faces),
            "vertices": int(mesh.num_vertices), "weights": str(options.weights), "settings": _comparable(settings)}
    result, saved_at, keep, resume = optimize_with_checkpoints("style", job, options, context, meta, vertices, faces,
                                                               textures, loss, background)
    moved = displacement(vertices, result.vertices)
    before = render_fixed(vertices, faces, textures, settings.sheet_size)
    after = render_fixed(result.vertices, faces, result.textures, settings.sheet_size)
    status = result_status(result)
    with staged_folder(folder, force) as staging:
        files = write_result(staging, "stylized", mesh, result, faces, centre, scale, settings, before, after)
        seconds = time.perf_counter() - started
        metrics = build_metrics(mesh_source, image_path, name, options, settings, result, network, device,
                                get_backend(device).name, background, before, after, scale, seconds, files, mesh,
                                moved, status)
        write_json(staging / "metrics.json", metrics)
    final = metrics["final_loss_terms"]
    summary = finish(job, result, settings, saved_at, keep, resume, files, context,
                     f"style loss {final.get('style', float('nan')):.4g} ({seconds:.0f} s, "
                     f"{metrics['seconds']['per_step']:.3f} s/step)")
    summary["metrics"] = {"steps": result.steps, **{k: round(v, 6) for k, v in final.items()}}
    return summary


def result_status(result) -> str:
    """``done``, ``interrupted`` (a stop request) or ``failed`` (a non-finite value) for a loop result."""
    return "failed" if result.failure else "interrupted" if result.interrupted else "done"


def finish(job: Job, result, settings, saved_at: Path, keep, resume, files: list[str], context: Context, figures: str) -> dict:
    """Say how a style or dream run ended, tidy its checkpoint, and start its summary."""
    if result.interrupted:
        hint = f"; continue with --resume (checkpoint {saved_at})" if keep else ""
        console.info(f"{job.name}: interrupted; saved the state after {result.steps} of {settings.iterations} steps "
                     f"as a partial result{hint}", context.quiet)
    elif not result.failure and (keep or resume is not None):
        saved_at.unlink(missing_ok=True)  # finished: the checkpoint has served
    console.info(f"{job.name}: {figures}; files in {job.folder}", context.quiet)
    error = (f"{job.name}: {result.failure}; saved the last finite state in {job.folder} (try lower learning rates)"
             if result.failure else None)
    return {"status": result_status(result), "error": error, "files": [str(job.folder / f) for f in files]}


def write_result(staging: Path, stem: str, mesh, result, faces, centre, scale, settings, before, after) -> list[str]:
    """Write one optimized mesh into ``staging`` (shared by ``style`` and ``dream``): ``STEM.obj`` + ``.mtl``
    + ``.png`` (the input's UV layout kept by :func:`~meshopt_cli.mesh.save_mesh`; vertices back in the
    input's frame through ``centre`` and ``scale``), ``turntable.gif`` (elevation 30, white) and
    ``before-after.png`` (``before``/``after``: :func:`render_fixed` views). Returns the sorted file
    names of the folder, ``metrics.json`` included (the caller writes that one)."""
    import numpy as np

    from meshopt_cli.mesh import save_mesh
    from meshopt_cli.turntable import render_views, write_gif, write_png

    out_vertices = result.vertices.cpu().numpy().astype(np.float64) / scale + centre
    written = save_mesh(staging / f"{stem}.obj", mesh, textures=result.textures.cpu().numpy(),
                        vertices=out_vertices.astype(np.float32))
    frames = render_views(result.vertices, faces, result.textures, frames=settings.turntable_frames,
                          elevation=30.0, image_size=settings.turntable_size)
    write_gif(staging / "turntable.gif", frames)
    write_png(staging / "before-after.png", sheet([before, after]))
    return sorted({Path(p).name for p in written} | {"turntable.gif", "before-after.png", "metrics.json"})


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


NETWORK_NAMES = {"vgg": "VGG", "googlenet": "GoogLeNet"}


def step_timings(result, seconds: float, network: str) -> dict:
    """metrics.json's ``seconds`` of a style or dream run: totals and the mean split of a step."""
    def mean(xs):
        return round(sum(xs) / len(xs), 5) if xs else None

    return {"total": round(seconds, 3), "optimize": round(result.seconds, 3),
            "per_step": mean(result.step_seconds) or 0.0,
            "renderer_forward_per_step": mean(result.render_seconds),
            f"{network}_forward_per_step": mean(result.loss_seconds),
            "backward_and_adam_per_step": mean(result.backward_seconds),
            "note": f"the backward pass goes through {NETWORK_NAMES[network]} and the renderer together; autograd does not split it"}


def build_metrics(mesh_source, image_path, name, options, settings, result, network, device, backend, background,
                  before, after, scale, seconds, files, mesh, moved, status) -> dict:
    from meshopt_cli.export import run_record

    return {
        "meshopt": __version__,
        "input": mesh_source,
        "image": image_path,
        "name": name,
        "mesh": {"vertices": int(mesh.num_vertices), "faces": int(mesh.num_faces), "uv_layout": bool(mesh.has_uv_layout),
                 "normalization_scale": scale},
        "weights": getattr(network, "weights_source", options.weights),
        "steps": result.steps,
        "planned_steps": settings.iterations,
        "loss_curves": {k: [round(v, 6) for v in vs] for k, vs in result.curves.items()},
        "final_loss_terms": {k: vs[-1] for k, vs in result.curves.items()},
        "weighted_final_terms": {k: result.curves[k][-1] * w for k, w in
                                 (("style", settings.style_weight), ("content", settings.content_weight), ("tv", settings.tv_weight))
                                 if k in result.curves},
        "vertex_displacement": dict(moved, frame="normalised ([-1, 1] bounding box)"),
        "background": background,
        "colours": {"before": colour_stats(*before), "after": colour_stats(*after)},
        "seconds": step_timings(result, seconds, "vgg"),
        **run_record(device, options.preset_used, settings, status, files, result.failure),
    }
