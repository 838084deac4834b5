"""``python -m hepvld.unfold file.root --checkpoint RUN -o out.root``: write posterior draws.

The output is a TTree ``Unfolded`` with one entry per *selected* input event: ``event``
(the input event number) and a NanoAOD-style collection ``Draw`` (counter ``nDraw`` = S)
whose branches ``Draw_<parton>_<pt|eta|phi|mass>`` hold the S posterior draws of each
parton (``b_lep`` ... ``ttbar``). Events failing the selection are counted in the log.
The file is written under a temporary name and renamed when complete; it then holds the
JSON string ``hepvld_complete`` (event count and cut-flow of the selection).
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["main", "unfold_files", "unfolded_branches", "write_unfolded"]

log = logging.getLogger("hepvld.unfold")

_COMPRESSION = ("zstd", "lz4", "zlib", "none")


def unfolded_branches(unfolded: ak.Array, event_numbers: np.ndarray) -> dict[str, Any]:
    """Branches of the ``Unfolded`` tree for the non-``None`` entries of ``unfolded``:
    ``event (B',) uint64`` and the ``Draw`` record (``Draw_<parton>_<pt|eta|phi|mass>``,
    ``(B', S)`` float32)."""
    from hepvld.physics import PARTONS

    present = ~ak.to_numpy(ak.is_none(unfolded, axis=0))
    rows = ak.drop_none(unfolded, axis=0)
    draws = {
        f"{parton}_{comp}": ak.from_regular(
            ak.values_astype(getattr(rows[parton], comp), np.float32), axis=1
        )
        for parton in PARTONS
        for comp in ("pt", "eta", "phi", "mass")
    }
    return {
        "event": np.asarray(event_numbers, dtype=np.uint64)[present],
        "Draw": ak.zip(draws),
    }


def _codec(compression: str) -> Any:
    import uproot

    if compression not in _COMPRESSION:
        raise ValueError(f"compression={compression!r}; choose from {_COMPRESSION}")
    codec = {"zstd": uproot.ZSTD(5), "lz4": uproot.LZ4(4), "zlib": uproot.ZLIB(4), "none": None}
    return codec[compression]


def write_unfolded(
    path: str | Path, unfolded: ak.Array, event_numbers: np.ndarray, compression: str = "zstd"
) -> int:
    """Write the output of :func:`hepvld.unfold` to ``path`` (TTree ``Unfolded``).

    Parameters
    ----------
    path
        Output ROOT file (replaced atomically; holds the marker ``hepvld_complete`` with
        the cut-flow of ``unfolded.attrs["cutflow"]``).
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
    from hepvld.io.output import write_tree_atomic

    codec = _codec(compression)
    data = unfolded_branches(unfolded, event_numbers)
    n = len(data["event"])
    cutflow = unfolded.attrs.get("cutflow")
    marker = {"events": n, "cutflow": cutflow.to_dict() if cutflow else None}
    write_tree_atomic(path, "Unfolded", data, compression=codec, marker=marker)
    return n


def unfold_files(
    files: Sequence[str | Path],
    output: str | Path,
    *,
    model: Any,
    chunk_events: int = 20_000,
    tree: str = "Events",
    max_events: int | None = None,
    on_nonfinite: str = "raise",
    compression: str = "zstd",
    **unfold_kwargs: Any,
) -> tuple[int, Any]:
    """Unfold ROOT files chunk by chunk into ``output`` (memory bounded by one chunk).

    Reads ``chunk_events`` entries at a time (:func:`hepvld.io.iterate_events`), unfolds
    them with :func:`hepvld.unfold` (draws depend only on seed and event number, so the
    result does not depend on ``chunk_events``) and appends them to ``output``, which is
    written under a temporary name and renamed when complete (with the marker
    ``hepvld_complete`` holding the summed cut-flow).

    Returns
    -------
    (int, Cutflow)
        Events written and the cut-flow of all input events.
    """
    from hepvld.api import unfold
    from hepvld.features.selection import Cutflow
    from hepvld.io import iterate_events, open_events
    from hepvld.io.output import ChunkedTreeWriter

    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
    paths = [str(f) for f in files]
    cutflow = Cutflow()
    with ChunkedTreeWriter(output, "Unfolded", compression=_codec(compression)) as out:
        chunks = iterate_events(
            paths,
            tree=tree,
            step_size=chunk_events,
            entry_stop=max_events,
            on_nonfinite=on_nonfinite,  # type: ignore[arg-type]
        )
        for events in chunks:
            result = unfold(events, model=model, **unfold_kwargs)
            out.extend(unfolded_branches(result, ak.to_numpy(events["event"])))
            cutflow = cutflow + result.attrs["cutflow"]
        if not out.has_tree:  # no entries at all: an empty, correctly typed tree
            empty = open_events(paths, tree=tree, entry_stop=0)
            result = unfold(empty, model=model, **unfold_kwargs)
            out.extend(unfolded_branches(result, ak.to_numpy(empty["event"])))
            cutflow = cutflow + result.attrs["cutflow"]
        out.marker = {"cutflow": cutflow.to_dict()}
    return out.n_written, cutflow


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
    p.add_argument("--batch-size", type=int, default=1024, help="events per network call")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compression", default="zstd", choices=_COMPRESSION)
    p.add_argument("--max-events", type=int, default=None, help="read at most this many events")
    p.add_argument(
        "--chunk-events", type=int, default=20_000, help="events read and unfolded at once"
    )
    p.add_argument(
        "--on-nonfinite",
        default="raise",
        choices=("raise", "drop", "ignore"),
        help="NaN/inf or impossible input values: refuse, drop those events, or keep them",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from hepvld.api import load

    model = load(args.checkpoint, device=args.device)
    n, cutflow = unfold_files(
        args.files,
        args.output,
        model=model,
        chunk_events=args.chunk_events,
        tree=args.tree,
        max_events=args.max_events,
        on_nonfinite=args.on_nonfinite,
        compression=args.compression,
        n_samples=args.n_samples,
        sampler=args.sampler,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    log.info("wrote %d events x %d draws to %s", n, args.n_samples, args.output)
    log.info("selection:\n%s", cutflow)
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
