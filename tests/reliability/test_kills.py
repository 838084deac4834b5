"""Kill tests: a subprocess killed with SIGKILL at a random point, then resumed
(docs/reliability.md, "Kills").

* training: the run loses at most one checkpoint interval and ``resume`` ends bit-exactly
  where an uninterrupted run ends; a kill *during* checkpoint writing leaves the previous
  checkpoint loadable;
* generation (``python -m hepvld.generate``, needs the Pythia extra): the killed file is
  readable and holds whole chunks up to its journal, and ``--resume`` ends with the same
  events as an uninterrupted run; ``--shard i/n`` + ``--merge`` equals one process.

The kill moments are drawn from a seeded generator (reproducible, but not aligned with
any step or chunk boundary).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import pytest
import torch
import uproot

from hepvld.training.checkpoint import load_checkpoint

TOY_DIR = Path(__file__).resolve().parents[1] / "training"

_TRAIN = """
import sys, time
sys.path.insert(0, {toy_dir!r})
from toy_training_model import toy_data, toy_model
from hepvld.config import TrainConfig
from hepvld.training import checkpoint, train

config = TrainConfig(lr=1e-2, min_lr=1e-4, warmup_steps=3, max_steps={steps}, batch_size=16,
    checkpoint_every={every}, log_every=1, ema_decay=0.9, device="cpu", seed=1,
    keep_checkpoints=2, num_threads=1)
hang_at = {hang_at}
if hang_at:
    original = checkpoint._save_tensors
    def slow(path, tensors):
        original(path, tensors)
        if path.name == "model.safetensors" and "step_%08d" % hang_at in str(path.parent):
            open({flag!r}, "w").close()
            time.sleep(60)  # killed here, mid-checkpoint
    checkpoint._save_tensors = slow
train(toy_model(0), toy_data(96), toy_data(32, seed=1), config, {run!r},
      extra_state={{"model": "toy"}}, resume={resume})
