"""Shared fixtures and helpers: the two CPU backends of the rasterizer contract, one gradient
comparison, and `meshopt` run in process."""

import pytest
import torch

from meshopt_cli.render import reference


@pytest.fixture(scope="session")
def native_backend():
    from meshopt_cli.render import native

    backend = native.backend_for("cpu")
    assert backend is not None, "the native CPU kernels failed to build (see the warning above)"
    return backend


@pytest.fixture(params=["reference", "native"])
def backend(request):
    if request.param == "reference":
        return reference
    return request.getfixturevalue("native_backend")


class Ran:
    """What a `meshopt` call gave: ``returncode``, ``stdout``, ``stderr`` (as subprocess.run's result)."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def meshopt_in_process(*args, cwd=None, stdin: str | None = None) -> Ran:
    """``meshopt ARGS`` through Typer's CliRunner in this process (torch, kernels and networks stay
    loaded between calls); ``cwd`` is entered for the call. Exceptions the CLI lets through fail the test."""
    import contextlib
    import os

    from typer.testing import CliRunner

    from meshopt_cli.cli import app

    with contextlib.chdir(cwd or os.getcwd()):
        result = CliRunner().invoke(app, [str(a) for a in args], input=stdin, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


# Tolerances of assert_gradients_close, set from 300 random scenes of native CPU against the
# reference (worst needs: rtol 1e-4 with atol 3.3e-6 x median for backward_xy, 3.1e-5 x median for
# the exact depth gradient): a few times that, and far below any single term of the approximate
# gradient, so that dropping a run, an axis or one vertex's term fails.
GRADIENT_RTOL = 1e-4
GRADIENT_ATOL_MEDIAN = 1e-4


def assert_gradients_close(
    actual,
    expected,
    what: str = "",
    rtol: float = GRADIENT_RTOL,
    atol_median: float = GRADIENT_ATOL_MEDIAN,
    exact_zeros: bool = True,
) -> None:
    """``actual`` (any device) equals ``expected`` (CPU) entry by entry:
    ``|a - e| <= rtol·|e| + atol`` with ``atol = atol_median · median of the nonzero |e| + 1e-6``
    (the median, not the largest, a near-vertex 1/eps term that would hide typical entries; the
    1e-6 for gradients that are rounding noise around zero), and the same nonzero
    pattern: exactly (``exact_zeros``, sums of terms that are all zero or all skipped) or up to
    ``atol`` (sums that can cancel to rounding, such as the exact depth gradient). Both None
    passes, one None fails."""
    if expected is None or actual is None:
        assert expected is None and actual is None, what
        return
    actual = actual.detach().cpu()
    expected = expected.detach().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite entries"
    nonzero = expected != 0
    if not nonzero.any():
        assert not (actual != 0).any(), f"{what}: {int((actual != 0).sum())} nonzero entries where all are zero"
        return
    atol = atol_median * float(expected.abs()[nonzero].median()) + 1e-6
    error = (actual - expected).abs()
    pattern = (actual != 0) != nonzero
    if not exact_zeros:
        pattern &= (actual.abs() > atol) | (expected.abs() > atol)
    assert not pattern.any(), f"{what}: nonzero pattern differs on {int(pattern.sum())} of {expected.numel()} entries"
    bad = error > rtol * expected.abs() + atol
    if bad.any():
        worst = int(torch.argmax(torch.where(bad, error / (rtol * expected.abs() + atol), 0).flatten()))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {expected.numel()} entries differ; worst: "
            f"{float(actual.flatten()[worst]):.6g} vs {float(expected.flatten()[worst]):.6g} (atol {atol:.3g}, rtol {rtol:g})"
        )
