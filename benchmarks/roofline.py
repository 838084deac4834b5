"""Where the time goes: FLOPs, achieved GFLOP/s and fraction of the GEMM peak per component.

    python benchmarks/roofline.py --presets paper small tiny --batch-size 1024 --threads 1

For each preset, on one batch of ``B`` events with realistic detector multiplicities
(``benchmarks/_inputs.py``): the matrix FLOPs per event counted by
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention; element-wise work is
not counted) and the median wall time of

* ``encoder``: the detector encoder forward (packed, the default) and ``encoder (padded)``,
  the same function computed over all 21 slots as before the packing;
* ``eps``: one call of the ε-network (one NFE of the sampler);
* ``decoder``: the VAE decoder forward;
* ``train step``: ``model.loss`` + backward + gradient clipping + AdamW step.

The limit is ``torch.mm`` measured in the same run at the same thread count, at the
component's dominant matmul shape (``mm@shape``, e.g. ``T x D @ D x 3D`` for the encoder,
``T`` the real tokens of the batch) and at a large square shape (``mm 2048^3``). The
fractions printed are achieved GFLOP/s over these rates.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _inputs import build, detector_batch, gemm_rate
from torch.utils.flop_counter import FlopCounterMode

from hepvld.cli._common import Parser


def flops_of(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rows_for(preset: str, args: argparse.Namespace, square: float) -> list[tuple]:
    model = build(preset)
    cfg = model.config
    batch = detector_batch(args.batch_size, file=args.multiplicity_file)
    b = args.batch_size
    objects, mask, globals_ = batch["objects"], batch["mask"], batch["globals"]
    enc = model.detector_encoder
    tokens = int(mask.sum()) + 2 * b  # real objects + event and global tokens
    with torch.no_grad():
        z_y = model.condition(objects, mask, globals_).event
    z_t = torch.randn(b, cfg.latent_dim)
    t = torch.rand(b)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)

    def encoder() -> None:
        with torch.no_grad():
            model.condition(objects, mask, globals_)

    def encoder_padded() -> None:
        enc.packed = False
        try:
            encoder()
        finally:
            enc.packed = True

    def eps() -> None:
        with torch.no_grad():
            model.diffusion.eps(z_t, t, z_y)

    def decoder() -> None:
        with torch.no_grad():
            model.decode(z_t, z_y)

    def train_step() -> None:
        loss = model.loss(batch, generator=gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    d, kd = cfg.dim, cfg.dim * cfg.expansion
    n_pad = objects.shape[1] + 2
    components = [
        ("encoder", encoder, (tokens, d, 3 * d)),
        ("encoder (padded)", encoder_padded, (b * n_pad, d, 3 * d)),
        ("eps", eps, (b, d, kd)),
        ("decoder", decoder, (b, d, kd)),
        ("train step", train_step, (tokens, d, 3 * d)),
    ]
    rows = []
    for name, fn, shape in components:
        flops = flops_of(fn)
        seconds = median_time(fn, args.repeat)
        achieved = flops / seconds / 1e9
        peak = gemm_rate(*shape)
        rows.append(
            (
                preset,
                name,
                flops / b / 1e6,
                seconds * 1e3,
                achieved,
                "x".join(map(str, shape)),
                peak,
                achieved / peak,
                achieved / square,
            )
        )
    return rows


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["paper", "small", "tiny"])
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--multiplicity-file", default=None, help="ROOT file whose object counts to use")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    square = gemm_rate(2048, 2048, 2048)
    print(
        f"threads={torch.get_num_threads()} batch={args.batch_size} "
        f"torch.mm 2048^3 = {square:.1f} GFLOP/s"
    )
    header = (
        "| preset | component | MFLOP/event | ms/batch | GFLOP/s | mm shape | mm@shape GFLOP/s "
        "| of mm@shape | of mm 2048^3 |"
    )
    print(header)
    print("|---|---|---:|---:|---:|---|---:|---:|---:|")
    for preset in args.presets:
        for row in rows_for(preset, args, square):
            print(
                "| {} | {} | {:.2f} | {:.0f} | {:.1f} | {} | {:.1f} | {:.0%} | {:.0%} |".format(
                    *row
                )
            )


if __name__ == "__main__":
    main()
