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

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepvld.targets import TargetLevel, get_level

__all__ = [
    "COMPRESSION",
    "draw_objects",
    "model_fingerprint",
    "unfold_files",
    "unfolded_branches",
    "write_unfolded",
]

log = logging.getLogger(__name__)

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


def model_fingerprint(model: Any) -> str:
    """SHA-256 (hex, 16 characters) of a model's tensors and metadata: identifies the
    network a journal was written with (``model`` is an :class:`hepvld.api.UnfoldingModel`)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(model.meta, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _effective(function: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with ``function``'s defaults for its other keyword-only options."""
    import inspect

    defaults = {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and name != "model"
    }
    return {**defaults, **kwargs}


def _copy_partial(path: Path, n_events: int, out: Any, step: int) -> None:
    """Append the first ``n_events`` entries of the ``Unfolded`` tree in ``path`` to ``out``."""
    import uproot

    from hepvld.io.errors import ResumeError

    try:
        with uproot.open(path) as f:
            tree = f["Unfolded"] if n_events else None
            if tree is not None and tree.num_entries < n_events:
                raise ResumeError(
                    f"{path} holds {tree.num_entries} events but its journal records "
                    f"{n_events}; run without --resume to start again"
                )
            for arrays in () if tree is None else tree.iterate(step_size=step, entry_stop=n_events):
                draw = {
                    k[len("Draw_") :]: arrays[k] for k in arrays.fields if k.startswith("Draw_")
                }
                out.extend({"event": ak.to_numpy(arrays["event"]), "Draw": ak.zip(draw)})
    except ResumeError:
        raise
    except Exception as exc:
        raise ResumeError(
            f"cannot read the partial output {path} ({type(exc).__name__}: {exc}); "
            "run without --resume to start again"
        ) from exc
    if out.n_written != n_events:
        raise ResumeError(f"{path}: copied {out.n_written} events, its journal records {n_events}")


