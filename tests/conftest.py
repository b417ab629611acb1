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


def assert_gradients_close(actual, expected, what: str = "", rtol: float = 1e-4, atol_share: float = 1e-4) -> None:
    """``actual`` (any device) equals ``expected`` (CPU) entry by entry within
    ``rtol·|expected| + atol_share·max|expected| + 1e-6``; both None passes, one None fails."""
    if expected is None or actual is None:
        assert expected is None and actual is None, what
        return
    actual = actual.cpu()
    assert actual.shape == expected.shape, what
    assert torch.isfinite(actual).all(), what
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    error = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol_share * scale + 1e-6), (
        f"{what}: max error {error:.3g} vs largest gradient {scale:.3g}"
    )
