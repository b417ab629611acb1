"""``meshopt dream [MESH]``: grow the patterns a GoogLeNet layer sees onto a mesh's texture and shape.

Same loop (:func:`~meshopt_cli.optimize.textured.optimize_textured`) and outputs as ``meshopt style``
(:func:`~meshopt_cli.commands.style.write_result`): ``OUT/NAME/`` (NAME: ``<mesh>-<layer>`` or
``--name``), complete or not at all, with ``dream.obj`` + ``.mtl`` + ``.png``, ``turntable.gif``,
``before-after.png`` and ``metrics.json``. MESH defaults to ``builtin:teapot``.
"""
from __future__ import annotations

import json
import time

from meshopt_cli import __version__, console
from meshopt_cli.commands.style import (StyleOptions, checkpoint_path, colour_stats, load_checkpoint, normalization, render_fixed,
                                        save_checkpoint, write_result)

DEFAULT_MESH = "builtin:teapot"


# the same options as style (output folder, preset, overrides, weights, device, checkpoints)
DreamOptions = StyleOptions


def _comparable(settings) -> dict:
    values = settings.as_dict()
    for key in ("iterations", "turntable_frames", "turntable_size", "sheet_size"):
        values.pop(key)
    return values


def run(mesh_source: str, options: DreamOptions) -> int:
    """Dream on one mesh; exit status 0, 1 (the input or the weights cannot be used), usage errors raise."""
    from meshopt_cli.devices import resolve_device
    from meshopt_cli.optimize.dream import SettingsError, resolve_settings

    try:
        settings = resolve_settings(options.preset, options.overrides)
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    if options.name is not None and (not options.name or "/" in options.name or options.name in (".", "..")):
        raise console.UsageError(f"--name must be a plain folder name, got {options.name!r}")
    if options.checkpoint_every < 0:
        raise console.UsageError("--checkpoint-every must not be negative")
    device = resolve_device(options.device)
    from meshopt_cli.commands.fit import source_name

    name = options.name or f"{source_name(mesh_source)}-{settings.layer}"
    try:
        summary = dream_one(mesh_source, name, options, settings, device)
    except (ValueError, OSError) as problem:  # MeshError, WeightsError, OutputExists
        message = str(problem) if isinstance(problem, ValueError) else f"{options.out / name}: cannot write the result ({problem})"
        console.error(message)
        if options.json:
            print(json.dumps({"input": mesh_source, "error": message}), flush=True)
        return 1
    if options.json:
        print(json.dumps(summary), flush=True)
    if summary["interrupted"]:
        raise KeyboardInterrupt
    return 0


