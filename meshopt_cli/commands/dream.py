"""``meshopt dream [MESH...]``: grow the patterns a GoogLeNet layer sees onto meshes' texture and shape.

Each mesh (default ``builtin:teapot``) gets ``OUT/<mesh>-<layer>/`` (or ``--name``), complete or not
at all: ``dream.obj`` + ``.mtl`` + ``.png``, ``turntable.gif``, ``before-after.png`` and
``metrics.json`` (see :mod:`meshopt_cli.commands.textured`, which this command is built on).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from meshopt_cli import precision
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, read_inputs
from meshopt_cli.command import Payload
from meshopt_cli.commands import textured
from meshopt_cli.commands.textured import TexturedCommandSettings, TexturedOptions
from meshopt_cli.fields import SettingsError, setting
from meshopt_cli.optimize.layer_names import GOOGLENET_DEFAULT_LAYER, googlenet_layer

DEFAULT_MESH = "builtin:teapot"


def parse_layer(value, where: str) -> str:
    """A layer name in either spelling -> the paper's (``inception_4c``); one line listing the valid ones."""
    if not isinstance(value, str):
        raise SettingsError(f"{where}: setting 'layer' must be a string, got {value!r}")
    try:
        return googlenet_layer(value)
    except ValueError as problem:
        raise SettingsError(str(problem)) from None


def parse_bias(value, where: str = "command line") -> tuple:
    """``"0,0.5,0.5"`` or ``[0, 0.5, 0.5]`` -> ``(0.0, 0.5, 0.5)`` (RGB added to the initial textures)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        bias = tuple(float(x) for x in items)
        if isinstance(value, (list, tuple)) and any(isinstance(x, bool) for x in value):
            raise ValueError
    except (TypeError, ValueError):
        bias = ()
    if len(bias) != 3:
        raise SettingsError(f"{where}: init-bias must be three numbers R,G,B (e.g. 0,0.5,0.5), got {value!r}")
    return bias


KIND = textured.Kind(name="dream", stem="dream", network_key="googlenet")


@dataclass
class DreamSettings(TexturedCommandSettings):
    iterations: int = setting(1000, ge=0)
    batch_views: int = setting(4, ge=1, le=64, why="views rendered and sent through the network at once")
    image_size: int = setting(
        224, ge=32, le=1024, why="GoogLeNet downsamples 16 times before inception_4*; 1024 is 20 times the paper's pixels"
    )
    distance: float = setting(2.5, gt=0)
    distance_noise: float = setting(0.1, ge=0)
    elevation_min: float = setting(-10.0)
    elevation_max: float = setting(30.0)
    light_angle: float | None = setting(None)
    vertex_lr: float = setting(0.0001, ge=0)  # the paper: 0.01 * 0.01
    texture_lr: float = setting(0.01, ge=0)  # the paper: 0.01 * 1.0
    layer: str = setting(GOOGLENET_DEFAULT_LAYER, parse=parse_layer)
    length_weight: float = setting(6.15e-9, ge=0)  # the paper's 1e-4 for Caffe's input scale (see presets/dream/paper.toml)
    ambient: float = setting(1.0, ge=0)
    directional: float = setting(0.0, ge=0)
    random_background: bool = setting(True)
    init_bias: tuple = setting((0.0, 0.0, 0.0), parse=parse_bias)


@dataclass
class DreamFigures:
    steps: int
    layer: str
    mean_activation_sq_fixed_views: dict
    dream: float | None
    activation: float | None
    edge_variance: float | None
    total: float | None


def plan(arguments: list[str], settings: DreamSettings, options: TexturedOptions, batch: BatchOptions) -> list[Job]:
    """``[MESH...]`` (default the teapot), folders ``OUT/<mesh>-<layer>``."""
    inputs = read_inputs(arguments) if arguments else [DEFAULT_MESH]
    return textured.plan_jobs(inputs, settings, options, settings.layer, batch)


@functools.lru_cache(maxsize=2)
def googlenet_features(layer: str, weights: str, seed: int, device, progress: bool, bf16: bool):
    """GoogLeNet up to ``layer`` on ``device``, loaded once per process."""
    from meshopt_cli.optimize.backbones import GoogLeNetFeatures

    return GoogLeNetFeatures(layer, weights=weights, seed=seed, progress=progress, bf16=bf16).to(device)


def run_job(job: Job, payload: Payload[DreamSettings, TexturedOptions], context: Context) -> JobResult:
    """Dream on one mesh and write its folder (see :func:`meshopt_cli.batch.execute`)."""
    import torch

    from meshopt_cli.optimize.dream import DreamLoss, initial_textures
    from meshopt_cli.optimize.image_losses import edge_length_variance

    started = time.perf_counter()
    settings, options, device = payload.settings, payload.options, context.device
    subject = textured.load_subject(job, settings, job.force or options.resume, device, KIND.network_key, context.memory_budget)
    used = precision.choose(settings.precision, device)
    network = googlenet_features(settings.layer, options.weights, settings.seed, device, not context.quiet, used.bf16)
    torch.manual_seed(settings.seed)
    textures = initial_textures(subject.textures, settings.init_bias)
    loss = DreamLoss(network, subject.faces, settings.length_weight)
    lights = (settings.ambient, settings.directional)
    background = (0.5, 0.5, 0.5)  # replaced every step by a random grey when random_background
    optimized = textured.optimize(
        KIND,
        job,
        payload,
        context,
        subject,
        textures,
        loss,
        background,
        {},
        light_intensity=lights,
        random_background=settings.random_background,
    )
    result, vertices, faces = optimized.result, subject.vertices, subject.faces
    with torch.no_grad():
        edge_variance = {
            "before": float(edge_length_variance(vertices, faces)),
            "after": float(edge_length_variance(result.vertices, faces)),
        }
        # the layer's mean activation² on four fixed views (training size and lights, mid-grey background)
        fixed_activation = {
            key: float(
                (
                    network(textured.render_fixed(v, faces, t, settings.image_size, (0.5, 0.5, 0.5), lights, uvs=subject.uvs)[0])
                    ** 2
                ).mean()
            )
            for key, v, t in (("before", vertices, textures), ("after", result.vertices, result.textures))
        }

    def headline(metrics: dict) -> str:
        activation = metrics["loss_curves"].get("activation") or [float("nan")]
        return f"mean activation² {activation[0]:.4g} -> {activation[-1]:.4g}"

    def figures(result) -> DreamFigures:
        last = {k: round(vs[-1], 6) for k, vs in result.curves.items()}
        return DreamFigures(
            steps=result.steps,
            layer=settings.layer,
            mean_activation_sq_fixed_views=fixed_activation,
            **{k: last.get(k) for k in ("dream", "activation", "edge_variance", "total")},
        )

    report = textured.Report(
        head={"layer": settings.layer},
        weights={"dream": 1.0, "edge_variance": settings.length_weight},
        extra={"edge_length_variance_x_faces": edge_variance, "mean_activation_sq_fixed_views": fixed_activation},
        headline=headline,
        figures=figures,
    )
    return textured.finish(KIND, job, payload, context, subject, optimized, textures, network, used, started, report)


COMMAND = textured.command(KIND, DreamSettings, plan, run_job)
