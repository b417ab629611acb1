"""Would the kernel tests catch a wrong kernel? Builds the native CPU kernels with one deliberate bug
at a time (in a temporary copy of kernels/), runs the backend comparison of the test suite
(tests/kernel_scenes.py: forward maps, every backward, entry by entry) against the reference
backend on the suite's scenes, and prints one JSON line per mutation: whether the tests' tolerances
caught it, and whether the old whole-tensor tolerance (1e-4 of the largest gradient) did.

    python benchmarks/kernel_mutations.py                   # every mutation (a build of ~1 min each)
    python benchmarks/kernel_mutations.py --only drop-in-run
    python benchmarks/kernel_mutations.py --against-commit HEAD~3   # refactor check: same bits as then?

``--against-commit`` builds the kernels of that commit instead and checks that every output of the
current kernels is bitwise equal to theirs on the same scenes.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402

# name: (file, text, replacement) — each text must occur exactly once in its file
MUTATIONS = {
    "drop-in-run": ("rasterize_cpu.cpp", "        meshopt::add_in_run<C>(in.p, f, e, c, scan, 0, 1, sum_a, sum_b);\n", ""),
    "drop-out-run": ("rasterize_cpu.cpp", "        if (in.p.face_index[pixel_in] == f) {\n", "        if (false) {\n"),
    "drop-axis-1": (
        "rasterize_cpu.cpp",
        "    for (int axis = 0; axis < 2; ++axis) {\n      ScanEdge e;",
        "    for (int axis = 0; axis < 1; ++axis) {\n      ScanEdge e;",
    ),
    "drop-vertex-b": ("rasterize_cpu.cpp", "        if (c.has_b) grad_b += sum_b;\n", ""),
    "eps-wrong-side": (
        "rasterizer_math.h",
        "return (k > 0.f) == (direction > 0) && k != 0.f ? eps : -eps;",
        "return (k > 0.f) == (direction > 0) && k != 0.f ? -eps : eps;",
    ),
    "texture-gradient-unlit": ("rasterizer_math.h", "corner_weight[c] * (g[ch] * light_f[ch])", "corner_weight[c] * g[ch]"),
    "depth-drop-z-term": ("rasterizer_math.h", "    g9[3 * j + 2] += grad_depth * depth2 * w[j] / (f.z[j] * f.z[j]);\n", ""),
    # subtler: wrong for some faces or some pixels only, so that the largest entries can stay right
    "drop-in-run-odd-faces": (
        "rasterize_cpu.cpp",
        "        meshopt::add_in_run<C>(in.p, f, e, c, scan, 0, 1, sum_a, sum_b);\n",
        "        if (f % 2 == 0) meshopt::add_in_run<C>(in.p, f, e, c, scan, 0, 1, sum_a, sum_b);\n",
    ),
    "out-run-first-two-pixels": (
        "rasterize_cpu.cpp",
        "walk_out<C>(pos, lines.data.data() + line * S * (C + 1), S, first, last,",
        "walk_out<C>(pos, lines.data.data() + line * S * (C + 1), S, first, std::min(last, first + 2),",
    ),
    "drop-vertex-b-odd-faces": (
        "rasterize_cpu.cpp",
        "        if (c.has_b) grad_b += sum_b;\n",
        "        if (c.has_b && f % 2 == 0) grad_b += sum_b;\n",
    ),
    # small errors in typical entries, which a bound relative to the largest entry lets through
    "in-run-1-percent-low": (
        "rasterizer_math.h",
        "    sum_a += contribution(delta, c.k_a, offset, p.eps);",
        "    sum_a += 0.99f * contribution(delta, c.k_a, offset, p.eps);",
    ),
    "out-run-1-percent-low": ("rasterizer_math.h", "  value_a = scale * distance_b;", "  value_a = 0.99f * scale * distance_b;"),
    "out-run-first-eight-pixels": (
        "rasterize_cpu.cpp",
        "walk_out<C>(pos, lines.data.data() + line * S * (C + 1), S, first, last,",
        "walk_out<C>(pos, lines.data.data() + line * S * (C + 1), S, first, std::min(last, first + 8),",
    ),
    # a warp walking 32 pixels without its stride loop; one batch item's IN runs lost
    "in-run-first-32-pixels": (
        "rasterizer_math.h",
        "walk_run<C>(p, f, line, line.pixel(c.v_out), first + lane, first + count, lanes, c, sum_a, sum_b);",
        "walk_run<C>(p, f, line, line.pixel(c.v_out), first + lane, first + (count < 32 ? count : 32), lanes, c, sum_a, sum_b);",
    ),
    "in-run-last-batch-item-lost": (
        "rasterize_cpu.cpp",
        "        meshopt::add_in_run<C>(in.p, f, e, c, scan, 0, 1, sum_a, sum_b);\n",
        "        if (b + 1 < in.p.B || b == 0) meshopt::add_in_run<C>(in.p, f, e, c, scan, 0, 1, sum_a, sum_b);\n",
    ),
    "texture-drop-one-corner": (
        "rasterizer_math.h",
        "    for (int c = 0; c < 8; ++c)\n      for (int ch = 0; ch < 3; ++ch) add(",
        "    for (int c = 0; c < 7; ++c)\n      for (int ch = 0; ch < 3; ++ch) add(",
    ),
}


class EarlierOps:
    """An extension module of an earlier commit, whose backward_textures may predate need_textures."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        return getattr(self.module, name)

    def backward_textures(self, *args):
        try:
            return self.module.backward_textures(*args)
        except TypeError:
            return self.module.backward_textures(*args[:9])


