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


def method_histograms(path: str, edges: np.ndarray, panels: Sequence[tuple[str, np.ndarray, dict]],
                      title: str = "", columns: int = 3, xlabel: str = "") -> None:
  """One panel per (name, target [B], {method: achieved [B]}): the target as grey bars, each method's achieved
  histogram as a step line over `edges` [B+1], e.g. a bimodal x-velocity target and what CDT and DT did.

    method_histograms("bimodal.png", edges, [("w=0.5", target, {"CDT": h_cdt, "DT": h_dt})], xlabel="x-velocity")
  """
  edges = np.asarray(edges)
  centers, width = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
  m = len(panels)
  cols = min(columns, m)
  rows = math.ceil(m / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharex=True)
  for i, ax in enumerate(axes.flat):
    if i >= m:
      ax.axis("off")
      continue
    name, target, achieved = panels[i]
    ax.bar(centers, target, width=width, color="0.75", label="target")
    for method, hist in achieved.items():
      ax.step(edges, np.append(hist, hist[-1]), where="post", label=method, linewidth=1.4)
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=7)
    if xlabel:
      ax.set_xlabel(xlabel, fontsize=8)
  axes.flat[0].legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=90)
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())
