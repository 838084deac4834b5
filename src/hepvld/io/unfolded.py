"""Write :func:`hepvld.unfold` output to ROOT (what ``hepvld unfold`` writes).

The output is a TTree ``Unfolded`` with one entry per *selected* input event: ``event``
(the input event number) and a NanoAOD-style collection ``Draw`` (counter ``nDraw`` = S)
whose branches ``Draw_<name>`` are the target level's output branches
(:meth:`hepvld.targets.TargetLevel.output_branches`; parton level:
``Draw_<parton>_<pt|eta|phi|mass>`` for ``b_lep`` ... ``ttbar``).

A variable-length level (``particle``) also has ``output_collections``: more NanoAOD-style
collections per entry, written beside ``Draw``. The particle level writes one, ``Object``
(counter ``nObject``): every object of every draw of the event, draw by draw, with
``Draw_nObject`` objects in draw ``s`` (:func:`draw_objects` regroups them into
``(event, draw, object)`` lists). See ``docs/particle-level.md``.

Files are written under a temporary name and renamed when complete
(:mod:`hepvld.io.output`); a complete file holds the JSON string ``hepvld_complete`` with
the event count and the cut-flow of the selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepvld.targets import TargetLevel, get_level

__all__ = ["COMPRESSION", "draw_objects", "unfold_files", "unfolded_branches", "write_unfolded"]

#: Compression codecs :func:`write_unfolded` accepts.
COMPRESSION: tuple[str, ...] = ("zstd", "lz4", "zlib", "none")


def _codec(compression: str) -> Any:
    import uproot

    if compression not in COMPRESSION:
        raise ValueError(f"compression={compression!r}; choose from {COMPRESSION}")
    codec = {"zstd": uproot.ZSTD(5), "lz4": uproot.LZ4(4), "zlib": uproot.ZLIB(4), "none": None}
    return codec[compression]


def unfolded_branches(
    unfolded: ak.Array, event_numbers: np.ndarray, *, level: str | TargetLevel = "parton"
) -> dict[str, Any]:
    """Branches of the ``Unfolded`` tree for the non-``None`` entries of ``unfolded``:
    ``event (B',) uint64``, the ``Draw`` record of the level's output branches
    (``(B', S)`` each) and, for a level with ``output_collections`` (variable length),
    those collections (``(B', var)`` each)."""
    present = ~ak.to_numpy(ak.is_none(unfolded, axis=0))
    rows = ak.drop_none(unfolded, axis=0)
    lvl = get_level(level)
    out: dict[str, Any] = {
        "event": np.asarray(event_numbers, dtype=np.uint64)[present],
        "Draw": ak.zip(lvl.output_branches(rows)),
    }
    collections = getattr(lvl, "output_collections", None)
    if collections is not None:
        for name, fields in collections(rows).items():
            out[name] = ak.zip(fields)
    return out


def draw_objects(arrays: Any, collection: str = "Object") -> ak.Array:
    """Regroup a written collection into ``(event, draw, object)`` lists.

    Parameters
    ----------
    arrays
        The ``Unfolded`` tree's arrays as read by uproot (``tree.arrays()``, flat branch
        names) or coffea (``events.Draw``, ``events.Object`` collections).
    collection
        The collection to regroup (``Object`` at particle level).

    Returns
    -------
    ak.Array
        ``(B, S, var)`` records with the collection's fields: ``out[b, s]`` are the objects
        of draw ``s`` of event ``b`` (``Draw_n<collection>[b, s]`` of them).
    """
    if collection in ak.fields(arrays):  # coffea / NanoEvents-style collections
        objects, counts = arrays[collection], arrays["Draw"][f"n{collection}"]
    else:
        prefix = f"{collection}_"
        names = [f for f in ak.fields(arrays) if f.startswith(prefix)]
        objects = ak.zip({f[len(prefix) :]: arrays[f] for f in names})
        counts = arrays[f"Draw_n{collection}"]
    flat_counts = ak.flatten(counts, axis=1)
    per_draw = ak.unflatten(ak.flatten(objects, axis=1), flat_counts)
    return ak.unflatten(per_draw, ak.num(counts, axis=1))


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
        Output ROOT file (replaced atomically; holds the marker ``hepvld_complete`` with
        the cut-flow of ``unfolded.attrs["cutflow"]``).
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
    from hepvld.io.output import write_tree_atomic

    codec = _codec(compression)
    data = unfolded_branches(unfolded, event_numbers, level=level)
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
    from hepvld.api import _as_unfolding_model, unfold
    from hepvld.features.selection import Cutflow
    from hepvld.io import iterate_events, open_events
    from hepvld.io.output import ChunkedTreeWriter

    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
    um = _as_unfolding_model(model, unfold_kwargs.pop("device", None))
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
            result = unfold(events, model=um, **unfold_kwargs)
            out.extend(unfolded_branches(result, ak.to_numpy(events["event"]), level=um.level))
            cutflow = cutflow + result.attrs["cutflow"]
        if not out.has_tree:  # no entries at all: an empty, correctly typed tree
            empty = open_events(paths, tree=tree, entry_stop=0)
            result = unfold(empty, model=um, **unfold_kwargs)
            out.extend(unfolded_branches(result, ak.to_numpy(empty["event"]), level=um.level))
            cutflow = cutflow + result.attrs["cutflow"]
        out.marker = {"cutflow": cutflow.to_dict()}
    return out.n_written, cutflow