def build(kernels: pathlib.Path, name: str):
    """The native CPU backend built from the sources in ``kernels`` (a copy of kernels/)."""
    from torch.utils import cpp_extension

    from meshopt_cli.render import native

    build_dir = kernels / "build"
    build_dir.mkdir()
    module = cpp_extension.load(
        name=name,
        sources=[str(kernels / s) for s in native.CPU_SOURCES],
        extra_cflags=native.CPU_FLAGS,
        extra_include_paths=[str(kernels)],
        extra_ldflags=["-fopenmp"],
        build_directory=str(build_dir),
        verbose=False,
    )
    return native._wrap(EarlierOps(module))


def scenes():
    """(name, scene, size, eps) of the suite: the random CUDA-test scenes and the named edge cases."""
    from kernel_scenes import EDGE_SCENES, random_scene

    yield "batch", random_scene(11, 3, 60, 64, 3, fill_back=True, light=True), 64, 1e-3
    yield "texture-sizes", random_scene(3, 1, 40, 37, 3), 37, 1e-4
    for name, make in EDGE_SCENES.items():
        scene, size = make()
        yield name, scene, size, 1e-3


def old_tolerance(actual, expected, what="", **_):
    """The comparison the tests used before: 1e-4 of the largest magnitude, over the whole tensor."""
    if expected is None or actual is None:
        assert expected is None and actual is None, what
        return
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    assert torch.allclose(actual.cpu(), expected, rtol=0, atol=1e-4 * scale + 1e-6), what


def hidden_entries() -> dict:
    """Per gradient, the share of the reference's nonzero entries small enough that a kernel could
    return 0 for them and still pass: |e| <= allowed error, under the tests' bound and the old one."""
    from conftest import GRADIENT_ATOL_MEDIAN, GRADIENT_RTOL

    from meshopt_cli.render import reference

    counts: dict = {}
    for _, (faces, textures, light, background), size, eps in scenes():
        fill_back = faces.shape[1] != textures.shape[1]
        face_index, weights, depth, rgb, alpha = reference.forward(
            faces, textures, size, 0.1, 100.0, eps, background, light, fill_back
        )
        g = torch.Generator().manual_seed(size)
        image = torch.cat((alpha[..., None], rgb), -1).contiguous()
        grads = {
            "backward_xy": reference.backward_xy(faces, face_index, image, torch.randn(image.shape, generator=g), eps),
            "backward_depth": reference.backward_depth(faces, face_index, torch.randn(depth.shape, generator=g)),
        }
        for name, e in grads.items():
            e = e[e != 0].abs()
            if not e.numel():
                continue
            new_atol = GRADIENT_ATOL_MEDIAN * float(e.median()) + 1e-6
            old_atol = 1e-4 * float(e.max()) + 1e-6
            entry = counts.setdefault(name, [0, 0, 0])
            entry[0] += e.numel()
            entry[1] += int((e * (1 - GRADIENT_RTOL) <= new_atol).sum())
            entry[2] += int((e <= old_atol).sum())
    return {
        name: {"nonzero": n, "hidden_by_test_bound": round(new / n, 4), "hidden_by_old_bound": round(old / n, 4)}
        for name, (n, new, old) in counts.items()
    }


