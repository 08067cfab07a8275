"""A logger that keeps every metric value: one tidy CSV and a JSON summary per run.

Avalanche's ``CSVLogger`` writes a fixed set of metrics and drops the rest; this writer keeps
all of them, tagged with the training experience they follow, so forgetting and inactivity
sit side by side per experience.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import torch
from avalanche.logging import BaseLogger

__all__ = ["ResultsWriter"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a crash leaves the old
    file or the new one, never half of one."""
    # a name of its own per writer (process and thread), so two runs writing one directory never
    # share a temporary file; it is removed if the write fails (a full disk)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: list[str]) -> None:
    """Write ``rows`` as CSV with a header, atomically (:func:`atomic_write_text`)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


class ResultsWriter(BaseLogger):
    """Record every scalar metric value as ``(experience, metric, value, x_plot)``.

    ``experience`` is the index of the training experience most recently started (``-1``
    before any training), so evaluation rows after training experience ``e`` carry ``e``.

    Parameters
    ----------
    out_dir : path, optional
        Where ``metrics.csv`` and ``metrics.json`` are written after every training
        experience and evaluation (nothing is written when ``None``).
    """

    def __init__(self, out_dir: str | Path | None = None) -> None:
        super().__init__()
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.rows: list[dict[str, Any]] = []
        self._pending: list[tuple[str, float, int]] = []
        self.experience = -1

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        """Queue a value; it is tagged with its experience at the next callback."""
        v = _scalar(value)
        if v is not None:
            self._pending.append((name, v, int(x_plot)))

    def _flush(self) -> None:
        for name, v, x in self._pending:
            self.rows.append({"experience": self.experience, "metric": name, "value": v, "x_plot": x})
        self._pending = []

    def before_training_exp(self, strategy: Any, metric_values: Any) -> None:
        """Tag what came before with the previous experience, then advance."""
        self._flush()
        self.experience = int(strategy.clock.train_exp_counter)

    def after_training_epoch(self, strategy: Any, metric_values: Any) -> None:
        """Tag epoch-level values."""
        self._flush()

    def after_training_exp(self, strategy: Any, metric_values: Any) -> None:
        """Tag and write."""
        self._flush()
        self.write()

    def after_eval_exp(self, strategy: Any, metric_values: Any) -> None:
        """Tag per-experience evaluation values."""
        self._flush()

    def after_eval(self, strategy: Any, metric_values: Any) -> None:
        """Tag stream-level evaluation values and write."""
        self._flush()
        self.write()

    def last(self) -> dict[str, float]:
        """The last value of every metric."""
        self._flush()
        return {r["metric"]: r["value"] for r in self.rows}

    def series(self, metric: str) -> dict[int, float]:
        """``{experience: last value}`` of one metric."""
        self._flush()
        return {r["experience"]: r["value"] for r in self.rows if r["metric"] == metric}

    def values(self, metric: str) -> dict[int, list[float]]:
        """``{experience: every value in order}`` of one metric (e.g. the loss of each epoch)."""
        self._flush()
        out: dict[int, list[float]] = {}
        for r in self.rows:
            if r["metric"] == metric:
                out.setdefault(r["experience"], []).append(r["value"])
        return out

    def write(self) -> None:
        """Write ``metrics.csv`` (tidy) and ``metrics.json`` (last value and per-experience series)."""
        if self.out_dir is None:
            return
        self._flush()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(self.out_dir / "metrics.csv", self.rows, ["experience", "metric", "value", "x_plot"])
        per_exp: dict[str, dict[str, float]] = {}
        for r in self.rows:
            if math.isfinite(r["value"]):
                per_exp.setdefault(r["metric"], {})[str(r["experience"])] = r["value"]
        summary = {"last": {k: v for k, v in self.last().items() if math.isfinite(v)}, "by_experience": per_exp}
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(summary, indent=1, sort_keys=True))
