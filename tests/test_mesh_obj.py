"""OBJ geometry: normalization, fan triangulation, index forms, objects/groups, file order."""

import numpy as np
import pytest
import torch

from meshopt_cli.mesh import MeshError, load_mesh, load_obj, normalize_vertices


def write(tmp_path, text, name="m.obj"):
    path = tmp_path / name
    path.write_text(text)
    return path


TETRA = """\
v 1 2 3
v 3 2 3
v 1 6 3
v 1 2 4
f 1 3 2
f 1 2 4
f 1 4 3
f 2 3 4
"""


def test_normalization_of_a_hand_worked_tetrahedron(tmp_path):
    # v - min = (0,0,0) (2,0,0) (0,4,0) (0,0,1); / max|v| = 4; * 2 -> (0,0,0) (1,0,0) (0,2,0) (0,0,.5)
    # - max/2 = (.5, 1, .25)
    vertices, faces = load_obj(write(tmp_path, TETRA))
    expected = torch.tensor([[-0.5, -1.0, -0.25], [0.5, -1.0, -0.25], [-0.5, 1.0, -0.25], [-0.5, -1.0, 0.25]])
    assert vertices.dtype == torch.float32 and faces.dtype == torch.int64
    assert torch.equal(vertices, expected)
    assert faces.tolist() == [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]


def test_without_normalization_vertices_are_the_files(tmp_path):
    vertices, _ = load_obj(write(tmp_path, TETRA), normalization=False)
    assert vertices.tolist() == [[1, 2, 3], [3, 2, 3], [1, 6, 3], [1, 2, 4]]


def test_normalize_vertices_matches_the_reference_steps():
    v = torch.randn(50, 3) * torch.tensor([3.0, 0.5, 1.0]) + 7
    ref = v.clone()
    ref -= ref.min(0)[0][None, :]
    ref /= torch.abs(ref).max()
    ref *= 2
    ref -= ref.max(0)[0][None, :] / 2
    out = normalize_vertices(v)
    assert torch.equal(out, ref)
    assert torch.isclose(out[:, 0].max() - out[:, 0].min(), torch.tensor(2.0))  # longest axis spans 2


def test_fan_triangulation_of_a_quad_and_a_pentagon(tmp_path):
    text = "".join(f"v {i} {i * i} 0\n" for i in range(9)) + "f 1 2 3 4\nf 5 6 7 8 9\n"
    _, faces = load_obj(write(tmp_path, text), normalization=False)
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [4, 7, 8]]


def test_negative_indices_are_relative_to_the_records_read_so_far(tmp_path):
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\nv 0 0 1\nf -4 -1 -2\nvt 0 0\nvt 1 1\nf 1/-2 2/-1 3/-1\n"
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 3, 2], [0, 1, 2]]
    assert mesh.uvs[2].tolist() == [[0, 0], [1, 1], [1, 1]]


def test_index_forms_v_vt_vn(tmp_path):
    text = (
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\n"
        "f 1 2 3\nf 1/1 2/2 3/3\nf 1//1 2//1 3//1\nf 2/2/1 4/1/1 3/3/1\n"
    )
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 2], [1, 3, 2]]
    assert np.isnan(mesh.uvs[0]).all() and np.isnan(mesh.uvs[2]).all()
    assert mesh.uvs[1].tolist() == [[0, 0], [1, 0], [0, 1]]
    assert mesh.uvs[3].tolist() == [[1, 0], [0, 0], [0, 1]]


def test_several_objects_and_groups_become_one_mesh_in_file_order(tmp_path):
    text = (
        "o first\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
        "o second\ng part\nv 5 5 5\nv 6 5 5\nv 5 6 5\nf 4 5 6\nf 1 4 5\n"
        "g other\ns 1\nl 1 2\nf 6 5 4\n"
    )
    vertices, faces = load_obj(write(tmp_path, text), normalization=False)
    assert vertices.shape == (6, 3) and vertices[3].tolist() == [5, 5, 5]
    assert faces.tolist() == [[0, 1, 2], [3, 4, 5], [0, 3, 4], [5, 4, 3]]


def test_vertices_are_not_merged_or_reordered(tmp_path):
    # duplicate positions and an unused vertex stay, UV seams do not split vertices
    text = "v 0 0 0\nv 0 0 0\nv 9 9 9\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvt .5 .5\nf 1/1 4/2 5/3\nf 2/4 5/1 4/2\n"
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.num_vertices == 5
    assert mesh.vertices[2].tolist() == [9, 9, 9]
    assert mesh.faces.tolist() == [[0, 3, 4], [1, 4, 3]]


def test_whitespace_crlf_tabs_comments_and_continuations(tmp_path):
    text = "\ufeff  v 0 0 0\r\n# comment\r\n\tv 1 0 0 1.0\r\nv 0 1 0 # top\r\nf 1 \\\r\n 2 3\r\n"
    path = tmp_path / "m.obj"
    path.write_bytes(text.encode("utf-8"))  # with a byte order mark
    vertices, faces = load_obj(path, normalization=False)
    assert vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert faces.tolist() == [[0, 1, 2]]


def test_vertex_colours_are_read(tmp_path):
    text = "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nf 1 2 3\n"
    mesh = load_mesh(write(tmp_path, text))
    assert mesh.vertex_colors.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    cubes = mesh.texture_cubes(texture_size=2)
    assert np.allclose(cubes[0, 1, 0, 0], [1, 0, 0])  # sample (1,0,0) sits on vertex 0
    assert np.allclose(cubes[0, 0, 0, 1], [0, 0, 1])
    assert np.allclose(cubes[0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3])  # (0,0,0): the centroid


def test_builtin_sources_work_in_load_obj():
    vertices, faces = load_obj("builtin:sphere")
    assert vertices.shape == (642, 3) and faces.shape == (1280, 3)
    with pytest.raises(MeshError):
        load_obj("builtin:nope")
