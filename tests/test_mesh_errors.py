"""Bad input files: one MeshError (a ValueError) whose message is one line naming the file."""

import os

import numpy as np
import pytest

from meshopt_cli.mesh import MAX_FACES, MeshError, load_mesh, load_obj


def expect_error(source, *fragments, **kwargs):
    with pytest.raises(MeshError) as info:
        load_mesh(source, **kwargs)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and message.startswith(f"{source}: ")
    assert info.value.path == str(source)
    for fragment in fragments:
        assert fragment in message, message
    return message


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.obj", "no such file")


def test_directory(tmp_path):
    (tmp_path / "dir.obj").mkdir()
    expect_error(tmp_path / "dir.obj", "directory")


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.obj", "v 0 0 0\n")
    if os.geteuid() != 0:  # root reads anything: simulate the failure instead
        path.chmod(0)
    else:

        def deny(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(type(path), "read_bytes", deny)
    expect_error(path, "permission denied")


def test_binary_garbage_obj(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\x00"
    expect_error(write(tmp_path, "garbage.obj", data), "binary")


def test_text_that_is_not_an_obj(tmp_path):
    expect_error(write(tmp_path, "letter.obj", "Dear user,\nthis is not a mesh.\n"), "not an OBJ")


def test_empty_file(tmp_path):
    expect_error(write(tmp_path, "empty.obj", ""), "empty")


def test_no_faces(tmp_path):
    expect_error(write(tmp_path, "points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n"), "no faces")


def test_face_index_out_of_range(tmp_path):
    path = write(tmp_path, "range.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 9\n")
    expect_error(path, "out of range", "line 5", "9", "3 vertices")
    path = write(tmp_path, "negative.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf -1 -2 -4\n")
    expect_error(path, "out of range", "-4")


def test_face_index_zero(tmp_path):
    expect_error(write(tmp_path, "zero.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n"), "index 0", "line 4")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_nan_or_infinite_coordinates(tmp_path, value):
    path = write(tmp_path, "nan.obj", f"v 0 0 0\nv 1 {value} 0\nv 0 1 0\nf 1 2 3\n")
    expect_error(path, "NaN or infinite", "vertex 2", "line 2")


def test_unparseable_records(tmp_path):
    path = write(tmp_path, "v.obj", "v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n")
    expect_error(path, "vertex record", "line 2")
    expect_error(write(tmp_path, "v2.obj", "v 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"), "fewer than 3", "line 1")
    expect_error(write(tmp_path, "f.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 two 3\n"), "face record", "line 4")


def test_too_many_faces(tmp_path):
    assert MAX_FACES == 5_000_000
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\n" + "f 1 2 3 4\n" * 6  # 12 triangles
    path = write(tmp_path, "big.obj", text)
    expect_error(path, "too many faces", "12", max_faces=11)  # counted after triangulation
    expect_error(path, "too many faces", max_faces=5)  # 6 records: rejected before parsing them
    assert load_mesh(path, max_faces=12).num_faces == 12


def test_unsupported_extension(tmp_path):
    expect_error(write(tmp_path, "mesh.xyz", "1 2 3\n"), "unsupported", ".obj")


@pytest.mark.parametrize("name", ["bad.ply", "bad.stl", "bad.off", "bad.glb"])
def test_garbage_in_other_formats(tmp_path, name):
    data = np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    message = expect_error(write(tmp_path, name, data))
    assert any(word in message for word in ("not a readable", "no faces")), message


def test_load_obj_raises_the_same_error(tmp_path):
    with pytest.raises(MeshError, match="no such file"):
        load_obj(tmp_path / "missing.obj")


def test_meshes_without_a_surface_are_refused(tmp_path):
    for name, text in (
        ("point", "v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n"),
        ("line", "v 0 0 0\nv 1 1 1\nv 3 3 3\nv 7 7 7\nf 1 2 3\nf 2 3 4\n"),
    ):
        path = tmp_path / f"{name}.obj"
        path.write_text(text)
        expect_error(path, "has no surface", "zero area")
    tiny = tmp_path / "tiny.obj"  # a real triangle, however small, is a surface
    tiny.write_text("v 0 0 0\nv 1e-30 0 0\nv 0 1e-30 0\nf 1 2 3\n")
    assert load_mesh(tiny).faces.shape == (1, 3)


def test_coordinates_beyond_float32_are_called_so(tmp_path):
    path = tmp_path / "far.obj"
    path.write_text("v 0 0 0\nv 1e39 0 0\nv 0 1 0\nf 1 2 3\n")
    expect_error(path, "vertex 2", "line 2", "1e+39", "beyond the 32-bit floats")
