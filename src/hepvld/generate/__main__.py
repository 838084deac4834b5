"""``python -m hepvld.generate``: runs ``hepvld generate`` (:mod:`hepvld.cli.generate`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of :mod:`hepvld.cli.generate`."""
    from hepvld.cli.generate import build_parser as cli_parser

    return cli_parser("python -m hepvld.generate")


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld generate`` (:func:`hepvld.cli.generate.main`)."""
    from hepvld.cli.generate import main as cli_main

    return cli_main(argv, prog="python -m hepvld.generate")


if __name__ == "__main__":
    sys.exit(main())
