"""Adam for the fit loop's few tensors, without ``torch.optim``.

The first ``torch.optim.Optimizer`` a process builds imports ``torch._dynamo`` (its
``add_param_group`` is wrapped by ``torch._disable_dynamo``): about 2 s of start-up on a 2-vCPU machine
(a fifth of a default ``meshopt fit``) and more at exit. The fit optimizes at most a
handful of tensors, so the update is written here; with ``uniform=False`` it is
``torch.optim.Adam``'s (same bias correction, ``eps`` outside the square root; tested against it).
"""

from __future__ import annotations

import torch


class Adam:
    """Adam on ``params`` (leaf tensors with ``requires_grad``), one learning rate for all of them.

    ``uniform=False``: the usual per-component step ``lr · m̂ / (√v̂ + eps)``.
    ``uniform=True``: Nicolet et al.'s (2021, §5) "uniform Adam" of the Large Steps method: ``m̂`` is
    divided by ``eps + max √v̂`` over the whole tensor, so the step keeps the smoothed gradient's
    direction and is at most ``lr`` long per component.

    ``param_groups[0]["lr"]`` holds the learning rate (the fit loop sets it per step, as with torch's
    optimizers).
    """

    def __init__(
        self,
        params,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        uniform: bool = False,
    ):
        self.params = list(params)
        self.param_groups = [{"lr": float(lr)}]
        self.betas, self.eps, self.uniform = betas, eps, uniform
        self.steps = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        lr = self.param_groups[0]["lr"]
        self.steps += 1
        c1, c2 = 1 - b1**self.steps, 1 - b2**self.steps
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            root = v.sqrt() / c2**0.5
            denominator = root.max() + self.eps if self.uniform else root.add_(self.eps)
            p.addcdiv_(m, denominator, value=-lr / c1)
