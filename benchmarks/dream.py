"""Seconds per step and peak memory of `meshopt dream` (preset ``fast`` by default) on a ~5k-face mesh.

Usage: python benchmarks/dream.py [--mesh builtin:sphere:4] [--preset fast] [--steps 20] [--threads 2]
       [--device cpu] [--weights random] [--layer inception_4c]
       [--precision auto|fp32|bf16]
Prints one JSON object: mean/median seconds per step (after 2 warm-up steps), the split into
renderer forward, GoogLeNet forward and backward + Adam, and peak resident memory (ru_maxrss) in GB
(peak CUDA memory too on a GPU). Random GoogLeNet weights cost the same time as ImageNet ones.
"""

from __future__ import annotations

from textured_steps import load, parse_arguments, precision_of, run_and_report


def main() -> None:
    args = parse_arguments(("--layer",))
    from meshopt_cli.commands.dream import COMMAND
    from meshopt_cli.optimize.backbones import GoogLeNetFeatures
    from meshopt_cli.optimize.dream import DreamLoss, initial_textures
    from meshopt_cli.optimize.textured import optimize_textured

    settings = COMMAND.resolve(args.preset, overrides={"iterations": args.steps + args.warmup, "layer": args.layer})[0]
    device, mesh, vertices, faces, textures = load(args, settings.texture_size)
    textures = initial_textures(textures, settings.init_bias)
    network = GoogLeNetFeatures(settings.layer, weights=args.weights, progress=False, bf16=precision_of(args, device).bf16).to(
        device
    )
    loss = DreamLoss(network, faces, settings.length_weight)
    run_and_report(
        args,
        device,
        mesh,
        settings,
        COMMAND.resolve(args.preset)[0].iterations,
        "googlenet",
        lambda: optimize_textured(
            vertices,
            faces,
            textures,
            settings,
            loss,
            (0.5, 0.5, 0.5),
            light_intensity=(settings.ambient, settings.directional),
            random_background=settings.random_background,
        ),
        layer=settings.layer,
        mean_activation_sq_first_last=lambda r: [round(r.curves["activation"][0], 5), round(r.curves["activation"][-1], 5)],
    )


if __name__ == "__main__":
    main()
