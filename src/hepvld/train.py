"""``python -m hepvld.train``: the training command line (:mod:`hepvld.cli.train`).

The library pieces live where they belong: :func:`hepvld.data.prepare_data` (read, select,
split by event number, preprocess) and :func:`hepvld.models.rebuild.rebuild_model` (an
untrained network from a checkpoint's metadata). ``SPLIT`` and ``prepare_data`` are
re-exported here for existing imports.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hepvld.data import SPLIT, prepare_data

__all__ = ["SPLIT", "main", "prepare_data"]


def main(argv: Sequence[str] | None = None) -> int:
    """``hepvld train`` (:func:`hepvld.cli.train.main`), kept for ``python -m hepvld.train``."""
    from hepvld.cli.train import main as cli_main

    return cli_main(argv, prog="python -m hepvld.train")


if __name__ == "__main__":
    sys.exit(main())
