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
