"""The Large Steps parameterization, its optimizer, the mesh refinement, and a fit through them."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from meshopt_cli.commands.fit import FitSettings
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.mesh.topology import is_closed_and_consistent, signed_volume, subdivide_faces
from meshopt_cli.optimize.adam import Adam
from meshopt_cli.optimize.fit import fit, subdivided
from meshopt_cli.optimize.largesteps import LargeSteps
from meshopt_cli.optimize.losses import MeshTopology
from meshopt_cli.optimize.targets import MeshTarget, normalize_to_ball
from meshopt_cli.optimize.views import heldout_views, training_views

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def dense_system(faces, count, lam):
    """I + λ (D - A) as a dense float64 matrix, built from the faces independently of the module."""
    M = np.eye(count)
    for a, b, c in np.asarray(faces):
        for i, j in ((a, b), (b, c), (c, a)):
            M[i, j] = M[j, i] = -lam
    np.fill_diagonal(M, 0.0)
    np.fill_diagonal(M, 1.0 - M.sum(1))  # 1 + λ degree
    return torch.tensor(M)


def small_mesh():
    v, f = builtin_shape("builtin:sphere:1")  # 42 vertices
    return torch.tensor(v), torch.tensor(f)


def test_solve_matches_a_dense_solve_and_its_gradient_is_the_transposed_solve():
    v, f = small_mesh()
    lam = 3.0
    M = dense_system(f.numpy(), len(v), lam)
    steps = LargeSteps(MeshTopology.from_faces(f, len(v)).edges, len(v), lam)
    u = torch.randn(len(v), 3, dtype=torch.float32, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    x = steps.from_differential(u)
    assert torch.allclose(x.double(), torch.linalg.solve(M, u.detach().double()), atol=1e-5)
    assert torch.allclose(steps.to_differential(v).double(), M @ v.double(), atol=1e-5)
    assert torch.allclose(steps.from_differential(steps.to_differential(v)), v, atol=1e-5)
    weights = torch.randn(len(v), 3, generator=torch.Generator().manual_seed(2))
    (x * weights).sum().backward()
    assert torch.allclose(u.grad.double(), torch.linalg.solve(M, weights.double()), atol=1e-5)  # M is symmetric


@needs_gpu
@pytest.mark.cuda
def test_solve_on_cuda_matches_the_cpu():
    v, f = small_mesh()
    edges = MeshTopology.from_faces(f, len(v)).edges
    u = torch.randn(len(v), 3, generator=torch.Generator().manual_seed(1))
    on_cpu = LargeSteps(edges, len(v), 5.0).from_differential(u)
    on_gpu = LargeSteps(edges.cuda(), len(v), 5.0).from_differential(u.cuda())
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-5)


def test_adam_uniform_scales_every_component_by_the_largest_second_moment():
    p = torch.zeros(4, requires_grad=True)
    optimizer = Adam([p], lr=0.1, uniform=True)
    p.grad = torch.tensor([4.0, -2.0, 1.0, 0.0])
    optimizer.step()
    # first step: m = g, v = g², so the step is lr g / max|g|
    assert torch.allclose(p.detach(), torch.tensor([-0.1, 0.05, -0.025, 0.0]), atol=1e-6)


def test_plain_adam_takes_torch_optim_adams_steps():
    generator = torch.Generator().manual_seed(0)
    ours, theirs = (torch.randn(5, 3, generator=torch.Generator().manual_seed(1)).requires_grad_(True) for _ in range(2))
    mine, reference = Adam([ours], lr=0.05), torch.optim.Adam([theirs], lr=0.05)
    for step in range(30):
        gradient = torch.randn(5, 3, generator=generator) * (step + 1)
        for optimizer, p in ((mine, ours), (reference, theirs)):
            optimizer.zero_grad()
            p.grad = gradient.clone()
            optimizer.param_groups[0]["lr"] = 0.05 / (1 + step)
            optimizer.step()
    assert not torch.equal(ours, torch.randn(5, 3, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_a_fit_never_imports_torch_dynamo():
    """torch.optim's first optimizer imports torch._dynamo (about 3 s of a 10 s fit's start-up and
    exit); the fit loop's own Adam keeps it out."""
    script = (
        "import sys, torch\n"
        "from meshopt_cli.mesh import builtin_shape\n"
        "from meshopt_cli.optimize.fit import FitLoopSettings, fit\n"
        "from meshopt_cli.optimize.targets import MeshTarget\n"
        "from meshopt_cli.optimize.views import training_views\n"
        "v, f = builtin_shape('builtin:cube')\n"
        "target = MeshTarget(v, f, 'cube', training_views(4), None, 'cpu')\n"
        "s, t = builtin_shape('builtin:sphere:1')\n"
        "for optimizer in ('largesteps', 'adam'):\n"
        "    fit(torch.tensor(s), torch.tensor(t), target, FitLoopSettings(image_size=16, iterations=2, affine_iterations=2, optimizer=optimizer))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_subdivision_keeps_the_mesh_closed_and_oriented_and_the_surface_in_place():
    v, f = builtin_shape("builtin:sphere")  # 642 vertices
    new_faces, edges = subdivide_faces(f, len(v))
    assert len(edges) == 1920 and new_faces.shape == (4 * len(f), 3)
    assert is_closed_and_consistent(new_faces)
    finer, faces = subdivided(torch.tensor(v), torch.tensor(f))
    assert finer.shape == (2562, 3) and torch.equal(finer[: len(v)], torch.tensor(v))
    assert torch.allclose(finer[len(v) :], torch.tensor(v)[torch.tensor(edges)].mean(1))
    # midpoints lie on the old faces: the enclosed volume is the old one, and stays positive (outward)
    assert signed_volume(finer.numpy(), faces.numpy()) == pytest.approx(signed_volume(v, f), rel=1e-5)
    assert signed_volume(v, f) > 0


SMALL = dict(views=12, heldout_views=0, batch_views=4, image_size=32, affine_iterations=0, seed=0, edge=0.0, loss="mse")


def offset_sphere_target():
    v, f = builtin_shape("builtin:sphere:2")
    target = v * np.array([0.9, 0.55, 0.7], np.float32) + np.array([0.1, -0.05, 0.0], np.float32)
    return MeshTarget(target, f, "target", training_views(12), heldout_views(12, 0), "cpu", normalize=False)


def template():
    v, f = builtin_shape("builtin:sphere:2")  # 162 vertices
    return torch.tensor(normalize_to_ball(v)[0]), torch.tensor(f)


def test_large_steps_lowers_the_loss_faster_than_adam_at_equal_steps():
    target = offset_sphere_target()
    curves = {}
    for optimizer, lr in (("largesteps", 0.05), ("adam", 0.01)):  # each at its preset's learning rate
        settings = FitSettings(
            **SMALL, iterations=30, optimizer=optimizer, largesteps_lambda=5.0, learning_rate=lr, final_learning_rate=lr / 10
        )
        result = fit(*template(), target, settings)
        curves[optimizer] = result.silhouette_curve
    assert len(curves["largesteps"]) == len(curves["adam"]) == 30
    assert np.mean(curves["largesteps"][-5:]) < 0.7 * np.mean(curves["adam"][-5:]), curves
    assert np.mean(curves["largesteps"][10:15]) < np.mean(curves["adam"][10:15]), curves


def test_a_fit_refined_half_way_ends_on_the_subdivided_closed_mesh():
    target = offset_sphere_target()
    settings = FitSettings(**SMALL, iterations=10, refine_at=0.5, learning_rate=0.05, final_learning_rate=0.005)
    vertices, faces = template()
    result = fit(vertices, faces, target, settings)
    assert result.refined_at == 5 and len(result.loss_curve) == 10 and result.failure is None
    assert result.vertices.shape == (642, 3) and result.faces.shape == (4 * len(faces), 3)
    assert is_closed_and_consistent(result.faces.numpy())
    assert signed_volume(result.vertices.numpy(), result.faces.numpy()) > 0
