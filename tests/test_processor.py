"""The coffea processor with a real ``processor.Runner`` on tiny generated files."""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("coffea")

import cloudpickle
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from hepvld.io import open_events
from hepvld.observables import Observable, builtin, resolve_observables
from hepvld.processor import UnfoldingProcessor, clear_model_cache

S = 3
OBSERVABLES = ("t_had_pt", "t_had_mass", "ttbar_mass", "nu_eta")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tiny_root_file: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny model trained for a few steps on the tiny file (seconds)."""
    from hepvld.cli.train import main as train_main

    run = tmp_path_factory.mktemp("processor") / "run"
    rc = train_main(
        [
            str(tiny_root_file),
            "--run-dir",
            str(run),
            "--preset",
            "tiny",
            "--train.epochs",
            "1",
            "--train.batch-size",
            "64",
            "--train.warmup-steps",
            "5",
        ]
    )
    assert rc == 0
    return str(run)


@pytest.fixture(scope="module")
def mixed_root_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated events *without* the generator's selection: some fail the analysis cuts."""
    pytest.importorskip("pythia8mc")
    from hepvld.generate import generate

    path = tmp_path_factory.mktemp("processor") / "mixed.root"
    generate(path, 80, seed=3, mpi=False, count="generated", select=False, progress=False)
    return path


def make(checkpoint: str, **kwargs: Any) -> UnfoldingProcessor:
    observables = kwargs.pop("observables", OBSERVABLES)
    options = {"n_samples": S, "sampler": "ddim", "steps": 3, "seed": 4, **kwargs}
    return UnfoldingProcessor(checkpoint, observables, **options)


def run(
    proc: UnfoldingProcessor, files: list[Path], chunksize: int = 100_000, executor: Any = None
) -> dict[str, Any]:
    runner = processor.Runner(
        executor=executor or processor.IterativeExecutor(status=False),
        schema=NanoAODSchema,
        chunksize=chunksize,
    )
    with warnings.catch_warnings():
        # our files carry no NanoAOD cross-reference index branches (docs/schema.md)
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        return runner({"tt": [str(f) for f in files]}, proc, treename="Events")


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for dataset in a:
        assert a[dataset]["cutflow"].to_dict() == b[dataset]["cutflow"].to_dict()
        assert a[dataset]["truth_cutflow"].to_dict() == b[dataset]["truth_cutflow"].to_dict()
        for level in ("unfolded", "detector", "truth"):
            assert a[dataset][level].keys() == b[dataset][level].keys()
            for name, h in a[dataset][level].items():
                np.testing.assert_array_equal(
                    h.view(flow=True), b[dataset][level][name].view(flow=True)
                )


def test_runner_entries_and_cutflow(checkpoint: str, mixed_root_file: Path) -> None:
    out = run(make(checkpoint), [mixed_root_file])["tt"]
    n_events = len(open_events(mixed_root_file))
    cutflow = out["cutflow"]
    assert cutflow.total == n_events  # every input event is counted, failing ones included
    assert 0 < cutflow.passed < n_events
    for name in OBSERVABLES:
        h = out["unfolded"][name]
        assert h.axes.name == ("draw", name) and h.axes[0].size == S
        assert h.sum(flow=True).value == pytest.approx(cutflow.passed * S)  # genWeight = 1
        np.testing.assert_allclose(h.values(flow=True).sum(axis=1), cutflow.passed)  # per draw
        assert out["detector"][name].sum(flow=True).value == pytest.approx(cutflow.passed)
        valid = out["truth_cutflow"]["valid truth chain"]
        assert out["truth"][name].sum(flow=True).value == pytest.approx(valid)
    assert out["truth_cutflow"]["selected"] == cutflow.passed


def test_chunk_independence_and_merging(
    checkpoint: str, tiny_root_file: Path, mixed_root_file: Path
) -> None:
    proc = make(checkpoint)
    files = [tiny_root_file, mixed_root_file]
    whole = run(proc, files)
    assert_same(whole, run(proc, files, chunksize=47))
    first, second = run(proc, [tiny_root_file]), run(proc, [mixed_root_file])
    assert_same(whole, processor.accumulate([first, second]))
    a, b = first["tt"], second["tt"]
    h = a["unfolded"]["t_had_pt"] + b["unfolded"]["t_had_pt"]
    np.testing.assert_array_equal(
        h.view(flow=True), whole["tt"]["unfolded"]["t_had_pt"].view(flow=True)
    )
    assert (a["cutflow"] + b["cutflow"]).to_dict() == whole["tt"]["cutflow"].to_dict()


def test_empty_chunk(checkpoint: str, tiny_root_file: Path) -> None:
    proc = make(checkpoint)
    events = open_events(tiny_root_file)
    empty = proc.process(events[:0])["events"]
    assert empty["cutflow"].total == 0 and len(empty["cutflow"]) > 0
    for level in ("unfolded", "detector", "truth"):
        assert all(h.sum(flow=True).value == 0 for h in empty[level].values())
    full = proc.process(events)
    assert_same(processor.accumulate([full, {"events": empty}]), full)


