"""The scripts in benchmarks/, analysis/ and examples/ parse like the CLIs: no abbreviations.

Each script is run in-process (``runpy``, as ``__main__``) with ``--hel``: an abbreviating
parser would take it for ``--help`` and exit 0; the project's parser
(:class:`hepvld.cli._common.Parser`) refuses it with exit status 2 (and suggests ``--help``
unless a missing required argument is reported first).
"""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    p
    for folder in ("benchmarks", "analysis", "examples")
    for p in (ROOT / folder).glob("*.py")
    if "__main__" in p.read_text()
)


def _parser_calls(path: Path) -> list[str]:
    """Names of the callables that construct parsers in ``path`` (``ArgumentParser`` / ``Parser``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("ArgumentParser", "Parser"):
                names.append(name)
    return names


def test_the_walk_finds_the_scripts() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"bench_unfold_rss.py", "bench_train.py", "compare.py", "paper_study.py"} <= names
    assert len(SCRIPTS) >= 15


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_uses_the_project_parser(script: Path) -> None:
    calls = _parser_calls(script)
    assert calls, f"{script.name} builds no argument parser"
    assert "ArgumentParser" not in calls, f"{script.name} builds a plain argparse parser"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_refuses_abbreviations(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [str(script), "--hel"])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), run_name="__main__")
    out, err = capsys.readouterr()
    assert stop.value.code == 2, f"{script.name} accepted --hel (exit {stop.value.code})"
    assert "show this help message" not in out
    assert f"{script.name}: error:" in err
    if "unrecognized arguments" in err:  # else a required argument is reported first
        assert "--hel: did you mean --help" in err
