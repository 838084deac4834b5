"""``examples/analysis.ipynb`` runs top to bottom on a tiny file and a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("coffea")
pytest.importorskip("mplhep")

NOTEBOOK = Path(__file__).parents[1] / "examples" / "analysis.ipynb"


def test_analysis_notebook_executes(
    tiny_root_file: Path, tiny_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEPVLD_NOTEBOOK_FILE", str(tiny_root_file))
    monkeypatch.setenv("HEPVLD_NOTEBOOK_RUN", str(tiny_run_dir))
    monkeypatch.setenv("HEPVLD_NOTEBOOK_DRAWS", "4")
    monkeypatch.setenv("HEPVLD_NOTEBOOK_STEPS", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the cell's traceback on failure
    text = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "events unfolded, 4 draws each" in text
    assert "cross-reference" not in text  # HepvldSchema keeps the output clean
    entries = text.split("entries: unfolded ")[1].split()
    n_events = int(text.split(" events unfolded")[0].split()[-1])
    assert float(entries[0]) == pytest.approx(4 * n_events)
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 1  # the mplhep figure
