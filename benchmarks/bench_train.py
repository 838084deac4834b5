"""Training throughput (events/s) and peak memory of a VLD model on synthetic batches.

    python benchmarks/bench_train.py --preset paper --batch-size 1024 --steps 10

Runs forward + backward + AdamW step on random detector/target tensors of the real shapes
(21 objects x 12 features, 2 globals, 55 targets), so it measures the model alone, not
the reader. Prints the median over the timed steps (after warm-up) and the peak resident
memory of the process (CPU) or the peak allocated memory (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from hepvld.models import build_model, model_config
from hepvld.physics import TARGET_DIM


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--model", default="vld")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    cfg = model_config(args.preset)
    model = build_model(
        args.model,
        cfg,
        object_features=12,
        global_features=2,
        target_shift=torch.zeros(TARGET_DIM),
        target_scale=torch.ones(TARGET_DIM) * 50,
    ).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b = args.batch_size
    mask = torch.ones(b, 21, dtype=torch.bool, device=dev)
    mask[:, 7:] = torch.rand(b, 14, generator=gen, device=dev) < 0.2
    batch = {
        "objects": torch.randn(b, 21, 12, generator=gen, device=dev),
        "mask": mask,
        "globals": torch.randn(b, 2, generator=gen, device=dev),
        "targets": torch.randn(b, TARGET_DIM, generator=gen, device=dev).unflatten(-1, (11, 5)),
        "weights": torch.ones(b, device=dev),
    }
    n_params = sum(p.numel() for p in model.parameters())
    times = []
    for step in range(args.warmup + args.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model.loss(batch, generator=gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        where = "CUDA peak allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        where = "peak RSS"
    print(
        f"model={args.model} preset={args.preset} params={n_params / 1e6:.2f}M batch={b} "
        f"device={args.device} threads={torch.get_num_threads()}"
    )
    print(
        f"median step {med * 1e3:.0f} ms -> {b / med:.0f} events/s ({len(times)} steps); {where} {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
