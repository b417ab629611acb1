"""Units of `meshopt style`: the shared textured loop, the style image loader, settings and presets."""

import numpy as np
import pytest
import torch
from PIL import Image

from meshopt_cli.commands.style import COMMAND as STYLE
from meshopt_cli.fields import SettingsError
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize.style import MAX_STYLE_SIDE, StyleImageError, load_style_image, style_tensor
from meshopt_cli.optimize.textured import TexturedSettings, optimize_textured, random_cameras


def _cube():
    v, f = builtin_shape("builtin:cube")
    v = torch.tensor(v) / np.abs(v).max()
    return v, torch.tensor(f), torch.full((len(f), 2, 2, 2, 3), 0.5)


def _mean_colour_loss(views, vertices):
    inside = views.alpha[:, None]
    red = ((views.rgb - torch.tensor([1.0, 0, 0])[None, :, None, None]) ** 2 * inside).mean()
    return red, {"red": float(red.detach())}


def test_loop_lowers_the_loss_records_terms_and_times():
    v, f, t = _cube()
    s = TexturedSettings(iterations=6, batch_views=2, image_size=32, texture_lr=0.2, seed=1)
    r = optimize_textured(v, f, t, s, _mean_colour_loss)
    assert r.steps == 6 and not r.interrupted
    assert r.curves["red"][-1] < r.curves["red"][0]
    assert len(r.render_seconds) == len(r.loss_seconds) == len(r.backward_seconds) == 6
    assert r.textures.shape == t.shape and float(r.textures.min()) >= 0 and float(r.textures.max()) <= 1
    assert float(r.textures[..., 0].mean()) > 0.5  # redder


def test_loop_is_deterministic_and_frozen_vertices_stay():
    v, f, t = _cube()
    s = TexturedSettings(iterations=3, batch_views=2, image_size=32, seed=3, optimize_vertices=False)
    a = optimize_textured(v, f, t, s, _mean_colour_loss)
    b = optimize_textured(v, f, t, s, _mean_colour_loss)
    assert torch.equal(a.textures, b.textures) and torch.equal(a.vertices, v)


def test_ctrl_c_returns_the_current_state_marked_interrupted():
    v, f, t = _cube()
    calls = []

    def loss(views, vertices):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _mean_colour_loss(views, vertices)

    r = optimize_textured(v, f, t, TexturedSettings(iterations=10, batch_views=1, image_size=32), loss)
    assert r.interrupted and r.steps == 2 and len(r.curves["red"]) == 2


def test_random_cameras_follow_the_ranges():
    s = TexturedSettings(batch_views=500, distance=2.732, distance_noise=0.1, elevation_min=20, elevation_max=40, light_angle=30)
    eyes, light = random_cameras(s, torch.Generator().manual_seed(0))
    d = eyes.norm(dim=1)
    elevation = torch.rad2deg(torch.asin(eyes[:, 1] / d))
    assert abs(float(d.mean()) - 2.732) < 0.02 and 0.07 < float(d.std()) < 0.13
    assert float(elevation.min()) >= 20 - 1e-3 and float(elevation.max()) <= 40 + 1e-3
    assert torch.allclose(light.norm(dim=1), torch.ones(500)) and torch.allclose(
        light[:, 1], torch.full((500,), np.cos(np.pi / 6))
    )


@pytest.mark.parametrize("mode,colour", [("L", 128), ("RGBA", (255, 0, 0, 0)), ("P", 5), ("LA", (10, 255))])
def test_style_image_modes(tmp_path, mode, colour):
    Image.new(mode, (20, 16), colour).save(tmp_path / "s.png")
    image = load_style_image(tmp_path / "s.png")
    assert image.shape == (16, 20, 3) and image.dtype == np.float32
    if mode == "RGBA":  # fully transparent -> white
        assert np.allclose(image, 1.0)


def test_style_image_small_huge_and_too_small(tmp_path):
    Image.new("RGB", (16, 16), (0, 255, 0)).save(tmp_path / "small.png")
    x = style_tensor(load_style_image(tmp_path / "small.png"), 64, "cpu")
    assert x.shape == (1, 3, 64, 64) and torch.allclose(x[0, 1], torch.ones(64, 64))
    Image.new("RGB", (1, 1), (0, 255, 0)).save(tmp_path / "tiny.png")
    with pytest.raises(StyleImageError, match=r"tiny.png: image too small \(1x1 pixels; a style image needs at least 16x16\)"):
        load_style_image(tmp_path / "tiny.png")
    Image.new("RGB", (4000, 1000), (0, 0, 255)).save(tmp_path / "huge.jpg")
    image = load_style_image(tmp_path / "huge.jpg")
    assert max(image.shape[:2]) <= MAX_STYLE_SIDE


@pytest.mark.parametrize("content", [None, b"", b"\x89PNG\r\n\x1a\n broken"])
def test_style_image_errors_name_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(StyleImageError, match="bad.png"):
        load_style_image(path)


def test_presets_resolve_and_overrides():
    paper = STYLE.resolve("paper")[0]
    assert (paper.iterations, paper.batch_views, paper.image_size, paper.texture_size) == (1000, 4, 224, 4)
    assert paper.vertex_lr == pytest.approx(0.0005) and paper.texture_lr == pytest.approx(0.05)
    fast = STYLE.resolve("fast", overrides={"iterations": 3, "optimize_vertices": False})[0]
    assert fast.image_size == 128 and fast.iterations == 3 and not fast.optimize_vertices
    assert not STYLE.resolve("texture-only")[0].optimize_vertices
    with pytest.raises(SettingsError):
        STYLE.resolve("fast", overrides={"image_size": 8})
    with pytest.raises(SettingsError):
        STYLE.resolve("nope")


def test_resume_from_a_checkpoint_continues_exactly():
    v, f, t = _cube()
    s = TexturedSettings(iterations=4, batch_views=2, image_size=32, texture_lr=0.2, seed=5)
    whole = optimize_textured(v, f, t, s, _mean_colour_loss)
    saved = []
    optimize_textured(
        v,
        f,
        t,
        TexturedSettings(**{**s.__dict__, "iterations": 2}),
        _mean_colour_loss,
        checkpoint_every=2,
        on_checkpoint=saved.append,
    )
    assert len(saved) == 1 and saved[0]["step"] == 2
    resumed = optimize_textured(v, f, t, s, _mean_colour_loss, resume=saved[0])
    assert resumed.steps == 4 and resumed.curves["red"] == whole.curves["red"]
    assert torch.allclose(resumed.textures, whole.textures) and torch.allclose(resumed.vertices, whole.vertices)


def test_checkpoint_from_another_run_is_refused(tmp_path):
    from meshopt_cli.checkpoints import load_checkpoint, save_checkpoint

    path = tmp_path / "x.checkpoint.pt"
    save_checkpoint(path, {"step": 1}, {"input": "a.obj", "faces": 12})
    assert load_checkpoint(path, {"input": "a.obj", "faces": 12}) == {"step": 1}
    with pytest.raises(ValueError, match="different faces"):
        load_checkpoint(path, {"input": "a.obj", "faces": 13})
    path.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path, {})