def caught(backend, comparator) -> list[str]:
    """Names of the scenes on which the suite's comparison fails for ``backend``."""
    import kernel_scenes

    from meshopt_cli.render import reference

    original = kernel_scenes.assert_gradients_close
    kernel_scenes.assert_gradients_close = comparator or original
    failed = []
    try:
        for name, scene, size, eps in scenes():
            try:
                kernel_scenes.compare_backends(reference, backend, "cpu", scene, size, eps=eps, exact=False)
            except AssertionError:
                failed.append(name)
    finally:
        kernel_scenes.assert_gradients_close = original
    return failed


def outputs(backend):
    """Every output of every op on every scene, in one flat list (for bitwise comparison)."""
    result = []
    for _, (faces, textures, light, background), size, eps in scenes():
        fill_back = faces.shape[1] != textures.shape[1]
        maps = backend.forward(faces, textures, size, 0.1, 100.0, eps, background, light, fill_back)
        face_index, weights, depth, rgb, alpha = maps
        g = torch.Generator().manual_seed(size)
        image = torch.cat((alpha[..., None], rgb), -1).contiguous()
        result += list(maps)
        result.append(backend.backward_xy(faces, face_index, image, torch.randn(image.shape, generator=g), eps))
        result.append(
            backend.backward_xy(
                faces, face_index, alpha[..., None].contiguous(), torch.randn(alpha[..., None].shape, generator=g), eps
            )
        )
        result.append(backend.backward_depth(faces, face_index, torch.randn(depth.shape, generator=g)))
        grad_t, grad_l = backend.backward_textures(
            faces, face_index, weights, depth, torch.randn(rgb.shape, generator=g), textures, light, fill_back, eps
        )
        result += [grad_t] + ([grad_l] if grad_l is not None else [])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(MUTATIONS), help="these mutations only")
    parser.add_argument("--against-commit", help="check the current kernels bitwise against this commit's")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from meshopt_cli.render import native

    with tempfile.TemporaryDirectory() as tmp:
        if args.against_commit:
            kernels = pathlib.Path(tmp) / "kernels"
            kernels.mkdir()
            for source in (REPO / "kernels").iterdir():
                text = subprocess.run(
                    ["git", "show", f"{args.against_commit}:kernels/{source.name}"], cwd=REPO, capture_output=True, text=True
                )
                if text.returncode == 0:
                    (kernels / source.name).write_text(text.stdout)
            then = outputs(build(kernels, "meshopt_then"))
            now = outputs(native.backend_for("cpu"))
            differ = sum(not torch.equal(a, b) for a, b in zip(now, then))
            print(json.dumps({"against": args.against_commit, "outputs": len(now), "bitwise_different": differ}))
            return
        print(json.dumps({"hidden_entries": hidden_entries()}), flush=True)
        baseline = native.backend_for("cpu")
        print(
            json.dumps(
                {"mutation": "none", "caught": caught(baseline, None), "caught_by_old_tolerance": caught(baseline, old_tolerance)}
            )
        )
        for name in args.only or sorted(MUTATIONS):
            file, text, replacement = MUTATIONS[name]
            kernels = pathlib.Path(tmp) / name
            shutil.copytree(REPO / "kernels", kernels)
            source = (kernels / file).read_text()
            assert source.count(text) == 1, f"{name}: the text to break occurs {source.count(text)} times in {file}"
            (kernels / file).write_text(source.replace(text, replacement))
            start = time.perf_counter()
            backend = build(kernels, "meshopt_mutant_" + name.replace("-", "_"))
            built = time.perf_counter() - start
            record = {"mutation": name, "file": file, "caught": caught(backend, None)}
            record["caught_by_old_tolerance"] = caught(backend, old_tolerance)
            record["build_s"] = round(built, 1)
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
