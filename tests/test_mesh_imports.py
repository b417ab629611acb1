"""The mesh package's modules import each other without cycles (also counting imports inside
functions, which hide a cycle until the wrong module happens to be imported first)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import meshopt_cli.mesh

PACKAGE = Path(meshopt_cli.mesh.__file__).parent
PREFIX = "meshopt_cli.mesh."


def imported_siblings(path: Path) -> set[str]:
    """Modules of meshopt_cli.mesh that ``path`` imports anywhere (top level or in a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            found.add(node.module[len(PREFIX) :].split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name[len(PREFIX) :].split(".")[0] for a in node.names if a.name.startswith(PREFIX))
    return found


def test_mesh_modules_have_no_import_cycle():
    graph = {p.stem: imported_siblings(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert graph["mesh"] >= {"core", "foreign"} and "mesh" not in graph["foreign"]  # the former cycle
    done, path = set(), []

    def visit(name):
        if name in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(name) :] + [name]))
        if name in done or name not in graph:
            return
        path.append(name)
        for other in sorted(graph[name]):
            visit(other)
        path.pop()
        done.add(name)

    for module in sorted(graph):
        visit(module)


@pytest.mark.parametrize("first", ["meshopt_cli.mesh.foreign", "meshopt_cli.mesh.core", "meshopt_cli.mesh.mesh"])
def test_any_mesh_module_can_be_imported_first(first):
    code = (
        f"import {first}\n"
        "from meshopt_cli.mesh.foreign import read_with_trimesh\n"
        "from meshopt_cli.mesh import Mesh, load_mesh\n"
        "from meshopt_cli.mesh.core import Mesh as CoreMesh\n"
        "assert Mesh is CoreMesh\n"
        "assert load_mesh('builtin:cube').num_faces == 12\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(meshopt_cli.__file__).parent.parent
    )
    assert done.returncode == 0, done.stderr
