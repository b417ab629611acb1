"""`meshopt reconstruct eval` and `predict` (issue 13): the voxel IoU protocol on a perfect
predictor, the template and retrieval baselines, the table and JSON, and predictions of images."""

import json

import numpy as np
import pytest

from meshopt_cli.reconstruct import dataset as fmt
from meshopt_cli.reconstruct import evaluate, shapes
from meshopt_cli.reconstruct.model import undeformed
from tests.conftest import meshopt_in_process

SIZE = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reconstruct-eval-data")
    ran = meshopt_in_process(
        "reconstruct", "dataset", "--procedural", "--classes", "ellipsoid,table", "--objects", "4", "--image-size", SIZE,
        "--val-fraction", "0", "--test-fraction", "0.5", "-o", folder, "--quiet",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return folder


def ground_truth_predictor(data, split_name):
    """The meshes the dataset was made from, by the manifest's object names (class-index)."""
    manifest = json.loads((data / "dataset.json").read_text())
    split = fmt.load_split(data, split_name)
    names = [n for c in split.classes for n in manifest["classes"][c][split_name]]

    def predict(objects, views):
        out = []
        for n in objects:
            class_name, index = names[n].rsplit("-", 1)
            out.append(shapes.generate(class_name, int(index), seed=0, subdivisions=3))
        return out

    return split, predict


def test_the_ground_truth_meshes_score_at_least_095(data):
    split, predict = ground_truth_predictor(data, "test")
    ious = evaluate.voxel_ious(split, predict, views=[0, 7])
    assert ious.shape == (4, 2) and ious.min() >= 0.95
    summary = evaluate.summarize(split, {"gt": ious})
    assert summary["mean"]["gt"] >= 0.95 and set(summary["classes"]) == {"ellipsoid", "table"}


def test_the_template_baseline_is_the_undeformed_sphere(data):
    split = fmt.load_split(data, "test")
    vertices, faces = undeformed()
    sphere = fmt.mesh_voxels(vertices.numpy(), faces.numpy())
    expected = [np.logical_and(sphere, v).sum() / np.logical_or(sphere, v).sum() for v in split.voxels]
    ious = evaluate.template_ious(split, 3)
    assert ious.shape == (4, 3) and np.allclose(ious, np.array(expected)[:, None])
    assert 0 < ious.min() and ious.max() < 0.95
    # and a predictor that always answers with the template gives the same figures
    same = evaluate.voxel_ious(split, lambda objects, views: [(vertices.numpy(), faces.numpy())] * len(objects), views=[0, 1, 2])
    assert np.allclose(same, ious)


def test_retrieval_finds_the_object_itself_in_its_own_split(data):
    train = fmt.load_split(data, "train")
    assert np.allclose(evaluate.retrieval_ious(train, train, views=[0, 5, 13]), 1.0)
    test = fmt.load_split(data, "test")
    ious = evaluate.retrieval_ious(test, train, views=[0, 5])
    assert ious.shape == (4, 2) and 0 < ious.min() and ious.max() < 1


@pytest.fixture(scope="module")
def overfit_run(data, tmp_path_factory):
    """A run trained on the 2 tables until it draws them back (lr 1e-3, x0.1 after 90 %, 120 steps at 16 px).

    120 steps give a view-4 IoU of 0.77 with the fused Adam; 60 steps stopped at 0.59.
    """
    run = tmp_path_factory.mktemp("reconstruct-run") / "run"
    ran = meshopt_in_process(
        "reconstruct", "train", data, "-o", run, "--classes", "table", "--iterations", "120", "--batch-size", "4",
        "--lr", "0.001", "--lr-reduce-point", "0.9", "--image-size", SIZE, "--quiet",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return run


def test_eval_command_prints_the_table_and_writes_json(data, overfit_run):
    ran = meshopt_in_process("reconstruct", "eval", overfit_run, data, "--views", "2")
    assert ran.returncode == 0, ran.stderr
    assert "| class | objects | model | retrieval | template |" in ran.stdout and "| table | 2 |" in ran.stdout
    report = json.loads((overfit_run / "eval-test.json").read_text())
    assert report["views"] == [0, 12] and set(report["mean"]) == {"model", "retrieval", "template"}
    assert 0 < report["classes"]["table"]["model"] <= 1
    as_json = meshopt_in_process("reconstruct", "eval", overfit_run, data, "--views", "1", "--json", "--split", "train")
    assert json.loads(as_json.stdout)["split"] == "train"
    assert meshopt_in_process("reconstruct", "eval", overfit_run, data / "nowhere").returncode == 2


def test_predict_draws_a_training_image_back(data, overfit_run, tmp_path):
    from PIL import Image

    train = fmt.load_split(data, "train")
    stored = train.images[train.of_class(train.classes.index("table"))[0], 4]  # view 4 as the dataset holds it
    rgba = np.concatenate([255 - stored[:3], stored[3:]]).transpose(1, 2, 0)
    big = Image.fromarray(rgba).resize((40, 40), Image.NEAREST)  # any size: predict resizes to the run's
    big.save(tmp_path / "table.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    ran = meshopt_in_process(
        "reconstruct", "predict", overfit_run, "-", "-o", tmp_path / "out", "--json", "--turntable-frames", "4",
        "--turntable-size", "32", stdin=f"{tmp_path / 'table.png'}\n{tmp_path / 'broken.png'}\n",
    )  # fmt: skip
    assert ran.returncode == 1
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["done", "failed"]
    assert ran.stderr.count("error:") == 1 and "broken.png" in ran.stderr
    metrics = json.loads((tmp_path / "out" / "table" / "metrics.json").read_text())
    # from the view it was taken from, the mesh draws the image back, far better than the template does
    import torch

    from meshopt_cli.optimize.losses import silhouette_iou

    renderer = fmt.silhouette_renderer(SIZE)
    renderer.eye = fmt.view_eyes([4])
    vertices, faces = undeformed()
    template = float(
        silhouette_iou(renderer.render_silhouettes(vertices[None], faces[None]), torch.tensor(stored[3][None] / 255.0))[0]
    )
    assert metrics["view_ious"][4] > 0.65 and metrics["view_ious"][4] > template + 0.15, (metrics["view_ious"][4], template)
    assert metrics["best_view_iou"] >= metrics["view_ious"][4]
    assert {p.name for p in (tmp_path / "out" / "table").iterdir()} >= {"mesh.obj", "turntable.gif", "compare.png"}
    bad_run = meshopt_in_process("reconstruct", "predict", tmp_path, tmp_path / "table.png", "-o", tmp_path / "o2")
    assert bad_run.returncode == 2 and "no trained model" in bad_run.stderr


def test_the_readme_reconstruct_examples_run_as_written(tmp_path):
    """The first block of the README's reconstruct section, in a fresh folder (image size cut to 16 px)."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### `meshopt reconstruct`", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("meshopt")]
    assert [shlex.split(line)[2] for line in lines] == ["dataset", "train", "eval"]
    for line in lines:
        words = [("16" if w == "32" else w) for w in shlex.split(line)[1:]]
        ran = meshopt_in_process(*words, cwd=tmp_path)
        assert ran.returncode == 0, (line, ran.stderr)
    assert (tmp_path / "run" / "eval-test.json").is_file()


def _sphere(radius, centre=(0.0, 0.0, 0.0), subdivisions=3):
    from meshopt_cli.reconstruct.model import template

    vertices, faces = template(subdivisions)
    return vertices.numpy().astype(np.float64) * radius + np.asarray(centre), faces.numpy()


def reference_fill(occupied):
    """The reference voxelizer's fill step: every cell that no path of empty cells (6-connected)
    joins to the grid's border is inside, whatever the surface's orientation or folds."""
    empty = ~occupied
    outside = np.zeros_like(occupied)
    for axis in range(3):
        for end in (0, -1):
            index = [slice(None)] * 3
            index[axis] = end
            outside[tuple(index)] = empty[tuple(index)]
    while True:
        grown = outside.copy()
        for axis in range(3):
            ahead, behind = [slice(None)] * 3, [slice(None)] * 3
            ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
            grown[tuple(ahead)] |= outside[tuple(behind)]
            grown[tuple(behind)] |= outside[tuple(ahead)]
        grown &= empty
        if np.array_equal(grown, outside):
            return ~outside
        outside = grown


def reference_voxels(vertices, faces):
    """The reference's rule in the format's frame: the cells the surface touches, then filled."""
    from meshopt_cli.optimize.voxels import surface_cells

    axis = fmt.voxel_axis()
    return fmt.to_format_frame(reference_fill(surface_cells(vertices, faces, (axis, axis, axis))))


def test_a_jagged_prediction_is_voxelized_as_the_shape_it_roughly_is():
    """Predicted meshes trained without the smoothness term are jagged (vertices moved in and out
    along the surface): the evaluator scores one near the smooth shape it approximates."""
    vertices, faces = _sphere(0.4)
    smooth = fmt.mesh_voxels(vertices, faces)
    noise = np.random.default_rng(0).uniform(0.92, 1.08, (len(vertices), 1))
    jagged = fmt.mesh_voxels(vertices * noise, faces)
    assert evaluate.grid_iou(jagged, smooth) >= 0.85
    # and as the reference's touch-then-fill voxelizer counts it
    assert evaluate.grid_iou(jagged, reference_voxels(vertices * noise, faces)) >= 0.99


def test_a_self_overlapping_prediction_counts_its_overlap_as_inside():
    """Two overlapping closed parts in one predicted mesh (as a decoder's folds make): the cells
    inside both are inside (winding number 2), not outside as ray parity would count them."""
    a_v, a_f = _sphere(0.25, (-0.1, 0, 0))
    b_v, b_f = _sphere(0.25, (0.1, 0, 0))
    both = fmt.mesh_voxels(np.concatenate([a_v, b_v]), np.concatenate([a_f, b_f + len(a_v)]))
    union = fmt.mesh_voxels(a_v, a_f) | fmt.mesh_voxels(b_v, b_f)
    assert evaluate.grid_iou(both, union) >= 0.99
    assert evaluate.grid_iou(both, reference_voxels(np.concatenate([a_v, b_v]), np.concatenate([a_f, b_f + len(a_v)]))) >= 0.99
    centre = 16  # the cells around the origin lie in both spheres
    assert both[centre - 1 : centre + 1, centre - 1 : centre + 1, centre - 1 : centre + 1].all()


def test_an_inside_out_prediction_is_still_solid():
    """A mesh whose faces all point inwards (a decoder can fold one inside out) is voxelized as
    the solid it bounds, as the reference's fill-from-outside voxelizer does."""
    vertices, faces = _sphere(0.3)
    assert evaluate.grid_iou(fmt.mesh_voxels(vertices, faces[:, ::-1]), fmt.mesh_voxels(vertices, faces)) == 1.0
