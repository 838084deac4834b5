"""Peak memory of ``python -m hepvld.unfold`` for a 10k and a 100k event input.

Usage::

    python benchmarks/bench_unfold_rss.py [--small 10000] [--large 100000] [--chunk 10000]

Writes two synthetic files (``hepvld.testing.synthetic``, baskets of 5000 entries), trains a ``tiny`` model for a few
steps (the network's quality does not matter for memory), then runs the unfold CLI in a
subprocess per file, streaming (``--chunk-events CHUNK``) and all at once
(``--chunk-events`` = file size, the behaviour before streaming), and prints each peak RSS
(``wait4`` rusage of the child) and the large/small ratios. Bounded memory means a ratio
near 1 for streaming.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hepvld.cli._common import Parser


def _peak_rss_mb(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024  # kB on Linux


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    args = ap.parse_args()

    from hepvld.testing.synthetic import toy_events, write_root
    from hepvld.train import main as train_main

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = {}
        for n in (args.small, args.large):
            files[n] = d / f"in_{n}.root"
            # baskets of 5000 entries, as in real files (one basket would be read whole)
            write_root(str(files[n]), toy_events(n, seed=n, first_event=0), basket_size=5000)
        run = ["--run-dir", str(d / "run"), "--preset", "tiny", "--train.max-steps", "2"]
        train_main([str(files[args.small]), *run, "--train.batch-size", "64"])
        rss: dict[tuple[str, int], float] = {}
        for mode in ("streaming", "all at once"):
            for n, path in files.items():
                chunk = args.chunk if mode == "streaming" else n
                cmd = [sys.executable, "-m", "hepvld.unfold", str(path), "-c", str(d / "run")]
                cmd += ["-o", str(d / "out.root"), "-S", "2", "--steps", "2"]
                cmd += ["--sampler", "ddim", "--chunk-events", str(chunk)]
                rss[(mode, n)] = _peak_rss_mb(cmd)
                print(f"{mode:12s} {n:>8d} events: peak RSS {rss[(mode, n)]:8.1f} MB", flush=True)
        for mode in ("streaming", "all at once"):
            ratio = rss[(mode, args.large)] / rss[(mode, args.small)]
            print(f"{mode:12s} RSS ratio {args.large}/{args.small} events: {ratio:.2f}")


if __name__ == "__main__":
    main()
