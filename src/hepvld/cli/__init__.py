"""hepvld's command lines: ``hepvld <command> [options]``.

=========== ===================================== ===================
command     what it does                          module
=========== ===================================== ===================
generate    Pythia 8 + detector -> ROOT file      :mod:`hepvld.cli.generate`
train       train an unfolding model              :mod:`hepvld.cli.train`
distill     few-step sampler by distillation      :mod:`hepvld.cli.distill`
unfold      posterior draws -> ROOT file          :mod:`hepvld.cli.unfold`
evaluate    report: distances, calibration, plots :mod:`hepvld.cli.evaluate`
iterate     iterative unfolding (prior updates)   :mod:`hepvld.cli.iterate`
demo        the README's end-to-end demo          :mod:`hepvld.cli.demo`
=========== ===================================== ===================

Each also runs alone (``hepvld-train``, ...) and as ``python -m hepvld.<command>``;
``python -m hepvld <command>`` is the same as ``hepvld <command>``. Only argument
parsing and the command bodies live here; the library code they call lives in the
library modules.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

#: Command name -> one-line description.
COMMANDS: dict[str, str] = {
    "generate": "generate semi-leptonic tt̄ events (Pythia 8, fastjet, CMS-like detector)",
    "train": "train an unfolding model on ROOT files with parton-level truth",
    "distill": "distil a trained diffusion model into a few-step sampler (RUN/distilled)",
    "unfold": "write posterior draws of the 11 partons for detector-level events",
    "evaluate": "evaluate trained models: distances, calibration, plots, HTML report",
    "iterate": "iterative unfolding: reweight the prior toward the unfolded data, fine-tune",
    "demo": "the README's end-to-end demo on generated events",
}


def _usage() -> str:
    from hepvld import __version__

    width = max(map(len, COMMANDS))
    lines = [
        "usage: hepvld [-h] [--version] <command> [options]",
        "",
        f"hepvld {__version__}: generative unfolding for collider physics.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()),
        "",
        "`hepvld <command> --help` describes the options of a command.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hepvld <command> ...``; returns the exit status."""
    from hepvld import __version__
    from hepvld.cli._common import suggest

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"hepvld {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        close = suggest(command, list(COMMANDS))
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(
            f"hepvld: error: unknown command {command!r}{hint} (choose from {', '.join(COMMANDS)})",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"hepvld.cli.{command}")
    return int(module.main(rest, prog=f"hepvld {command}"))