def test_pickled_processor_holds_no_model(checkpoint: str, tiny_root_file: Path) -> None:
    clear_model_cache()
    proc = make(checkpoint)
    before = pickle.dumps(proc)
    proc.process(open_events(tiny_root_file)[:20])  # loads and caches the model
    after = pickle.dumps(proc)
    assert before == after and len(after) < 10_000
    for blob in (after, cloudpickle.dumps(proc)):
        assert b"torch." not in blob and b"Tensor" not in blob
    clone = pickle.loads(after)
    assert clone.checkpoint == proc.checkpoint and clone.observables == proc.observables


def _threads_probe(partons: Any) -> Any:
    """Observable recording the torch thread count seen inside ``process``."""
    import torch

    _threads_probe.seen = torch.get_num_threads()  # type: ignore[attr-defined]
    return partons.t_had.pt


def test_torch_threads_scoped(checkpoint: str, tiny_root_file: Path) -> None:
    import torch

    previous = torch.get_num_threads()
    probe = Observable("probe", _threads_probe, (10, 0.0, 500.0))
    make(checkpoint, observables=[probe], torch_threads=1).process(open_events(tiny_root_file)[:10])
    assert _threads_probe.seen == 1  # type: ignore[attr-defined]
    assert torch.get_num_threads() == previous


def test_user_observables_and_validation(checkpoint: str) -> None:
    def mtt_over_mthad(p: Any) -> Any:
        return p.ttbar.mass / p.t_had.mass

    obs = resolve_observables(
        ["t_lep_eta", Observable("ratio", mtt_over_mthad, [0.0, 2.0, 5.0, 10.0])],
        {"t_lep_eta": (4, -2.0, 2.0)},
    )
    assert [o.name for o in obs] == ["t_lep_eta", "ratio"] and obs[0].axis().size == 4
    assert builtin("ttbar_mass").edges[0] == 300.0
    with pytest.raises(ValueError, match="unknown observable"):
        builtin("top_pt")
    with pytest.raises(ValueError, match="identifier"):
        Observable("draw", mtt_over_mthad, (2, 0.0, 1.0))
    with pytest.raises(ValueError, match="sampler"):
        UnfoldingProcessor(checkpoint, sampler="euler")
    with pytest.raises(ValueError, match="binning given"):
        UnfoldingProcessor(checkpoint, ["t_had_pt"], binning={"t_lep_pt": (2, 0.0, 1.0)})


def test_futures_executor_matches_iterative(checkpoint: str, tiny_root_file: Path) -> None:
    proc = make(checkpoint)
    futures = run(
        proc,
        [tiny_root_file],
        chunksize=120,
        executor=processor.FuturesExecutor(workers=2, status=False),
    )
    assert_same(run(proc, [tiny_root_file]), futures)


def test_analysis_script_and_plot(checkpoint: str, tiny_root_file: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "coffea_unfolding", ROOT / "analysis" / "coffea_unfolding.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outdir = tmp_path / "plots"
    assert (
        module.main(
            [
                str(tiny_root_file),
                "--checkpoint",
                checkpoint,
                "-o",
                str(outdir),
                "--n-samples",
                "2",
                "--steps",
                "2",
                "--observables",
                "t_had_pt",
                "ttbar_mass",
                "--density",
            ]
        )
        == 0
    )
    assert (outdir / "t_had_pt.png").stat().st_size > 0 and (outdir / "ttbar_mass.png").exists()
    assert "all events" in (outdir / "cutflow.txt").read_text()

    from coffea.util import load
    from matplotlib.figure import Figure

    from hepvld.evaluation.coffea_plots import plot_unfolded, unfolded_summary

    output = load(str(outdir / "output.coffea"))
    fig, (ax, _rax) = plot_unfolded(output, "t_had_pt")
    assert isinstance(fig, Figure) and ax.get_legend() is not None
    s = unfolded_summary(output, "t_had_pt")
    assert np.all(s["low"] <= s["high"]) and s["mean"].shape == s["truth"].shape


@pytest.mark.slow
def test_dask_executor_matches_iterative(checkpoint: str, tiny_root_file: Path) -> None:
    """Same seed -> identical histograms on dask (LocalCluster, 2 worker processes, another
    chunk size) as on the iterative executor. Needs the ``dask`` extra."""
    pytest.importorskip("dask_awkward")
    distributed = pytest.importorskip("distributed")
    proc = make(checkpoint)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dask = run(
            proc,
            [tiny_root_file],
            chunksize=90,
            executor=processor.DaskExecutor(client=client, status=False),
        )
    assert_same(run(proc, [tiny_root_file]), dask)
