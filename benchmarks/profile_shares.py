"""Shares of a cProfile run's time by where the code lives (own time, ``tottime``).

    python -m cProfile -o gen.prof -m hepvld.generate -n 1000 -o /tmp/g.root --no-progress
    python benchmarks/profile_shares.py gen.prof

Groups: Pythia (``pythia8mc`` built-ins), fastjet (``fastjet`` and its C extension),
uproot (writing/reading), awkward / vector / numpy, hepvld's own Python by sub-package,
and the rest; plus the cumulative time of a few hepvld entry points.
"""

from __future__ import annotations

import pstats
from collections import defaultdict

from hepvld.cli._common import Parser


def group(key: tuple[str, int, str]) -> str:
    file, _, func = key
    text = f"{file}:{func}"
    for name in ("pythia8mc", "fastjet", "uproot", "awkward", "vector", "numpy", "torch"):
        if name in text:
            return name
    if "/hepvld/" in file:
        part = file.split("/hepvld/", 1)[1]
        return "hepvld." + part.replace("/", ".").removesuffix(".py")
    return "other"


def main() -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=14)
    args = p.parse_args()
    stats = pstats.Stats(args.profile)
    total = stats.total_tt
    own: dict[str, float] = defaultdict(float)
    for key, (_, _, tottime, _, _) in stats.stats.items():
        own[group(key)] += tottime
    print(f"total {total:.1f} s")
    print("| where (own time) | s | share |")
    print("|---|---:|---:|")
    for name, t in sorted(own.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {name} | {t:.1f} | {t / total:.1%} |")


if __name__ == "__main__":
    main()
