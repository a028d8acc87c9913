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
  fig, axes = _panels(len(names), columns, (3.2, 2.6))
  for i, ax in enumerate(axes):
    ax.bar(centers, target[i], width=width, alpha=0.5, label="target", color="tab:blue")
    ax.bar(centers, achieved[i], width=width, alpha=0.5, label="achieved", color="tab:orange")
    ax.set_title(names[i] + (f"  W1={w1[i]:.3f}" if w1 is not None else ""), fontsize=9)
    ax.tick_params(labelsize=7)
  _save(fig, path, title, axes[0])


def _panels(m: int, columns: int, size: tuple[float, float]):
  """A figure of `m` panels in rows of `columns` (the unused ones hidden) -> (fig, the m axes in order)."""
  cols = min(columns, m)
  rows = math.ceil(m / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False, sharex=True)
  for ax in axes.flat[m:]:
    ax.axis("off")
  return fig, list(axes.flat[:m])


def _save(fig, path: str, title: str, legend_ax, title_size: float | None = None) -> None:
  legend_ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=title_size)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=90)
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())


def method_histograms(path: str, edges: np.ndarray, panels: Sequence[tuple[str, np.ndarray, dict]],
                      title: str = "", columns: int = 3, xlabel: str = "") -> None:
  """One panel per (name, target [B], {method: achieved [B]}): the target as grey bars, each method's achieved
  histogram as a step line over `edges` [B+1], e.g. a bimodal x-velocity target and what CDT and DT did.

    method_histograms("bimodal.png", edges, [("w=0.5", target, {"CDT": h_cdt, "DT": h_dt})], xlabel="x-velocity")
  """
  edges = np.asarray(edges)
  centers, width = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
  fig, axes = _panels(len(panels), columns, (3.6, 2.8))
  for ax, (name, target, achieved) in zip(axes, panels, strict=True):
    ax.bar(centers, target, width=width, color="0.75", label="target")
    for method, hist in achieved.items():
      ax.step(edges, np.append(hist, hist[-1]), where="post", label=method, linewidth=1.4)
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=7)
    if xlabel:
      ax.set_xlabel(xlabel, fontsize=8)
  _save(fig, path, title, axes[0], title_size=10)
