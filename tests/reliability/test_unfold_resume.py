"""``python -m hepvld.unfold`` resumes by chunk (docs/reliability.md, "Kills").

A run killed with SIGKILL at a random moment leaves no file under the output name, a
journal ``OUTPUT.journal.json`` and a partial file readable up to the journal's event
count; ``--resume`` (same options) ends with a file equal, branch for branch and with
the same cut-flow marker, to an uninterrupted run. The kill moment is drawn from a seeded
generator (reproducible, not aligned with a chunk boundary).
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import pytest
import torch
import uproot

from hepvld.io import ResumeError
from hepvld.io.journal import journal_path
from hepvld.io.output import COMPLETE_KEY
from hepvld.testing.synthetic import toy_events, write_root

CHUNK = 100
OPTIONS = ["-S", "3", "--steps", "2", "--sampler", "ddim", "--chunk-events", str(CHUNK)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The in-process runs use 1 torch thread, as the subprocesses (OMP_NUM_THREADS=1):
    another thread count changes the draws by float rounding."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "big.root"
    write_root(str(path), toy_events(2000, seed=21), basket_size=500)
    return path


def _argv(inputs: list[Path], run: Path, out: Path, *extra: str) -> list[str]:
    return [*map(str, inputs), "-c", str(run), "-o", str(out), *OPTIONS, *extra]


def _cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "hepvld.unfold", *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _read(path: Path, stop: int | None = None) -> tuple[ak.Array, dict | None]:
    with uproot.open(path) as f:
        marker = json.loads(str(f[COMPLETE_KEY])) if COMPLETE_KEY in f else None
        return f["Unfolded"].arrays(entry_stop=stop), marker


def _assert_same(a: ak.Array, b: ak.Array) -> None:
    assert a.fields == b.fields and len(a) == len(b)
    for field in a.fields:
        assert ak.array_equal(a[field], b[field]), field


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".partial")]


@pytest.fixture(scope="module")
def straight(toy_run: Path, big_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hepvld.cli.unfold import main

    out = tmp_path_factory.mktemp("resume_straight") / "straight.root"
    assert main(_argv([big_file], toy_run, out)) == 0
    return out


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_unfold_killed_at_random_then_resumed(
    toy_run: Path, big_file: Path, straight: Path, tmp_path: Path, seed: int
) -> None:
    out = tmp_path / "killed.root"
    journal = journal_path(out)
    argv = _argv([big_file], toy_run, out)
    proc = subprocess.Popen(_cmd(*argv), env=_env(), stderr=subprocess.DEVNULL)

    def one_chunk() -> bool:
        try:
            return json.loads(journal.read_text())["entries_done"] >= CHUNK
        except (OSError, ValueError, KeyError):
            return False

    t0 = time.monotonic()
    while not one_chunk():
        assert proc.poll() is None, f"unfold ended (rc {proc.returncode}) before the kill point"
        assert time.monotonic() - t0 < 120, "no chunk done in 120 s"
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before the kill")

    assert not out.exists()  # nothing that looks complete under the final name
    state = json.loads(journal.read_text())
    assert 0 < state["entries_done"] < 2000 and state["entries_done"] % CHUNK == 0
    full, full_marker = _read(straight)
    partial, marker = _read(out.with_name(state["partial"]), state["events_written"])
    assert marker is None  # the partial file carries no completeness marker
    _assert_same(partial, full[: state["events_written"]])
    # the events written are exactly the selected ones among the entries done
    assert state["cutflow"]["counts"][0] == state["entries_done"]

    done = subprocess.run(
        _cmd(*argv, "--resume"), env=_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    got, got_marker = _read(out)
    _assert_same(got, full)
    assert got_marker == full_marker
    assert not journal.exists() and _partials(tmp_path) == []


def test_interrupted_in_process_then_resumed(
    toy_run: Path, big_file: Path, straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception in chunk 7 keeps the partial file and journal; resume completes it."""
    import hepvld.api
    from hepvld.cli.unfold import main

    out = tmp_path / "out.root"
    real, calls = hepvld.api.unfold, []

    @functools.wraps(real)  # same signature: the journal records unfold's defaults
    def failing(events, **kwargs):
        calls.append(len(events))
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real(events, **kwargs)

    monkeypatch.setattr(hepvld.api, "unfold", failing)
    assert main(_argv([big_file], toy_run, out)) == 130
    state = json.loads(journal_path(out).read_text())
    assert state["entries_done"] == 6 * CHUNK and not out.exists()
    monkeypatch.setattr(hepvld.api, "unfold", real)
    assert main(_argv([big_file], toy_run, out, "--resume")) == 0
    _assert_same(_read(out)[0], _read(straight)[0])
    assert _read(out)[1] == _read(straight)[1]
    assert not journal_path(out).exists() and _partials(tmp_path) == []


