"""Settings resolution shared by every command: preset < --config FILE.toml < flags."""
import json
import subprocess
import sys

import pytest

from meshopt_cli import settings as shared
from meshopt_cli.commands import render
from meshopt_cli.console import UsageError
from meshopt_cli.optimize import dream, settings as fit_settings, style


def test_config_overrides_the_preset_and_flags_override_the_config(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text("iterations = 7\nedge = 0.5\n")
    fast, _ = fit_settings.load_preset("fast")
    s, preset = fit_settings.resolve_named("fast", {"edge": 0.25}, config)
    assert preset == "fast" and s.iterations == 7 and s.edge == 0.25 and s.image_size == fast["image_size"]


def test_a_config_may_name_its_preset_and_the_flag_wins(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('preset = "paper"\nseed = 3\n')
    s, preset = style.resolve_named(None, {}, config)
    assert preset == "paper" and s.seed == 3 and s.image_size == 224
    s, preset = style.resolve_named("fast", {}, config)
    assert preset == "fast" and s.seed == 3 and s.image_size == 128


def test_command_tables_serve_several_commands(tmp_path):
    config = tmp_path / "batch.toml"
    config.write_text('[render]\nframes = 8\npreset = "preview"\n\n[dream]\nlayer = "inception_4a"\ninit_bias = [0, 0.5, 0.5]\n')
    r, preset = render.resolve_named(None, {}, config)
    assert preset == "preview" and r.frames == 8 and r.size == 128
    d = dream.resolve_settings(None, {}, config)
    assert d.layer == "inception_4a" and d.init_bias == (0.0, 0.5, 0.5)
    s = style.resolve_settings(None, {}, config)  # no [style] table: the preset alone
    assert s == style.resolve_settings("fast")


@pytest.mark.parametrize("text,message", [
    ("frames = [", "not valid TOML"),
    ("framez = 3", "unknown setting 'framez' for render"),
    ('frames = "many"', "setting 'frames' must be an integer"),
    ("frames = 8\n[dream]\nlayer = 'x'", "every setting goes in a table; found frames outside"),
    ("preset = 3", "'preset' must be a preset name"),
])
def test_bad_config_files_are_one_line(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(UsageError) as caught:
        render.resolve_named(None, {}, config)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_or_folder_config(tmp_path):
    for path, message in ((tmp_path / "none.toml", "no such file"), (tmp_path, "is a folder")):
        with pytest.raises(shared.SettingsError, match=message):
            shared.read_config(path, "fit")


def test_optional_float_accepts_none(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('light_angle = "none"\n')
    assert style.resolve_settings("fast", {}, config).light_angle is None


def test_the_resolved_settings_are_in_metrics_and_repeat_the_run(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('preset = "preview"\nframes = 3\nbackground = "black"\n')
    cmd = [sys.executable, "-m", "meshopt_cli", "render", "builtin:cube", "--config", str(config), "--size", "24", "-o", str(tmp_path / "out"), "-q"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0
    metrics = json.loads((tmp_path / "out" / "cube" / "metrics.json").read_text())
    assert metrics["preset"] == "preview"
    assert metrics["settings"] == {**render.RenderSettings().as_dict(), "frames": 3, "size": 24, "background": "black", "fps": 8.0}
    again = tmp_path / "again.toml"  # the saved settings, as a config, give the same settings
    again.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in metrics["settings"].items()))
    assert render.resolve_named(None, {}, again)[0].as_dict() == metrics["settings"]
