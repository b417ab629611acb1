"""The one image reader (meshopt_cli/images.py) and its three users: style images, masks, textures."""

import warnings

import numpy as np
import pytest
from PIL import Image

from meshopt_cli import images
from meshopt_cli.images import ImageReadError, read_image
from meshopt_cli.mesh.material import load_materials
from meshopt_cli.optimize.style import StyleImageError, load_style_image
from meshopt_cli.optimize.targets import TargetError, load_mask

SIDE = 32


def grey_half(mode: str) -> Image.Image:
    """A SIDE x SIDE image of mode ``mode`` whose true grey level is 0.5 (to within 1/255)."""
    if mode == "1":
        array = np.zeros((SIDE, SIDE), bool)
        array[:, : SIDE // 2] = True  # half white: mean 0.5
        return Image.fromarray(array)
    if mode == "I;16":
        return Image.fromarray(np.full((SIDE, SIDE), 32768, np.uint16))
    if mode == "I":
        return Image.fromarray(np.full((SIDE, SIDE), 32768, np.int32), mode="I")
    if mode == "F":
        return Image.fromarray(np.full((SIDE, SIDE), 0.5, np.float32), mode="F")
    return Image.new("L", (SIDE, SIDE), 128).convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"])
def test_every_mode_reads_by_its_own_scale(tmp_path, mode):
    suffix = {"CMYK": ".jpg", "YCbCr": ".jpg", "F": ".tif", "I": ".tif"}.get(mode, ".png")
    path = tmp_path / f"half{suffix}"
    grey_half(mode).save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    data = read_image(path)
    assert data.rgb.shape == (SIDE, SIDE, 3) and data.rgb.dtype == np.float32
    assert abs(float(data.rgb.mean()) - 0.5) < 0.02, (Image.open(path).mode, float(data.rgb.mean()))
    assert data.original == (SIDE, SIDE) and not data.reduced


def test_alpha_and_palette_transparency(tmp_path):
    rgba = np.zeros((SIDE, SIDE, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, : SIDE // 2, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    data = read_image(tmp_path / "rgba.png")
    assert data.alpha is not None and data.alpha[:, : SIDE // 2].min() == 1.0 and data.alpha[:, SIDE // 2 :].max() == 0.0
    palette = Image.fromarray(rgba).convert("RGB").quantize(2)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    assert read_image(tmp_path / "p.png").alpha is not None
    grey_alpha = Image.new("LA", (SIDE, SIDE), (200, 100))
    grey_alpha.save(tmp_path / "la.png")
    data = read_image(tmp_path / "la.png")
    assert np.allclose(data.rgb, 200 / 255) and np.allclose(data.alpha, 100 / 255)
    assert read_image(tmp_path / "p.png").rgb.shape == (SIDE, SIDE, 3)


def test_sixteen_bit_grey_style_image_is_not_white(tmp_path):
    """It used to be read as white (mean 0.996 for a true 0.5)."""
    grey_half("I;16").save(tmp_path / "g16.png")
    assert abs(float(load_style_image(tmp_path / "g16.png").mean()) - 0.5) < 1e-3
    assert abs(float(read_image(tmp_path / "g16.png", max_side=16).rgb.mean()) - 0.5) < 1e-3  # reduced too


def test_reduction_keeps_the_original_size(tmp_path):
    Image.new("RGB", (200, 50), (10, 20, 30)).save(tmp_path / "wide.png")
    data = read_image(tmp_path / "wide.png", max_side=64)
    assert data.rgb.shape == (16, 64, 3) and data.original == (200, 50) and data.reduced
    assert np.allclose(data.rgb[0, 0], np.array([10, 20, 30]) / 255, atol=1 / 255)


def test_oversized_images_follow_meshopts_rule(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40), (255, 0, 0)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageReadError, match="image too large to read"):
        read_image(tmp_path / "big.png")
    with pytest.raises(StyleImageError, match="big.png: image too large"):
        load_style_image(tmp_path / "big.png")
    with pytest.raises(TargetError, match="image too large"):
        load_mask(tmp_path / "big.png")
    # a texture: grey with a warning, never a failed mesh
    (tmp_path / "m.mtl").write_text("newmtl m\nmap_Kd big.png\n")
    with pytest.warns(UserWarning, match="texture image .*big.png.* is unusable: image too large"):
        (material,) = load_materials(["m.mtl"], tmp_path, ["m"], "mesh.obj")
    assert material.image is None


def test_large_textures_are_downscaled_with_one_warning(tmp_path, monkeypatch):
    from meshopt_cli.mesh import material as material_module

    monkeypatch.setattr(material_module, "MAX_TEXTURE_SIDE", 16)
    Image.new("RGB", (64, 32), (0, 255, 0)).save(tmp_path / "t.png")
    (tmp_path / "m.mtl").write_text("newmtl m\nmap_Kd t.png\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (material,) = load_materials(["m.mtl"], tmp_path, ["m"], "mesh.obj")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "is 64x32; using it downscaled to 16x8" in messages[0]
    assert material.image.shape == (8, 16, 3)


def test_thin_style_image_reports_both_sizes(tmp_path):
    Image.new("RGB", (2000, 10), (0, 0, 0)).save(tmp_path / "thin.png")
    with pytest.raises(StyleImageError, match=r"2000x10 pixels, 1024x5 once downscaled"):
        load_style_image(tmp_path / "thin.png")


def test_sixteen_bit_mask(tmp_path):
    array = np.zeros((SIDE, SIDE), np.uint16)
    array[8:24, 8:24] = 60000
    Image.fromarray(array).save(tmp_path / "mask16.png")
    mask = load_mask(tmp_path / "mask16.png")
    assert mask.sum() == 16 * 16


def test_unreadable_files_are_one_line(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    for name, message in (("empty.png", "empty file"), ("junk.png", "not an image"), ("missing.png", "no such file")):
        with pytest.raises(ImageReadError, match=message) as raised:
            read_image(tmp_path / name)
        assert "\n" not in str(raised.value)
