"""The version is written once, in ``meshopt_cli.__version__``; the package metadata reads it."""

import re
from pathlib import Path

import pytest

import meshopt_cli

ROOT = Path(__file__).resolve().parent.parent  # the source tree these tests belong to
pyproject = ROOT / "pyproject.toml"
pytestmark = pytest.mark.skipif(not pyproject.is_file(), reason="needs the source tree (pyproject.toml)")


def test_pyproject_takes_the_version_from_the_package():
    import tomllib

    config = tomllib.loads(pyproject.read_text())
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "meshopt_cli.__version__"}


def test_setuptools_resolves_it_to_dunder_version():
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    resolved = pyprojecttoml.read_configuration(pyproject, expand=True)
    assert resolved["project"]["version"] == meshopt_cli.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?(a|b|rc|dev|post)\d*)*", meshopt_cli.__version__)


def test_no_other_tracked_text_spells_the_version():
    spelled = re.compile(r"""version_*\s*=\s*["']\d""")
    found = [
        p.relative_to(ROOT).as_posix()
        for p in [pyproject, ROOT / "setup.py", *(ROOT / "meshopt_cli").rglob("*.py")]
        if p.is_file() and spelled.search(p.read_text())
    ]
    assert found == ["meshopt_cli/__init__.py"]
