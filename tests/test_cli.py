"""The command line: help and version, in a subprocess as users run it."""
import subprocess
import sys

from meshopt_cli import __version__


def run(*args):
    return subprocess.run([sys.executable, "-m", "meshopt_cli", *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"meshopt {__version__}"


def test_help_lists_the_program():
    result = run("--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout and "meshopt" in result.stdout


def test_help_does_not_import_torch():
    code = "import sys; from meshopt_cli import cli; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_command_shares_the_batch_options():
    for command in ("render", "fit", "style", "dream"):
        text = run(command, "--help").stdout
        for option in ("--out", "--force", "--skip-existing", "--json", "--jobs", "--device", "--config", "--preset"):
            assert option in text, (command, option)


def test_info_json_is_one_object():
    import json

    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["meshopt"]["version"] == __version__ and "renderer" in data and "weights" in data
