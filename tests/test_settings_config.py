"""Settings resolution shared by every command: preset < --config FILE.toml < flags."""

import json
import subprocess
import sys

import pytest

from meshopt_cli import settings as shared
from meshopt_cli.commands.dream import COMMAND as DREAM
from meshopt_cli.commands.fit import COMMAND as FIT
from meshopt_cli.commands.render import COMMAND as RENDER
from meshopt_cli.commands.style import COMMAND as STYLE


def test_config_overrides_the_preset_and_flags_override_the_config(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text("iterations = 7\nedge = 0.5\n")
    fast, _ = shared.read_preset(shared.preset_path("fast", "fit"))
    s, preset = FIT.resolve("fast", config, {"edge": 0.25})
    assert preset == "fast" and s.iterations == 7 and s.edge == 0.25 and s.image_size == fast["image_size"]


def test_a_config_may_name_its_preset_and_the_flag_wins(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('preset = "paper"\nseed = 3\n')
    s, preset = STYLE.resolve(None, config)
    assert preset == "paper" and s.seed == 3 and s.image_size == 224
    s, preset = STYLE.resolve("fast", config)
    assert preset == "fast" and s.seed == 3 and s.image_size == 128


def test_command_tables_serve_several_commands(tmp_path):
    config = tmp_path / "batch.toml"
    config.write_text('[render]\nframes = 8\npreset = "preview"\n\n[dream]\nlayer = "inception_4a"\ninit_bias = [0, 0.5, 0.5]\n')
    r, preset = RENDER.resolve(None, config)
    assert preset == "preview" and r.frames == 8 and r.size == 128
    d = DREAM.resolve(None, config)[0]
    assert d.layer == "inception_4a" and d.init_bias == (0.0, 0.5, 0.5)
    s = STYLE.resolve(None, config)[0]  # no [style] table: the preset alone
    assert s == STYLE.resolve("fast")[0]


@pytest.mark.parametrize(
    "text,message",
    [
        ("frames = [", "not valid TOML"),
        ("framez = 3", "unknown setting 'framez' for render"),
        ('frames = "many"', "setting 'frames' must be an integer"),
        ("frames = 8\n[dream]\nlayer = 'x'", "every setting goes in a table; found frames outside"),
        ("preset = 3", "'preset' must be a preset name"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(shared.SettingsError) as caught:
        RENDER.resolve(None, config)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_or_folder_config(tmp_path):
    for path, message in ((tmp_path / "none.toml", "no such file"), (tmp_path, "is a folder")):
        with pytest.raises(shared.SettingsError, match=message):
            shared.read_config(path, "fit")


def test_optional_float_accepts_none(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('light_angle = "none"\n')
    assert STYLE.resolve("fast", config)[0].light_angle is None


def test_the_resolved_settings_are_in_metrics_and_repeat_the_run(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('preset = "preview"\nframes = 3\nbackground = "black"\n')
    cmd = [
        sys.executable,
        "-m",
        "meshopt_cli",
        "render",
        "builtin:cube",
        "--config",
        str(config),
        "--size",
        "24",
        "-o",
        str(tmp_path / "out"),
        "-q",
    ]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0
    metrics = json.loads((tmp_path / "out" / "cube" / "metrics.json").read_text())
    assert metrics["preset"] == "preview"
    assert metrics["settings"] == {
        **shared.as_dict(RENDER.settings()),
        "frames": 3,
        "size": 24,
        "background": "black",
        "fps": 8.0,
    }
    again = tmp_path / "again.toml"  # the saved settings, as a config, give the same settings
    # TOML has no null: an unset optional number (render's distance: framed) is spelled "none"
    again.write_text("".join(f"{k} = {json.dumps('none' if v is None else v)}\n" for k, v in metrics["settings"].items()))
    assert shared.as_dict(RENDER.resolve(None, again)[0]) == metrics["settings"]
