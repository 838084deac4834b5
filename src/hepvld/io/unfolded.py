"""Writers of unfolded draws: ROOT output of ``python -m hepvld.unfold``.

The output is a TTree ``Unfolded`` with one entry per *selected* input event: ``event``
(the input event number) and a NanoAOD-style collection ``Draw`` (counter ``nDraw`` = S)
whose branches ``Draw_<name>`` are the target level's output branches
(:meth:`hepvld.targets.TargetLevel.output_branches`; parton level:
``Draw_<parton>_<pt|eta|phi|mass>`` for ``b_lep`` ... ``ttbar``).
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from hepvld.targets import TargetLevel, get_level

__all__ = ["COMPRESSION", "write_unfolded"]

#: Accepted output compressions.
COMPRESSION: tuple[str, ...] = ("zstd", "lz4", "zlib", "none")


def write_unfolded(
    path: str | Path,
    unfolded: ak.Array,
    event_numbers: np.ndarray,
    compression: str = "zstd",
    *,
    level: str | TargetLevel = "parton",
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
    level
        The target level of the model that unfolded (``UnfoldingModel.level``).

    Returns
    -------
    int
        Events written (``None`` entries are skipped).
    """
    import uproot

    if compression not in COMPRESSION:
        raise ValueError(f"compression={compression!r}; choose from {COMPRESSION}")
    present = ~ak.to_numpy(ak.is_none(unfolded, axis=0))
    rows = ak.drop_none(unfolded, axis=0)
    data = {
        "event": np.asarray(event_numbers, dtype=np.uint64)[present],
        "Draw": ak.zip(get_level(level).output_branches(rows)),
    }
    codec = {"zstd": uproot.ZSTD(5), "lz4": uproot.LZ4(4), "zlib": uproot.ZLIB(4), "none": None}
    with uproot.recreate(path, compression=codec[compression]) as f:
        tree = f.mktree(
            "Unfolded", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}
        )
        tree.extend(data)
    return int(present.sum())
