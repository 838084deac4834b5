"""Run records: ``metrics.csv``, ``loss.png``, optional TensorBoard, and ``train.log``.

``metrics.csv`` has the columns ``step, epoch, split, lr`` followed by every loss term the
model returned (``loss`` first), in order of first appearance; a row leaves terms it does
not have empty. On resume, rows after the resumed step (written by the killed run after
its last checkpoint) are dropped, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MetricsLogger", "log_to_file", "plot_losses"]

log = logging.getLogger(__name__)

_FIXED = ("step", "epoch", "split", "lr")


@contextlib.contextmanager
def log_to_file(path: str | os.PathLike[str], level: int = logging.INFO) -> Iterator[None]:
    """Attach a ``FileHandler`` for ``path`` to the ``hepvld`` logger for the duration.

    The logger's level is lowered to ``level`` meanwhile (if it was higher or unset) and
    restored afterwards, as is the handler list.
    """
    logger = logging.getLogger("hepvld")
    handler = logging.FileHandler(path)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()


class MetricsLogger:
    """Appends metric rows to ``run_dir/metrics.csv`` (and TensorBoard if importable).

    Parameters
    ----------
    run_dir
        Where ``metrics.csv``, ``loss.png`` and ``tensorboard/`` go.
    resume_step
        Keep only existing rows with ``step <= resume_step``; ``None`` starts a new file.
    enabled
        False on non-zero ranks: every method is then a no-op.
    tensorboard
        Also write TensorBoard scalars when ``torch.utils.tensorboard`` imports.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        resume_step: int | None = None,
        enabled: bool = True,
        tensorboard: bool = True,
    ) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.png = Path(run_dir) / "loss.png"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = list(_FIXED)
        self._writer: Any = None
        if not enabled:
            return
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or _FIXED)
                self.rows = [r for r in reader if int(r["step"]) <= resume_step]
        self._rewrite()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except Exception as err:  # tensorboard is optional
                log.debug("TensorBoard disabled: %s", err)

    def log(
        self, step: int, epoch: float, split: str, lr: float, terms: Mapping[str, float]
    ) -> None:
        """Record one row: ``terms`` are the (weighted-mean) loss terms, ``loss`` among them."""
        if not self.enabled:
            return
        row = {"step": step, "epoch": f"{epoch:.4f}", "split": split, "lr": f"{lr:.6g}"}
        row.update({k: f"{v:.8g}" for k, v in terms.items()})
        self.rows.append(row)
        new = [k for k in terms if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns, restval="").writerow(row)
        if self._writer is not None:
            for key, value in terms.items():
                self._writer.add_scalar(f"{split}/{key}", value, step)
            if split == "train":
                self._writer.add_scalar("lr", lr, step)

    def plot(self) -> None:
        """Rewrite ``loss.png`` (training and validation total loss, and the lr)."""
        if self.enabled:
            plot_losses(self.rows, self.png)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)


def plot_losses(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Loss curves from metric rows to a PNG (matplotlib OO API, Agg; skipped without it)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # the "plot" extra is optional
        log.debug("matplotlib not installed: no loss plot")
        return

    def series(split: str, key: str) -> tuple[list[int], list[float]]:
        pts = [
            (int(r["step"]), float(r[key]))
            for r in rows
            if r["split"] == split and r.get(key) not in (None, "")
        ]
        return [p[0] for p in pts], [p[1] for p in pts]

    try:  # the project's figure style (mplhep CMS) when the plot extra is complete
        import mplhep  # noqa: F401

        from hepvld.evaluation.plots import label, style

        context: contextlib.AbstractContextManager[None] = style()
        add_label: Any = label
    except ImportError:
        context, add_label = contextlib.nullcontext(), None
    with context:
        fig = Figure(figsize=(8, 8), layout="constrained")
        FigureCanvasAgg(fig)
        fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)  # type: ignore[union-attr,call-arg]
        ax_loss, ax_lr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        values = []
        for split, style_, name in (("train", "-", "Training"), ("val", "o-", "Validation (EMA)")):
            x, y = series(split, "loss")
            if x:
                ax_loss.plot(x, y, style_, label=name, markersize=4, linewidth=1.5)
                values += y
        if values and all(v > 0 and math.isfinite(v) for v in values):
            ax_loss.set_yscale("log")
        ax_loss.set_ylabel("Loss")
        if values:
            ax_loss.legend(loc="upper right")
        x, y = series("train", "lr")
        ax_lr.plot(x, y, color="C2")
        ax_lr.set_xlabel("Optimiser step")
        ax_lr.set_ylabel("Learning rate")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        steps = [int(r["step"]) for r in rows]
        if steps:
            ax_lr.set_xlim(0, max(steps))
        if add_label is not None:
            add_label(ax_loss, f"Training, step {max(steps) if steps else 0}", com=None)
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.png")
        fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
