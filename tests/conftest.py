"""Shared fixtures: the two CPU backends of the rasterizer contract."""
import pytest

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
