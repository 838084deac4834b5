"""Training throughput (events/s): old settings vs new, side by side in one run.

    python benchmarks/bench_train.py --presets paper --batch-size 1024 --threads 1 \
        --settings old new fused bf16 compile

Each setting runs the training loop's step (``hepvld.training.batches.take`` of a random
batch from an in-memory set of ``8 B`` events, ``LossModule`` forward, backward, gradient
clipping, AdamW step, EMA update) on batches with realistic detector multiplicities
(``benchmarks/_inputs.py``; ``--multiplicity-file`` takes them from a ROOT file). Settings
are timed in turns (``--rounds`` rounds of ``--steps`` steps each, after one warm-up step),
so that a load change on a shared machine hits all of them alike; the median step time is
reported, with the ratio to the first setting and the share of the step spent in data
loading (``take``).

Settings:

* ``old``: the padded detector encoder (all 21 slots), fp32, AdamW ``foreach``;
* ``new``: the defaults of ``hepvld.training.train`` (packed encoder, AdamW as
  :func:`hepvld.training.optim.build_optimizer` builds it);
* ``fused``, ``bf16``, ``compile``: ``new`` plus the fused AdamW kernel, bf16 autocast, or
  ``torch.compile`` of the loss module.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time

import torch
from _inputs import build, detector_batch

from hepvld.cli._common import Parser
from hepvld.config import TrainConfig
from hepvld.training.batches import take
from hepvld.training.loop import LossModule
from hepvld.training.optim import EMA, build_optimizer


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    packed: bool = True
    optimizer: str = "default"  # default (build_optimizer) | foreach | fused
    bf16: bool = False
    compile: bool = False


SETTINGS = {
    "old": Setting("old", packed=False, optimizer="foreach"),
    "new": Setting("new"),
    "fused": Setting("fused", optimizer="fused"),
    "foreach": Setting("foreach", optimizer="foreach"),
    "bf16": Setting("bf16", bf16=True),
    "compile": Setting("compile", compile=True),
    "bf16-compile": Setting("bf16-compile", bf16=True, compile=True),
    "padded": Setting("padded", packed=False),
}


class Runner:
    """One setting's model, optimiser and step function."""

    def __init__(self, preset: str, setting: Setting, args: argparse.Namespace, data, dev) -> None:
        self.preset, self.setting, self.data, self.dev, self.args = preset, setting, data, dev, args
        self.model = build(preset, args.model, dev)
        self.model.detector_encoder.packed = setting.packed
        config = TrainConfig(lr=1e-5, device=dev.type)
        if setting.optimizer == "default":
            self.opt = build_optimizer(self.model, config)
        else:
            self.opt = torch.optim.AdamW(
                self.model.parameters(),
                lr=1e-5,
                foreach=setting.optimizer == "foreach",
                fused=setting.optimizer == "fused",
            )
        self.ema = EMA(self.model, 0.999)
        net: torch.nn.Module = LossModule(self.model)
        self.net = torch.compile(net) if setting.compile else net
        self.gen = torch.Generator(dev).manual_seed(0)
        self.order = torch.Generator().manual_seed(1)
        self.times: list[float] = []
        self.load_times: list[float] = []

    def step(self, record: bool) -> None:
        sync = torch.cuda.synchronize if self.dev.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        n = len(self.data["mask"])
        idx = torch.randperm(n, generator=self.order)[: self.args.batch_size]
        batch = take(self.data, idx, self.dev)
        sync()
        t1 = time.perf_counter()
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.setting.bf16):
            loss = self.net(batch, self.gen)["loss"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.ema.update(self.model)
        sync()
        if record:
            self.times.append(time.perf_counter() - t0)
            self.load_times.append(t1 - t0)


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["paper"])
    p.add_argument("--model", default="vld")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--settings", nargs="+", default=["old", "new"], choices=sorted(SETTINGS))
    p.add_argument("--steps", type=int, default=2, help="timed steps per setting and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--multiplicity-file", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    data = detector_batch(8 * args.batch_size, file=args.multiplicity_file)
    if dev.type == "cuda":
        data = {k: v.to(dev) for k, v in data.items()}
    runners = [
        Runner(preset, SETTINGS[name], args, data, dev)
        for preset in args.presets
        for name in args.settings
    ]
    for r in runners:
        r.step(record=False)  # warm-up (and compilation)
    for _ in range(args.rounds):
        for r in runners:
            for _ in range(args.steps):
                r.step(record=True)
    mean_objects = data["mask"].float().sum(1).mean().item()
    print(
        f"model={args.model} batch={args.batch_size} device={dev} "
        f"threads={torch.get_num_threads()} mean real objects {mean_objects:.2f} of "
        f"{data['mask'].shape[1]}"
    )
    base = statistics.median(runners[0].times)
    print("| preset | params | setting | median step [ms] | events/s | vs first | data loading |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in runners:
        med = statistics.median(r.times)
        load = statistics.median(r.load_times) / med
        n_params = sum(p.numel() for p in r.model.parameters())
        print(
            f"| {r.preset} | {n_params / 1e6:.2f}M | {r.setting.name} | {med * 1e3:.0f} | "
            f"{args.batch_size / med:.0f} | {base / med:.2f}x | {load:.1%} |"
        )
    if dev.type == "cuda":
        print(f"CUDA peak allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    else:
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
