"""Does a short training run use the detector? The probe behind docs/models.md's table.

    python benchmarks/probe_conditioning.py events.root --model vld --steps 1200 \
        --override '{"gamma_min": -4, "latent_gradient": 0}'

Trains one model with the `small` preset (batch 256, lr 1e-3, 100 warm-up steps, one CPU
thread), then draws ``--draws`` posterior samples for up to 600 validation events
(DPM-Solver++, 50 steps) and prints one line:

* ``corr``: Pearson correlation of the posterior mean with the truth for ν px, ℓ px,
  b_had px and W_lep px (≈ 0 for a model that ignores the detector);
* ``lepton skill``: CRPS of the draws / CRPS of random training truths, lepton components
  (< 1: better than a no-information guess);
* ``sum W1`` of one draw per event vs the truth, in physical units, beside the floor
  (as many training truths vs the same truth);
* the medians of the regressed W_had mass and of the mass of the summed q + q' leaves
  (``hepvld.evaluation.consistency``; signed, negative where m² < 0);
* for the VLD family: spread across events of ``z_y`` and of the (standardised) latent.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from hepvld.cli._common import Parser
from hepvld.evaluation.consistency import composite_masses, regressed_masses
from hepvld.physics import COMPONENTS, target_index

#: Components whose posterior mean is correlated with the truth.
CORRELATED = ("nu", "lep", "b_had", "W_lep")
#: The lepton's five components, for the CRPS skill.
LEPTON = [target_index("lep", c) for c in COMPONENTS]


def crps(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-component CRPS of ``draws (n, S, X)`` against ``truth (n, X)``, averaged over events."""
    spread = np.abs(draws[:, :, None] - draws[:, None, :]).mean((1, 2))
    return (np.abs(draws - truth[:, None]).mean(1) - 0.5 * spread).mean(0)


def main() -> None:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--model", default="vld")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--override", default="{}", help="JSON dict of ModelConfig overrides")
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from hepvld.config import TrainConfig
    from hepvld.data import prepare_data
    from hepvld.diffusion import SamplerSpec
    from hepvld.features import TargetPreprocessor
    from hepvld.models import build_model, model_config
    from hepvld.training import train
    from hepvld.training.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    overrides = json.loads(args.override)
    tr, va, prep = prepare_data([args.file], max_jets=20)
    tp = TargetPreprocessor.from_state_dict(prep["target_preprocessor"])
    flat = {k: v.reshape(len(v), -1) for k, v in (("tr", tr["targets"]), ("va", va["targets"]))}
    torch.manual_seed(args.seed)
    model = build_model(
        args.model,
        model_config("small", **overrides),
        object_features=tr["objects"].shape[-1],
        global_features=tr["globals"].shape[-1],
        target_shift=torch.tensor(tp.mean, dtype=torch.float32),
        target_scale=torch.tensor(tp.scale, dtype=torch.float32),
    )
    config = TrainConfig(
        lr=1e-3,
        batch_size=256,
        warmup_steps=100,
        max_steps=args.steps,
        device="cpu",
        num_threads=1,
        val_every=500,
        checkpoint_every=10**9,
        log_every=100,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as run:
        t0 = time.perf_counter()
        train(model, tr, va, config, run)
        seconds = time.perf_counter() - t0
        ckpt = load_checkpoint(Path(run))
        model.load_state_dict(ckpt.ema_state if ckpt.ema_state is not None else ckpt.model_state)
    model.eval()

    n = min(600, len(flat["va"]))
    batch = {k: torch.as_tensor(v[:n]) for k, v in va.items()}
    with torch.no_grad():
        draws = (
            model.sample(
                batch["objects"],
                batch["mask"],
                batch["globals"],
                n_samples=args.draws,
                sampler=SamplerSpec("dpmpp2m", 50),
                generator=torch.Generator().manual_seed(1),
            )
            .values.flatten(2)
            .numpy()
        )
        z_y = model.condition(batch["objects"], batch["mask"], batch["globals"]).event
        extra = f"z_y spread {z_y.std(0).mean():.3f}"
        if hasattr(model, "standardise"):
            mean, _ = model.encode(batch["targets"].flatten(1), z_y)
            extra += f", latent spread {model.standardise(mean).std(0).mean():.3f}"
    truth = flat["va"][:n]
    posterior_mean = draws.mean(1)
    corr = " / ".join(
        f"{name} px {np.corrcoef(posterior_mean[:, i], truth[:, i])[0, 1]:.2f}"
        for name, i in ((name, target_index(name, "px")) for name in CORRELATED)
    )
    prior = flat["tr"][np.random.default_rng(0).integers(0, len(flat["tr"]), (n, args.draws))]
    skill = (
        crps(draws[:, :, LEPTON], truth[:, LEPTON]) / crps(prior[:, :, LEPTON], truth[:, LEPTON])
    ).mean()
    phys, true_phys, floor_phys = (
        tp.inverse_transform(a) for a in (draws[:, 0], truth, flat["tr"][:n])
    )
    w1 = sum(
        scipy.stats.wasserstein_distance(phys[:, i], true_phys[:, i]) for i in range(phys.shape[1])
    )
    floor = sum(
        scipy.stats.wasserstein_distance(floor_phys[:, i], true_phys[:, i])
        for i in range(phys.shape[1])
    )
    print(
        f"{args.model} {overrides}: {args.steps} steps in {seconds:.0f} s, {n} validation events x {args.draws}\n"
        f"  corr {corr}\n  lepton skill {skill:.2f}, sum W1 {w1:.0f} (floor {floor:.0f})\n"
        f"  W_had mass median: regressed {np.median(regressed_masses(phys)['W_had']):.1f}, "
        f"q+q' {np.median(composite_masses(phys)['W_had']):.1f} "
        f"(truth {np.median(composite_masses(true_phys)['W_had']):.1f}) GeV\n  {extra}"
    )


if __name__ == "__main__":
    main()