def dream_one(mesh_source, name, options, settings, device) -> dict:
    import numpy as np
    import torch

    from meshopt_cli.export import check_writable, run_record, staged_folder, write_json
    from meshopt_cli.mesh import load_mesh
    from meshopt_cli.optimize.backbones import GoogLeNetFeatures
    from meshopt_cli.optimize.dream import DreamLoss, initial_textures
    from meshopt_cli.optimize.image_losses import edge_length_variance
    from meshopt_cli.optimize.textured import optimize_textured

    started = time.perf_counter()
    folder = options.out / name
    force = options.force or options.resume
    check_writable(folder, force)
    mesh = load_mesh(mesh_source)
    torch.manual_seed(settings.seed)
    network = GoogLeNetFeatures(settings.layer, weights=options.weights, seed=settings.seed,
                                progress=not options.quiet).to(device)

    centre, scale = normalization(np.asarray(mesh.vertices, np.float64))
    vertices = torch.tensor((mesh.vertices - centre) * scale, dtype=torch.float32, device=device)
    faces = torch.tensor(np.asarray(mesh.faces, np.int64), device=device)
    textures = initial_textures(torch.tensor(mesh.texture_cubes(settings.texture_size), device=device), settings.init_bias)
    loss = DreamLoss(network, faces, settings.length_weight)
    saved_at = checkpoint_path(options.out, name)
    meta = {"input": mesh_source, "faces": int(mesh.num_faces), "vertices": int(mesh.num_vertices),
            "weights": str(options.weights), "settings": _comparable(settings)}
    resume = load_checkpoint(saved_at, meta) if options.resume else None
    keep = (lambda state: save_checkpoint(saved_at, state, meta)) if options.checkpoint_every > 0 else None
    background = (0.5, 0.5, 0.5)  # replaced every step by a random grey when random_background

    with console.progress_bar(not options.quiet) as bar:
        task = bar.add_task(f"dream {name}", total=settings.iterations)
        if resume is not None:
            bar.advance(task, resume["step"])

        def progress(step, terms):
            text = " ".join(f"{k} {v:.3g}" for k, v in terms.items())
            bar.update(task, advance=1, description=f"dream {name} {text}") if hasattr(bar, "update") else bar.advance(task, 1)

        result = optimize_textured(vertices, faces, textures, settings.loop_settings(), loss, background, progress,
                                   checkpoint_every=options.checkpoint_every, on_checkpoint=keep, resume=resume,
                                   light_intensity=(settings.ambient, settings.directional),
                                   random_background=settings.random_background)

    moved = (result.vertices - vertices).norm(dim=1)
    moved = {"max": float(moved.max()) if len(moved) else 0.0, "mean": float(moved.mean()) if len(moved) else 0.0,
             "sum_of_squares": float((moved ** 2).sum())}
    with torch.no_grad():
        edge_variance = {"before": float(edge_length_variance(vertices, faces)),
                         "after": float(edge_length_variance(result.vertices, faces))}
    before = render_fixed(vertices, faces, textures, settings.sheet_size)
    after = render_fixed(result.vertices, faces, result.textures, settings.sheet_size)
    lights = (settings.ambient, settings.directional)
    with torch.no_grad():  # the layer's mean activation² on four fixed views (training size and lights, mid-grey background)
        fixed_activation = {key: float((network(render_fixed(v, faces, t, settings.image_size, (0.5, 0.5, 0.5), lights)[0]) ** 2).mean())
                            for key, v, t in (("before", vertices, textures), ("after", result.vertices, result.textures))}
    with staged_folder(folder, force) as staging:
        files = write_result(staging, "dream", mesh, result, faces, centre, scale, settings, before, after)
        seconds = time.perf_counter() - started

        def mean(xs):
            return round(sum(xs) / len(xs), 5) if xs else None

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
            "seconds": {"total": round(seconds, 3), "optimize": round(result.seconds, 3),
                        "per_step": mean(result.step_seconds) or 0.0,
                        "renderer_forward_per_step": mean(result.render_seconds),
                        "googlenet_forward_per_step": mean(result.loss_seconds),
                        "backward_and_adam_per_step": mean(result.backward_seconds),
                        "note": "the backward pass goes through GoogLeNet and the renderer together; autograd does not split it"},
            **run_record(device, options.preset, settings, result.interrupted, files),
        }
        write_json(staging / "metrics.json", metrics)
    if result.interrupted:
        hint = f"; continue with --resume (checkpoint {saved_at})" if keep else ""
        console.info(f"interrupted: saved the state after {result.steps} of {settings.iterations} steps{hint}", options.quiet)
    elif keep or resume is not None:
        saved_at.unlink(missing_ok=True)
    activation = result.curves.get("activation", [float("nan")])
    console.info(f"{name}: mean activation² {activation[0]:.4g} -> {activation[-1]:.4g} "
                 f"({seconds:.0f} s, {metrics['seconds']['per_step']:.3f} s/step); files in {folder}", options.quiet)
    return {"input": mesh_source, "name": name, "folder": str(folder), "layer": settings.layer,
            "seconds": round(seconds, 2), "steps": result.steps, "interrupted": result.interrupted}
