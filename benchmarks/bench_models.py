"""Sampling throughput (event-draws/s) of every registered model through ``model.sample``.

    python benchmarks/bench_models.py --preset paper --events 128 --draws 8 --steps 10 20 50 100

Each model is randomly initialised (sampling cost does not depend on the weights) and
sampled on random detector events with 21 object slots (lepton + up to 20 jets, 5 to 10
real). A call draws ``events x draws`` event-draws: the detector encoder runs once per
event, then the diffusion models (VLD family, LDM, VDM) run their denoiser ``steps`` times
(``dpmpp2m``: one network evaluation per step) and decode, while CVAE and CINN need one
decoder / one inverse flow pass whatever ``steps`` is. Each (model, steps) is timed as the
best of ``--repeats`` calls after a warm-up, under ``torch.inference_mode``. The last
column is how many times faster CINN is than the model at that step count.
"""

from __future__ import annotations

import json
import time

import torch

from hepvld.cli._common import Parser
from hepvld.diffusion import SamplerSpec
from hepvld.models import MODELS, build_model, model_config

N_OBJECTS, N_FEATURES, N_GLOBALS = 21, 12, 2


def _inputs(events: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    objects = torch.randn(events, N_OBJECTS, N_FEATURES, generator=gen)
    n_real = torch.randint(5, 11, (events, 1), generator=gen)
    mask = torch.arange(N_OBJECTS) < n_real
    return objects, mask, torch.randn(events, N_GLOBALS, generator=gen)


def _time(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    p.add_argument("--preset", default="paper")
    p.add_argument("--events", type=int, default=128)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--sampler", default="dpmpp2m")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    objects, mask, globals_ = _inputs(args.events, gen)
    n_draws = args.events * args.draws
    rows = []
    for name in args.models:
        torch.manual_seed(0)  # benchmark script: deterministic initial weights
        model = build_model(
            name,
            model_config(args.preset),
            object_features=N_FEATURES,
            global_features=N_GLOBALS,
        ).eval()

        def run(steps: int, model: torch.nn.Module = model) -> None:
            with torch.inference_mode():
                model.sample(
                    objects,
                    mask,
                    globals_,
                    n_samples=args.draws,
                    sampler=SamplerSpec(args.sampler, steps),
                    generator=torch.Generator().manual_seed(1),
                )

        run(2)  # warm-up
        for steps in args.steps:
            seconds = _time(lambda steps=steps: run(steps), args.repeats)
            rows.append(
                {
                    "model": name,
                    "steps": steps,
                    "seconds": seconds,
                    "draws_per_s": n_draws / seconds,
                }
            )
    cinn = {r["steps"]: r["draws_per_s"] for r in rows if r["model"] == "cinn"}
    print(
        f"preset {args.preset}, {args.events} events x {args.draws} draws, sampler {args.sampler}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'model':>7} {'steps':>5} {'seconds':>8} {'draws/s':>10} {'CINN x':>7}")
    for r in rows:
        ratio = cinn.get(r["steps"], float("nan")) / r["draws_per_s"]
        r["cinn_speedup"] = ratio
        print(
            f"{r['model']:>7} {r['steps']:>5} {r['seconds']:>8.3f} {r['draws_per_s']:>10.0f} {ratio:>7.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
