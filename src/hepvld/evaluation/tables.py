"""Result tables: a tiny Table type (Markdown / CSV / HTML / JSON) and the paper's numbers.

Cells are strings, numbers, or ``(value, error)`` pairs; errors are printed with two
significant digits and the value rounded to match (``12.3 ± 1.4``). CSV writes a value
column and an ``*_err`` column for every column holding pairs.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepvld.evaluation.distances import DISTANCES

__all__ = ["PAPER_MODELS", "Table", "format_value", "paper_table1"]

Cell = Any

#: Models of the paper's Table 1, in its order.
PAPER_MODELS: tuple[str, ...] = ("VLD", "UC-VLD", "C-VLD", "LDM", "VDM", "CVAE", "CINN")

_PAPER_TABLE1 = {
    "VLD": (108.76, 7.59, 4.08, 3.47, 3.74, 4.53),
    "UC-VLD": (73.56, 6.35, 3.41, 5.77, 7.10, 8.48),
    "C-VLD": (389.62, 25.39, 4.65, 9.54, 10.09, 10.79),
    "LDM": (402.32, 24.09, 5.91, 14.71, 16.34, 17.92),
    "VDM": (2478.35, 181.35, 17.14, 29.28, 32.29, 35.60),
    "CVAE": (484.56, 32.29, 6.37, 7.79, 9.17, 10.60),
    "CINN": (3009.08, 185.13, 15.74, 28.55, 30.19, 32.37),
}


def paper_table1() -> dict[str, dict[str, float]]:
    """The paper's Table 1 (sums over the 55 components, 1.3M test events, one draw each).

    Returns
    -------
    dict[str, dict[str, float]]
        Model -> {distance name (:data:`~hepvld.evaluation.distances.DISTANCES`) -> value}.
    """
    return {m: dict(zip(DISTANCES, vals, strict=True)) for m, vals in _PAPER_TABLE1.items()}


def format_value(value: float, error: float | None = None, digits: int = 4) -> str:
    """``value ± error`` with the error to two significant digits, else ``digits`` significant."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if error is None or not math.isfinite(error) or error <= 0:
        return f"{value:.{digits}g}"
    decimals = max(0, 1 - math.floor(math.log10(error)))
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def _cell_text(cell: Cell) -> str:
    if isinstance(cell, tuple) and len(cell) == 2:
        return format_value(float(cell[0]), float(cell[1]))
    if isinstance(cell, float):
        return format_value(cell)
    return str(cell)


def _jsonable(cell: Cell) -> Any:
    if isinstance(cell, tuple) and len(cell) == 2:
        return {"value": _num(cell[0]), "error": _num(cell[1])}
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return _num(cell)
    return cell


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class Table:
    """A titled table.

    Attributes
    ----------
    title : str
    columns : list[str]
    rows : list[list[Cell]]
        Cells: str, number, or ``(value, error)``.
    note : str
        One paragraph printed under the table (definitions, floor explanation).
    """

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown with a ``###`` title and the note below."""
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(_cell_text(c) for c in row) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """CSV text; a pair column ``c`` becomes ``c`` and ``c_err``."""
        pair_cols = [
            any(isinstance(r[j], tuple) for r in self.rows) for j in range(len(self.columns))
        ]
        header: list[str] = []
        for name, is_pair in zip(self.columns, pair_cols, strict=True):
            header += [name, f"{name}_err"] if is_pair else [name]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            out: list[Any] = []
            for cell, is_pair in zip(row, pair_cols, strict=True):
                if is_pair:
                    out += list(cell) if isinstance(cell, tuple) else [cell, ""]
                else:
                    out.append(cell)
            writer.writerow(out)
        return buf.getvalue()

    def to_html(self) -> str:
        """An HTML ``<table>`` with caption and note (escaped)."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell_text(c))}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (
            f"<table><caption>{html.escape(self.title)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (pairs -> ``{"value", "error"}``, NaN -> None)."""
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": [[_jsonable(c) for c in row] for row in self.rows],
            "note": self.note,
        }

    def write(self, stem: str | Path) -> list[Path]:
        """Write ``stem.md`` and ``stem.csv``; returns the paths."""
        stem = Path(stem)
        md, cs = stem.with_suffix(".md"), stem.with_suffix(".csv")
        md.write_text(self.to_markdown(), encoding="utf-8")
        cs.write_text(self.to_csv(), encoding="utf-8")
        return [md, cs]


def rows_from_columns(index: Sequence[str], columns: Sequence[Sequence[Cell]]) -> list[list[Cell]]:
    """Transpose column lists into rows headed by ``index``."""
    return [[name, *[col[i] for col in columns]] for i, name in enumerate(index)]
