"""``meshopt dream [MESH]``: grow the patterns a GoogLeNet layer sees onto a mesh's texture and shape.

Same loop (:func:`~meshopt_cli.optimize.textured.optimize_textured`) and outputs as ``meshopt style``
(:func:`~meshopt_cli.commands.style.write_result`): ``OUT/NAME/`` (NAME: ``<mesh>-<layer>`` or
``--name``), complete or not at all, with ``dream.obj`` + ``.mtl`` + ``.png``, ``turntable.gif``,
``before-after.png`` and ``metrics.json``. MESH defaults to ``builtin:teapot``.
"""
from __future__ import annotations

import functools
import time

from meshopt_cli import __version__, console
from meshopt_cli.batch import BatchOptions, Context, Job, make_jobs, read_inputs, run_batch, source_name
from meshopt_cli.commands.style import (StyleOptions, _comparable, check_common, colour_stats, displacement, finish,
                                        normalization, optimize_with_checkpoints, render_fixed, result_status, step_timings,
                                        write_result)

DEFAULT_MESH = "builtin:teapot"


# the same options as style (preset, config, overrides, weights, name, checkpoints)
DreamOptions = StyleOptions


@functools.lru_cache(maxsize=2)
def googlenet_features(layer: str, weights: str, seed: int, device, progress: bool):
    """GoogLeNet up to ``layer`` on ``device``, loaded once per process."""
    from meshopt_cli.optimize.backbones import GoogLeNetFeatures


    return GoogLeNetFeatures(layer, weights=weights, seed=seed, progress=progress).to(device)


def prepare(arguments: list[str], batch: BatchOptions, options: DreamOptions) -> list[Job]:
    """``[MESH...]`` (default the teapot); usage errors raise."""
    from meshopt_cli.optimize.dream import SettingsError, resolve_named

    inputs = read_inputs(arguments) if arguments else [DEFAULT_MESH]
    check_common(inputs, options)
    try:
        options.settings, options.preset_used = resolve_named(options.preset, options.overrides, options.config)
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    layer = options.settings.layer
    names = [options.name] if options.name else [f"{source_name(i)}-{layer}" for i in inputs]
    return make_jobs(inputs, names, batch.out)


def run(arguments: list[str], batch: BatchOptions, options: DreamOptions) -> int:
    """Dream on every mesh (see :mod:`meshopt_cli.batch`); exit status 0, 1, 130."""
    return run_batch("meshopt_cli.commands.dream:run_job", prepare(arguments, batch, options), options, batch)


def run_job(job: Job, options: DreamOptions, context: Context) -> dict:
    """Dream on one mesh and write its folder; returns its summary (see :func:`meshopt_cli.batch.execute`)."""
    import numpy as np
    import torch

    from meshopt_cli.export import check_writable, run_record, staged_folder, write_json
    from meshopt_cli.mesh import load_mesh
    from meshopt_cli.optimize.dream import DreamLoss, initial_textures
    from meshopt_cli.optimize.image_losses import edge_length_variance

    started = time.perf_counter()
    settings, device, folder, name, mesh_source = options.settings, context.device, job.folder, job.name, job.input
    force = job.force or options.resume  # resuming replaces the interrupted run's result
    check_writable(folder, force)
    mesh = load_mesh(mesh_source)
    network = googlenet_features(settings.layer, options.weights, settings.seed, device, not context.quiet)
    torch.manual_seed(settings.seed)

    centre, scale = normalization(np.asarray(mesh.vertices, np.float64))
    vertices = torch.tensor((mesh.vertices - centre) * scale, dtype=torch.float32, device=device)
    faces = torch.tensor(np.asarray(mesh.faces, np.int64), device=device)
    textures = initial_textures(torch.tensor(mesh.texture_cubes(settings.texture_size), device=device), settings.init_bias)
    loss = DreamLoss(network, faces, settings.length_weight)
    meta = {"input": mesh_source, "faces": int(mesh.num_faces), "vertices": int(mesh.num_vertices),
            "weights": str(options.weights), "settings": _comparable(settings)}
    background = (0.5, 0.5, 0.5)  # replaced every step by a random grey when random_background
    result, saved_at, keep, resume = optimize_with_checkpoints(
        "dream", job, options, context, meta, vertices, faces, textures, loss, background,
        light_intensity=(settings.ambient, settings.directional), random_background=settings.random_background)
    moved = displacement(vertices, result.vertices)
    with torch.no_grad():
        edge_variance = {"before": float(edge_length_variance(vertices, faces)),
                         "after": float(edge_length_variance(result.vertices, faces))}
    before = render_fixed(vertices, faces, textures, settings.sheet_size)
    after = render_fixed(result.vertices, faces, result.textures, settings.sheet_size)
    lights = (settings.ambient, settings.directional)
    with torch.no_grad():  # the layer's mean activation² on four fixed views (training size and lights, mid-grey background)
        fixed_activation = {key: float((network(render_fixed(v, faces, t, settings.image_size, (0.5, 0.5, 0.5), lights)[0]) ** 2).mean())
                            for key, v, t in (("before", vertices, textures), ("after", result.vertices, result.textures))}
    status = result_status(result)
    with staged_folder(folder, force) as staging:
        files = write_result(staging, "dream", mesh, result, faces, centre, scale, settings, before, after)
        seconds = time.perf_counter() - started

        metrics = {
            "meshopt": __version__,
            "input": mesh_source,
            "name": name,
            "layer": settings.layer,
            "mesh": {"vertices": int(mesh.num_vertices), "faces": int(mesh.num_faces),
                     "uv_layout": bool(mesh.has_uv_layout), "normalization_scale": scale},
            "weights": getattr(network, "weights_source", options.weights),
            "steps": result.steps,
            "planned_steps": settings.iterations,
            "loss_curves": {k: [round(v, 6) for v in vs] for k, vs in result.curves.items()},
            "final_loss_terms": {k: vs[-1] for k, vs in result.curves.items()},
            "weighted_final_terms": {k: result.curves[k][-1] * w for k, w in
                                     (("dream", 1.0), ("edge_variance", settings.length_weight)) if k in result.curves},
            "edge_length_variance_x_faces": edge_variance,
            "mean_activation_sq_fixed_views": fixed_activation,
            "vertex_displacement": dict(moved, frame="normalised ([-1, 1] bounding box)"),
            "colours": {"before": colour_stats(*before), "after": colour_stats(*after)},
            "seconds": step_timings(result, seconds, "googlenet"),
            **run_record(device, options.preset_used, settings, status, files, result.failure),
        }
        write_json(staging / "metrics.json", metrics)
    activation = result.curves.get("activation", [float("nan")])
    summary = finish(job, result, settings, saved_at, keep, resume, files, context,
                     f"mean activation² {activation[0]:.4g} -> {activation[-1]:.4g} ({seconds:.0f} s, "
                     f"{metrics['seconds']['per_step']:.3f} s/step)")
    summary["metrics"] = {"steps": result.steps, "layer": settings.layer,
                          "mean_activation_sq_fixed_views": fixed_activation,
                          **{k: round(v, 6) for k, v in metrics["final_loss_terms"].items()}}
    return summary