def test_resume_refuses_other_options_and_missing_journal(
    toy_run: Path, big_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hepvld.api
    from hepvld.io.unfolded import unfold_files

    out = tmp_path / "out.root"
    kwargs = {"model": toy_run, "chunk_events": CHUNK, "n_samples": 2, "steps": 2}
    with pytest.raises(ResumeError, match=r"nothing to resume: .*out\.root\.journal\.json"):
        unfold_files([big_file], out, resume=True, **kwargs)

    # an error before the first chunk is done leaves nothing behind
    with pytest.raises(ValueError, match="euler"):
        unfold_files([big_file], out, sampler="euler", **kwargs)
    assert list(tmp_path.iterdir()) == []

    real, calls = hepvld.api.unfold, []

    @functools.wraps(real)
    def failing(events, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(events, **kw)

    monkeypatch.setattr(hepvld.api, "unfold", failing)
    with pytest.raises(KeyboardInterrupt):
        unfold_files([big_file], out, **kwargs)
    monkeypatch.setattr(hepvld.api, "unfold", real)
    assert json.loads(journal_path(out).read_text())["entries_done"] == CHUNK
    with pytest.raises(ResumeError, match=r"seed: 0 -> 5.*same options"):
        unfold_files([big_file], out, resume=True, seed=5, **kwargs)
    with pytest.raises(ResumeError, match=r"n_samples: 2 -> 4"):
        unfold_files([big_file], out, resume=True, **{**kwargs, "n_samples": 4})
    with pytest.raises(ResumeError, match=r"chunk_events: 100 -> 700"):
        unfold_files([big_file], out, resume=True, **{**kwargs, "chunk_events": 700})
    # a fresh run over an unfinished one replaces it (and its partial file)
    n, _ = unfold_files([big_file], out, max_events=250, **kwargs)
    assert n == _read(out)[1]["events"] and not journal_path(out).exists()
    assert _partials(tmp_path) == []


def test_resume_after_a_kill_between_rename_and_journal_removal(
    toy_run: Path, big_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output is complete but its journal survived (killed right after the rename):
    ``--resume`` recognises the finished file and removes the journal."""
    from hepvld.io import journal
    from hepvld.io.unfolded import unfold_files

    out = tmp_path / "out.root"
    kwargs = {"model": toy_run, "chunk_events": CHUNK, "n_samples": 2, "steps": 2}
    states: list[dict] = []
    real = journal.write_journal
    monkeypatch.setattr(
        journal, "write_journal", lambda o, st: (states.append(dict(st)), real(o, st))
    )
    n, cutflow = unfold_files([big_file], out, max_events=300, **kwargs)
    monkeypatch.setattr(journal, "write_journal", real)
    assert [st["entries_done"] for st in states] == [0, 100, 200, 300]
    real(out, states[-1])  # the last journal, as the kill leaves it
    assert unfold_files([big_file], out, max_events=300, resume=True, **kwargs) == (n, cutflow)
    assert not journal_path(out).exists()
