"""``python -m hepvld.unfold file.root --checkpoint RUN -o out.root``: write posterior draws.

The output is a TTree ``Unfolded`` with one entry per *selected* input event: ``event``
(the input event number) and a NanoAOD-style collection ``Draw`` (counter ``nDraw`` = S)
whose branches ``Draw_<parton>_<pt|eta|phi|mass>`` hold the S posterior draws of each
parton (``b_lep`` ... ``ttbar``). Events failing the selection are counted in the log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np

__all__ = ["main", "write_unfolded"]

log = logging.getLogger("hepvld.unfold")

_COMPRESSION = ("zstd", "lz4", "zlib", "none")


def write_unfolded(
    path: str | Path, unfolded: ak.Array, event_numbers: np.ndarray, compression: str = "zstd"
) -> int:
    """Write the output of :func:`hepvld.unfold` to ``path`` (TTree ``Unfolded``).

    Parameters
    ----------
    path
        Output ROOT file (overwritten).
    unfolded
        ``hepvld.unfold`` output, length ``B`` (``None`` for events failing the selection).
    event_numbers : (B,)
        Event numbers of the same events.
    compression
        One of ``zstd``, ``lz4``, ``zlib``, ``none``.

    Returns
    -------
    int
        Events written (``None`` entries are skipped).
    """
    import uproot

    from hepvld.physics import PARTONS

    if compression not in _COMPRESSION:
        raise ValueError(f"compression={compression!r}; choose from {_COMPRESSION}")
    present = ~ak.to_numpy(ak.is_none(unfolded, axis=0))
    rows = ak.drop_none(unfolded, axis=0)
    draws = {
        f"{parton}_{comp}": ak.from_regular(
            ak.values_astype(getattr(rows[parton], comp), np.float32), axis=1
        )
        for parton in PARTONS
        for comp in ("pt", "eta", "phi", "mass")
    }
    data = {
        "event": np.asarray(event_numbers, dtype=np.uint64)[present],
        "Draw": ak.zip(draws),
    }
    codec = {"zstd": uproot.ZSTD(5), "lz4": uproot.LZ4(4), "zlib": uproot.ZLIB(4), "none": None}
    with uproot.recreate(path, compression=codec[compression]) as f:
        tree = f.mktree(
            "Unfolded", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}
        )
        tree.extend(data)
    return int(present.sum())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hepvld.unfold",
        description="Unfold detector-level events with a trained hepvld model and write "
        "posterior draws of the 11 partons to a ROOT file.",
    )
    p.add_argument("files", nargs="+", type=Path, help="input ROOT files (NanoAOD-like)")
    p.add_argument(
        "--checkpoint", "-c", required=True, type=Path, help="run directory or checkpoint"
    )
    p.add_argument("--output", "-o", required=True, type=Path, help="output ROOT file")
    p.add_argument("--tree", default="Events", help="input tree name (default: %(default)s)")
    p.add_argument("--n-samples", "-S", type=int, default=100, help="posterior draws per event")
    p.add_argument("--sampler", default="dpmpp2m", help="ddpm, ddim, pndm or dpmpp2m")
    p.add_argument("--steps", type=int, default=50, help="sampler steps")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="events per network call (default: hepvld.runtime.auto_batch_size)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compression", default="zstd", choices=_COMPRESSION)
    p.add_argument("--max-events", type=int, default=None, help="read at most this many events")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from hepvld.api import load, unfold
    from hepvld.io import open_events

    model = load(args.checkpoint, device=args.device)
    events = open_events([str(f) for f in args.files], tree=args.tree, entry_stop=args.max_events)
    result = unfold(
        events,
        model=model,
        n_samples=args.n_samples,
        sampler=args.sampler,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    numbers = (
        ak.to_numpy(events["event"]) if "event" in ak.fields(events) else np.arange(len(events))
    )
    n = write_unfolded(args.output, result, numbers, args.compression)
    log.info("wrote %d events x %d draws to %s", n, args.n_samples, args.output)
    log.info("selection:\n%s", result.attrs["cutflow"])
    return 0


class _CallableModule(types.ModuleType):
    """Importing this CLI module rebinds ``hepvld.unfold`` to it (Python's import system
    sets the package attribute); calling it still runs :func:`hepvld.api.unfold`."""

    def __call__(self, *args, **kwargs):
        from hepvld.api import unfold

        return unfold(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
