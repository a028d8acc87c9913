"""Evaluation targets: held-out dataset trajectories (best-k / middle-k by return) and synthetic distributions.

A target's open-loop schedule is `Labels.relabel` of its own feature values, the same function that labels the
training data, with the run's `Labels` (read from the trained policy), so a target's z_t is exactly what training
conditioned on for that trajectory.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from gdt import hindsight, metrics
from gdt.conditioning import Labels

GROUPS = ("best", "middle")  # target-name prefixes that get their own mean (plus "all")


def split_targets(trajs, best_k: int, middle_k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Holds out the best-k and middle-k trajectories by return (gdt_reference §2.6).

  Returns (train_indices [N-M], target_indices [M], names [M]): `best_traj_i` has the i-th highest
  return; `middle_traj_i` has rank floor(N/2) - floor(k/2) + i in ascending order of return.
  """
  returns = np.asarray(trajs.returns())
  n = len(returns)
  order = np.argsort(returns, kind="stable")
  best = order[::-1][:best_k]
  start = n // 2 - middle_k // 2
  middle = order[start:start + middle_k]
  target = np.concatenate([best, middle]).astype(np.int64)
  if len(set(target.tolist())) != best_k + middle_k or start < 0:
    raise ValueError(f"{n} trajectories are too few for {best_k} best and {middle_k} middle disjoint targets")
  names = [f"best_traj_{i}" for i in range(best_k)] + [f"middle_traj_{i}" for i in range(middle_k)]
  train = np.setdiff1d(np.arange(n), target)
  return train, target, names


@dataclasses.dataclass(frozen=True)
class Targets:
  """M evaluation targets and the per-step conditioning of their open-loop schedule.

  `score_features` maps every scored feature (the conditioning feature first) to its bins and target
  histograms. T = max length.
  """
  names: tuple[str, ...]
  labels: Labels
  values: np.ndarray  # [M, T] conditioning-feature values of the target (zeros for synthetic targets)
  lengths: np.ndarray  # [M] int
  histograms: np.ndarray  # [M, B] whole-target histogram (= h_0)
  cond: np.ndarray  # [M, T, C] open-loop conditioning (labels.relabel of the target; synthetic: see below)
  totals: np.ndarray  # [M] target feature sum (the closed-loop rtg budget)
  returns: np.ndarray  # [M] target returns (nan for synthetic targets)
  demo_states: np.ndarray | None  # [M, T, S] raw demo states (BDT), else None
  score_features: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (name, edges [B+1], hist [M,B])

  @property
  def feature(self) -> str:
    return self.labels.feature

  @property
  def conditioning(self) -> str:
    return self.labels.conditioning

  @property
  def edges(self) -> np.ndarray:
    return self.labels.edges

  @property
  def num_targets(self) -> int:
    return len(self.names)

  @property
  def max_length(self) -> int:
    return int(self.lengths.max())


def histograms(values: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """[M, ...] values and mask -> [M, B] normalised histograms over each row's masked entries."""
  return np.stack([np.asarray(metrics.histogram(np.ravel(v), edges, mask=np.ravel(m)))
                   for v, m in zip(values, mask, strict=True)])


def feature_edges(trajs, feature: str, num_bins: int) -> np.ndarray:
  """`num_bins` equal bins over every real step of `trajs` of `feature` -> [num_bins + 1]."""
  values = hindsight.feature_values(trajs, feature)
  return np.asarray(hindsight.bin_edges(values, trajs.mask(), num_bins), np.float32)


def trajectory_targets(trajs, indices, names, labels: Labels, score_edges: Mapping[str, np.ndarray] = {}) -> Targets:
  """Targets from held-out dataset trajectories (best/middle), conditioned as `labels` says.

  `score_edges` maps extra features to score (e.g. reward besides x_velocity) to their W1 bins; give them the
  bins of the same trajectories the labels' bins came from (`gdt.train.held_out_targets` does).
  """
  sel = trajs.select(np.asarray(indices))
  mask = sel.mask()
  values = np.asarray(hindsight.feature_values(sel, labels.feature), np.float32) * mask
  hist = histograms(values, mask, labels.edges)
  scored = [(labels.feature, labels.edges, hist)]
  for name, f_edges in score_edges.items():
    if name == labels.feature:
      continue
    f_edges = np.asarray(f_edges, np.float32)
    f_values = np.asarray(hindsight.feature_values(sel, name), np.float32)
    scored.append((name, f_edges, histograms(f_values, mask, f_edges)))
  return Targets(
      names=tuple(names), labels=labels, values=values, lengths=np.asarray(sel.lengths, np.int32), histograms=hist,
      cond=labels.relabel(values, mask), totals=values.sum(-1), returns=np.asarray(sel.returns(), np.float32),
      demo_states=np.asarray(sel.observations, np.float32) if labels.kind.reads_demo else None,
      score_features=tuple(scored))


def mixture_histogram(h1, h2, w: float = 0.5) -> np.ndarray:
  """w * h1 + (1 - w) * h2, renormalised ([..., B]); e.g. a bimodal forward/backflip target."""
  h = w * np.asarray(h1, np.float64) + (1.0 - w) * np.asarray(h2, np.float64)
  return (h / h.sum(-1, keepdims=True)).astype(np.float32)


def synthetic_targets(hists, names, labels: Labels, length: int) -> Targets:
  """Targets given only as distributions p* [M, B] over `labels.edges`, rolled out for `length` steps.

  There is no per-step h_t: the open-loop schedule is the conditioning kind's `synthetic` schedule (CDT: p* at
  every step; DT: the expected future sum (length - t) E_p*[phi] / rtg_scale); closed_loop updates from what
  was achieved.
  """
  p = np.asarray(hists, np.float32)
  p = p / p.sum(-1, keepdims=True)
  m, b = p.shape
  if b != labels.num_bins:
    raise ValueError(f"synthetic histograms have {b} bins but the labels' edges define {labels.num_bins}")
  mean = p @ np.asarray(hindsight.bin_centers(labels.edges))  # [M]
  steps_left = (length - np.arange(length)).astype(np.float32)  # [T]
  cond = labels.kind.synthetic(p, mean, steps_left, labels.rtg_scale)
  return Targets(
      names=tuple(names), labels=labels, values=np.zeros((m, length), np.float32),
      lengths=np.full((m,), length, np.int32), histograms=p, cond=np.ascontiguousarray(cond, np.float32),
      totals=(mean * length).astype(np.float32), returns=np.full((m,), np.nan, np.float32), demo_states=None,
      score_features=((labels.feature, labels.edges, p),))
