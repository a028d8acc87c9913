"""Wasserstein-1 distances (on binned histograms and on raw samples) and normalised histograms."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gdt.hindsight import bin_index

_EPS = 1e-12  # the reference divides histograms by (sum + 1e-12)


def wasserstein_1d(p, q, centers):
  """W1 between histograms p, q [..., B] (normalised here) on sorted bin centres [B] -> [...].

  Closed form sum_i |P_i - Q_i| (c_{i+1} - c_i) over cumulative sums P, Q; for equally spaced
  centres this is the reference's Delta * sum_i |P_i - Q_i|, and it equals
  scipy.stats.wasserstein_distance(c, c, p, q).
  """
  p = jnp.asarray(p, jnp.float32)
  q = jnp.asarray(q, jnp.float32)
  centers = jnp.asarray(centers, jnp.float32)
  if p.shape[-1] != centers.shape[-1] or q.shape[-1] != centers.shape[-1]:
    raise ValueError(f"histograms have {p.shape[-1]} and {q.shape[-1]} bins but there are {centers.shape[-1]} centres")
  p = p / (p.sum(-1, keepdims=True) + _EPS)
  q = q / (q.sum(-1, keepdims=True) + _EPS)
  gap = jnp.abs(jnp.cumsum(p, -1) - jnp.cumsum(q, -1))[..., :-1]
  return jnp.sum(gap * jnp.diff(centers), -1)


def wasserstein_1d_samples(x, y) -> float:
  """Exact W1 between the empirical distributions of samples x [n] and y [m] (n != m allowed).

  Integrates |F_x - F_y| over the merged sorted support, in float64 on the host.
  """
  x = np.sort(np.asarray(x, np.float64).ravel())
  y = np.sort(np.asarray(y, np.float64).ravel())
  if x.size == 0 or y.size == 0:
    raise ValueError(f"W1 needs two non-empty samples, got sizes {x.size} and {y.size}")
  support = np.sort(np.concatenate([x, y]))
  widths = np.diff(support)
  cdf_x = np.searchsorted(x, support[:-1], side="right") / x.size
  cdf_y = np.searchsorted(y, support[:-1], side="right") / y.size
  return float(np.sum(np.abs(cdf_x - cdf_y) * widths))


def histogram(values, edges, mask=None):
  """Normalised histogram [B] of all `values` [...] on `edges` [B+1], clipped into range.

  `mask` (bool or float weights, shape of values) weights each value; all-zero weights give zeros.
  """
  values = jnp.asarray(values, jnp.float32)
  weights = jnp.ones(values.shape, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
  num_bins = jnp.shape(edges)[0] - 1
  counts = jnp.zeros(num_bins, jnp.float32).at[bin_index(values, edges).ravel()].add(weights.ravel())
  return counts / (counts.sum() + _EPS)
