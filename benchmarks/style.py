"""Seconds per step and peak memory of `meshopt style` (preset ``fast`` by default) on a ~5k-face mesh.

Usage: python benchmarks/style.py [--mesh builtin:sphere:4] [--preset fast] [--steps 20] [--threads 2]
       [--device cpu] [--weights random] [--precision auto|fp32|bf16]
Prints one JSON object: mean/median seconds per step (after 2 warm-up steps), the split into
renderer forward, VGG forward and backward + Adam, and peak resident memory (ru_maxrss) in GB
(peak CUDA memory too on a GPU). Random VGG weights cost the same time as ImageNet ones.
"""

from __future__ import annotations

from textured_steps import load, parse_arguments, precision_of, run_and_report


def main() -> None:
    args = parse_arguments()
    import torch

    from meshopt_cli.commands.style import COMMAND
    from meshopt_cli.optimize.backbones import VGG16Features
    from meshopt_cli.optimize.style import StyleLoss
    from meshopt_cli.optimize.textured import optimize_textured

    settings = COMMAND.resolve(args.preset, overrides={"iterations": args.steps + args.warmup})[0]
    device, mesh, vertices, faces, textures = load(args, settings.texture_size)
    network = VGG16Features(weights=args.weights, progress=False, bf16=precision_of(args, device).bf16).to(device)
    style = torch.rand(1, 3, settings.image_size, settings.image_size, generator=torch.Generator().manual_seed(0)).to(device)
    weights = (settings.style_weight, settings.content_weight, settings.tv_weight)
    loss = StyleLoss(network, style, vertices, weights, settings.style_normalization, settings.colour_weight)
    run_and_report(
        args,
        device,
        mesh,
        settings,
        COMMAND.resolve(args.preset)[0].iterations,
        "vgg",
        lambda: optimize_textured(vertices, faces, textures, settings, loss, (0.5, 0.5, 0.5)),
    )


if __name__ == "__main__":
    main()
