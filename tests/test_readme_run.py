"""Every command line of the README's Run section runs as written (with the meshes meshopt ships)."""

import re
import shlex
from pathlib import Path

import pytest
from conftest import meshopt_in_process

README = Path(__file__).resolve().parent.parent / "README.md"


def run_section_commands() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Run\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith("meshopt")]


def test_the_run_section_has_the_main_commands():
    commands = run_section_commands()
    assert any(c.startswith("meshopt fit ") for c in commands) and any(c.startswith("meshopt render ") for c in commands)


@pytest.mark.parametrize("line", run_section_commands())
def test_run_section_command_runs_as_written(tmp_path, line):
    words = shlex.split(line)
    result = meshopt_in_process(*words[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if words[1] in ("fit", "render"):
        assert any((tmp_path / "meshopt-out").iterdir())
