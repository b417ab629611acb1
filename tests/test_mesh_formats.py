"""Other formats through trimesh: PLY, STL, OFF, GLB (welded, coloured, textured)."""

import numpy as np
import pytest
import trimesh

from meshopt_cli.mesh import builtin_shape, load_mesh, load_obj


@pytest.mark.parametrize("ext", ["ply", "stl", "off", "glb"])
def test_formats_load_welded(tmp_path, ext):
    vertices, faces = builtin_shape("builtin:torus:8:6")
    path = tmp_path / f"t.{ext}"
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    mesh = load_mesh(path)
    # STL is a triangle soup: welding gives the shared vertices back
    assert mesh.num_vertices == len(vertices) and mesh.num_faces == len(faces)
    assert np.allclose(np.sort(mesh.vertices, axis=0), np.sort(vertices, axis=0), atol=1e-6)
    tri_in = np.sort(vertices[faces].reshape(-1, 9), axis=0)
    tri_out = np.sort(mesh.vertices[mesh.faces].reshape(-1, 9), axis=0)
    assert np.allclose(tri_in, tri_out, atol=1e-6)
    assert mesh.name == "t" and mesh.uvs is None


def test_ply_vertex_colours_become_textures(tmp_path):
    vertices, faces = builtin_shape("builtin:cube")
    colours = np.zeros((len(vertices), 4), np.uint8)
    colours[:, 0] = 255
    colours[:, 3] = 255
    trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False).export(tmp_path / "c.ply")
    _, _, textures = load_obj(tmp_path / "c.ply", load_texture=True, texture_size=2)
    assert np.allclose(textures.numpy(), [1, 0, 0])