def _finished(output: Path) -> tuple[int, Any] | None:
    """``(events, cut-flow)`` if ``output`` is complete (its job was killed after the
    rename, before the journal was removed), else ``None``."""
    import uproot

    from hepvld.features.selection import Cutflow
    from hepvld.io.output import COMPLETE_KEY

    try:
        with uproot.open(output) as f:
            marker = json.loads(str(f[COMPLETE_KEY]))
    except Exception:
        return None
    return int(marker["events"]), Cutflow.from_dict(marker["cutflow"])


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
    resume: bool = False,
    **unfold_kwargs: Any,
) -> tuple[int, Any]:
    """Unfold ROOT files chunk by chunk into ``output`` (memory bounded by one chunk).

    Reads ``chunk_events`` entries at a time (:func:`hepvld.io.iterate_events`), unfolds
    them with :func:`hepvld.unfold` (draws depend only on seed and event number; other
    ``chunk_events`` or ``batch_size`` change them only by float rounding, since the
    network sees other batches) and appends them to ``output``, which is
    written under a temporary name and renamed when complete (with the marker
    ``hepvld_complete`` holding the summed cut-flow).

    After every chunk the temporary file is flushed and the journal
    ``<output>.journal.json`` (:mod:`hepvld.io.journal`) records the entries consumed,
    the events written, the cut-flow so far and the options. A job killed at any moment
    (even SIGKILL) is continued with ``resume=True`` (CLI ``--resume``, same options,
    including ``chunk_events`` and ``batch_size``): the
    journal's whole chunks are copied into a fresh temporary file and unfolding goes on
    from the next entry, so the final file equals that of an uninterrupted run.

    Returns
    -------
    (int, Cutflow)
        Events written and the cut-flow of all input events.

    Raises
    ------
    hepvld.io.ResumeError
        ``resume=True`` without a journal, with other options (or another model), or with
        an unreadable partial file.
    """
    from hepvld.api import _as_unfolding_model, unfold
    from hepvld.features.selection import Cutflow
    from hepvld.io import chunk_ranges, iterate_events, open_events, resolve_paths
    from hepvld.io.errors import ResumeError
    from hepvld.io.journal import check_same_run, journal_path, read_journal, write_journal
    from hepvld.io.output import ChunkedTreeWriter
    from hepvld.runtime import release_free_memory

    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
    output = Path(output)
    um = _as_unfolding_model(model, unfold_kwargs.pop("device", None))
    paths = [str(f) for f in files]
    run: dict[str, Any] = {
        "files": [os.path.abspath(p) for p in resolve_paths(paths)],
        "tree": tree,
        "max_events": max_events,
        "chunk_events": chunk_events,
        "on_nonfinite": on_nonfinite,
        "compression": compression,
        "model": model_fingerprint(um),
    }
    for k, v in sorted(_effective(unfold, unfold_kwargs).items()):
        if k not in run and k not in ("progress", "entry_start", "entry_stop"):
            run[k] = v if isinstance(v, (int, float, str, type(None))) else str(v)
    cutflow, entries_done, old_partial, done_events = Cutflow(), 0, None, 0
    if resume:
        state = read_journal(output)
        check_same_run(state, run, output)
        old_partial = output.with_name(str(state["partial"]))
        if not old_partial.is_file():
            finished = _finished(output)
            if finished is not None:
                log.info("%s is already complete; removing its stale journal", output)
                journal_path(output).unlink()
                return finished
            raise ResumeError(
                f"cannot resume {output}: its partial file {old_partial} is gone; "
                "run without --resume to start again"
            )
        cutflow = Cutflow.from_dict(state["cutflow"])
        entries_done, done_events = int(state["entries_done"]), int(state["events_written"])
        log.info(
            "resuming %s: %d input entries done (%d events written); continuing from there",
            output,
            entries_done,
            done_events,
        )
    elif journal_path(output).exists():
        log.warning("%s: overwriting an unfinished job (--resume continues one)", output)
        with contextlib.suppress(ResumeError, KeyError):
            stale = output.with_name(str(read_journal(output)["partial"]))
            stale.unlink(missing_ok=True)

    out = ChunkedTreeWriter(output, "Unfolded", compression=_codec(compression), keep_partial=True)
    journal_partial = None if old_partial is None else old_partial.name

    def save() -> None:
        nonlocal journal_partial
        write_journal(
            output,
            {
                "run": run,
                "partial": out.partial.name,
                "entries_done": entries_done,
                "events_written": out.n_written,
                "cutflow": cutflow.to_dict(),
            },
        )
        journal_partial = out.partial.name

    try:
        with out:
            if old_partial is not None:
                _copy_partial(old_partial, done_events, out, chunk_events)
            save()
            if old_partial is not None:
                old_partial.unlink()
            # the chunks still to do (their ends are recorded: after on_nonfinite="drop"
            # a chunk's length is not the number of entries it consumed)
            todo = chunk_ranges(
                paths,
                step_size=chunk_events,
                tree=tree,
                entry_start=entries_done,
                entry_stop=max_events,
            )
            chunks = iterate_events(
                paths,
                tree=tree,
                step_size=chunk_events,
                entry_start=entries_done,
                entry_stop=max_events,
                on_nonfinite=on_nonfinite,  # type: ignore[arg-type]
            )
            for (_, hi), events in zip(todo, chunks if todo else (), strict=True):
                result = unfold(events, model=um, **unfold_kwargs)
                level = um.level
                out.extend(unfolded_branches(result, ak.to_numpy(events["event"]), level=level))
                cutflow = cutflow + result.attrs["cutflow"]
                entries_done = hi
                save()
                del result, events
                release_free_memory()  # keeps the resident size flat over many chunks
            if not out.has_tree:  # no entries at all: an empty, correctly typed tree
                empty = open_events(paths, tree=tree, entry_stop=0)
                result = unfold(empty, model=um, **unfold_kwargs)
                out.extend(unfolded_branches(result, ak.to_numpy(empty["event"]), level=um.level))
                cutflow = cutflow + result.attrs["cutflow"]
            out.marker = {"cutflow": cutflow.to_dict()}
    except BaseException:
        if out.partial.name != journal_partial:  # e.g. a resume failing while copying
            out.partial.unlink(missing_ok=True)
        if entries_done == 0:  # nothing worth resuming: leave nothing behind
            out.partial.unlink(missing_ok=True)
            journal_path(output).unlink(missing_ok=True)
        else:
            log.warning(
                "%s: stopped after %d input entries; the same command with --resume "
                "continues from there",
                output,
                entries_done,
            )
        raise
    journal_path(output).unlink(missing_ok=True)
    return out.n_written, cutflow
