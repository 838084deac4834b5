"""Peak memory of ``python -m hepvld.unfold`` for a 10k and a 100k event input.

Usage::

    python benchmarks/bench_unfold_rss.py [--small 10000] [--large 100000] [--chunk 10000]

Writes two synthetic files (``hepvld.testing.synthetic``, baskets of 5000 entries), trains a ``tiny`` model for a few
steps (the network's quality does not matter for memory), then runs the unfold CLI in a
subprocess per file, streaming (``--chunk-events CHUNK``) and all at once
(``--chunk-events`` = file size, the behaviour before streaming), and prints each peak RSS
(``wait4`` rusage of the child) and the large/small ratios. Bounded memory means a ratio
near 1 for streaming.

The peak includes the start-up transient (imports, loading the model), which can hide a
steady growth; so the child's RSS is also polled (``/proc/PID/statm``) and the largest
value once unfolding has started (its journal exists: after imports and model loading)
is reported as "steady".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hepvld.cli._common import Parser


def _rss_mb(cmd: list[str], journal: Path) -> tuple[float, float]:
    """(peak RSS, largest polled RSS once unfolding started) of ``cmd`` in MB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    steady = 0.0
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            started = json.loads(journal.read_text())["entries_done"] >= 0
            with open(f"/proc/{proc.pid}/statm") as f:
                rss = int(f.read().split()[1]) * page
            if started:
                steady = max(steady, rss)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, steady  # ru_maxrss: kB on Linux


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
        rss: dict[tuple[str, int], tuple[float, float]] = {}
        out = d / "out.root"
        for mode in ("streaming", "all at once"):
            for n, path in files.items():
                chunk = args.chunk if mode == "streaming" else n
                cmd = [sys.executable, "-m", "hepvld.unfold", str(path), "-c", str(d / "run")]
                cmd += ["-o", str(out), "-S", "2", "--steps", "2"]
                cmd += ["--sampler", "ddim", "--chunk-events", str(chunk)]
                rss[(mode, n)] = _rss_mb(cmd, out.with_name(out.name + ".journal.json"))
                peak, steady = rss[(mode, n)]
                print(
                    f"{mode:12s} {n:>8d} events: peak RSS {peak:8.1f} MB, "
                    f"steady (once unfolding started) {steady:8.1f} MB",
                    flush=True,
                )
        for mode in ("streaming", "all at once"):
            (p_small, s_small), (p_large, s_large) = (
                rss[(mode, args.small)],
                rss[(mode, args.large)],
            )
            steady = f"{s_large / s_small:.2f}"
            print(
                f"{mode:12s} RSS ratio {args.large}/{args.small} events: peak "
                f"{p_large / p_small:.2f}, steady {steady}"
            )


if __name__ == "__main__":
    main()
