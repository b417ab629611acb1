"""``meshopt reconstruct``: single-image mesh reconstruction trained from silhouettes (the
paper's §3.1), as four sub-commands.

* ``dataset``: the paper's dataset files from a user's meshes (one sub-folder per class) or from
  procedural shape classes (:mod:`meshopt_cli.reconstruct.shapes`).
* ``train``: the encoder-decoder of :mod:`meshopt_cli.reconstruct.model` on a dataset folder;
  ``RUN/`` gets ``model.pt``, ``checkpoint.pt``, ``loss.png`` and ``metrics.json``.
* ``eval``: the voxel IoU protocol with the retrieval and template baselines (a table on stdout,
  ``RUN/eval-SPLIT.json``).
* ``predict``: a batch command like the others (one job per image: ``OUT/NAME/`` with the mesh,
  a turntable and the input beside views of the prediction).

``dataset``, ``train`` and ``eval`` are single jobs: their settings come from presets (folders
``presets/reconstruct-<sub-command>/``) < ``--config`` < flags, errors are one line, and Ctrl-C
stops ``train`` after its step with a checkpoint saved.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from meshopt_cli import __version__, console, precision, settings, stop
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, make_jobs, read_inputs, source_name
from meshopt_cli.command import Command, Payload
from meshopt_cli.fields import as_dict, setting
from meshopt_cli.reconstruct.train import TrainLoopSettings

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


def _resolve(cls, command: str, default: str, preset, config, overrides):
    try:
        return settings.resolve(cls, command, default, preset, config, overrides)
    except settings.SettingsError as problem:
        raise console.UsageError(str(problem)) from None


def _fractions_check(value: float) -> None:
    if value < 0 or value > 1:
        raise ValueError("must be between 0 and 1")


# ---------------------------------------------------------------- dataset


@dataclass
class DatasetSettings:
    image_size: int = setting(64, ge=8, le=512, why="the paper's files are 64")
    train_fraction: float = setting(0.7, ge=0, le=1)
    val_fraction: float = setting(0.1, ge=0, le=1)
    test_fraction: float = setting(0.2, ge=0, le=1)
    seed: int = setting(0, ge=0)  # the split's shuffle (and the procedural shapes)
    procedural_classes: str = setting("box,ellipsoid,table,cross")  # --procedural: which classes
    objects: int = setting(300, ge=1, le=100_000)  # --procedural: objects per class


def class_folders(roots: list[str]) -> list[tuple[str, Path, list[Path]]]:
    """``(class id, folder, mesh files)`` for every class: each sub-folder of a root that holds
    meshes, or the root itself when it holds meshes directly. Usage errors for missing roots and
    for no meshes at all."""
    found: list[tuple[str, Path, list[Path]]] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise console.UsageError(f"{root}: no such folder (give folders whose sub-folders hold each class's meshes)")
        meshes = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
        if meshes:
            found.append((root.resolve().name, root, meshes))
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
            if files:
                found.append((sub.name, sub, files))
    if not found:
        raise console.UsageError(f"no meshes ({' '.join(MESH_SUFFIXES)}) in {', '.join(roots)} or their sub-folders")
    names = [c for c, _, _ in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise console.UsageError(f"class names given twice: {', '.join(repeated)} (rename one of the folders)")
    bad = [n for n in names if "_" in n or "/" in n]
    if bad:
        raise console.UsageError(f"class folder names may not contain '_' (the file names use it): {', '.join(bad)}")
    return found


def run_dataset(
    roots: list[str], out: Path, procedural: bool, force: bool, quiet: bool, json_output: bool, preset, config, overrides
) -> int:
    import numpy as np
    import torch

    from meshopt_cli.export import write_json
    from meshopt_cli.mesh import MeshError, load_mesh
    from meshopt_cli.reconstruct import dataset as fmt
    from meshopt_cli.reconstruct import shapes

    resolved, chosen = _resolve(DatasetSettings, "reconstruct-dataset", "default", preset, config, overrides)
    fractions = (resolved.train_fraction, resolved.val_fraction, resolved.test_fraction)
    if sum(fractions) <= 0:
        raise console.UsageError("the train, val and test fractions are all 0")
    if procedural and roots:
        raise console.UsageError("give mesh folders or --procedural, not both")
    if procedural:
        names = [c.strip() for c in resolved.procedural_classes.split(",") if c.strip()]
        unknown = [c for c in names if c not in shapes.CLASSES]
        if unknown or not names:
            raise console.UsageError(f"unknown procedural classes {unknown} (valid: {', '.join(shapes.class_names())})")
        sources = [(c, None, list(range(resolved.objects))) for c in names]
    elif not roots:
        raise console.UsageError("give mesh folders (one sub-folder per class), or --procedural")
    else:
        sources = class_folders(roots)
    if out.exists() and not out.is_dir():
        raise console.UsageError(f"--out {out}: not a folder")
    existing = [p for p in out.glob("*_images.npz")] if out.is_dir() else []
    if existing and not force:
        raise console.UsageError(f"--out {out} already holds dataset files (use --force to overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu")
    total = sum(len(items) for _, _, items in sources)
    manifest: dict = {"meshopt": __version__, "preset": chosen, "settings": as_dict(resolved), "classes": {}}
    skipped = 0
    with stop.handling(), console.job_progress("reconstruct dataset", total, not quiet) as progress:
        for class_id, _folder, items in sources:
            images, voxels, names = [], [], []
            for item in items:
                if stop.requested():
                    console.error("interrupted; the classes written so far are complete, this one is not written")
                    return 130
                progress.stage(f"{class_id} {len(names) + 1}/{len(items)}")
                if procedural:
                    vertices, faces = shapes.generate(class_id, item, resolved.seed, subdivisions=3)
                    name = f"{class_id}-{item:05d}"
                else:
                    try:
                        mesh = load_mesh(item, textures=False)
                    except (MeshError, ValueError) as problem:
                        console.error(f"{item}: {problem}" if str(item) not in str(problem) else str(problem))
                        skipped += 1
                        progress.advance()
                        continue
                    vertices = fmt.normalize_mesh(np.asarray(mesh.vertices))
                    faces = np.asarray(mesh.faces, np.int64)
                    name = str(item)
                images.append(fmt.render_object(vertices, faces, resolved.image_size, device))
                voxels.append(fmt.mesh_voxels(vertices, faces))
                names.append(name)
                progress.advance()
            if not names:
                console.warn(f"class {class_id}: no readable meshes; not written")
                continue
            split = fmt.split_objects(len(names), fractions, resolved.seed)
            manifest["classes"][class_id] = {}
            for split_name, members in split.items():
                fmt.write_split(
                    out,
                    class_id,
                    split_name,
                    np.stack([images[i] for i in members])
                    if len(members)
                    else np.zeros((0, 24, 4, resolved.image_size, resolved.image_size), np.uint8),
                    np.stack([voxels[i] for i in members]) if len(members) else np.zeros((0, 32, 32, 32), bool),
                )
                manifest["classes"][class_id][split_name] = [names[i] for i in members]
    write_json(out / "dataset.json", manifest)
    counts = {c: {s: len(v) for s, v in splits.items()} for c, splits in manifest["classes"].items()}
    if json_output:
        print(json.dumps({"out": str(out), "classes": counts, "skipped": skipped}))
    else:
        for class_id, c in counts.items():
            console.info(f"{class_id}: {c['train']} train, {c['val']} val, {c['test']} test objects", quiet)
        console.info(f"dataset in {out}" + (f" ({skipped} meshes skipped)" if skipped else ""), quiet)
    return 1 if skipped else 0


# ---------------------------------------------------------------- train


@dataclass
class TrainSettings(TrainLoopSettings):
    classes: str = setting("")  # comma-separated class ids; empty: every class of the dataset
    checkpoint_every: int = setting(1000, ge=0)  # steps between checkpoints; 0: only on a stop and at the end


def _classes(text: str) -> list[str] | None:
    names = [c.strip() for c in text.split(",") if c.strip()]
    return names or None


def run_train(
    data: Path,
    run: Path,
    resume: bool,
    force: bool,
    device_spec: str,
    quiet: bool,
    preset,
    config,
    overrides,
    max_memory: int | None = None,
) -> int:
    import torch

    from meshopt_cli.devices import resolve_device
    from meshopt_cli.export import write_json
    from meshopt_cli.plots import loss_plot_png
    from meshopt_cli.reconstruct.dataset import load_split
    from meshopt_cli.reconstruct.train import init_distributed, save_model, train

    resolved, chosen = _resolve(TrainSettings, "reconstruct-train", "fast", preset, config, overrides)
    if resolved.image_size and resolved.image_size % 8:
        raise console.UsageError(f"--image-size must be a multiple of 8 (or 0: the dataset's), got {resolved.image_size}")
    device = resolve_device(device_spec)
    if device.type == "cuda":
        import os

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if "WORLD_SIZE" in os.environ and device.index is None:
            device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    try:
        precision.choose(resolved.precision, device)  # refused here, before any file is written
    except ValueError as problem:
        raise console.UsageError(str(problem)) from None
    rank, world = init_distributed(device)
    if resolved.batch_size % world:
        raise console.UsageError(f"--batch-size {resolved.batch_size} does not split evenly over {world} processes")
    checkpoint = run / "checkpoint.pt"
    if rank == 0:
        if run.exists() and not run.is_dir():
            raise console.UsageError(f"--out {run}: not a folder")
        if resume and not checkpoint.is_file():
            raise console.UsageError(f"--resume: {checkpoint} does not exist")
        if not resume and (run / "metrics.json").exists() or (not resume and checkpoint.exists()):
            if not force:
                raise console.UsageError(f"--out {run} holds a run (use --resume to continue it, or --force to start over)")
    check_train_memory(data, resolved, world, max_memory)
    try:
        split = load_split(data, "train", _classes(resolved.classes))
    except ValueError as problem:
        raise console.UsageError(str(problem)) from None
    if rank == 0:  # only once the data is known to load: a refused run leaves no empty folder behind
        run.mkdir(parents=True, exist_ok=True)
    # a run may resume with more iterations, or on another device and number format
    meta_settings = {k: v for k, v in as_dict(resolved).items() if k not in ("iterations", "checkpoint_every", "precision")}
    meta = dict(settings=meta_settings, classes=split.classes, objects=int(len(split.images)), world=world)
    started = time.perf_counter()
    with stop.handling(), console.job_progress("reconstruct train", resolved.iterations, not quiet and rank == 0) as progress:
        progress.stage("loading")

        def advance(step: int, figures: dict) -> None:
            progress.advance(1, stage=f"loss {figures['loss']:.4f} · lr {figures['lr']:.0e}")

        if resume:
            done = torch.load(checkpoint, map_location="cpu", weights_only=True)["state"].get("step", 0) if rank == 0 else 0
            progress.restart(resolved.iterations, completed=done)
        try:
            result = train(
                split,
                resolved,
                device,
                checkpoint=checkpoint,
                checkpoint_every=resolved.checkpoint_every,
                resume=resume,
                meta=meta,
                progress=advance,
                should_stop=stop.requested,
            )
        except ValueError as problem:
            raise console.UsageError(str(problem)) from None
    if rank != 0:
        return 130 if result.interrupted else 0
    status = "interrupted" if result.interrupted else "done"
    files = []
    info = dict(classes=split.classes, settings=as_dict(resolved), step=result.step, meshopt=__version__)
    save_model(run / "model.pt", result.model, info)
    files.append("model.pt")
    curves = {"loss": result.losses, "silhouette (1 - IoU)": result.silhouette}
    if resolved.lambda_smoothness:
        curves["smoothness"] = result.smoothness
    (run / "loss.png").write_bytes(loss_plot_png(_smoothed(curves), f"reconstruct train ({', '.join(split.classes)})"))
    files.append("loss.png")
    tail = result.losses[-100:]
    metrics = {
        "status": status,
        "partial": status != "done",
        "preset": chosen,
        "settings": as_dict(resolved),
        "device": str(device),
        "processes": world,
        "threads": torch.get_num_threads(),
        "precision": {"asked": resolved.precision, "used": result.precision.name, "reason": result.precision.reason},
        "classes": split.classes,
        "train_objects": int(len(split.images)),
        "step": result.step,
        "iterations": resolved.iterations,
        "final_loss": float(sum(tail) / len(tail)) if tail else None,
        "seconds_training": round(result.seconds, 3),
        "seconds_per_step": round(result.seconds / result.step, 4) if result.step else None,
        "seconds": round(time.perf_counter() - started, 3),
        "files": files + ["checkpoint.pt", "metrics.json"],
        "meshopt": __version__,
    }
    write_json(run / "metrics.json", metrics)
    line = f"step {result.step}/{resolved.iterations}, loss {metrics['final_loss']:.4f}" if tail else "no steps run"
    if result.interrupted:
        console.info(f"interrupted at {line}; saved {checkpoint} (continue with --resume)", quiet)
        return 130
    console.info(f"{line} ({result.seconds:.0f} s); model in {run / 'model.pt'}", quiet)
    return 0


def train_estimate(data_bytes: int, settings: TrainSettings, world: int = 1):
    """Peak memory of one training process: the split in memory, the network with Adam's two
    moments and its gradients (about 4 copies of 13-26 M float32), and the batch's renders with
    their autograd records (the batch share's 4 silhouettes each, about 3 forward passes kept)."""
    from meshopt_cli import memory

    size = settings.image_size or 64
    weights = (256 * (size // 8) ** 2 * 1024 + 1024 * 1024 + 512 * 1024 + 1024 * 512 + 1024 * 2048 + 2048 * 642 * 3) * 4
    share = settings.batch_size // max(world, 1)
    estimate = memory.Estimate()
    estimate.add("the dataset's train split", data_bytes)
    estimate.add("weights, gradients and Adam's moments", 4 * weights)
    estimate.add("renders", 3 * memory.raster_bytes(4 * share, 1280, 642, size), "--batch-size")
    estimate.add("process", memory.PROCESS_BASELINE)
    return estimate


def check_train_memory(data: Path, resolved: TrainSettings, world: int, max_memory: int | None = None) -> None:
    from meshopt_cli import memory
    from meshopt_cli.reconstruct.dataset import split_bytes

    try:
        nbytes = split_bytes(data, "train", _classes(resolved.classes))
    except ValueError as problem:
        raise console.UsageError(str(problem)) from None
    try:
        memory.check(train_estimate(nbytes, resolved, world), max_memory or memory.default_budget(1), "reconstruct train")
    except memory.OverBudget as problem:
        raise console.UsageError(str(problem)) from None


def _smoothed(curves: dict[str, list[float]], window: int = 20) -> dict[str, list[float]]:
    """Running means over ``window`` steps (a batch's loss is noisy)."""
    out = {}
    for name, curve in curves.items():
        sums, total = [], 0.0
        for i, value in enumerate(curve):
            total += value - (curve[i - window] if i >= window else 0.0)
            sums.append(total / min(i + 1, window))
        out[name] = sums
    return out


# ---------------------------------------------------------------- eval


def run_eval(
    run: Path, data: Path, split_name: str, views: int, classes: str | None, device_spec: str, quiet: bool, json_output: bool
) -> int:
    import numpy as np

    from meshopt_cli.devices import resolve_device
    from meshopt_cli.export import write_json
    from meshopt_cli.reconstruct import evaluate
    from meshopt_cli.reconstruct.dataset import VIEWS, load_split
    from meshopt_cli.reconstruct.train import load_model

    if not 1 <= views <= VIEWS:
        raise console.UsageError(f"--views must be in 1..{VIEWS}, got {views}")
    device = resolve_device(device_spec)
    try:
        model, info = load_model(run, device)
        wanted = _classes(classes or "") or None
        split = load_split(data, split_name, wanted or info.get("classes"))
        train_split = load_split(data, "train", split.classes)
    except ValueError as problem:
        raise console.UsageError(str(problem)) from None
    chosen = np.linspace(0, VIEWS, views, endpoint=False).astype(int).tolist()
    started = time.perf_counter()
    with console.job_progress("reconstruct eval", len(split.images), not quiet) as progress:
        progress.stage("model")
        ious = {"model": evaluate.voxel_ious(split, evaluate.model_predictor(model, split, device), chosen, progress.advance)}
        progress.stage("retrieval baseline")
        ious["retrieval"] = evaluate.retrieval_ious(split, train_split, chosen)
        ious["template"] = evaluate.template_ious(split, len(chosen))
    summary = evaluate.summarize(split, ious)
    report = {
        "run": str(run),
        "data": str(data),
        "split": split_name,
        "views": chosen,
        **summary,
        "seconds": round(time.perf_counter() - started, 3),
    }
    path = Path(run) / f"eval-{split_name}.json"
    write_json(path, report)
    if json_output:
        print(json.dumps(report))
    else:
        print(format_table(summary))
        console.info(f"voxel IoU of {len(split.images)} {split_name} objects x {len(chosen)} views; written to {path}", quiet)
    return 0


def format_table(summary: dict) -> str:
    """The per-class table as text (Markdown, so that it pastes into a README)."""
    methods = list(summary["mean"])
    lines = ["| class | objects | " + " | ".join(methods) + " |", "|---|---:|" + "---:|" * len(methods)]
    for class_id, row in summary["classes"].items():
        lines.append(f"| {class_id} | {row['objects']} | " + " | ".join(f"{row[m]:.4f}" for m in methods) + " |")
    lines.append("| **mean** | | " + " | ".join(f"**{summary['mean'][m]:.4f}**" for m in methods) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- predict (a batch command)


@dataclass
class PredictSettings:
    turntable_frames: int = setting(36, ge=1, le=3600, why="one frame every 0.1 degrees")
    turntable_size: int = setting(128, ge=16, le=4096)
    sheet_views: int = setting(8, ge=1, le=24, why="the dataset's 24 views")


@dataclass(frozen=True)
class PredictOptions:
    run: str = ""  # the training run (its model.pt)
    name: str | None = None


@dataclass
class PredictFigures:
    best_view_iou: float  # silhouette IoU of the mesh against the input mask at the best of the 24 dataset views
    best_view: int


PREDICT_FILES = ("mesh.obj", "turntable.gif", "compare.png", "metrics.json")


def plan_predict(arguments: list[str], resolved: PredictSettings, options: PredictOptions, batch: BatchOptions) -> list[Job]:
    from meshopt_cli.reconstruct.train import load_model

    try:
        load_model(Path(options.run))  # a bad RUN is one usage error, before any image
    except ValueError as problem:
        raise console.UsageError(str(problem)) from None
    sources = read_inputs(arguments)
    if not sources:
        raise console.UsageError("give images (PNG, JPEG ...) or '-' for paths on stdin")
    names = [options.name] if options.name and len(sources) == 1 else [source_name(s) for s in sources]
    if options.name and len(sources) > 1:
        raise console.UsageError("--name names the result of one image; give one image, or leave --name out")
    return make_jobs(sources, names, batch.out)


def input_image(path: str, size: int):
    """An image as the network reads it: float ``[4, size, size]`` (RGB composited on white and
    inverted, then the mask; padded to a square with background, then resized), and the
    square RGB and mask at that size for the comparison sheet."""
    import numpy as np
    import torch

    from meshopt_cli.images import read_image
    from meshopt_cli.optimize.targets import MIN_MASK_PIXELS, mask_of

    data = read_image(path, max_side=4096)
    mask, how = mask_of(data.rgb, data.alpha)
    if (mask > 0.5).sum() < MIN_MASK_PIXELS:
        raise ValueError(f"empty mask ({how})")
    height, width = mask.shape
    side = max(height, width)
    rgb = np.ones((side, side, 3), np.float32)
    full = np.zeros((side, side), np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    rgb[top : top + height, left : left + width] = data.rgb
    full[top : top + height, left : left + width] = mask
    on_white = rgb * full[..., None] + (1 - full[..., None])
    x = torch.as_tensor(np.concatenate((1 - on_white, full[..., None]), -1)).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area" if side >= size else "bilinear")
    return x[0].clamp(0, 1)


def run_predict(job: Job, payload: Payload[PredictSettings, PredictOptions], context: Context) -> JobResult:
    import torch

    from meshopt_cli.export import run_record, staged_folder, write_json
    from meshopt_cli.images import ImageReadError
    from meshopt_cli.mesh.save import save_obj
    from meshopt_cli.optimize.losses import silhouette_iou
    from meshopt_cli.reconstruct.dataset import VIEWS, silhouette_renderer, view_eyes
    from meshopt_cli.turntable import gif_bytes, png_bytes, render_views

    started = time.perf_counter()
    resolved, device = payload.settings, context.device
    weights = Path(payload.options.run) / "model.pt"
    model = cached_model(payload.options.run, str(device), weights.stat().st_mtime_ns if weights.is_file() else 0)
    try:
        x = input_image(job.input, model.image_size).to(device)
    except ImageReadError as problem:
        raise ValueError(f"{job.input}: {problem}") from None
    with torch.no_grad():
        vertices = model.reconstruct(x[None])  # [1, V, 3]
        faces = model.faces
        renderer = silhouette_renderer(model.image_size).to(device)
        renderer.eye = view_eyes(range(VIEWS), device)
        silhouettes = renderer.render_silhouettes(vertices.expand(VIEWS, -1, -1), faces[None].expand(VIEWS, -1, -1))
        ious = silhouette_iou(silhouettes, x[3][None].expand(VIEWS, -1, -1))
    best = int(ious.argmax())
    frames = render_views(vertices[0], faces, frames=resolved.turntable_frames, image_size=resolved.turntable_size)
    with torch.no_grad():  # the sheet at the turntable's size: the network's 64 px (or less) is hard to read
        big = silhouette_renderer(resolved.turntable_size).to(device)
        big.eye = view_eyes(range(VIEWS), device)
        drawn = big.render_silhouettes(vertices.expand(VIEWS, -1, -1), faces[None].expand(VIEWS, -1, -1))
        shown = torch.nn.functional.interpolate(x[None], size=(resolved.turntable_size,) * 2, mode="bilinear")[0]
    sheet = comparison_sheet(shown, drawn, best, resolved.sheet_views)
    with staged_folder(job.folder, job.force) as staging:
        save_obj(staging / "mesh.obj", vertices[0].cpu(), faces.cpu())
        (staging / "turntable.gif").write_bytes(gif_bytes(frames))
        (staging / "compare.png").write_bytes(png_bytes(sheet))
        files = list(PREDICT_FILES)
        record = run_record(device, payload.preset, resolved, "done", files)
        record.update(
            input=job.input,
            run=payload.options.run,
            best_view=best,
            best_view_iou=float(ious[best]),
            view_ious=[round(float(v), 4) for v in ious],
            seconds=round(time.perf_counter() - started, 3),
            meshopt=__version__,
        )
        write_json(staging / "metrics.json", record)
    console.info(f"{job.name}: silhouette IoU {float(ious[best]):.3f} at view {best}; files in {job.folder}", context.quiet)
    return JobResult(files=[str(job.folder / f) for f in files], metrics=PredictFigures(float(ious[best]), best))


@functools.lru_cache(maxsize=2)
def cached_model(run: str, device: str, stamp: int):
    """The run's network, loaded once per process for all the images of a call (``stamp``: the
    file's modification time, so that a retrained run is read again)."""
    import torch

    from meshopt_cli.reconstruct.train import load_model

    return load_model(Path(run), torch.device(device))[0]


def comparison_sheet(x, silhouettes, best: int, views: int):
    """One row: the input (as the network saw it: inverted back to RGB on white), its mask, then
    the prediction's silhouettes at ``views`` dataset views starting from the best-matching one."""
    import numpy as np

    size = x.shape[-1]
    rgb = (1 - x[:3]).permute(1, 2, 0).cpu().numpy()
    tiles = [rgb, np.repeat(x[3].cpu().numpy()[..., None], 3, -1)]
    order = [(best + k * (24 // views)) % 24 for k in range(views)]
    for k in order:
        tiles.append(np.repeat(1 - silhouettes[k].cpu().numpy()[..., None], 3, -1))
    gap = np.ones((size, 2, 3), np.float32)
    row = np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
    return (row.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def predict_reads(job: Job, payload: Payload[PredictSettings, PredictOptions]) -> list[str]:
    return [job.input, str(Path(payload.options.run) / "model.pt")]


PREDICT = Command(
    name="reconstruct-predict",
    settings=PredictSettings,
    options=PredictOptions,
    default_preset="default",
    plan=plan_predict,
    run=run_predict,
    files=PREDICT_FILES,
    reads=predict_reads,
)
COMMAND = PREDICT  # what cli._invoke("reconstruct", ...) runs
