"""Bad-input corpus, part 2: checkpoints (docs/reliability.md, rows C*).

Checkpoints are directories of safetensors + JSON; anything else is refused with a
:class:`hepvld.io.CheckpointError` naming the file and what to do — and a pickle is never
unpickled.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import hepvld
from hepvld.io import CheckpointError, CheckpointNotFoundError, HepvldIOError
from hepvld.training.checkpoint import FORMAT_VERSION, find_checkpoint, load_checkpoint


def _ckpt(run: Path) -> Path:
    return find_checkpoint(run)


def _edit_meta(run: Path, edit) -> None:
    path = _ckpt(run) / "meta.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_c00_good_run_loads(toy_run: Path) -> None:
    assert hepvld.load(toy_run).name == "vld"


def test_c01_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"nowhere does not exist: pass the run"):
        hepvld.load(tmp_path / "nowhere")
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


def test_c02_directory_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at .*looked for meta\.json"):
        hepvld.load(tmp_path)


def test_c03_truncated_model_safetensors(run_copy: Path) -> None:
    for name in ("model.safetensors", "ema.safetensors"):
        path = _ckpt(run_copy) / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors is truncated or damaged.*earlier"
    ):
        hepvld.load(run_copy)


def test_c04_missing_model_safetensors(run_copy: Path) -> None:
    (_ckpt(run_copy) / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing.*incomplete"):
        load_checkpoint(run_copy)


def test_c05_safetensors_from_another_model(run_copy: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).state_dict()
    for name in ("model.safetensors", "ema.safetensors"):
        save_file({k: v.contiguous() for k, v in other.items()}, str(_ckpt(run_copy) / name))
    with pytest.raises(
        CheckpointError, match=r"weights do not fit the network.*missing.*from another model"
    ):
        hepvld.load(run_copy)


def test_c06_truncated_meta_json(run_copy: Path) -> None:
    path = _ckpt(run_copy) / "meta.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(CheckpointError, match=r"meta\.json \(checkpoint metadata\) is truncated"):
        hepvld.load(run_copy)


def test_c07_meta_missing_keys(run_copy: Path) -> None:
    _edit_meta(run_copy, lambda m: m["extra"].pop("target_preprocessor"))
    with pytest.raises(CheckpointError, match=r"lacks \['target_preprocessor'\]"):
        hepvld.load(run_copy)


def test_c08_meta_from_newer_version(run_copy: Path) -> None:
    def newer(m: dict) -> None:
        m["format_version"] = FORMAT_VERSION + 1
        m["hepvld_version"] = "99.0"

    _edit_meta(run_copy, newer)
    with pytest.raises(CheckpointError, match=r"format 2 \(written by hepvld 99\.0\).*upgrade"):
        hepvld.load(run_copy)


def test_c09_preprocessing_not_matching_network(run_copy: Path) -> None:
    def shrink(m: dict) -> None:
        tp = m["extra"]["target_preprocessor"]
        tp["mean"], tp["scale"] = tp["mean"][:50], tp["scale"][:50]

    _edit_meta(run_copy, shrink)
    with pytest.raises(
        CheckpointError, match=r"target_preprocessor mean has 50 entries but the network expects 55"
    ):
        hepvld.load(run_copy)


def test_c10_detector_preprocessing_not_matching(run_copy: Path) -> None:
    _edit_meta(run_copy, lambda m: m["extra"].__setitem__("object_features", 10))
    with pytest.raises(
        CheckpointError, match=r"obj_mean has 12 entries but the network expects 10"
    ):
        hepvld.load(run_copy)


class _Boom:
    """Unpickling this would create ``marker`` (stands for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["model.pt", "weights.bin"])
def test_c11_pickle_is_refused_never_unpickled(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / name
    if name.endswith(".pt"):
        torch.save({"x": _Boom(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(CheckpointError, match=r"pickle / torch\.save file: hepvld never unpickles"):
        hepvld.load(path)
    assert not marker.exists()


def test_c12_pointer_to_missing_checkpoint(run_copy: Path) -> None:
    pointer = run_copy / "checkpoints" / "latest.json"
    pointer.write_text(json.dumps({"checkpoint": "step_99999999", "step": 1}))
    for d in (run_copy / "checkpoints").glob("step_*"):
        (d / "meta.json").unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"points to .*step_99999999, which has no"):
        hepvld.load(run_copy)


def test_c13_damaged_pointer(run_copy: Path) -> None:
    for d in (run_copy / "checkpoints").glob("step_*"):
        (d / "meta.json").unlink()
    (run_copy / "checkpoints" / "latest.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"latest\.json \(checkpoint pointer\) is truncated"):
        hepvld.load(run_copy)


def test_checkpoint_errors_are_project_errors() -> None:
    assert issubclass(CheckpointError, HepvldIOError)
