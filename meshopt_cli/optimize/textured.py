"""The optimization loop shared by ``style`` and ``dream``: vertices + per-face textures of one mesh.

Parameters: an offset per vertex ``[V, 3]`` (added to the input vertices) and per-face texture
logits ``[F, T, T, T, 3]`` (textures = sigmoid(logits)), each with its own Adam learning rate.
Per iteration ``batch_views`` random cameras: distance ``distance ± distance_noise`` (normal noise),
elevation uniform in ``[elevation_min, elevation_max]``, any azimuth; optionally a light direction
``light_angle`` degrees from vertical at a random azimuth. The rendered batch goes to a pluggable
``loss_fn(views, vertices) -> (loss scalar, {name: float})`` where ``views`` is a
:class:`RenderedViews`.

``should_stop()`` (the commands pass :func:`meshopt_cli.stop.requested`), polled after every step,
or a ``KeyboardInterrupt`` ends the loop and returns the current state with ``interrupted=True``; a loss or a parameter that is not finite ends
it with the last finite state and ``failure`` saying what happened. Checkpoints
(``checkpoint_every``, ``on_checkpoint``) are plain dicts (:func:`optimize_textured`'s ``resume``
takes one back): step, offsets, logits, Adam's state, the view sampler's RNG state, curves and
timings, so that a resumed run continues exactly where the saved one stopped. Every step records
its wall time split into the renderer's forward pass, the loss's forward pass (the VGG network) and
the backward pass + Adam step (through both; autograd does not separate them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from meshopt_cli.fields import setting
from meshopt_cli.render import DEFAULT_DISTANCE, Renderer, get_points_from_angles


@dataclass
class TexturedSettings:
    """What the loop reads (the commands' settings add their loss weights and outputs)."""

    iterations: int = setting(1000, ge=0)
    batch_views: int = setting(4, ge=1, le=64, why="views rendered and sent through the network at once")
    image_size: int = setting(224, ge=1, le=1024, why="views are drawn at twice the size for anti-aliasing")  # pixels
    distance: float = setting(DEFAULT_DISTANCE, gt=0)
    distance_noise: float = setting(0.1, ge=0)  # standard deviation of the camera distance
    elevation_min: float = setting(20.0)  # degrees
    elevation_max: float = setting(40.0)
    light_angle: float | None = setting(30.0)  # degrees from vertical at a random azimuth; None: fixed (0, 1, 0)
    vertex_lr: float = setting(0.0005, ge=0)  # the paper: 0.05 * 0.01
    texture_lr: float = setting(0.05, ge=0)  # the paper: 0.05 * 1.0
    optimize_vertices: bool = setting(True)
    seed: int = setting(0)


@dataclass
class RenderedViews:
    """One iteration's batch: ``rgb [B, 3, S, S]`` in [0, 1], ``alpha [B, S, S]``."""

    rgb: torch.Tensor
    alpha: torch.Tensor


@dataclass
class TexturedResult:
    vertices: torch.Tensor  # [V, 3] optimized (the input's frame as given to the loop)
    textures: torch.Tensor  # [F, T, T, T, 3] in [0, 1], or the texture image [H, W, 3] with uvs
    curves: dict[str, list[float]] = field(default_factory=dict)  # loss term -> value per step
    step_seconds: list[float] = field(default_factory=list)
    render_seconds: list[float] = field(default_factory=list)  # renderer forward, per step
    loss_seconds: list[float] = field(default_factory=list)  # loss forward (loss network), per step
    backward_seconds: list[float] = field(default_factory=list)  # backward (both) + Adam, per step
    seconds: float = 0.0
    steps: int = 0
    interrupted: bool = False
    failure: str | None = None  # why the loop stopped early on a non-finite value, else None


LossFn = Callable[[RenderedViews, torch.Tensor], "tuple[torch.Tensor, dict[str, float]]"]


def random_cameras(settings: TexturedSettings, generator: torch.Generator):
    """``(eyes [B, 3], light directions [B, 3] or None)`` sampled on the CPU."""
    b = settings.batch_views
    distance = settings.distance + settings.distance_noise * torch.randn(b, generator=generator)
    elevation = settings.elevation_min + (settings.elevation_max - settings.elevation_min) * torch.rand(b, generator=generator)
    azimuth = 360.0 * torch.rand(b, generator=generator)
    eyes = get_points_from_angles(distance, elevation, azimuth)
    light = None
    if settings.light_angle is not None:
        tilt = math.radians(settings.light_angle)
        turn = 2 * math.pi * torch.rand(b, generator=generator)
        light = torch.stack(
            [math.sin(tilt) * torch.cos(turn), torch.full((b,), math.cos(tilt)), math.sin(tilt) * torch.sin(turn)], dim=1
        )
    return eyes, light


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def optimize_textured(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor,
    settings: TexturedSettings,
    loss_fn: LossFn,
    background=(1.0, 1.0, 1.0),
    progress: Callable[[int, dict], None] | None = None,
    *,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    light_intensity: tuple[float, float] | None = None,
    random_background: bool = False,
    should_stop: Callable[[], object] = lambda: False,
    uvs: torch.Tensor | None = None,
) -> TexturedResult:
    """Optimize ``vertices [V, 3]`` and ``textures [F, T, T, T, 3]`` (in [0, 1]; faces ``[F, 3]``, all on
    one device) for ``loss_fn``. ``background``: RGB in [0, 1] of the rendered views.
    ``progress(step, terms)`` is called after every step. Deterministic for one seed on one device.
    ``on_checkpoint(state)`` is called every ``checkpoint_every`` steps and on Ctrl-C; ``resume``: such
    a state (the loop then starts at its step). ``light_intensity``: (ambient, directional) of the
    renderer (default: the renderer's own 0.5, 0.5). ``random_background``: every step one grey level
    uniform in [0, 1] (drawn from the seeded view sampler, after the cameras) replaces ``background``.
    ``should_stop()`` is polled after every step: true ends the loop as a stop request.
    ``uvs [F, 3, 2]``: ``textures`` is then a texture image ``[H, W, 3]`` read through that UV
    layout (the renderer's UV path), and its logits are what is optimized."""
    start = time.perf_counter()
    device = vertices.device
    base = vertices.detach().float()
    generator = torch.Generator().manual_seed(int(settings.seed))
    offsets = torch.zeros_like(base, requires_grad=settings.optimize_vertices)
    logits = torch.logit(textures.detach().float().clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
    groups = [{"params": [logits], "lr": settings.texture_lr}]
    if settings.optimize_vertices:
        groups.append({"params": [offsets], "lr": settings.vertex_lr})
    optimizer = torch.optim.Adam(groups)
    renderer = Renderer(image_size=settings.image_size, background_color=tuple(float(c) for c in background), fill_back=True)
    if light_intensity is not None:
        renderer.light_intensity_ambient, renderer.light_intensity_directional = (float(x) for x in light_intensity)
    b = settings.batch_views
    batch_faces = faces[None].expand(b, -1, -1)
    result = TexturedResult(vertices=base.clone(), textures=torch.sigmoid(logits).detach())
    first = 0
    if resume is not None:
        with torch.no_grad():
            offsets.copy_(resume["offsets"].to(device))
            logits.copy_(resume["logits"].to(device))
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        first = result.steps = int(resume["step"])
        result.curves = {k: list(v) for k, v in resume["curves"].items()}
        for key in ("step_seconds", "render_seconds", "loss_seconds", "backward_seconds"):
            setattr(result, key, list(resume[key]))
        result.vertices = (base + offsets).detach().clone()
        result.textures = torch.sigmoid(logits).detach().clone()

    def state() -> dict:
        return {
            "step": result.steps,
            "offsets": offsets.detach().cpu().clone(),
            "logits": logits.detach().cpu().clone(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "curves": result.curves,
            **{k: getattr(result, k) for k in ("step_seconds", "render_seconds", "loss_seconds", "backward_seconds")},
        }

    try:
        for step in range(first, settings.iterations):
            t0 = time.perf_counter()
            eyes, light = random_cameras(settings, generator)
            renderer.eye = eyes.to(device)
            if light is not None:
                renderer.light_direction = light.to(device)
            if random_background:
                grey = float(torch.rand(1, generator=generator))
                renderer.background_color = (grey, grey, grey)
            current = base + offsets
            tex = torch.sigmoid(logits)
            if uvs is None:
                rgb, _, alpha = renderer(current[None].expand(b, -1, -1), batch_faces, tex[None].expand(b, *tex.shape), mode=None)
            else:  # one image and one layout for the whole batch (B = 1 broadcasts, nothing copied)
                rgb, _, alpha = renderer(current[None].expand(b, -1, -1), batch_faces, uvs=uvs[None], texture_image=tex[None])
            _sync(device)
            t1 = time.perf_counter()
            loss, terms = loss_fn(RenderedViews(rgb=rgb, alpha=alpha), current)
            _sync(device)
            t2 = time.perf_counter()
            if not torch.isfinite(loss).all():
                result.failure = f"the loss became {loss.item()} at step {step + 1}"
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            _sync(device)
            if not (torch.isfinite(offsets).all() and torch.isfinite(logits).all()):  # result keeps the last finite state
                result.failure = f"the vertices or textures became non-finite at step {step + 1}"
                break
            t3 = time.perf_counter()
            terms = dict(terms, total=float(loss.item()))
            for name, value in terms.items():
                result.curves.setdefault(name, []).append(float(value))
            result.render_seconds.append(t1 - t0)
            result.loss_seconds.append(t2 - t1)
            result.backward_seconds.append(t3 - t2)
            result.step_seconds.append(t3 - t0)
            result.steps = step + 1
            with torch.no_grad():
                result.vertices = (base + offsets).detach().clone()
                result.textures = torch.sigmoid(logits).detach().clone()
            if progress is not None:
                progress(step, terms)
            if on_checkpoint is not None and checkpoint_every > 0 and result.steps % checkpoint_every == 0:
                on_checkpoint(state())
            if should_stop():
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        result.interrupted = True
        if on_checkpoint is not None:
            on_checkpoint(state())
    result.seconds = time.perf_counter() - start
    return result
