"""Sampling throughput vs draws per call, up to the memory limit (GPU or CPU).

    python benchmarks/bench_sample_memory.py --preset paper --device cuda --steps 20

``model.sample`` of a freshly initialised VLD (cost does not depend on the weights) with
``dpmpp2m`` at ``--steps`` NFE and ``S = --samples`` draws per event, for calls of
``rows = events x S`` draws doubling from ``--min-rows`` until ``--max-rows`` or until
the device runs out of memory. Prints event-draws/s and the peak memory of each call.
"""

from __future__ import annotations

import time

import torch
from _inputs import build, detector_batch

from hepvld.cli._common import Parser
from hepvld.diffusion import SamplerSpec


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--min-rows", type=int, default=1 << 12)
    p.add_argument("--max-rows", type=int, default=1 << 24)
    p.add_argument("--bf16", action="store_true", help="autocast bf16")
    args = p.parse_args()
    dev = torch.device(args.device)
    model = build(args.preset, device=dev).eval()
    print(f"preset={args.preset} device={dev} NFE={args.steps} S={args.samples} bf16={args.bf16}")
    print("| draws per call | events | s | event-draws/s | peak memory [MiB] |")
    print("|---:|---:|---:|---:|---:|")
    rows = args.min_rows
    while rows <= args.max_rows:
        events = max(1, rows // args.samples)
        batch = detector_batch(events, device=dev)
        try:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            for _ in range(2):  # warm-up, then timed
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                with (
                    torch.inference_mode(),
                    torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16),
                ):
                    model.sample(
                        batch["objects"],
                        batch["mask"],
                        batch["globals"],
                        n_samples=args.samples,
                        sampler=SamplerSpec("dpmpp2m", steps=args.steps),
                    )
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                seconds = time.perf_counter() - t0
        except torch.OutOfMemoryError:
            print(f"| {events * args.samples} | {events} | out of memory | | |")
            break
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")
        draws = events * args.samples
        print(f"| {draws} | {events} | {seconds:.3f} | {draws / seconds:.0f} | {peak:.0f} |")
        del batch
        rows *= 2


if __name__ == "__main__":
    main()
