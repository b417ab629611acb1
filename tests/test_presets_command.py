"""`meshopt presets` lists and shows the preset files."""

import tomllib
from conftest import meshopt_in_process as meshopt

from meshopt_cli.settings import SettingsError, find_preset


def test_list_names_every_fit_preset_with_its_description():
    result = meshopt("presets")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert {"fit/default", "fit/fast", "fit/paper"} <= set(lines)
    assert all(description.strip() for description in lines.values())


def test_show_prints_loadable_toml():
    result = meshopt("presets", "show", "fit/fast")
    assert result.returncode == 0
    values = tomllib.loads(result.stdout)
    assert values["image_size"] == 48 and "description" in values
    assert (
        meshopt("presets", "show", "preview").stdout == meshopt("presets", "show", "render/preview").stdout
    )  # unambiguous short name
    both = meshopt("presets", "show", "fast")  # fit/fast and style/fast: say which
    assert both.returncode == 2 and "fit/fast" in both.stderr and "style/fast" in both.stderr


def test_unknown_preset_is_a_usage_error_listing_the_valid_ones():
    result = meshopt("presets", "show", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "meshopt: error: unknown preset 'nope' (valid: dream/fast, dream/paper, dream/texture-only, "
        "fit/default, fit/fast, fit/paper, reconstruct-dataset/default, reconstruct-dataset/varied, reconstruct-predict/default, "
        "reconstruct-train/fast, "
        "reconstruct-train/paper, reconstruct-train/paper-single-class, "
        "render/default, render/hq, render/preview, style/fast, style/paper, style/texture-only)"
    )
    assert result.stdout == ""


def test_find_preset_rejects_an_unknown_command():
    try:
        find_preset("nope/paper")
    except SettingsError as problem:
        assert "no presets for 'nope'" in str(problem)
    else:
        raise AssertionError("expected SettingsError")
