"""Checkpoints of the textured loops: what a real run saves loads back with ``weights_only=True``
and resumes exactly; a file that would run code when unpickled is refused with one line."""

import dataclasses

import numpy as np
import pytest
import torch

from meshopt_cli.checkpoints import load_checkpoint, save_checkpoint
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize.textured import TexturedSettings, optimize_textured


def _cube():
    v, f = builtin_shape("builtin:cube")
    v = torch.tensor(v) / np.abs(v).max()
    return v, torch.tensor(f), torch.full((len(f), 2, 2, 2, 3), 0.5)


def _red_loss(views, vertices):
    red = ((views.rgb - torch.tensor([1.0, 0, 0])[None, :, None, None]) ** 2 * views.alpha[:, None]).mean()
    return red, {"red": float(red.detach())}


def _same(a, b):
    """Equal nested tensors / dicts / lists / plain values (tensors: same dtype, shape, values)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_a_real_checkpoint_round_trips_with_weights_only_and_resumes_exactly(tmp_path):
    v, f, t = _cube()
    s = TexturedSettings(iterations=4, batch_views=2, image_size=32, texture_lr=0.2, seed=3, optimize_vertices=True)
    whole = optimize_textured(v, f, t, s, _red_loss)
    saved = []
    optimize_textured(v, f, t, dataclasses.replace(s, iterations=2), _red_loss, checkpoint_every=2, on_checkpoint=saved.append)
    state = saved[0]
    assert state["generator"].dtype == torch.uint8 and state["optimizer"]["state"]  # Adam has moments
    settings = dataclasses.asdict(s)  # the commands' settings: numbers, bools, str, None, lists
    meta = {
        "input": "builtin:cube",
        "faces": 12,
        "weights": "imagenet",
        "settings": {**settings, "init_bias": [0.1, 0.2, 0.3], "layer": "inception4c", "light_angle": None},
    }
    path = tmp_path / "run" / "cube.checkpoint.pt"
    save_checkpoint(path, state, meta)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    torch.load(path, map_location="cpu", weights_only=True)  # what load_checkpoint relies on
    loaded = load_checkpoint(path, meta)
    assert _same(loaded, state)
    resumed = optimize_textured(v, f, t, s, _red_loss, resume=loaded)
    assert resumed.steps == 4 and resumed.curves["red"] == whole.curves["red"]
    assert torch.equal(resumed.textures, whole.textures) and torch.equal(resumed.vertices, whole.vertices)


def test_a_checkpoint_from_another_run_is_refused(tmp_path):
    path = tmp_path / "x.checkpoint.pt"
    save_checkpoint(path, {"step": 1}, {"input": "a.obj", "faces": 12})
    assert load_checkpoint(path, {"input": "a.obj", "faces": 12}) == {"step": 1}
    with pytest.raises(ValueError, match=r"different faces \(12, now 13\)"):
        load_checkpoint(path, {"input": "a.obj", "faces": 13})
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        load_checkpoint(tmp_path / "missing.pt", {})


class _Payload:
    """Unpickling this would create a file (what a malicious checkpoint would do, and worse)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("where", ["state", "meta"])
def test_a_pickle_with_an_arbitrary_object_is_refused_in_one_line(tmp_path, where):
    path, target = tmp_path / "evil.checkpoint.pt", tmp_path / "created-by-unpickling"
    content = {"meta": {"input": "a.obj"}, "state": {"step": 1}}
    content[where]["x"] = _Payload(target)
    torch.save(content, path)
    with pytest.raises(ValueError) as refused:
        load_checkpoint(path, {"input": "a.obj"})
    message = str(refused.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith(f"{path}: not a readable checkpoint (it holds ") and "open" in message
    assert not target.exists()


@pytest.mark.parametrize("content", [b"junk", b""])
def test_a_corrupt_file_is_one_line(tmp_path, content):
    path = tmp_path / "bad.checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable checkpoint") as refused:
        load_checkpoint(path, {})
    assert "\n" not in str(refused.value)


def test_a_torch_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path, {})
    torch.save({"meta": [], "state": {}}, path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path, {"input": "a.obj"})
