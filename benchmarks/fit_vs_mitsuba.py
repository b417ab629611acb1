"""`meshopt fit` side by side with Mitsuba 3's Large Steps recipe: prints one JSON object per target.

Targets are those of ``benchmarks/fit.py`` (the cube, the ellipsoid, the star-shaped blob, the
teapot), moved into the unit ball as ``meshopt fit`` does; both fits start from the same template
(the default preset's ``builtin:sphere``, 642 vertices), see the target from the same 24 training
cameras (azimuths every 15°, elevation 30°, distance 2.732, half-angle 30°) and are scored by the
same evaluator (``meshopt_cli.optimize.evaluate``: binary masks at 128 px on the 12 held-out views).

meshopt: ``python -m meshopt_cli fit TARGET --json`` (``benchmarks/fit.py``'s ``run_one``), wall time
of the process. Mitsuba (``mitsuba`` and ``drjit``, optional: without them the script says so in
one line and prints meshopt's figures alone), the recipe of issue 17: ``llvm_ad_rgb``,
``direct_projective``, 96² at 4 samples per pixel, ``mi.ad.LargeSteps`` with λ = 5 on the vertices,
``mi.ad.Adam(uniform=True)`` with the learning rate decaying along a cosine from 0.1 to 0.01, one
training view per step (a fresh permutation of the 24 every epoch), L1 image loss against the
target rendered by Mitsuba at 64 samples per pixel; the target silhouette is the black mesh in front
of a constant white environment (so open meshes block light from both sides). Each Mitsuba fit runs
in its own process (``--worker``) whose wall time is measured the same way (imports, JIT
compilation, the target's renders and the fit included). With ``--equal-time`` a second Mitsuba run
per target gets as many steps as fit in meshopt's wall time (from the long run's time per step).

    DRJIT_LIBLLVM_PATH=/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1 python benchmarks/fit_vs_mitsuba.py --equal-time
    python benchmarks/fit_vs_mitsuba.py --targets blob --steps 200

On Debian 12, drjit's default system LLVM 15 aborts ("Cannot select ... fmaximum"); Debian's
``libllvm19`` with ``DRJIT_LIBLLVM_PATH`` pointing at its ``libLLVM.so.19.1`` works.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fit as fit_benchmark  # noqa: E402  (benchmarks/fit.py: the targets and the meshopt run)

RECIPE = dict(size=96, spp=4, reference_spp=64, lam=5.0, lr=0.1, final_lr=0.01, variant="llvm_ad_rgb")


def load_target(source: str):
    """The target (moved into the unit ball), the template and the cameras, as ``meshopt fit`` has them."""
    import torch

    from meshopt_cli.commands.fit import FitSettings, load_template
    from meshopt_cli.optimize.targets import mesh_target

    settings = FitSettings()
    target = mesh_target(source, settings.views, settings.heldout_views, "cpu")
    template, faces, _ = load_template(settings.init, settings.init_scale, torch.device("cpu"))
    return target, template.numpy(), faces.numpy(), settings


def mitsuba_fit(target_v, target_f, template_v, template_f, eyes, fov, steps: int, seed: int = 0):
    """Mitsuba's recipe (see the module docstring); returns ``(vertices [V, 3], faces [F, 3])``."""
    import drjit as dr
    import mitsuba as mi

    from meshopt_cli.mesh import save_obj
    from meshopt_cli.optimize.fit import cosine_lr

    mi.set_variant(RECIPE["variant"])
    folder = Path(tempfile.mkdtemp())
    save_obj(folder / "target.obj", target_v, target_f)
    save_obj(folder / "template.obj", template_v, template_f)
    size = RECIPE["size"]

    def sensor(eye):
        return {
            "type": "perspective",
            "fov": fov,
            "to_world": mi.ScalarTransform4f().look_at(origin=[float(x) for x in eye], target=[0, 0, 0], up=[0, 1, 0]),
            "film": {"type": "hdrfilm", "width": size, "height": size, "rfilter": {"type": "box"}, "pixel_format": "luminance"},
            "sampler": {"type": "independent", "sample_count": RECIPE["spp"]},
        }

    def scene(obj):
        shapes = {
            "mesh": {
                "type": "obj",
                "filename": str(obj),
                "face_normals": True,
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}},
            }
        }
        sensors = {f"sensor{k}": sensor(eye) for k, eye in enumerate(eyes)}
        return mi.load_dict(
            {
                "type": "scene",
                "integrator": {"type": "direct_projective", "sppi": 0},  # no indirect discontinuities here
                "light": {"type": "constant", "radiance": {"type": "rgb", "value": 1.0}},
                **shapes,
                **sensors,
            }
        )

    reference = scene(folder / "target.obj")
    targets = [mi.render(reference, sensor=k, spp=RECIPE["reference_spp"], seed=k) for k in range(len(eyes))]
    fitted = scene(folder / "template.obj")
    params = mi.traverse(fitted)
    key = "mesh.vertex_positions"
    steps_ = mi.ad.LargeSteps(params[key], params["mesh.faces"], RECIPE["lam"])
    optimizer = mi.ad.Adam(lr=RECIPE["lr"], uniform=True)
    optimizer["u"] = steps_.to_differential(params[key])
    rng = np.random.default_rng(seed)
    order: list[int] = []
    for step in range(steps):
        optimizer.set_learning_rate(cosine_lr(RECIPE["lr"], RECIPE["final_lr"], step, steps))
        params[key] = steps_.from_differential(optimizer["u"])
        params.update(optimizer)
        if not order:
            order = list(rng.permutation(len(eyes)))
        k = int(order.pop())
        image = mi.render(fitted, params, sensor=k, seed=step, spp=RECIPE["spp"])
        loss = dr.mean(dr.abs(image - targets[k]))
        dr.backward(loss)
        optimizer.step()
    params[key] = steps_.from_differential(optimizer["u"])
    params.update()
    vertices = np.array(params[key], np.float32).reshape(-1, 3)
    faces = np.array(params["mesh.faces"], np.int64).reshape(-1, 3)
    return vertices, faces


