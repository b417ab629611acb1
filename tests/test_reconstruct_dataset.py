"""`meshopt reconstruct dataset` and the paper's dataset format (issue 13): the files, the loader,
the view and voxel conventions, the procedural classes and the split."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from meshopt_cli.reconstruct import dataset as fmt
from meshopt_cli.reconstruct import shapes
from tests.conftest import meshopt_in_process


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def tiny_fixture():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 24, 4, 8, 8), dtype=np.uint8)
    voxels = rng.random((2, 32, 32, 32)) > 0.7
    return images, voxels


def test_files_hold_exactly_the_reference_layout(tmp_path):
    """One member arr_0.npy each (what np.savez_compressed(path, array) writes), whose bytes are
    np.save's of uint8 [N, 24, 4, S, S] and bool [N, 32, 32, 32]; the same data give the same bytes."""
    images, voxels = tiny_fixture()
    written = fmt.write_split(tmp_path, "02691156", "train", images, voxels)
    assert [p.name for p in written] == ["02691156_train_images.npz", "02691156_train_voxels.npz"]
    for path, array in zip(written, (images, voxels)):
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist() == ["arr_0.npy"]
            assert archive.getinfo("arr_0.npy").compress_type == zipfile.ZIP_DEFLATED
            assert archive.read("arr_0.npy") == npy_bytes(array)
        with np.load(path) as data:  # what the reference loader does: the first item
            first = data[data.files[0]]
        assert first.dtype == array.dtype and first.shape == array.shape
    again = fmt.write_split(tmp_path / "again", "02691156", "train", images, voxels)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_loader_reads_files_written_by_numpy_itself(tmp_path):
    """The reference's own writer (np.savez_compressed) and ours are read alike, classes in order."""
    images, voxels = tiny_fixture()
    np.savez_compressed(tmp_path / "b_test_images.npz", images[:1])
    np.savez_compressed(tmp_path / "b_test_voxels.npz", voxels[:1])
    fmt.write_split(tmp_path, "a", "test", images, voxels)
    split = fmt.load_split(tmp_path, "test")
    assert split.classes == ["a", "b"]
    assert np.array_equal(split.images, np.concatenate([images, images[:1]]))
    assert np.array_equal(split.voxels, np.concatenate([voxels, voxels[:1]]))
    assert split.labels.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="no \\*_val_images.npz"):
        fmt.load_split(tmp_path, "val")
    (tmp_path / "c_test_images.npz").write_bytes(b"not a zip")
    (tmp_path / "c_test_voxels.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="c_test_images.npz: not a readable .npz"):
        fmt.load_split(tmp_path, "test")


def asymmetric_mesh():
    """A unit cube with a smaller cube stuck to its +x, +y, -z corner region: no mirror symmetry."""
    from meshopt_cli.mesh.builtins import cube

    v, f = cube()
    big = v * 0.25
    small = v * 0.1 + np.array([0.3, 0.2, -0.25])
    return np.concatenate([big, small]), np.concatenate([f, f + len(v)])


def test_view_k_is_the_camera_at_azimuth_minus_15k():
    """The stored image k is the silhouette seen from get_points_from_angles(2.732, 30, -15 k)
    with a 15 degree viewing angle, rows top to bottom: view 0 (camera on the -z side) shows +x on
    the right, view 6 (camera on the -x side) shows -z on the right, view 18 (on the +x side) on the left."""
    from meshopt_cli.render import Renderer, get_points_from_angles

    vertices, faces = asymmetric_mesh()
    stored = fmt.render_object(vertices, faces, image_size=32)
    assert stored.shape == (24, 4, 32, 32) and stored.dtype == np.uint8
    renderer = Renderer(image_size=32, anti_aliasing=True, viewing_angle=15)
    v = torch.tensor(vertices, dtype=torch.float32)[None]
    f = torch.tensor(faces)[None]
    for k in (0, 5, 6, 17):
        renderer.eye = get_points_from_angles(2.732, 30.0, -15.0 * k)
        alpha = renderer.render_silhouettes(v, f)[0].numpy()
        assert np.abs(stored[k, 3] / 255.0 - alpha).max() <= 1.0 / 255 + 1e-6, k
    assert not np.array_equal(stored[0, 3], stored[12, 3][:, ::-1])  # no mirror symmetry to hide a sign error
    columns = np.arange(32)

    def centre_column(mask):
        return float((mask.sum(0) * columns).sum() / mask.sum())

    # the small cube alone: at +x (view 0: right of centre) and -z (view 6, camera at -x looking +x: right)
    small_v, small_f = vertices[8:], faces[12:] - 8
    small = fmt.render_object(small_v, small_f, image_size=32)[:, 3].astype(float)
    assert centre_column(small[0]) > 16
    assert centre_column(small[6]) > 16
    assert centre_column(small[18]) < 16  # camera at +x: -z is on the left
    # the RGB is the reference's: inverted, so the background is 0 and the object bright
    assert stored[0, :3, 0, 0].tolist() == [0, 0, 0] and stored[0, :3].max() > 0


def test_voxels_are_in_the_reference_evaluation_frame():
    """voxels[i, j, k] is the cell at y = c(i), x = c(j), z = c(31 - k)."""
    from meshopt_cli.mesh.builtins import cube

    v, f = cube()
    v = v / np.ptp(v, axis=0) * 0.2  # side 0.2
    offset = np.array([0.3, -0.2, 0.25])  # +x, -y, +z
    grid = fmt.mesh_voxels(v + offset, f)
    assert grid.shape == (32, 32, 32) and grid.dtype == np.bool_
    i, j, k = (float(a.mean()) for a in np.nonzero(grid))
    axis = fmt.voxel_axis()
    assert axis[int(round(j))] == pytest.approx(0.3, abs=0.04)
    assert axis[int(round(i))] == pytest.approx(-0.2, abs=0.04)
    assert axis[31 - int(round(k))] == pytest.approx(0.25, abs=0.04)
    # conservative, as the reference voxelizer: the 6.2-cell cube touches 7 (or 8) cells a side
    assert 7**3 <= grid.sum() <= 8**3


def test_voxels_count_thin_parts_as_the_reference_does():
    """A plate thinner than a cell holds no cell centre, but every cell it passes through counts."""
    from meshopt_cli.mesh.builtins import cube

    v, f = cube()
    v = v / np.ptp(v, axis=0) * np.array([0.5, 0.005, 0.5])
    grid = fmt.mesh_voxels(v, f)
    assert grid.any(axis=(1, 2)).sum() in (1, 2)  # one layer of y (axis 0), two if it straddles a boundary
    assert grid.sum() >= int(0.5 * 31) ** 2


def test_procedural_classes_are_closed_normalized_and_seeded():
    from meshopt_cli.optimize.voxels import is_watertight

    for name in shapes.class_names():
        v, f = shapes.generate(name, 3, seed=1, subdivisions=2)
        assert is_watertight(v, f), name
        lo, hi = v.min(0), v.max(0)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0) and np.allclose((lo + hi) / 2, 0, atol=1e-12)
        again, _ = shapes.generate(name, 3, seed=1, subdivisions=2)
        other, _ = shapes.generate(name, 4, seed=1, subdivisions=2)
        assert np.array_equal(v, again) and not np.allclose(v, other)
    with pytest.raises(ValueError, match="unknown procedural class"):
        shapes.generate("teapot", 0)
    from meshopt_cli.cli import PROCEDURAL_CLASSES

    assert PROCEDURAL_CLASSES.split(", ") == shapes.class_names()  # what --classes' help lists


