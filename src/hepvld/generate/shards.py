"""Resuming killed generation runs and splitting one run into shards (job arrays).

Journal
    While :func:`hepvld.generate.generate` runs, ``<output>.journal.json`` records (atomically,
    after each chunk is written and flushed) the next chunk index, the events written and
    the cut-flow so far; it is deleted when the run completes. A run killed at any moment
    (even SIGKILL) therefore leaves ``<output>`` readable up to the journal's event count
    (whole chunks) and the journal; ``generate(..., resume=True)`` (CLI ``--resume``) copies
    those chunks into a fresh file, renames it into place and continues with the next chunk.
    Chunk ``i`` always gets the same seeds, so the result is event-for-event identical to an
    uninterrupted run.

Shards
    With ``count="generated"`` the run has ``C = ceil(n_events / chunk_size)`` chunks;
    shard ``i`` of ``n`` (``--shard i/n``) generates the contiguous chunks
    ``[i*C//n, (i+1)*C//n)`` with the run's seeds. :func:`merge_shards` (CLI
    ``--merge``) checks that the shards belong to one run, are complete and cover every
    chunk, and writes them chunk by chunk into one file identical in content to a
    single-process run with the same seed.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepvld.generate.writer import (
    PROVENANCE_KEY,
    TREE_NAME,
    EventWriter,
    branches_of,
)
from hepvld.io.errors import HepvldIOError

__all__ = [
    "GenerationResumeError",
    "journal_path",
    "merge_shards",
    "parse_shard",
    "read_chunks",
    "read_journal",
    "shard_chunks",
    "write_journal",
]

log = logging.getLogger(__name__)

#: Keys of the journal that must match when resuming.
RUN_KEYS = ("seed", "count", "n_events", "settings", "shard")


class GenerationResumeError(HepvldIOError, ValueError):
    """A run cannot be resumed or shards cannot be merged; the message says why."""


def journal_path(output: str | os.PathLike[str]) -> Path:
    """``<output>.journal.json`` next to the output file."""
    output = Path(output)
    return output.with_name(output.name + ".journal.json")


def write_journal(output: Path, state: Mapping[str, Any]) -> None:
    """Replace the journal atomically (write a temporary file, fsync, ``os.replace``)."""
    path = journal_path(output)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(dict(state), f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_journal(output: Path) -> dict[str, Any]:
    """The journal of an unfinished run of ``output``.

    Raises
    ------
    GenerationResumeError
        No journal (the run finished or never started) or a damaged one.
    """
    path = journal_path(output)
    if not path.is_file():
        raise GenerationResumeError(
            f"nothing to resume: {path} does not exist (the run of {output} finished, or "
            "was never started with this output); run without --resume"
        )
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise GenerationResumeError(
            f"{path} is damaged ({exc}); delete it and {output}, and run without --resume"
        ) from None


def check_same_run(journal: Mapping[str, Any], run: Mapping[str, Any], output: Path) -> None:
    """The resumed run has the settings of the killed one."""
    diff = [k for k in RUN_KEYS if _jsonable(journal.get(k)) != _jsonable(run.get(k))]
    if diff:
        details = ", ".join(f"{k}: {journal.get(k)!r} -> {run.get(k)!r}" for k in diff)
        raise GenerationResumeError(
            f"cannot resume {output}: the options differ from the killed run ({details}); "
            "resume with the same options, or run without --resume to start again"
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def read_chunks(path: Path, n_entries: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(chunk index, branches)`` of the first ``n_entries`` events of ``path``.

    Chunks are recognised by ``luminosityBlock`` (the chunk index, docs/schema.md); the
    branches are in the form :meth:`EventWriter.write` takes.

    Raises
    ------
    GenerationResumeError
        The file cannot be read or holds fewer entries than expected.
    """
    import uproot

    try:
        with uproot.open(path) as f:
            tree = f[TREE_NAME]
            total = int(tree.num_entries)
            stop = total if n_entries is None else int(n_entries)
            if total < stop:
                raise GenerationResumeError(
                    f"{path} holds {total} events but its journal records {stop}; "
                    "run without --resume to start again"
                )
            arrays = tree.arrays(entry_stop=stop) if stop else None
    except GenerationResumeError:
        raise
    except Exception as exc:
        raise GenerationResumeError(
            f"cannot read {path} ({type(exc).__name__}: {exc}); run without --resume"
        ) from exc
    if arrays is None:
        return
    lumi = np.asarray(ak.to_numpy(arrays["luminosityBlock"]), dtype=np.int64)
    cuts = np.flatnonzero(np.diff(lumi)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(lumi)]):
        yield int(lumi[lo]), branches_of(arrays[int(lo) : int(hi)])


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises
    ------
    ValueError
        Naming the value and the expected form.
    """
    head, sep, tail = text.partition("/")
    try:
        i, n = int(head), int(tail)
    except ValueError:
        i, n = -1, 0
    if not sep or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: expected i/n with 0 <= i < n (e.g. 0/4)")
    return i, n


def shard_chunks(n_chunks: int, shard: tuple[int, int]) -> range:
    """Contiguous chunk indices of shard ``i`` of ``n``: ``[i*C//n, (i+1)*C//n)``."""
    i, n = shard
    return range(i * n_chunks // n, (i + 1) * n_chunks // n)


def _provenance(path: Path) -> dict[str, Any]:
    import uproot

    try:
        with uproot.open(path) as f:
            if PROVENANCE_KEY not in f:
                raise GenerationResumeError(
                    f"{path} has no {PROVENANCE_KEY}: its run did not finish (resume it first)"
                )
            return dict(json.loads(str(f[PROVENANCE_KEY])))
    except GenerationResumeError:
        raise
    except Exception as exc:
        raise GenerationResumeError(f"cannot read {path} ({type(exc).__name__}: {exc})") from exc


def merge_shards(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    compression: str | None = "zstd:5",
) -> int:
    """Merge the complete shards of one run into ``output`` (written atomically).

    Returns
    -------
    int
        Events written.

    Raises
    ------
    GenerationResumeError
        A shard is incomplete, belongs to another run (seed, settings, ...), is repeated
        or missing.
    """
    paths = [Path(p) for p in inputs]
    infos = [_provenance(p) for p in paths]
    for p, info in zip(paths, infos):
        if not info.get("complete"):
            raise GenerationResumeError(f"{p} is incomplete: resume its shard before merging")
        if info.get("shard") is None:
            raise GenerationResumeError(f"{p} is not a shard (generated without --shard)")
    ref = infos[0]
    for p, info in zip(paths[1:], infos[1:]):
        diff = [k for k in ("seed", "count", "n_events", "settings") if info.get(k) != ref.get(k)]
        if diff or info["shard"][1] != ref["shard"][1]:
            raise GenerationResumeError(
                f"{p} belongs to another run than {paths[0]} (differs in {diff or ['shard count']})"
            )
    n = int(ref["shard"][1])
    order = sorted(range(len(paths)), key=lambda k: infos[k]["shard"][0])
    found = [infos[k]["shard"][0] for k in order]
    if found != list(range(n)):
        raise GenerationResumeError(
            f"shards {found} of {n} given: each of 0..{n - 1} is needed exactly once"
        )
    from hepvld.generate.selection import Cutflow

    cutflow = sum((Cutflow.from_counts(infos[k]["cutflow"]) for k in order), Cutflow())
    provenance = {
        key: ref[key] for key in ("generator", "seed", "count", "n_events", "settings")
    } | {"merged_from": [str(paths[k]) for k in order], "cutflow": cutflow.as_dict()}
    final = Path(output)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with EventWriter(tmp, compression=compression, provenance=provenance) as writer:
            for k in order:
                for _, branches in read_chunks(paths[k]):
                    writer.write(branches)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info("merged %d shards into %s (%d events)", n, final, writer.n_written)
    return writer.n_written
