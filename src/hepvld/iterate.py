"""Iterative unfolding: update the training prior toward the unfolded data, fine-tune, repeat.

A generative unfolding samples ``p(truth | detector)`` *under the training prior*: where
the detector carries little information (a top mass against a ~15 GeV resolution) the
result stays near the simulation. The iteration (IcINN, arXiv 2212.08674; OmniFold's
step 2) moves the prior:

1. unfold the data with the current model: draws ``x_d`` (truth space);
2. unfold the simulation's own detector events with the same model (``reference =
   "unfolded-sim"``, the default) or take its truth (``reference = "truth"``); a small
   torch classifier separates the data draws from these reference draws (the simulation
   weighted by the current prior weights), on the flattened target (``features="raw"``)
   or on the monitored observables only (``"observables"``: fewer inputs, less noise);
   its density ratio ``r(x) = p_data / p_ref``,
   evaluated at each simulated event's *truth*, multiplies that event's weight
   (``w ← w · r^step_size``; the step's factor clipped to ``[1/weight_clip,
   weight_clip]``, the cumulative weight to ``[1/max_weight, max_weight]``: the
   classifier is trained on unfolded draws and evaluated at truth values, and it
   extrapolates in the truth's tails; then normalised to the same sum). With
   ``unfolded-sim`` a model's own smearing cancels in the ratio, so the nominal sample
   (data = simulation) stays put up to the classifier noise;
3. fine-tune the model on the reweighted simulation (the loss honours per-event
   weights), starting from the previous iteration's averaged weights.

Each iteration is a normal run directory ``run_dir/iter_<k>`` (checkpoint with the
weights' provenance in its metadata) and a row of ``run_dir/iterations.json``: the
classifier's validation loss, the weight distribution (mean, spread, max, effective
sample size) and the unfolded data's summary per monitored observable — the
convergence report.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "PARTON_OBSERVABLES",
    "IterateConfig",
    "IterationRecord",
    "density_ratio",
    "iterate",
    "main",
    "read_data_weights",
]

log = logging.getLogger(__name__)

Observable = Callable[[Any], Any]

#: Monitored parton-level observables: name -> fn(records) (records of shape (B, ...)).
PARTON_OBSERVABLES: dict[str, Observable] = {
    "t_had_mass": lambda r: r.t_had.mass,
    "t_lep_mass": lambda r: r.t_lep.mass,
    "W_had_mass": lambda r: r.W_had.mass,
    "t_had_pt": lambda r: r.t_had.pt,
    "t_lep_pt": lambda r: r.t_lep.pt,
    "ttbar_mass": lambda r: r.ttbar.mass,
}


@dataclass(frozen=True)
class IterateConfig:
    """Settings of :func:`iterate` (all documented in ``python -m hepvld.iterate --help``)."""

    iterations: int = 3
    n_samples: int = 4
    sampler: str = "dpmpp2m"
    steps: int = 20
    max_data_events: int | None = None
    max_reference_events: int | None = 8000
    reference: Literal["unfolded-sim", "truth"] = "unfolded-sim"
    features: Literal["raw", "observables"] = "raw"
    step_size: float = 1.0
    weight_clip: float = 20.0
    max_weight: float | None = 10.0
    classifier_hidden: int = 64
    classifier_epochs: int = 8
    classifier_lr: float = 2e-3
    finetune_steps: int = 300
    finetune_lr: float = 1e-4
    batch_size: int = 1024
    seed: int = 0
    num_threads: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "iterations": self.iterations >= 1,
            "n_samples": self.n_samples >= 1,
            "steps": self.steps >= 1,
            "reference": self.reference in ("unfolded-sim", "truth"),
            "features": self.features in ("raw", "observables"),
            "step_size": self.step_size > 0 and math.isfinite(self.step_size),
            "weight_clip": self.weight_clip > 1,
            "max_weight": self.max_weight is None or self.max_weight > 1,
            "classifier_epochs": self.classifier_epochs >= 1,
            "finetune_steps": self.finetune_steps >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"IterateConfig: invalid {bad} ({self})")


@dataclass
class IterationRecord:
    """One row of the convergence report (iteration 0: the starting model).

    ``observables``: weighted median and mean of the unfolded data with model ``k``;
    ``prior``: the same for the simulation's truth under the prior weights model ``k``
    was trained on, whose distribution is ``weights``; ``classifier_val_loss``: the
    reweighting classifier of the update *after* model ``k`` (None in the last row).
    """

    iteration: int
    checkpoint: str
    observables: dict[str, dict[str, float]] = field(default_factory=dict)
    prior: dict[str, dict[str, float]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    classifier_val_loss: float | None = None
    seconds: float = 0.0


# -- the density ratio ----------------------------------------------------------------
def _features(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(..., K, H)`` physical values -> ``(M, K*H)`` flat rows with padded slots at 0."""
    v = np.where(mask[..., None], values, 0.0)
    return v.reshape(-1, int(np.prod(v.shape[-2:]))).astype(np.float32)


