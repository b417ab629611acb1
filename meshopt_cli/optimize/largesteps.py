"""The Large Steps parameterization of vertex positions (Nicolet, Jacobson, Jakob, SIGGRAPH Asia 2021).

Instead of the vertices ``x [V, 3]`` the fit optimizes ``u = (I + λ L) x [V, 3]``, with L = D - A the
uniform (combinatorial) Laplacian of the mesh's edge graph (D: vertex degrees, A: adjacency), and
renders ``x = (I + λ L)⁻¹ u``. A gradient step on u moves x by a smoothed step: ``M⁻¹ = (I + λL)⁻¹``
damps the high frequencies of the gradient (λ times more for the roughest modes), so the surface
stays smooth while whole parts move far. Its companion optimizer is
"uniform Adam" (``meshopt_cli.optimize.adam.Adam(uniform=True)``): Adam whose step is divided by the
*largest* second-moment root of the parameter instead of each component's own, so that the step
keeps the smoothed gradient's shape.

The solve is a sparse Cholesky factorization of the symmetric positive definite ``M = I + λL``,
computed once per mesh by the authors' ``cholespy`` (CPU and CUDA tensors): 0.1 ms per solve of the
2562-vertex sphere against 3.5 ms for torch's dense ``cholesky_solve`` (2-vCPU Xeon, 2 threads),
and no V × V matrix. The authors' ``largesteps`` package is not used: it builds M on CUDA only.
"""

from __future__ import annotations

import numpy as np
import torch


def laplacian_system(edges: torch.Tensor, num_vertices: int, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``M = I + λ L`` of the uniform Laplacian of undirected ``edges [E, 2]`` (each edge once) as COO
    triplets ``(rows [N] int32, cols [N] int32, values [N] float32)`` with N = V + 2E + V."""
    e = edges.detach().cpu().numpy().astype(np.int64)
    degree = np.bincount(e.reshape(-1), minlength=num_vertices).astype(np.float64)
    diagonal = np.arange(num_vertices)
    rows = np.concatenate([diagonal, e[:, 0], e[:, 1]])
    cols = np.concatenate([diagonal, e[:, 1], e[:, 0]])
    values = np.concatenate([1.0 + lam * degree, np.full(2 * len(e), -lam)])
    return rows.astype(np.int32), cols.astype(np.int32), values.astype(np.float32)


class _Solve(torch.autograd.Function):
    """``x = M⁻¹ u``; M is symmetric, so the gradient is ``M⁻¹ grad_x``."""

    @staticmethod
    def forward(ctx, u, solver):
        ctx.solver = solver
        return solver.solve(u)

    @staticmethod
    def backward(ctx, grad):
        return ctx.solver.solve(grad), None


class LargeSteps:
    """``x = (I + λ L)⁻¹ u`` for one mesh: ``to_differential(x) -> u`` and ``from_differential(u) -> x``
    (differentiable), both ``[V, 3]`` float32 on ``device``. ``edges``: ``[E, 2]`` unique undirected
    edges (``MeshTopology.edges``); ``lam`` ≥ 0 (0: x = u, plain vertex positions)."""

    def __init__(self, edges: torch.Tensor, num_vertices: int, lam: float, device=None):
        from cholespy import CholeskySolverF, MatrixType

        self.lam = float(lam)
        self.num_vertices = int(num_vertices)
        self.device = torch.device(device) if device is not None else edges.device
        self.edges = edges.to(self.device)
        self.degree = torch.bincount(self.edges.reshape(-1), minlength=self.num_vertices).to(torch.float32)[:, None]
        rows, cols, values = (torch.from_numpy(a).to(self.device) for a in laplacian_system(edges, num_vertices, lam))
        self._solver = CholeskySolverF(self.num_vertices, rows, cols, values, MatrixType.COO)

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``M⁻¹ b`` for ``b [V, k]`` (no gradient; see :meth:`from_differential`)."""
        b = b.detach().to(torch.float32).contiguous()
        x = torch.zeros_like(b)
        self._solver.solve(b, x)
        return x

    def to_differential(self, x: torch.Tensor) -> torch.Tensor:
        """``u = x + λ (D x - A x)`` ``[V, 3]``."""
        i, j = self.edges[:, 0], self.edges[:, 1]
        neighbours = torch.zeros_like(x).index_add_(0, i, x[j]).index_add_(0, j, x[i])
        return x + self.lam * (self.degree * x - neighbours)

    def from_differential(self, u: torch.Tensor) -> torch.Tensor:
        """``x = M⁻¹ u`` ``[V, 3]``, differentiable with respect to ``u``."""
        return _Solve.apply(u, self)
