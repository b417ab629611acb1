"""``meshopt style MESH... IMAGE``: the meshes' texture and shape take on the style of an image.

Each mesh gets ``OUT/<mesh>-<image>/`` (or ``--name``), complete or not at all: ``stylized.obj`` +
``.mtl`` + ``.png``, ``turntable.gif``, ``before-after.png`` and ``metrics.json`` (see
:mod:`meshopt_cli.commands.textured`, which this command is built on).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from meshopt_cli import console, precision
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, read_inputs
from meshopt_cli.command import Payload
from meshopt_cli.commands import textured
from meshopt_cli.commands.textured import TexturedCommandSettings, TexturedOptions
from meshopt_cli.fields import setting

KIND = textured.Kind(name="style", stem="stylized", network_key="vgg")


@dataclass
class StyleSettings(TexturedCommandSettings):
    image_size: int = setting(224, ge=16, le=1024, why="VGG pools 3 times; it keeps about 3.5 GB of activations per view at 1024")
    # target: each layer's Gram error relative to the painting's Gram norm (independent of the
    # weights file); none: the paper's absolute Gram error (scale follows the network's features)
    style_normalization: str = setting("target", choices=("target", "none"))  # optimize.style.STYLE_NORMALIZATIONS
    style_weight: float = setting(10.0, ge=0)  # of the normalised term (presets/style/fast.toml says why 10)
    content_weight: float = setting(182.0, ge=0)  # the paper's 2e9 for Caffe VGG (see presets/style/paper.toml)
    tv_weight: float = setting(0.91, ge=0)  # the paper's 1e7
    # mean and covariance of the views' colours against the painting's, in [0, 1] RGB units (no
    # network in it); 0: the paper's loss (presets/style/fast.toml says why 300)
    colour_weight: float = setting(300.0, ge=0)


@dataclass
class StyleFigures:
    steps: int
    style: float | None
    content: float | None
    tv: float | None
    colour: float | None
    total: float | None


def plan(arguments: list[str], settings: StyleSettings, options: TexturedOptions, batch: BatchOptions) -> list[Job]:
    """``MESH... IMAGE``: every mesh with the one style image (the last argument)."""
    if len(arguments) < 2:
        raise console.UsageError("give the mesh(es) and then the style image: meshopt style MESH... IMAGE")
    *meshes, image = arguments
    # image_path: the image as the checkpoint records it, resolved here (a cluster's workers run elsewhere)
    extra = {"image": image, "image_path": str(Path(image).resolve())}
    return textured.plan_jobs(read_inputs(meshes), settings, options, Path(image).stem or "style", batch, extra)


@functools.lru_cache(maxsize=2)
def vgg_features(weights: str, seed: int, device, progress: bool, bf16: bool):
    """VGG16 features on ``device``, loaded once per process."""
    from meshopt_cli.optimize.backbones import VGG16Features

    return VGG16Features(weights=weights, seed=seed, progress=progress, bf16=bf16).to(device)


def run_job(job: Job, payload: Payload[StyleSettings, TexturedOptions], context: Context) -> JobResult:
    """Stylize one mesh and write its folder (see :func:`meshopt_cli.batch.execute`)."""
    import torch

    from meshopt_cli.optimize.style import StyleLoss, load_style_image, style_tensor

    started = time.perf_counter()
    settings, options, device = payload.settings, payload.options, context.device
    image_path = job.extra["image"]
    subject = textured.load_subject(job, settings, job.force or options.resume, device, KIND.network_key, context.memory_budget)
    style_image = load_style_image(image_path)
    used = precision.choose(settings.precision, device)
    network = vgg_features(options.weights, settings.seed, device, not context.quiet, used.bf16)
    torch.manual_seed(settings.seed)
    background = [float(c) for c in style_image.reshape(-1, 3).mean(0)]
    weights = {
        "style": settings.style_weight,
        "content": settings.content_weight,
        "tv": settings.tv_weight,
        "colour": settings.colour_weight,
    }
    loss = StyleLoss(
        network,
        style_tensor(style_image, settings.image_size, device),
        subject.vertices,
        (settings.style_weight, settings.content_weight, settings.tv_weight),
        settings.style_normalization,
        settings.colour_weight,
    )
    meta = {"image": job.extra.get("image_path") or str(Path(image_path).resolve())}
    optimized = textured.optimize(KIND, job, payload, context, subject, subject.textures, loss, background, meta)

    def figures(result) -> StyleFigures:
        last = {k: round(vs[-1], 6) for k, vs in result.curves.items()}
        return StyleFigures(steps=result.steps, **{k: last.get(k) for k in ("style", "content", "tv", "colour", "total")})

    def headline(metrics: dict) -> str:
        return f"style loss {metrics['final_loss_terms'].get('style', float('nan')):.4g}"

    report = textured.Report(
        head={"image": image_path}, weights=weights, extra={"background": background}, headline=headline, figures=figures
    )
    return textured.finish(KIND, job, payload, context, subject, optimized, subject.textures, network, used, started, report)


COMMAND = textured.command(KIND, StyleSettings, plan, run_job)
