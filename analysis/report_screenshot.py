"""Render an HTML report in headless Chromium and save a screenshot (PNG).

    python analysis/report_screenshot.py demo-output/report/report.html -o report.png

Chromium is the Debian package ``chromium`` (``apt-get install -y chromium``); the
script also finds ``chromium-browser``, ``google-chrome`` or ``$CHROMIUM``. Look at the
screenshot whenever the report's layout changes: it is what a reader's browser shows
(fonts, wrapping, image scaling, tables), which an HTML parser cannot check. Run by the
slow test ``tests/evaluation/test_report_browser.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hepvld.cli._common import Parser

__all__ = ["find_chromium", "main", "screenshot"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$CHROMIUM`` first), or ``None``."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(
    html: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    width: int = 1280,
    height: int = 5000,
    timeout: float = 120.0,
) -> Path:
    """Screenshot of ``html`` rendered in a ``width`` x ``height`` window; returns ``png``.

    Raises ``FileNotFoundError`` without Chromium or without the HTML file, and
    ``RuntimeError`` (with Chromium's stderr) when Chromium writes no image.
    """
    html, png = Path(html).resolve(), Path(png).resolve()
    if not html.is_file():
        raise FileNotFoundError(f"no HTML report at {html}")
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium found: install the Debian package `chromium` or set $CHROMIUM"
        )
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",  # root in containers
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no screenshot of {html}:\n{done.stderr[-2000:]}")
    return png


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("html", type=Path, help="the report's HTML file")
    p.add_argument("-o", "--output", type=Path, default=Path("report.png"), help="PNG to write")
    p.add_argument("--width", type=int, default=1280, help="window width in CSS pixels")
    p.add_argument("--height", type=int, default=5000, help="window height in CSS pixels")
    args = p.parse_args(argv)
    try:
        path = screenshot(args.html, args.output, width=args.width, height=args.height)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"report_screenshot: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
