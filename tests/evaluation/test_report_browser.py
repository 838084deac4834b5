"""The HTML report rendered by headless Chromium (``analysis/report_screenshot.py``).

Slow and optional: needs the Debian package ``chromium``. The screenshot is written to
``$HEPVLD_SCREENSHOT_DIR`` (default: the test's tmp dir) so a person can look at it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mplhep")

from evaluation_toys import physical_toy

from hepvld.evaluation.report import write_report

ROOT = Path(__file__).parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "report_screenshot", ROOT / "analysis" / "report_screenshot.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_report_renders_in_chromium(rng: np.random.Generator, tmp_path: Path) -> None:
    shot = _script()
    if shot.find_chromium() is None:
        pytest.skip("no Chromium (apt-get install -y chromium)")
    from matplotlib.image import imread

    truth = physical_toy(rng, 300)
    draws = {"VLD": truth[:, None] + rng.normal(size=(300, 8, 55))}
    report = write_report(
        tmp_path / "report",
        truth,
        draws,
        train_truth=physical_toy(rng, 300),
        n_boot=5,
        plot_formats=("png",),
        title="hepvld report rendered in Chromium",
    )
    out = Path(os.environ.get("HEPVLD_SCREENSHOT_DIR", tmp_path)) / "report.png"
    shot.screenshot(report.html, out, width=1280, height=3000)
    image = imread(out)
    assert image.shape[:2] == (3000, 1280)
    # something is drawn: not a blank page (text, tables and figures vary the pixels)
    rows = image[..., :3].mean(axis=(1, 2))
    assert image[..., :3].std() > 0.05 and (np.abs(np.diff(rows)) > 0).mean() > 0.2
