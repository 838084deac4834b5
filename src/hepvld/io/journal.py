"""Journals of chunked jobs, so that a killed job continues where it stopped.

A journal ``<output>.journal.json`` next to the output file is replaced atomically
(temporary file, fsync, ``os.replace``) after every chunk that has been written and
flushed: a job killed at any moment (even SIGKILL) leaves a journal describing only
complete chunks. It holds the job's options (``"run"``: a resume with other options is
refused) and the job's own progress fields. ``hepvld unfold --resume`` uses it
(:func:`hepvld.io.unfolded.unfold_files`); the generator's journal
(:mod:`hepvld.generate.shards`) follows the same rules.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hepvld.io.errors import ResumeError

__all__ = ["check_same_run", "journal_path", "read_journal", "write_journal"]


def journal_path(output: str | os.PathLike[str]) -> Path:
    """``<output>.journal.json`` next to the output file."""
    output = Path(output)
    return output.with_name(output.name + ".journal.json")


def write_journal(output: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Replace the journal of ``output`` atomically with the JSON of ``state``."""
    path = journal_path(output)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(dict(state), f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_journal(output: str | os.PathLike[str]) -> dict[str, Any]:
    """The journal of an unfinished job writing ``output``.

    Raises
    ------
    ResumeError
        No journal (the job finished or never started) or a damaged one.
    """
    path = journal_path(output)
    if not path.is_file():
        raise ResumeError(
            f"nothing to resume: {path} does not exist (the job writing {output} finished, "
            "or was never started with this output); run without --resume"
        )
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise ResumeError(
            f"{path} is damaged ({exc}); delete it and run without --resume"
        ) from None
    return state


def check_same_run(
    journal: Mapping[str, Any], run: Mapping[str, Any], output: str | os.PathLike[str]
) -> None:
    """Refuse to resume ``output`` when the options ``run`` differ from the journal's.

    Raises
    ------
    ResumeError
        Naming each option that differs (killed job -> this one).
    """
    old = json.loads(json.dumps(journal.get("run", {})))
    new = json.loads(json.dumps(dict(run)))
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
        raise ResumeError(
            f"cannot resume {output}: the options differ from the killed job ({details}); "
            "resume with the same options, or run without --resume to start again"
        )