def worker(args) -> None:
    """One Mitsuba fit in this process: writes the fitted mesh to ``args.worker_out`` (.npz)."""
    from meshopt_cli.optimize.views import VIEWING_ANGLE

    target, template_v, template_f, _ = load_target(args.worker)
    vertices, faces = mitsuba_fit(
        target.vertices.numpy(),
        target.faces.numpy(),
        template_v,
        template_f,
        target.train.eyes.numpy(),
        2 * VIEWING_ANGLE,
        args.steps,
        args.seed,
    )
    np.savez(args.worker_out, vertices=vertices, faces=faces)


def run_mitsuba(source: str, steps: int, args) -> dict:
    """A Mitsuba fit in its own process, scored by meshopt's evaluator."""
    import torch

    from meshopt_cli.optimize.evaluate import evaluate

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), DRJIT_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "fit.npz"
        command = [sys.executable, __file__, "--worker", source, "--worker-out", str(out), "--steps", str(steps)]
        command += ["--seed", str(args.seed)]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            return {"error": (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]}
        fitted = np.load(out)
    target, _, _, settings = load_target(source)
    figures = evaluate(torch.tensor(fitted["vertices"]), torch.tensor(fitted["faces"]), target, settings.eval_image_size)
    return {
        "steps": steps,
        "heldout_iou": round(figures["heldout_iou"], 4),
        "train_iou": round(figures["train_iou"], 4),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(fit_benchmark.TARGETS), choices=fit_benchmark.TARGETS)
    parser.add_argument("--steps", type=int, default=3200, help="Mitsuba's steps (the recipe's 3200)")
    parser.add_argument("--equal-time", action="store_true", help="also run Mitsuba for meshopt's wall time")
    parser.add_argument("--preset", default="default", help="meshopt's preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.extra, args.keep = [], None
    if args.worker:
        return worker(args)
    try:
        import drjit  # noqa: F401
        import mitsuba  # noqa: F401

        have_mitsuba = True
    except ImportError:
        have_mitsuba = False
        print("mitsuba is not installed (pip install mitsuba): printing meshopt's figures alone", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.targets:
            source = fit_benchmark.target_source(name, Path(scratch))
            ours = fit_benchmark.run_one(name, source, Path(scratch) / "out", args)
            row = {
                "target": name,
                "meshopt": {k: ours.get(k) for k in ("heldout_iou", "train_iou", "seconds", "iterations", "error") if k in ours},
            }
            if have_mitsuba:
                row["mitsuba"] = run_mitsuba(source, args.steps, args)
                full = row["mitsuba"]
                if args.equal_time and "seconds" in full and "seconds" in ours:
                    # steps that fit in meshopt's wall time, after Mitsuba's own start-up (a 1-step run's time)
                    start_up = run_mitsuba(source, 1, args).get("seconds", 0.0)
                    per_step = max(full["seconds"] - start_up, 1e-3) / args.steps
                    steps = max(1, int(math.floor((ours["seconds"] - start_up) / per_step)))
                    row["mitsuba_equal_time"] = run_mitsuba(source, steps, args)
                    row["mitsuba_start_up_seconds"] = start_up
            row.update(
                threads=args.threads,
                load_average=round(os.getloadavg()[0], 2),
                machine=platform.processor() or platform.machine(),
            )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