"""


def _train_cmd(run: Path, *, steps: int, every: int, resume: bool, hang_at: int = 0) -> list[str]:
    code = _TRAIN.format(
        toy_dir=str(TOY_DIR),
        steps=steps,
        every=every,
        hang_at=hang_at,
        flag=str(run) + ".hang",
        run=str(run),
        resume=resume,
    )
    return [sys.executable, "-c", code]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the kill point")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("kill point not reached in time")
        time.sleep(0.02)


def _last_logged_step(run: Path) -> int:
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    return max(int(float(line.split(",")[0])) for line in lines[1:] if line[0].isdigit())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run)
    return {**ckpt.model_state, **{f"ema.{k}": v for k, v in (ckpt.ema_state or {}).items()}}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("kill") / "straight"
    subprocess.run(_train_cmd(run, steps=60, every=10, resume=False), check=True, env=_env())
    return run


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_training_killed_at_random_loses_at_most_one_interval(
    straight_run: Path, tmp_path: Path, seed: int
) -> None:
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(run, steps=60, every=10, resume=False), env=_env())
    _wait_for(lambda: (run / "checkpoints" / "latest.json").exists(), 120, proc)
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before the kill")
    saved = load_checkpoint(run).step  # the killed run's checkpoint is loadable
    done = _last_logged_step(run)
    assert done - saved <= 10, (done, saved)  # lost at most one checkpoint interval
    subprocess.run(_train_cmd(run, steps=60, every=10, resume=True), check=True, env=_env())
    want, got = _weights(straight_run), _weights(run)
    assert load_checkpoint(run).step == 60 and want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key  # bit-exact


def test_training_killed_during_checkpoint_write(straight_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "killed"
    flag = Path(str(run) + ".hang")
    proc = subprocess.Popen(
        _train_cmd(run, steps=60, every=10, resume=False, hang_at=30), env=_env()
    )
    _wait_for(flag.exists, 120, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = load_checkpoint(run)
    assert ckpt.step == 20  # the previous checkpoint, complete
    assert any(p.name.startswith(".tmp-step_00000030") for p in (run / "checkpoints").iterdir())
    subprocess.run(_train_cmd(run, steps=60, every=10, resume=True), check=True, env=_env())
    assert not any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir())
    want, got = _weights(straight_run), _weights(run)
    for key in want:
        assert torch.equal(want[key], got[key]), key


# ----------------------------------------------------------------------------- generation
GEN_FAST = ["--no-mpi", "--no-isr", "--no-fsr", "--no-hadronisation", "--no-progress"]


def _gen_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hepvld.generate",
        "-n",
        "600",
        "--count",
        "generated",
        "--chunk-size",
        "50",
        "--seed",
        "4",
        "-o",
        str(out),
        *GEN_FAST,
        *extra,
    ]


def _events(path: Path, stop: int | None = None) -> ak.Array:
    with uproot.open(path) as f:
        return f["Events"].arrays(entry_stop=stop)


def _assert_same_events(a: ak.Array, b: ak.Array) -> None:
    assert a.fields == b.fields and len(a) == len(b)
    for field in a.fields:
        assert ak.array_equal(a[field], b[field]), field


@pytest.fixture(scope="module")
def straight_generation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    out = tmp_path_factory.mktemp("gen") / "straight.root"
    subprocess.run(_gen_cmd(out), check=True, env=_env(), capture_output=True)
    return out


@pytest.mark.generate
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_generate_killed_at_random_then_resumed(
    straight_generation: Path, tmp_path: Path, seed: int
) -> None:
    out = tmp_path / "killed.root"
    journal = out.with_name(out.name + ".journal.json")
    proc = subprocess.Popen(_gen_cmd(out), env=_env(), stderr=subprocess.DEVNULL)

    def two_chunks() -> bool:
        try:
            return json.loads(journal.read_text())["next_chunk"] >= 2
        except (OSError, ValueError, KeyError):
            return False

    _wait_for(two_chunks, 120, proc)
    time.sleep(random.Random(seed).uniform(0.0, 0.8))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before the kill")
    state = json.loads(journal.read_text())
    partial = _events(out, state["events_written"])  # readable up to the journal
    full = _events(straight_generation)
    lumi = ak.to_numpy(full.luminosityBlock)
    whole = int((lumi < state["next_chunk"]).sum())
    assert state["events_written"] == whole  # exactly the whole chunks before next_chunk
    _assert_same_events(partial, full[:whole])

    done = subprocess.run(
        [*_gen_cmd(out), "--resume"], env=_env(), capture_output=True, text=True, check=True
    )
    assert "wrote" in done.stdout
    _assert_same_events(_events(out), full)
    assert not journal.exists()
    with uproot.open(out) as f:
        assert '"complete": true' in f["hepvld_provenance"]


@pytest.mark.generate
def test_generate_shards_merged_equal_one_process(
    straight_generation: Path, tmp_path: Path
) -> None:
    shards = [tmp_path / f"shard{i}.root" for i in range(2)]
    for i, path in enumerate(shards):
        subprocess.run(
            _gen_cmd(path, "--shard", f"{i}/2"), check=True, env=_env(), capture_output=True
        )
    merged = tmp_path / "merged.root"
    res = subprocess.run(
        [sys.executable, "-m", "hepvld.generate", "-o", str(merged), "--merge", *shards[::-1]],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "merged 2 shards" in res.stdout
    _assert_same_events(_events(merged), _events(straight_generation))


@pytest.mark.generate
def test_generate_resume_errors(tmp_path: Path) -> None:
    from hepvld.generate import generate
    from hepvld.generate.shards import GenerationResumeError, merge_shards

    with pytest.raises(GenerationResumeError, match=r"nothing to resume.*run without --resume"):
        generate(tmp_path / "none.root", 10, resume=True)
    with pytest.raises(ValueError, match=r"shard needs count='generated'"):
        generate(tmp_path / "s.root", 10, shard=(0, 2))
    with pytest.raises(ValueError, match=r"--shard '3/2': expected i/n"):
        from hepvld.generate.shards import parse_shard

        parse_shard("3/2")
    with pytest.raises(GenerationResumeError, match=r"cannot read"):
        merge_shards(tmp_path / "m.root", [tmp_path / "missing.root"])
