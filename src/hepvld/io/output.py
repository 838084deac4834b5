"""Safe output: finite-checked draws, files written under a temporary name and renamed.

Small helpers used by the writers of ``python -m hepvld.unfold`` (and usable by any
analysis that writes ROOT files):

* :func:`check_finite_draws` refuses NaN / inf posterior draws before anything is
  written, naming the events;
* :func:`atomic_output` yields a temporary path next to the final one and renames it into
  place only when the block finishes without an exception, so a killed job never leaves a
  partial file under the final name (a leftover ``.name.*.partial`` file is incomplete);
* :data:`COMPLETE_KEY`: the name of the completeness marker stored in such files.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.io.errors import NonFiniteDrawError

__all__ = [
    "COMPLETE_KEY",
    "ChunkedTreeWriter",
    "atomic_output",
    "check_finite_draws",
    "write_tree_atomic",
]

#: Key of the JSON string marking a file as completely written (with its cut-flow).
COMPLETE_KEY = "hepvld_complete"


def check_finite_draws(draws: np.ndarray, event: np.ndarray | None = None) -> None:
    """Raise if any posterior draw is NaN or infinite.

    Parameters
    ----------
    draws : (B, S, X)
        Posterior draws in physical units.
    event : (B,), optional
        Event numbers of the rows (for the message; row indices otherwise).

    Raises
    ------
    NonFiniteDrawError
        Naming how many events are affected and the first event numbers.
    """
    x = np.asarray(draws)
    if x.size == 0 or np.isfinite(x).all():
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    ids = np.flatnonzero(bad) if event is None else np.asarray(event)[bad]
    first = ", ".join(str(int(i)) for i in ids[:5]) + (", ..." if bad.sum() > 5 else "")
    raise NonFiniteDrawError(
        f"the model produced NaN/inf posterior draws for {int(bad.sum())} of {len(x)} events "
        f"(event {'numbers' if event is not None else 'rows'} {first}); nothing was written: "
        "check these events' inputs (values far outside the training sample) and the "
        "checkpoint"
    )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Context manager: a temporary path in the same directory, renamed to ``path`` on
    success (``os.replace``, atomic on POSIX) and deleted on failure.

    Example::

        with atomic_output("out.root") as tmp:
            write_something(tmp)
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_tree_atomic(
    path: str | os.PathLike[str],
    tree: str,
    data: dict[str, Any],
    *,
    compression: Any = None,
    marker: dict[str, Any] | None = None,
) -> None:
    """Write one TTree to ``path`` under a temporary name, add the completeness marker
    :data:`COMPLETE_KEY` (a JSON string with ``marker``, e.g. event count and cut-flow)
    last, and rename into place.

    A reader can trust a file under the final name that holds :data:`COMPLETE_KEY`; a job
    killed at any moment leaves at most a hidden ``.name.*.partial`` file.

    Parameters
    ----------
    path
        Final output file (replaced).
    tree
        Tree name.
    data
        Branch name -> numpy / awkward array (as for ``WritableTree.extend``).
    compression
        An uproot compression object or ``None``.
    marker
        JSON-serialisable content of the marker (``{"complete": True}`` is added).
    """
    import uproot

    with atomic_output(path) as tmp, uproot.recreate(tmp, compression=compression) as f:
        branch_types = {
            k: v.type if hasattr(v, "layout") else np.asarray(v).dtype for k, v in data.items()
        }
        f.mktree(tree, branch_types).extend(data)
        f[COMPLETE_KEY] = json.dumps({**(marker or {}), "complete": True}, sort_keys=True)


class ChunkedTreeWriter:
    """Append chunks to one TTree of a file written under a temporary name; on a clean
    exit write the completeness marker and rename into place.

    Memory stays bounded by one chunk. Every :meth:`extend` flushes the file, so a job
    killed (even by SIGKILL) after it returns leaves the temporary file readable up to that
    chunk (what ``hepvld unfold --resume`` continues from). Example::

        with ChunkedTreeWriter("out.root", "Unfolded") as out:
            for data in chunks:
                out.extend(data)
            out.marker = {"cutflow": ...}

    Parameters
    ----------
    path
        Final output file (replaced on success).
    tree
        Tree name; its branch types are taken from the first chunk.
    compression
        An uproot compression object or ``None``.
    keep_partial
        On an exception keep the temporary file (:attr:`partial`) for a later resume
        instead of deleting it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        tree: str,
        *,
        compression: Any = None,
        keep_partial: bool = False,
    ):
        import uproot

        self.path = Path(path)
        self.tree_name = tree
        self.marker: dict[str, Any] = {}
        self.n_written = 0
        self.keep_partial = keep_partial
        #: The temporary file (``.<name>.<random>.partial`` next to :attr:`path`).
        self.partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial")
        self._file = uproot.recreate(self.partial, compression=compression)
        self._tree: Any = None

    @property
    def has_tree(self) -> bool:
        return self._tree is not None

    def extend(self, data: dict[str, Any]) -> None:
        """Append one chunk (branch name -> numpy / awkward array, all of one length) and
        flush it to disk."""
        if self._tree is None:
            types = {
                k: v.type if hasattr(v, "layout") else np.asarray(v).dtype for k, v in data.items()
            }
            self._tree = self._file.mktree(self.tree_name, types)
        n = len(next(iter(data.values())))
        if n:
            self._tree.extend(data)
            self.n_written += n
        self._file.file.sink.flush()

    def __enter__(self) -> ChunkedTreeWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                marker = {**self.marker, "complete": True, "events": self.n_written}
                self._file[COMPLETE_KEY] = json.dumps(marker, sort_keys=True)
            self._file.close()
            if exc_type is None:
                with open(self.partial, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(self.partial, self.path)
        finally:  # after a success the partial file is gone (renamed)
            if self.partial.exists() and not self.keep_partial:
                self.partial.unlink()
