"""The fit loop: deform a template mesh until its silhouettes match a target's.

Two stages, both on silhouettes of ``batch_views`` cameras sampled per iteration:

1. (optional, ``affine_iterations``) Adam on a per-axis scale and a translation of the whole
   template, the learning rate decaying along a cosine from ``affine_learning_rate`` to a tenth of it;
2. (``iterations``) every vertex, with the silhouette term (``loss``: 1 - IoU or MSE) plus weighted
   regularizers (uniform Laplacian, edge length (a membrane energy), normal consistency, the paper's
   flatten loss). ``optimizer`` says how the vertices are parameterized (:class:`VertexParameters`):
   ``"largesteps"`` optimizes u with x = (I + λL)⁻¹ u under uniform Adam
   (:mod:`meshopt_cli.optimize.largesteps`), ``"adam"`` an offset per vertex under Adam (the paper's).
   The learning rate decays along a cosine from ``learning_rate`` to ``final_learning_rate``;
   optionally the first ``coarse_fraction`` of the iterations render at ``coarse_image_size``
   (coarse to fine), and after ``refine_at`` of them the mesh is subdivided once (V -> V + E
   vertices; 642 -> 2562 for the default sphere) and the optimizer starts afresh on the finer mesh.
   After ``carve_at`` of them the faces that span a hole of the training silhouettes are removed
   (:mod:`meshopt_cli.optimize.carve`: this opens the holes a genus-0 template spans with a web);
   when any were, the fit goes on with the mesh rendered from both sides, and Large Steps restarts
   with ``carve_lambda`` (a smaller λ lets thin parts sharpen once the coarse shape is in place).
3. (optional, ``relax``) the vertices no training silhouette holds move to the minimal surface
   spanning those that do (:mod:`meshopt_cli.optimize.relax`; no training pixel gets worse).

``should_stop()`` (the command passes :func:`meshopt_cli.stop.requested`), polled after every
iteration, or a ``KeyboardInterrupt`` ends the loop and returns the current state
(``FitResult.interrupted``). A loss or a parameter that is not finite
ends it too, returning the last finite state (``FitResult.failure`` says what happened).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from meshopt_cli.fields import setting
from meshopt_cli.mesh.topology import subdivide_faces
from meshopt_cli.optimize.adam import Adam
from meshopt_cli.optimize.carve import CARVE_IMAGE_SIZE, faces_to_carve, without_faces
from meshopt_cli.optimize.largesteps import LargeSteps
from meshopt_cli.optimize.losses import IMAGE_LOSSES, REGULARIZERS, MeshTopology
from meshopt_cli.optimize.relax import RELAX_IMAGE_SIZE, relax_unheld
from meshopt_cli.optimize.targets import SilhouetteTarget
from meshopt_cli.optimize.views import render_batch, silhouette_renderer

AFFINE_DECAY = 0.1  # the first stage's final learning rate, as a fraction of its first
OPTIMIZERS = (
    "largesteps",  # Adam (uniform) on u with x = (I + λL)⁻¹ u (optimize/largesteps.py)
    "adam",  # Adam on an offset per vertex (the paper's)
)


@dataclass
class FitLoopSettings:
    """What the fit loop reads (the command's settings add views, template and outputs)."""

    batch_views: int = setting(8, ge=1, le=360, why="views rendered per iteration")  # sampled without replacement
    # silhouettes are rendered (and compared) at this size ...
    image_size: int = setting(96, ge=1, le=1024, why="silhouettes are drawn at twice the size for anti-aliasing")
    coarse_image_size: int = setting(0, ge=0)  # ... or at this size for the first coarse_fraction of iterations (0: off)
    coarse_fraction: float = setting(0.0, ge=0.0, le=1.0)
    iterations: int = setting(200, ge=0)  # optimizer steps on the vertices
    optimizer: str = setting("adam", choices=OPTIMIZERS)  # see OPTIMIZERS; the default preset picks "largesteps"
    largesteps_lambda: float = setting(5.0, ge=0)  # λ of x = (I + λL)⁻¹ u
    learning_rate: float = setting(0.01, gt=0, name="--lr")
    final_learning_rate: float = setting(0.001, gt=0)  # cosine decay from learning_rate to this
    refine_at: float = setting(0.0, ge=0.0, le=1.0)  # subdivide the mesh once after this fraction of the iterations (0: never)
    carve_at: float = setting(0.0, ge=0.0, le=1.0)  # carve faces across the masks' holes after this fraction (0: never)
    carve_margin: int = setting(3, ge=0, le=64)  # ... those more than this many pixels inside a hole (at 256 px)
    carve_lambda: float = setting(5.0, ge=0)  # λ of the Large Steps restart after a carve that removed faces
    relax: bool = setting(False)  # at the end, move the vertices no training silhouette holds to a minimal surface
    affine_iterations: int = setting(40, ge=0)  # first stage: per-axis scale + translation only (0: skip)
    affine_learning_rate: float = setting(0.05, gt=0)
    loss: str = setting("iou", choices=tuple(IMAGE_LOSSES))  # silhouette term: 1 - IoU (the paper's) or MSE
    # regularizer weights
    laplacian: float = setting(0.0, ge=0, name="--laplacian")
    edge: float = setting(0.02, ge=0, name="--edge")
    normal: float = setting(0.0, ge=0, name="--normal")
    flatten: float = setting(0.0, ge=0, name="--flatten")
    fill_back: bool = setting(False)  # render the template's faces from both sides (on for open templates anyway)
    seed: int = setting(0)


@dataclass
class FitResult:
    vertices: torch.Tensor  # [V, 3] fitted, in the target's (normalised) frame
    faces: torch.Tensor  # [F, 3] (the template's, or its subdivision's when refined)
    affine_curve: list[float] = field(default_factory=list)  # silhouette loss per affine iteration
    loss_curve: list[float] = field(default_factory=list)  # total loss per vertex iteration
    silhouette_curve: list[float] = field(default_factory=list)  # its silhouette term
    final_terms: dict = field(default_factory=dict)  # each term's last value (unweighted)
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # of the affine stage
    translation: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    seconds: float = 0.0
    interrupted: bool = False
    failure: str | None = None  # why the loop stopped early on a non-finite value, else None
    refined_at: int | None = None  # the vertex iteration at which the mesh was subdivided, if it was
    carved_at: int | None = None  # the vertex iteration of the carve (faces across the silhouettes' holes removed)
    carved_faces: int = 0  # how many
    relaxed_vertices: int | None = None  # vertices the final relaxation moved (None: not run)


class _Stopped(Exception):
    """Ends both stages at once (a stop request or a non-finite value)."""


def _check_finite(loss: torch.Tensor, parameters: list[torch.Tensor], stage: str, step: int) -> None:
    """Raise :class:`_Stopped` with ``result.failure``'s text when the loss or a parameter is not finite."""
    if not torch.isfinite(loss).all():
        raise _Stopped(f"the loss became {loss.item()} at {stage} iteration {step + 1}")
    if not all(torch.isfinite(p).all() for p in parameters):
        raise _Stopped(f"the vertices became non-finite at {stage} iteration {step + 1}")


class VertexParameters:
    """What the vertex stage optimizes for one mesh (``vertices [V, 3]``, ``faces [F, 3]``): with
    ``settings.optimizer`` ``"largesteps"``, u = (I + λL) x under uniform Adam; with ``"adam"``,
    an offset per vertex under Adam. ``vertices()`` gives the current ``[V, 3]`` (differentiable)."""

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, settings: FitLoopSettings):
        self.base = vertices.detach()
        self.topology = MeshTopology.from_faces(faces, len(vertices), vertices.device)
        if settings.optimizer == "largesteps":
            self.parameterization = LargeSteps(self.topology.edges, len(vertices), settings.largesteps_lambda)
            self.tensor = self.parameterization.to_differential(self.base).requires_grad_(True)
            self.optimizer = Adam([self.tensor], lr=settings.learning_rate, uniform=True)
        else:
            self.parameterization = None
            self.tensor = torch.zeros_like(self.base, requires_grad=True)
            self.optimizer = Adam([self.tensor], lr=settings.learning_rate)

    def vertices(self) -> torch.Tensor:
        if self.parameterization is not None:
            return self.parameterization.from_differential(self.tensor)
        return self.base + self.tensor

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def subdivided(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mesh ``vertices [V, 3]``, ``faces [F, 3]`` refined once by midpoint subdivision:
    ``([V + E, 3], [4F, 3])``, the old vertices first, then the midpoints of the E edges (a closed,
    consistently oriented mesh stays so; the surface does not move)."""
    new_faces, edges = subdivide_faces(faces.detach().cpu().numpy(), len(vertices))
    edges = torch.as_tensor(edges, device=vertices.device)
    midpoints = vertices.detach()[edges].mean(1)
    return torch.cat([vertices.detach(), midpoints]), torch.as_tensor(new_faces, device=faces.device)


def cosine_lr(first: float, last: float, step: int, total: int) -> float:
    """Learning rate at ``step`` of ``total``: ``first`` -> ``last`` along half a cosine."""
    if total <= 1:
        return first
    return last + (first - last) * 0.5 * (1 + math.cos(math.pi * step / (total - 1)))


def fit(
    template_vertices: torch.Tensor,
    faces: torch.Tensor,
    target: SilhouetteTarget,
    settings: FitLoopSettings,
    progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], object] = lambda: False,
) -> FitResult:
    """Fit ``template_vertices [V, 3]`` (faces ``[F, 3]``, on the target's device) to ``target``.

    The template is used as given (the caller centres and scales it). Deterministic for a given
    ``settings.seed`` on a given device.
    """
    start = time.perf_counter()
    device = template_vertices.device
    base = template_vertices.detach().float()
    generator = torch.Generator().manual_seed(int(settings.seed))
    image_loss = IMAGE_LOSSES[settings.loss]
    count = len(target.train)
    batch = min(settings.batch_views, count)
    fill_back = settings.fill_back
    renderers: dict[int, object] = {}

    def silhouettes(vertices, index, size):
        if size not in renderers:
            renderers[size] = silhouette_renderer(size, fill_back, target.train)
        return render_batch(renderers[size], vertices, faces, target.train.subset(index)), target.masks("train", size)[
            index.to(device)
        ]

    def sample():
        return torch.randperm(count, generator=generator)[:batch]

    result = FitResult(vertices=base.clone(), faces=faces)
    try:
        # stage 1: per-axis scale and translation
        log_scale = torch.zeros(3, device=device, requires_grad=True)
        shift = torch.zeros(3, device=device, requires_grad=True)
        if settings.affine_iterations > 0:
            optimizer = Adam([log_scale, shift], lr=settings.affine_learning_rate)
            size = settings.coarse_image_size or settings.image_size
            for step in range(settings.affine_iterations):
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(
                        settings.affine_learning_rate,
                        settings.affine_learning_rate * AFFINE_DECAY,
                        step,
                        settings.affine_iterations,
                    )
                rendered, wanted = silhouettes(base * log_scale.exp() + shift, sample(), size)
                loss = image_loss(rendered, wanted)
                _check_finite(loss, [], "affine", step)
                saved = log_scale.detach().clone(), shift.detach().clone()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if not (torch.isfinite(log_scale).all() and torch.isfinite(shift).all()):
                    with torch.no_grad():
                        log_scale.copy_(saved[0])
                        shift.copy_(saved[1])
                    raise _Stopped(f"the scale or translation became non-finite at affine iteration {step + 1}")
                result.affine_curve.append(loss.item())
                if progress:
                    progress(1)
                if should_stop():
                    raise KeyboardInterrupt
        with torch.no_grad():
            result.scale = log_scale.exp().tolist()
            result.translation = shift.tolist()
            base = base * log_scale.exp() + shift
            result.vertices = base.clone()

        # stage 2: every vertex, through its parameterization
        weights = {name: getattr(settings, name) for name in REGULARIZERS if getattr(settings, name) > 0}
        coarse_steps = int(round(settings.iterations * settings.coarse_fraction)) if settings.coarse_image_size else 0
        refine_step = int(round(settings.iterations * settings.refine_at)) if settings.refine_at > 0 else None
        carve_step = int(round(settings.iterations * settings.carve_at)) if settings.carve_at > 0 else None
        parameters = VertexParameters(base, faces, settings)
        for step in range(settings.iterations):
            if step == carve_step:
                remove = faces_to_carve(
                    result.vertices, faces, target.train, target.binary_masks("train", CARVE_IMAGE_SIZE), settings.carve_margin
                )
                result.carved_at = step
                if bool(remove.any()) and not bool(remove.all()):
                    result.carved_faces = int(remove.sum())
                    vertices_left, faces = without_faces(result.vertices, faces, remove)
                    result.vertices, result.faces = vertices_left, faces
                    fill_back = True  # the mesh is open now
                    renderers.clear()
                    settings = dataclasses.replace(settings, largesteps_lambda=settings.carve_lambda)
                    parameters = VertexParameters(result.vertices, faces, settings)
            if step == refine_step:
                finer, faces = subdivided(result.vertices, faces)
                parameters = VertexParameters(finer, faces, settings)
                result.faces, result.refined_at = faces, step
            parameters.set_learning_rate(
                cosine_lr(settings.learning_rate, settings.final_learning_rate, step, settings.iterations)
            )
            size = settings.coarse_image_size if step < coarse_steps else settings.image_size
            vertices = parameters.vertices()
            rendered, wanted = silhouettes(vertices, sample(), size)
            silhouette = image_loss(rendered, wanted)
            loss = silhouette
            terms = {"silhouette": silhouette}
            for name, weight in weights.items():
                terms[name] = REGULARIZERS[name](vertices, parameters.topology)
                loss = loss + weight * terms[name]
            _check_finite(loss, [], "vertex", step)
            parameters.optimizer.zero_grad()
            loss.backward()
            parameters.optimizer.step()
            _check_finite(loss, [parameters.tensor], "vertex", step)
            result.loss_curve.append(loss.item())
            result.silhouette_curve.append(silhouette.item())
            result.final_terms = {name: value.item() for name, value in terms.items()}
            with torch.no_grad():
                result.vertices = parameters.vertices()
            if progress:
                progress(1)
            if should_stop():
                raise KeyboardInterrupt
        if settings.relax:
            masks = target.binary_masks("train", RELAX_IMAGE_SIZE)
            relaxed = relax_unheld(result.vertices, faces, target.train, masks)
            result.vertices, result.relaxed_vertices = relaxed.vertices, relaxed.moved
    except KeyboardInterrupt:
        result.interrupted = True
    except _Stopped as problem:
        result.failure = str(problem)
    result.vertices = result.vertices.detach().clone()
    result.seconds = time.perf_counter() - start
    return result
