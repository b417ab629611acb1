"""The [-1, 1] box normalisation and vertex welding: one definition each in ``meshopt_cli.mesh``,
checked by properties over random meshes (hypothesis, derandomised so runs are repeatable)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meshopt_cli.mesh import box_normalization, builtin_shape, normalize_box, normalize_vertices
from meshopt_cli.mesh.topology import weld
from meshopt_cli.optimize.targets import normalize_to_ball

PROPERTIES = settings(max_examples=60, deadline=None, derandomize=True)

coordinates = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
point_clouds = arrays(np.float32, st.tuples(st.integers(1, 40), st.just(3)), elements=coordinates)


@st.composite
def meshes_with_duplicates(draw, columns=3):
    """(vertices [V, columns] float64 drawn from few values so that rows repeat, faces [F, 3])."""
    values = draw(
        st.lists(st.sampled_from([-1.5, -0.0, 0.0, 0.25, 1.0, 3.0]), min_size=columns * 2, max_size=columns * 30).filter(
            lambda xs: len(xs) % columns == 0
        )
    )
    vertices = np.asarray(values, np.float64).reshape(-1, columns)
    n = len(vertices)
    faces = np.asarray(draw(st.lists(st.tuples(*[st.integers(0, n - 1)] * 3), min_size=1, max_size=30)), np.int64)
    return vertices, faces


# ----------------------------------------------------------------------------- box normalisation


@PROPERTIES
@given(point_clouds)
def test_normalised_box_is_centred_with_longest_side_two(vertices):
    centre, scale = box_normalization(vertices)
    out = normalize_box(vertices)
    lo, hi = out.min(0), out.max(0)
    extent = np.ptp(vertices.astype(np.float64), axis=0).max()
    if extent == 0:
        assert scale == 1.0 and np.all(out == 0)
        return
    assert (hi - lo).max() == pytest.approx(2.0, rel=1e-12)
    assert np.allclose((lo + hi) / 2, 0, atol=1e-12)
    assert np.all(out >= -1 - 1e-12) and np.all(out <= 1 + 1e-12)
    assert np.allclose(out / scale + centre, vertices, rtol=1e-12, atol=1e-9)  # the documented inverse


@PROPERTIES
@given(point_clouds)
def test_the_reference_float32_steps_compute_the_same_map(vertices):
    expected = normalize_box(vertices)
    out = normalize_vertices(torch.from_numpy(vertices)).double().numpy()
    assert np.allclose(out, expected, atol=1e-5)


def test_hand_worked_box():
    v = np.array([[1, 2, 3], [3, 2, 3], [1, 6, 3], [1, 2, 4]], np.float32)  # sides 2, 4, 1
    centre, scale = box_normalization(v)
    assert centre.tolist() == [2.0, 4.0, 3.5] and scale == 0.5
    assert normalize_box(v).tolist() == [[-0.5, -1, -0.25], [0.5, -1, -0.25], [-0.5, 1, -0.25], [-0.5, -1, 0.25]]


def test_the_teapot_is_box_normalised():
    v, _ = builtin_shape("builtin:teapot")
    lo, hi = v.min(0), v.max(0)
    assert (hi - lo).max() == pytest.approx(2.0, abs=1e-6) and np.allclose((lo + hi) / 2, 0, atol=1e-6)


@PROPERTIES
@given(point_clouds, st.floats(0.25, 4.0))
def test_ball_normalisation_puts_the_farthest_vertex_on_the_sphere(vertices, radius):
    out, centre, scale = normalize_to_ball(vertices, radius)
    assert np.allclose(centre, box_normalization(vertices)[0])
    distances = np.linalg.norm(out.astype(np.float64), axis=1)
    if np.ptp(vertices.astype(np.float64), axis=0).max() == 0:
        assert np.all(distances == 0)
    else:
        assert distances.max() == pytest.approx(radius, rel=1e-5)


# ----------------------------------------------------------------------------- weld


@PROPERTIES
@given(meshes_with_duplicates(), st.booleans())
def test_weld_is_idempotent(mesh, drop):
    once = weld(*mesh, drop_degenerate=drop)
    twice = weld(*once, drop_degenerate=drop)
    assert np.array_equal(once[0], twice[0]) and np.array_equal(once[1], twice[1])


@PROPERTIES
@given(meshes_with_duplicates(columns=6))
def test_weld_keeps_every_corner_and_merges_only_equal_rows(mesh):
    vertices, faces = mesh
    welded, new_faces = weld(vertices, faces, drop_degenerate=False)
    assert new_faces.shape == faces.shape and new_faces.dtype == np.int64
    assert np.array_equal(welded[new_faces], vertices[faces] + 0.0)  # the same geometry, corner by corner
    assert len(np.unique(welded + 0.0, axis=0)) == len(welded)  # no two kept rows are equal
    first = [int(np.flatnonzero(np.all(vertices == row, axis=1))[0]) for row in welded]
    assert first == sorted(first)  # first-occurrence order


@PROPERTIES
@given(meshes_with_duplicates())
def test_weld_drops_exactly_the_collapsed_faces(mesh):
    vertices, faces = mesh
    _, kept = weld(vertices, faces)
    _, aligned = weld(vertices, faces, drop_degenerate=False)
    collapsed = (aligned[:, 0] == aligned[:, 1]) | (aligned[:, 1] == aligned[:, 2]) | (aligned[:, 2] == aligned[:, 0])
    assert np.array_equal(kept, aligned[~collapsed])


def test_weld_with_decimals_merges_near_points_and_keeps_the_originals():
    v = np.array([[0, 0, 0], [1, 0, 0], [1e-9, 0, -0.0], [0, 1, 0], [1 + 4e-7, 0, 0]])
    f = np.array([[0, 1, 3], [2, 4, 3], [0, 2, 1]])
    welded, faces = weld(v, f, decimals=6)
    assert welded.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert faces.tolist() == [[0, 1, 2], [0, 1, 2]]  # [0, 2, 1] collapsed into an edge
    assert len(weld(v, f)[0]) == 5  # exactly: nothing merges
