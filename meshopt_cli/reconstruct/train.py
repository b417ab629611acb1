"""The training loop of :class:`~meshopt_cli.reconstruct.model.Reconstructor`, as the reference
trains it: each batch item is an object of a class drawn uniformly, then one of that class's
objects, and two of its 24 views; Adam (lr 1e-4), the rate times 0.1 after
``lr_reduce_point`` of the iterations.

``precision`` (:mod:`meshopt_cli.precision`) decides whether the image encoder runs under bf16
autocast; the decoder, the renderer, the losses and Adam stay float32.

Under ``torchrun`` (``WORLD_SIZE`` > 1) it runs data parallel (torch DDP; gloo on CPU, NCCL on
GPUs): every process draws the same global batch from the same generator and takes its own
contiguous share, DDP averages the gradients, so N processes take the steps one process takes
with the whole batch. Process 0 writes the files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from meshopt_cli.checkpoints import load_checkpoint, save_checkpoint
from meshopt_cli.fields import setting
from meshopt_cli.precision import PRECISIONS, Precision, choose
from meshopt_cli.reconstruct.dataset import VIEWS, Split, view_eyes
from meshopt_cli.reconstruct.model import Reconstructor


@dataclass
class TrainLoopSettings:
    iterations: int = setting(1000, ge=0, le=10_000_000)
    batch_size: int = setting(64, ge=1, le=4096)
    learning_rate: float = setting(1e-4, gt=0, le=1.0)
    lr_reduce_point: float = setting(0.95, ge=0, le=1.0, why="a fraction of the iterations")
    lr_reduce_factor: float = setting(0.1, gt=0, le=1.0)
    lambda_smoothness: float = setting(0.0, ge=0)  # the paper: 0 for all classes together, 0.001 for one class
    image_size: int = setting(0, ge=0, le=512, why="0: the dataset's; else a multiple of 8")
    seed: int = setting(0, ge=0)
    precision: str = setting("auto", choices=PRECISIONS)  # of the image encoder (meshopt_cli/precision.py)


@dataclass
class TrainResult:
    model: Reconstructor
    step: int
    losses: list[float] = field(default_factory=list)
    silhouette: list[float] = field(default_factory=list)
    smoothness: list[float] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    precision: Precision | None = None  # what the encoder ran in, and why


def distributed() -> tuple[int, int]:
    """``(rank, world size)`` of a process started by ``torchrun``; ``(0, 1)`` otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (environment ``WORLD_SIZE`` > 1), once."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return distributed()


def as_float_images(images: np.ndarray, image_size: int, device) -> torch.Tensor:
    """uint8 ``[B, 4, S, S]`` -> float ``[B, 4, size, size]`` in [0, 1] (area-averaged when smaller)."""
    x = torch.as_tensor(images, device=device).float() / 255.0
    if image_size and image_size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="area")
    return x


