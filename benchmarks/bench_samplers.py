"""Sampler throughput (event-draws/s) with an untrained denoiser of the VLD paper's size.

    python benchmarks/bench_samplers.py --batch-size 1024 --steps 10 20 50 100 1000

The denoiser is the paper's (10 gated blocks, width 96, latent 96, 32-dim time encoding,
96-dim detector condition z_y), randomly initialised: sampling cost does not depend on the
weights. Each (sampler, steps) runs once after a short warm-up under
``torch.inference_mode``; a row reports the wall time, the number of denoiser calls (NFE),
ms per call and event-draws per second (batch size / wall time). The learned schedule
is used throughout, as in ``VLD.sample``.
"""

from __future__ import annotations

import json
import time

import torch

from hepvld.cli._common import Parser
from hepvld.diffusion import SAMPLERS, LearnedSchedule
from hepvld.nn import GatedMLP, SinusoidalEmbedding


def _nfe(name: str, steps: int) -> int:
    if name == "pndm":
        return 4 * steps if steps <= 3 else steps + 9
    return steps


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=1024, help="event-draws per call")
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100, 1000])
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    p.add_argument("--dim", type=int, default=96)
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    dim, time_dim = args.dim, 32
    embedding = SinusoidalEmbedding(time_dim).to(dev)
    denoiser = GatedMLP(dim + time_dim + dim, dim, dim, args.blocks, expansion=2).to(dev).eval()
    schedule = LearnedSchedule().to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    b = args.batch_size
    z_y = torch.randn(b, dim, generator=gen, device=dev)
    noise = torch.randn(b, dim, generator=gen, device=dev)

    def eps_fn(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return denoiser(torch.cat([z_t, embedding(t), z_y], dim=-1))

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    rows = []
    print(f"device={dev} threads={torch.get_num_threads()} batch={b} denoiser={args.blocks}x{dim}")
    print(f"{'sampler':>8} {'steps':>5} {'NFE':>5} {'wall [s]':>9} {'ms/NFE':>7} {'draws/s':>10}")
    with torch.inference_mode():
        for name in args.samplers:
            sampler = SAMPLERS[name]
            sampler(eps_fn, schedule.gamma, noise, steps=5, generator=gen)  # warm-up
            for steps in args.steps:
                sync()
                start = time.perf_counter()
                out = sampler(eps_fn, schedule.gamma, noise, steps=steps, generator=gen)
                sync()
                wall = time.perf_counter() - start
                assert torch.isfinite(out).all()
                nfe = _nfe(name, steps)
                row = {
                    "sampler": name,
                    "steps": steps,
                    "nfe": nfe,
                    "wall_s": wall,
                    "ms_per_nfe": 1e3 * wall / nfe,
                    "draws_per_s": b / wall,
                }
                rows.append(row)
                print(
                    f"{name:>8} {steps:5d} {nfe:5d} {wall:9.3f} {row['ms_per_nfe']:7.2f} "
                    f"{row['draws_per_s']:10.1f}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(dev), "batch_size": b, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
