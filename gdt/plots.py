"""Evaluation plots (matplotlib, Agg backend): target vs achieved feature histograms."""

from __future__ import annotations

import io
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gdt.core.workdir import atomic_write_bytes  # noqa: E402


def histogram_grid(path: str, names: Sequence[str], edges: np.ndarray, target: np.ndarray, achieved: np.ndarray,
                   title: str = "", w1: Sequence[float] | None = None, columns: int = 5) -> None:
  """One panel per target: target [M, B] and achieved [M, B] histograms over `edges` [B+1], as a PNG."""
  edges = np.asarray(edges)
  centers, width = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
  m = len(names)
  cols = min(columns, m)
  rows = math.ceil(m / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharex=True)
  for i, ax in enumerate(axes.flat):
    if i >= m:
      ax.axis("off")
      continue
    ax.bar(centers, target[i], width=width, alpha=0.5, label="target", color="tab:blue")
    ax.bar(centers, achieved[i], width=width, alpha=0.5, label="achieved", color="tab:orange")
    ax.set_title(names[i] + (f"  W1={w1[i]:.3f}" if w1 is not None else ""), fontsize=9)
    ax.tick_params(labelsize=7)
  axes.flat[0].legend(fontsize=7)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=90)
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())