def draw_batch(data: Split, batch_size: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(objects, views_a, views_b)`` ``[B]`` each: class uniform, then object, then two views."""
    per_class = [data.of_class(c) for c in range(len(data.classes))]
    per_class = [members for members in per_class if len(members)]
    classes = torch.randint(len(per_class), (batch_size,), generator=generator).numpy()
    picks = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
    objects = np.array([per_class[c][min(int(p * len(per_class[c])), len(per_class[c]) - 1)] for c, p in zip(classes, picks)])
    views = torch.randint(VIEWS, (2, batch_size), generator=generator).numpy()
    return objects, views[0], views[1]


def learning_rate(settings: TrainLoopSettings, step: int) -> float:
    """The rate of step ``step`` (0-based): ``learning_rate``, times the factor from the drop on."""
    drop = settings.iterations * settings.lr_reduce_point
    return settings.learning_rate * (settings.lr_reduce_factor if step >= drop else 1.0)


def build_model(settings: TrainLoopSettings, dataset_size: int) -> Reconstructor:
    torch.manual_seed(settings.seed)
    return Reconstructor(settings.image_size or dataset_size, lambda_smoothness=settings.lambda_smoothness)


def adam(model: Reconstructor, rate: float, device: torch.device) -> torch.optim.Adam:
    """The model's Adam; the fused kernel where torch has one (CPU, CUDA): one pass over the
    13-25 M parameters instead of a dozen (41 -> 9 ms a step at 32 px on 2 CPU threads), the same
    update up to float rounding."""
    return torch.optim.Adam(model.parameter_groups(rate), fused=device.type in ("cpu", "cuda"))


def train(
    data: Split,
    settings: TrainLoopSettings,
    device: torch.device,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    meta: dict | None = None,
    progress: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], object] | None = None,
) -> TrainResult:
    """Train from scratch, or from ``checkpoint`` with ``resume``; save it every
    ``checkpoint_every`` steps and on a stop (process 0 only)."""
    rank, world = distributed()
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # Adam's second moments of the big layers decay into denormals, 10-100x slower on CPUs
    if settings.batch_size % world:
        raise ValueError(f"batch size {settings.batch_size} does not split evenly over {world} processes")
    used = choose(settings.precision, device)
    model = build_model(settings, data.image_size).to(device)
    model.encoder_bf16 = used.bf16
    optimizer = adam(model, settings.learning_rate, device)
    generator = torch.Generator().manual_seed(settings.seed)
    result = TrainResult(model=model, step=0, precision=used)
    meta = dict(meta or {})
    if resume:
        state = load_checkpoint(checkpoint, meta)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        result.step = int(state["step"])
        result.losses, result.silhouette, result.smoothness = (list(state[k]) for k in ("losses", "silhouette", "smoothness"))
        result.seconds = float(state["seconds"])
    network = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    share = settings.batch_size // world
    size = model.image_size

    def save() -> None:
        if checkpoint is None or rank != 0:
            return
        state = dict(
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            generator=generator.get_state(),
            step=result.step,
            losses=result.losses,
            silhouette=result.silhouette,
            smoothness=result.smoothness,
            seconds=result.seconds,
        )
        save_checkpoint(checkpoint, state, meta)

    model.train()
    started = time.perf_counter() - result.seconds
    while result.step < settings.iterations:
        if _agreed_stop(should_stop, world):
            result.interrupted = True
            break
        lr = learning_rate(settings, result.step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("scale", 1.0)
        objects, views_a, views_b = draw_batch(data, settings.batch_size, generator)
        mine = slice(rank * share, (rank + 1) * share)
        objects, views_a, views_b = objects[mine], views_a[mine], views_b[mine]
        images_a = as_float_images(data.images[objects, views_a], size, device)
        images_b = as_float_images(data.images[objects, views_b], size, device)
        eyes_a, eyes_b = view_eyes(views_a, device), view_eyes(views_b, device)
        optimizer.zero_grad(set_to_none=True)
        terms = network(images_a, images_b, eyes_a, eyes_b)
        terms["loss"].backward()
        optimizer.step()
        figures = torch.stack([terms["loss"].detach(), terms["silhouette"].detach(), terms["smoothness"].detach()])
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(figures)
            figures /= world
        loss, silhouette, smoothness = (float(x) for x in figures.cpu())
        if not np.isfinite(loss):
            raise ValueError(f"the loss became {loss} at step {result.step + 1}; try a lower --learning-rate")
        result.losses.append(loss)
        result.silhouette.append(silhouette)
        result.smoothness.append(smoothness)
        result.step += 1
        result.seconds = time.perf_counter() - started
        if checkpoint_every and result.step % checkpoint_every == 0:
            save()
        if progress is not None:
            progress(result.step, dict(loss=loss, lr=lr))
    if result.interrupted or not checkpoint_every or result.step % checkpoint_every:
        save()  # the state at the end (or at the stop), unless the last step just saved it
    model.eval()
    return result


def _agreed_stop(should_stop, world: int) -> bool:
    """Whether any process was asked to stop (all of them then stop at the same step)."""
    asked = bool(should_stop()) if should_stop is not None else False
    if world == 1:
        return asked
    import torch.distributed as dist

    flag = torch.tensor([1.0 if asked else 0.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def save_model(path: Path, model: Reconstructor, info: dict) -> None:
    """The trained weights and what rebuilding the network needs (plain data; weights_only-loadable)."""
    from meshopt_cli.checkpoints import save_checkpoint as _save

    _save(path, {"model": model.state_dict()}, dict(info, image_size=model.image_size, kind="meshopt-reconstruct"))


def load_model(path: Path, device=None) -> tuple[Reconstructor, dict]:
    """A trained network from ``save_model``'s file (``RUN/model.pt``) and its info; one-line ValueErrors."""
    from meshopt_cli.checkpoints import _one_line

    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ValueError(f"{path}: no trained model (run 'meshopt reconstruct train DATA -o RUN' first)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["state"]["model"]
        if meta.get("kind") != "meshopt-reconstruct":
            raise TypeError("not a meshopt reconstruct model")
        model = Reconstructor(int(meta["image_size"]))
        model.load_state_dict(state)
    except Exception as problem:  # noqa: BLE001 - any unreadable file is one line
        raise ValueError(f"{path}: not a readable reconstruct model ({_one_line(problem)})") from None
    model.eval()
    return (model.to(device) if device is not None else model), meta