def test_split_is_by_object_disjoint_and_seeded():
    split = fmt.split_objects(20, (0.7, 0.1, 0.2), seed=3)
    assert [len(split[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(20))
    assert all(np.array_equal(a, b) for a, b in zip(split.values(), fmt.split_objects(20, (0.7, 0.1, 0.2), seed=3).values()))
    assert not np.array_equal(split["test"], fmt.split_objects(20, (0.7, 0.1, 0.2), seed=4)["test"])


def test_dataset_command_from_class_folders(tmp_path):
    """One sub-folder per class; a bad mesh is one error line (exit 1), the rest is written and
    reads back with the voxels of the same voxelizer."""
    from meshopt_cli.mesh.builtins import cube, icosphere
    from meshopt_cli.mesh.save import save_obj

    meshes = tmp_path / "meshes"
    for class_id, (v, f) in (("boxes", cube()), ("balls", icosphere(1))):
        (meshes / class_id).mkdir(parents=True)
        for n, scale in enumerate((1.0, 0.8, 0.6)):
            save_obj(meshes / class_id / f"m{n}.obj", torch.tensor(v * [scale, 1, 1], dtype=torch.float32), torch.tensor(f))
    (meshes / "balls" / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")
    ran = meshopt_in_process(
        "reconstruct", "dataset", meshes, "-o", tmp_path / "data", "--image-size", "16", "--val-fraction", "0", "--json"
    )
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.count("error:") == 1 and "broken.obj" in ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["classes"]["balls"] == {"train": 2, "val": 0, "test": 1} and summary["skipped"] == 1
    train = fmt.load_split(tmp_path / "data", "train")
    assert train.classes == ["balls", "boxes"] and train.images.shape == (4, 24, 4, 16, 16)
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    first = manifest["classes"]["boxes"]["train"][0]
    from meshopt_cli.mesh import load_mesh

    mesh = load_mesh(first, textures=False)
    expected = fmt.mesh_voxels(fmt.normalize_mesh(np.asarray(mesh.vertices)), np.asarray(mesh.faces))
    assert np.array_equal(train.voxels[train.labels == 1][0], expected)
    again = meshopt_in_process("reconstruct", "dataset", meshes, "-o", tmp_path / "data")
    assert again.returncode == 2 and "already holds dataset files" in again.stderr


def test_dataset_command_procedural(tmp_path):
    ran = meshopt_in_process(
        "reconstruct", "dataset", "--procedural", "--classes", "box,cross", "--objects", "4", "--image-size", "16", "-o", tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    split = fmt.load_split(tmp_path, "test")
    assert split.classes == ["box", "cross"] and split.images.shape[1:] == (24, 4, 16, 16)
    assert split.voxels.any(axis=(1, 2, 3)).all()
    bad = meshopt_in_process("reconstruct", "dataset", "--procedural", "--classes", "teapot", "-o", tmp_path / "x")
    assert bad.returncode == 2 and "unknown procedural classes" in bad.stderr