def _observable_features(
    level: Any, values: np.ndarray, mask: np.ndarray, observables: Mapping[str, Observable]
) -> np.ndarray:
    """``(..., K, H)`` -> ``(M, n_observables)``: the monitored observables as columns."""
    import awkward as ak

    rec = level.to_records(values, mask)
    cols = [np.asarray(ak.to_numpy(fn(rec)), np.float64).ravel() for fn in observables.values()]
    return np.nan_to_num(np.stack(cols, 1)).astype(np.float32)


def density_ratio(
    num: np.ndarray,
    den: np.ndarray,
    at: np.ndarray,
    *,
    num_weights: np.ndarray | None = None,
    den_weights: np.ndarray | None = None,
    hidden: int = 64,
    epochs: int = 8,
    lr: float = 2e-3,
    batch_size: int = 1024,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """``p_num(x) / p_den(x)`` at the rows of ``at`` from a weighted torch classifier.

    Parameters
    ----------
    num : (A, F), den : (B, F)
        Samples of the two densities (class 1 and class 0); each class is normalised to
        a total weight of 1, so the ratio is of normalised densities.
    at : (C, F)
        Where to evaluate the ratio.
    num_weights : (A,), den_weights : (B,)
        Sample weights (default 1).

    Returns
    -------
    (ratio (C,), validation loss)
        The validation loss is the weighted binary cross-entropy on a held-out fifth
        (``log 2 = 0.693`` means the classes are indistinguishable).
    """
    import torch
    from torch import nn

    gen = np.random.default_rng(seed)
    x = np.concatenate([num, den]).astype(np.float32)
    y = np.concatenate([np.ones(len(num)), np.zeros(len(den))]).astype(np.float32)
    wn = np.ones(len(num)) if num_weights is None else np.asarray(num_weights, np.float64)
    wd = np.ones(len(den)) if den_weights is None else np.asarray(den_weights, np.float64)
    w = np.concatenate([wn / wn.sum(), wd / wd.sum()]) * len(x) / 2
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    x = (x - mu) / sd
    order = gen.permutation(len(x))
    n_val = len(x) // 5
    val, tr = order[:n_val], order[n_val:]
    torch.manual_seed(seed)  # inside the caller's fork_rng
    net = nn.Sequential(
        nn.Linear(x.shape[1], hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt, wt = (torch.as_tensor(a, dtype=torch.float32) for a in (x, y, w))

    def bce(idx: Any) -> Any:
        logit = net(xt[idx]).squeeze(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logit, yt[idx], reduction="none")
        return (loss * wt[idx]).sum() / wt[idx].sum()

    for _ in range(epochs):
        perm = tr[gen.permutation(len(tr))]
        for i in range(0, len(perm), batch_size):
            opt.zero_grad()
            bce(torch.as_tensor(perm[i : i + batch_size])).backward()
            opt.step()
    with torch.no_grad():
        val_loss = float(bce(torch.as_tensor(val))) if n_val else float("nan")
        z = torch.as_tensor((at.astype(np.float32) - mu) / sd)
        logit = net(z).squeeze(-1).double().numpy()
    return np.exp(np.clip(logit, -20, 20)), val_loss


# -- data weights -----------------------------------------------------------------------
def read_data_weights(path: str | Path, events: np.ndarray) -> np.ndarray:
    """Per-event data weights ``(B,)`` for the event numbers ``events (B,)`` from an NPZ.

    The file holds ``event (M,)`` (event numbers) and ``weight (M,)`` (finite, >= 0);
    each of ``events`` must be in it (a reweighted pseudo-data sample, e.g. the top-pT
    reweighting of ``analysis/prior_shift.py --write-top-pt-weights``). Raises
    ``ValueError`` naming the file and what is wrong.
    """
    with np.load(path) as f:
        missing = [k for k in ("event", "weight") if k not in f.files]
        if missing:
            raise ValueError(f"data weights {path}: no array {missing} (has {f.files})")
        ev = np.asarray(f["event"]).astype(np.int64).ravel()
        w = np.asarray(f["weight"], np.float64).ravel()
    if ev.shape != w.shape:
        raise ValueError(f"data weights {path}: event {ev.shape} and weight {w.shape} differ")
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"data weights {path}: weights must be finite and >= 0")
    order = np.argsort(ev, kind="stable")
    ev, w = ev[order], w[order]
    want = np.asarray(events).astype(np.int64)
    pos = np.clip(np.searchsorted(ev, want), 0, max(len(ev) - 1, 0))
    found = (pos < len(ev)) & (ev[pos] == want) if len(ev) else np.zeros(len(want), bool)
    if not found.all():
        bad = want[~found][:5].tolist()
        raise ValueError(
            f"data weights {path}: {int((~found).sum())} data events have no weight "
            f"(event numbers {bad}...)"
        )
    return w[pos]


# -- helpers ----------------------------------------------------------------------------
def _draws(net: Any, tensors: Any, cfg: IterateConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Physical posterior draws ``values (B, S, K, H)``, ``mask (B, S, K)`` of ``tensors``
    (:class:`hepvld.data.EventTensors`, physical detector inputs); noise keyed per event."""
    import torch

    from hepvld.api import event_noise, sampler_spec

    spec = sampler_spec(cfg.sampler, cfg.steps)
    out_v, out_m = [], []
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    bs = 512
    for lo in range(0, len(tensors), bs):
        sl = slice(lo, lo + bs)
        noise = event_noise(seed, tensors.event[sl], (cfg.n_samples, *net.noise_shape))
        with torch.no_grad():
            d = net.unfold(
                torch.as_tensor(tensors.objects[sl]),
                torch.as_tensor(tensors.mask[sl]),
                torch.as_tensor(tensors.globals[sl]),
                n_samples=cfg.n_samples,
                sampler=spec,
                generator=gen,
                noise=noise,
            )
        out_v.append(d.values.float().numpy())
        out_m.append(d.mask.numpy())
    return np.concatenate(out_v), np.concatenate(out_m)


def _summary(
    level: Any,
    values: np.ndarray,
    mask: np.ndarray,
    observables: Mapping[str, Observable],
    weights: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Weighted median and mean of each observable over events (and draws)."""
    import awkward as ak

    if not observables:
        return {}
    rec = level.to_records(values, mask)
    out = {}
    for name, fn in observables.items():
        x = np.asarray(ak.to_numpy(fn(rec)), np.float64)
        w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
        w = np.broadcast_to(w.reshape(-1, *([1] * (x.ndim - 1))), x.shape).ravel()
        x = x.ravel()
        ok = np.isfinite(x)
        x, w = x[ok], w[ok]
        order = np.argsort(x)
        cw = np.cumsum(w[order])
        median = float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])
        out[name] = {"median": median, "mean": float(np.average(x, weights=w))}
    return out


def _arrays(tensors: Any, meta: Mapping[str, Any], level: Any, weights: np.ndarray) -> dict:
    """Model-input arrays (preprocessed with the checkpoint's states) with ``weights``."""
    from hepvld.features import DetectorPreprocessor

    det = DetectorPreprocessor.from_state_dict(meta["detector_preprocessor"])
    tgt = level.preprocessing(meta["target_preprocessor"])
    objects, globals_ = det.transform(tensors.objects, tensors.mask, tensors.globals)
    return {
        "objects": np.asarray(objects, np.float32),
        "mask": tensors.mask,
        "globals": np.asarray(globals_, np.float32),
        "targets": np.asarray(tgt.transform(tensors.targets, tensors.target_mask), np.float32),
        "target_mask": tensors.target_mask,
        "weights": np.asarray(weights, np.float32),
    }


def _weight_stats(w: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(w.mean()),
        "std": float(w.std()),
        "min": float(w.min()),
        "max": float(w.max()),
        "ess_fraction": float(w.sum() ** 2 / (w**2).sum() / len(w)),
    }


# -- the loop ---------------------------------------------------------------------------
def iterate(
    sim_files: Sequence[str | Path],
    data_files: Sequence[str | Path],
    checkpoint: str | Path,
    run_dir: str | Path,
    config: IterateConfig | None = None,
    *,
    observables: Mapping[str, Observable] | None = None,
    tree: str = "Events",
    data_weights: np.ndarray | str | Path | None = None,
) -> list[IterationRecord]:
    """Run the iteration; returns the convergence report (also ``iterations.json``).

    Parameters
    ----------
    sim_files
        The simulation the model was trained on (its train/validation split is reused).
    data_files
        The data to unfold (truth, if present, is ignored).
    checkpoint
        The starting model (iteration 0).
    run_dir
        Output: ``iter_<k>/`` run directories, ``iterations.json``, ``weights.npz``
        (the final per-event prior weights of the simulation's training split).
    observables
        Monitored observables (default: :data:`PARTON_OBSERVABLES` at parton level).
    data_weights : (B,) array or NPZ path, optional
        Per-event weights of the selected data events (a reweighted pseudo-data
        sample): an array in the order the events are read, or a file of
        :func:`read_data_weights` (matched by event number). They weight the data draws
        in the classifier and in the unfolded summary (default: 1).
    """
    import torch

    from hepvld.api import load
    from hepvld.config import TrainConfig
    from hepvld.data import SPLIT, load_tensors, split_by_event
    from hepvld.training import train
    from hepvld.training.loop import _torch_threads

    cfg = config or IterateConfig()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    um = load(checkpoint)
    level = um.level
    meta = {k: v for k, v in um.meta.items() if k != "step"}
    if observables is None:
        observables = PARTON_OBSERVABLES if level.name == "parton" else {}
    sim = load_tensors([str(f) for f in sim_files], max_jets=um.max_jets, tree=tree, level=level)
    sim_train, sim_val, _ = split_by_event(sim, meta.get("split", SPLIT))
    data = load_tensors(
        [str(f) for f in data_files],
        max_jets=um.max_jets,
        require_truth=False,
        tree=tree,
        entry_stop=cfg.max_data_events,
        level=level,
    )
    if len(data) == 0 or len(sim_train) == 0:
        raise ValueError(f"no selected events: data {len(data)}, simulation {len(sim_train)}")
    w_data = None
    if isinstance(data_weights, (str, Path)):
        w_data = read_data_weights(data_weights, data.event)
    elif data_weights is not None:
        w_data = np.asarray(data_weights, np.float64).ravel()
    if w_data is not None and (
        w_data.shape != (len(data),) or not np.isfinite(w_data).all() or w_data.sum() <= 0
    ):
        raise ValueError(
            f"data_weights: need {len(data)} finite weights with a positive sum "
            f"(one per selected data event), got shape {w_data.shape}"
        )
    for part in (sim_train, sim_val):
        assert part.targets is not None and part.target_mask is not None
    st_x, st_m = sim_train.targets, sim_train.target_mask
    sv_x, sv_m = sim_val.targets, sim_val.target_mask
    assert st_x is not None and st_m is not None and sv_x is not None and sv_m is not None
    ref = sim_val
    if cfg.max_reference_events is not None and len(ref) > cfg.max_reference_events:
        ref = ref.subset(np.arange(cfg.max_reference_events))
    log.info(
        "iterate: %d data events, simulation %d train / %d validation, reference %s (%d events)",
        len(data),
        len(sim_train),
        len(sim_val),
        cfg.reference,
        len(ref),
    )
    w_train = np.asarray(sim_train.weights, np.float64).copy()
    w_val = np.asarray(sim_val.weights, np.float64).copy()
    w_ref = w_val[: len(ref)]
    base_w_train, base_w_val = w_train.copy(), w_val.copy()
    records: list[IterationRecord] = []
    net = um.model
    ckpt_path = str(checkpoint)
    report = run_dir / "iterations.json"

    def write_report() -> None:
        report.write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n")

    if cfg.features == "observables" and not observables:
        raise ValueError("features='observables' needs observables (none for this level)")

    def feats(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if cfg.features == "observables":
            return _observable_features(level, values, mask, observables or {})
        return _features(values, mask)

    threads = _torch_threads(cfg.num_threads) if cfg.num_threads else None
    with torch.random.fork_rng(devices=[]):
        if threads is not None:
            threads.__enter__()
        try:
            for it in range(cfg.iterations + 1):
                t0 = time.perf_counter()
                dv, dm = _draws(net, data, cfg, cfg.seed)
                rec = IterationRecord(
                    it,
                    ckpt_path,
                    observables=_summary(level, dv, dm, observables, w_data),
                    prior=_summary(level, st_x, st_m, observables, w_train),
                    weights=_weight_stats(w_train / base_w_train),
                )
                if it == cfg.iterations:
                    rec.seconds = time.perf_counter() - t0
                    records.append(rec)
                    write_report()
                    break
                # step 2: density ratio data draws / reference, at the simulated truth
                if cfg.reference == "unfolded-sim":
                    rv, rm = _draws(net, ref, cfg, cfg.seed + 1)
                    ref_x = feats(rv, rm)
                    ref_w = np.repeat(w_ref, cfg.n_samples)
                else:
                    ref_x = feats(sv_x[: len(ref)], sv_m[: len(ref)])
                    ref_w = w_ref
                at = np.concatenate(
                    [
                        feats(st_x, st_m),
                        feats(sv_x, sv_m),
                    ]
                )
                ratio, val_loss = density_ratio(
                    feats(dv, dm),
                    ref_x,
                    at,
                    num_weights=None if w_data is None else np.repeat(w_data, cfg.n_samples),
                    den_weights=ref_w,
                    hidden=cfg.classifier_hidden,
                    epochs=cfg.classifier_epochs,
                    lr=cfg.classifier_lr,
                    batch_size=cfg.batch_size,
                    seed=cfg.seed + 17 * it,
                )
                r = np.clip(ratio**cfg.step_size, 1 / cfg.weight_clip, cfg.weight_clip)
                n_tr = len(w_train)
                new_train, new_val = w_train * r[:n_tr], w_val * r[n_tr:]
                if cfg.max_weight is not None:  # the cumulative weight, not only this step's
                    lo, hi = 1 / cfg.max_weight, cfg.max_weight
                    new_train = base_w_train * np.clip(new_train / base_w_train, lo, hi)
                    new_val = base_w_val * np.clip(new_val / base_w_val, lo, hi)
                w_train = new_train * w_train.sum() / new_train.sum()
                w_val = new_val * w_val.sum() / new_val.sum()
                w_ref = w_val[: len(ref)]
                rec.classifier_val_loss = val_loss
                new = _weight_stats(w_train / base_w_train)
                # step 3: fine-tune on the reweighted simulation
                sub = run_dir / f"iter_{it + 1}"
                if cfg.finetune_steps > 0:
                    tcfg = TrainConfig(
                        lr=cfg.finetune_lr,
                        min_lr=cfg.finetune_lr / 10,
                        warmup_steps=min(50, cfg.finetune_steps // 5),
                        max_steps=cfg.finetune_steps,
                        batch_size=cfg.batch_size,
                        ema_decay=0.99,
                        val_every=cfg.finetune_steps,
                        checkpoint_every=cfg.finetune_steps,
                        seed=cfg.seed + it + 1,
                        device="cpu",
                        num_threads=cfg.num_threads,
                    )
                    extra = {
                        **meta,
                        "iteration": {
                            "iteration": it + 1,
                            "start": ckpt_path,
                            "data": [str(f) for f in data_files],
                            "data_weights": (
                                str(data_weights)
                                if isinstance(data_weights, (str, Path))
                                else ("array" if data_weights is not None else None)
                            ),
                            "reference": cfg.reference,
                            "step_size": cfg.step_size,
                        },
                    }
                    net.train()
                    train(
                        net,
                        _arrays(sim_train, meta, level, w_train),
                        _arrays(sim_val, meta, level, w_val),
                        tcfg,
                        sub,
                        extra_state=extra,
                    )
                    um = load(sub)
                    net = um.model
                    ckpt_path = str(sub)
                rec.seconds = time.perf_counter() - t0
                records.append(rec)
                write_report()
                np.savez(
                    run_dir / "weights.npz",
                    event=sim_train.event,
                    weight=w_train / base_w_train,
                    val_event=sim_val.event,
                    val_weight=w_val / base_w_val,
                )
                log.info(
                    "iteration %d: classifier val loss %.4f (log 2 = 0.6931), weights "
                    "std %.3f max %.2f; unfolded %s",
                    it + 1,
                    val_loss,
                    new["std"],
                    new["max"],
                    {k: round(v["median"], 3) for k, v in rec.observables.items()},
                )
        finally:
            if threads is not None:
                threads.__exit__(None, None, None)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld iterate`` (:func:`hepvld.cli.iterate.main`) for ``python -m hepvld.iterate``."""
    from hepvld.cli.iterate import main as cli_main

    return cli_main(argv, prog="python -m hepvld.iterate")


if __name__ == "__main__":
    sys.exit(main())
