"""End-to-end test of ``python -m hepvld.evaluate``: tiny file -> tiny model -> report."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("torch")

# write_report's bootstrap error of the skill of a constant truth component (tt̄ px, py:
# skill NaN in every replicate) calls np.nanstd on an all-NaN column, which warns.


class _TagBalance(HTMLParser):
    """Counts open/close tags (void elements excluded) to check the page is well nested."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def tiny_run(tiny_root_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``tiny`` VLD trained for a few steps on the tiny file."""
    from hepvld.cli.train import main as train_main

    run = tmp_path_factory.mktemp("evaluate") / "run"
    rc = train_main(
        [
            str(tiny_root_file),
            "--run-dir",
            str(run),
            "--model",  # the 55-output VLD these tests are written around
            "vld",
            "--target.parameterisation",
            "components",
            "--preset",
            "tiny",
            "--train.max-steps",
            "4",
            "--train.batch-size",
            "64",
            "--train.warmup-steps",
            "1",
            "--train.num-threads",
            "1",
        ]
    )
    assert rc == 0
    return run


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    from hepvld.cli.evaluate import build_parser

    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"option {action.option_strings} has no help"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--checkpoint",
        "--data",
        "--models",
        "--output",
        "--n-samples",
        "--sampler",
        "--steps",
        "--max-events",
        "--split",
        "--seed",
    ):
        assert option in text


def test_evaluate_writes_report(
    tiny_root_file: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hepvld.cli.evaluate import main

    out = tmp_path / "report"
    rc = main(
        [
            "--checkpoint",
            str(tiny_run),
            "--models",
            f"second={tiny_run}",
            "--data",
            str(tiny_root_file),
            "--split",
            "all",
            "--output",
            str(out),
            "--n-samples",
            "4",
            "--sampler",
            "ddim",
            "--steps",
            "3",
            "--n-boot",
            "5",
            "--plot-formats",
            "png",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and str(out / "report.html") in printed

    for rel in (
        "report.html",
        "results.json",
        "tables.md",
        "tables/table1.md",
        "tables/table1.csv",
        "tables/paper_table1.md",
        "tables/coverage_summary.csv",
    ):
        assert (out / rel).is_file(), rel
    assert list((out / "figures").glob("*.png"))

    page = (out / "report.html").read_text(encoding="utf-8")
    checker = _TagBalance()
    checker.feed(page)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, checker.stack
    assert {"html", "body", "table", "img"} <= checker.seen
    assert "VLD" in page and "second" in page

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = results["tables"]["table1"]["rows"]
    names = [r[0] for r in rows]
    assert names[:2] == ["VLD", "second"] and "floor" in names[-1]
    for row in rows:
        for cell in row[1:]:
            value = cell["value"] if isinstance(cell, dict) else cell
            assert value is not None and math.isfinite(value), row
    assert "training truth" in results["meta"] and "training prior" in results["meta"]


def test_evaluate_test_split_without_training_files(
    tiny_root_file: Path, tiny_run: Path, tmp_path: Path
) -> None:
    """Default test split; with --no-train-truth the floor falls back to halves."""
    from hepvld.cli.evaluate import main
    from hepvld.evaluate import load_evaluation_data

    data = load_evaluation_data(
        [tiny_root_file], split="test", fractions=(0.8, 0.1, 0.1), max_jets=20
    )
    full = load_evaluation_data(
        [tiny_root_file], split="all", fractions=(0.8, 0.1, 0.1), max_jets=20
    )
    assert 0 < len(data) < len(full) / 4
    assert data.truth.shape == (len(data), 55) and data.features.shape[0] == len(data)

    out = tmp_path / "report"
    rc = main(
        [
            "--checkpoint",
            str(tiny_run),
            "--data",
            str(tiny_root_file),
            "--output",
            str(out),
            "--n-samples",
            "3",
            "--steps",
            "2",
            "--n-boot",
            "3",
            "--no-plots",
            "--no-train-truth",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert "halves" in results["meta"]
    assert not (out / "figures").exists() or not list((out / "figures").iterdir())
