"""The command line: help, version, option panels and parse errors (in process through Typer's CliRunner;
a subprocess where the import cost or the exit status of a real process is the point)."""

import json
import subprocess
import sys

import pytest
from conftest import meshopt_in_process as meshopt

from meshopt_cli import __version__

COMMANDS = ("render", "fit", "style", "dream")


def test_version_in_a_real_process():
    result = subprocess.run([sys.executable, "-m", "meshopt_cli", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip() == f"meshopt {__version__}"


@pytest.mark.parametrize("code, status, stderr", [(3, 3, ""), (None, 0, ""), ("bad thing", 1, "bad thing")])
def test_the_fast_exit_keeps_what_sys_exit_would_do(code, status, stderr):
    """main() ends with os._exit (no module teardown); the atexit handlers, a waiting non-daemon
    thread, buffered output and the exit status must survive that."""
    script = (
        "import atexit, sys, threading, time\n"
        "from meshopt_cli.cli import _exit_without_teardown\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "sys.stdout.write('buffered;')\n"
        f"_exit_without_teardown({code!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == status
    assert result.stdout == "buffered;thread done\nhandler ran\n"
    assert result.stderr.strip() == stderr


def test_help_lists_every_command():
    result = meshopt("--help")
    assert result.returncode == 0
    for command in (*COMMANDS, "info", "presets"):
        assert f" {command} " in result.stdout, command


def test_help_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from meshopt_cli.cli import app; "
        "r = CliRunner().invoke(app, ['style', '--help']); "
        "sys.exit(2 if r.exit_code else 1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shares_the_batch_options_in_their_panels(command):
    text = meshopt(command, "--help").stdout
    for option in ("--out", "--force", "--skip-existing", "--json", "--jobs", "--device", "--config", "--preset"):
        assert option in text, (command, option)
    for panel in ("Inputs and outputs", "Settings", "Rendering", "Batch"):
        assert panel in text, (command, panel)
    batch_panel = text.split("─ Batch ")[1]
    assert "--jobs" in batch_panel and "--device" in batch_panel and "--out" not in batch_panel


@pytest.mark.parametrize(
    "args,message",
    [
        (["fit", "builtin:cube", "--loss", "l1"], "Invalid value for '--loss'"),
        (["dream", "--layer", "conv1"], "unknown layer 'conv1' (valid: inception_3a"),
        (["render", "--device", "gpu"], "must be auto, cpu, cuda or cuda:N"),
        (["render", "--frames", "abc"], "Invalid value for '--frames'"),
        (["render", "--no-such-flag"], "No such option: --no-such-flag"),
        (["render", "--frames", "0"], "frames must be in [1, 3600]"),
        (["render", "--fps", "nan"], "fps must be a finite number"),
        (["style", "builtin:cube", "x.png", "--image-size", "8"], "image-size must be in [16, 1024] (VGG pools 3 times"),
    ],
)
def test_parse_and_settings_errors_are_one_line_exit_2(tmp_path, args, message):
    result = meshopt(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and result.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("meshopt: error:") and message in lines[0], result.stderr
    assert not (tmp_path / "meshopt-out").exists()


def test_layer_in_torchvision_spelling_and_device_forms_parse(tmp_path):
    from meshopt_cli import cli

    assert cli._layer("inception4a") == "inception_4a"
    assert [cli._device(d) for d in ("auto", "CPU", "cuda", "cuda:3")] == ["auto", "cpu", "cuda", "cuda:3"]


def test_info_json_is_one_object():
    result = meshopt("info", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["meshopt"]["version"] == __version__ and "renderer" in data and "weights" in data


def test_help_shows_no_type_after_flags_that_take_no_value():
    result = meshopt("render", "--help")
    assert result.returncode == 0 and "<bool>" not in result.stdout and "--png" in result.stdout
    assert "<int>" in result.stdout  # options that take a value keep theirs


@pytest.mark.parametrize(
    "args, bounds",
    [
        (["fit", "builtin:cube"], "in [1, 1024]"),
        (["style", "builtin:cube", "x.png"], "in [16, 1024] (VGG pools 3 times"),
        (["dream", "builtin:cube"], "in [32, 1024] (GoogLeNet downsamples"),
    ],
)
def test_image_size_zero_names_one_range_and_the_flag(tmp_path, args, bounds):
    """It used to give two contradictory minimums."""
    result = meshopt(*args, "--image-size", "0", "-o", "out", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].count("must be") == 1 and f"--image-size must be {bounds}" in lines[0]
