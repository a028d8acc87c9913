"""Hindsight relabelling: feature functions phi and anti-causal aggregators (RTG, future histograms).

Convention for state features: phi_t is read from observation s_t, the state the agent is in when it
takes a_t (the reference's `condition='xvel'`). The env side records, for rollouts, the feature of the
same s_t, so targets and rollouts are aligned (no one-step offset).

Every aggregator is anti-causal: z_t depends only on phi_t, ..., phi_{end}. Arrays are padded with a
mask (True on real steps); padded steps contribute nothing and get zero rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gdt.core.registry import Registry


def _reverse_discounted_sum(x: jax.Array, mask: jax.Array, gamma: float) -> jax.Array:
  """out_t = sum_{t' >= t, mask} gamma^(#real steps in t..t'-1) x_t' along axis -1 of x [..., T].

  Masked steps are skipped (they neither add nor discount) and their rows are zero.
  """
  x = jnp.where(mask, x, 0)
  if gamma == 1.0:
    out = jnp.flip(jnp.cumsum(jnp.flip(x, -1), axis=-1), -1)
    return jnp.where(mask, out, 0)

  def step(carry, xm):
    xt, mt = xm
    carry = jnp.where(mt, xt + gamma * carry, carry)
    return carry, carry

  xs = (jnp.moveaxis(x, -1, 0), jnp.moveaxis(jnp.broadcast_to(mask, x.shape), -1, 0))
  _, out = jax.lax.scan(step, jnp.zeros(x.shape[:-1], x.dtype), xs, reverse=True)
  return jnp.where(mask, jnp.moveaxis(out, 0, -1), 0)


def _full_mask(values: jax.Array, mask) -> jax.Array:
  return jnp.ones(values.shape, bool) if mask is None else jnp.asarray(mask, bool)


def returns_to_go(rewards, gamma: float = 1.0, mask=None) -> jax.Array:
  """Discounted reverse sum: rewards [..., T] (f32) -> [..., T]; zero at padded steps.

  `gamma` is a Python float (static under jit): gamma == 1 is a reverse cumulative sum, gamma < 1 a
  reverse `lax.scan`.
  """
  rewards = jnp.asarray(rewards, jnp.float32)
  return _reverse_discounted_sum(rewards, _full_mask(rewards, mask), float(gamma))


def bin_index(values, edges) -> jax.Array:
  """Bin of each value on `edges` [B+1] with numpy-histogram semantics ([e_i, e_i+1), last bin closed).

  Values outside [edges[0], edges[-1]] are clipped into the edge bins. values [...] -> int32 [...].
  """
  edges = jnp.asarray(edges, jnp.float32)
  idx = jnp.searchsorted(edges, jnp.asarray(values, jnp.float32), side="right") - 1
  return jnp.clip(idx, 0, edges.shape[0] - 2).astype(jnp.int32)


def future_histogram(values, edges, gamma: float = 1.0, mask=None) -> jax.Array:
  """Row t = discounted normalised histogram of values[t:end] on `edges` [B+1]: [..., T] -> [..., T, B].

  Every real step's row sums to 1; padded steps' rows are zero. `gamma` is a static Python float.
  """
  values = jnp.asarray(values, jnp.float32)
  mask = _full_mask(values, mask)
  num_bins = jnp.shape(edges)[0] - 1
  one_hot = jax.nn.one_hot(bin_index(values, edges), num_bins, dtype=jnp.float32)  # [..., T, B]
  counts = _reverse_discounted_sum(jnp.moveaxis(one_hot, -1, -2), mask[..., None, :], float(gamma))
  mass = _reverse_discounted_sum(jnp.ones_like(values), mask, float(gamma))  # [..., T]
  hist = jnp.moveaxis(counts, -2, -1) / jnp.where(mask, mass, 1.0)[..., None]
  return jnp.where(mask[..., None], hist, 0.0)


def bin_edges(values, mask=None, num_bins: int = 30) -> jax.Array:
  """linspace(min, max, num_bins + 1) over the real steps of `values` [...] -> [num_bins + 1].

  A constant feature (max == min) gets the unit-wide range [min, min + 1] so bins stay well defined.
  """
  values = jnp.asarray(values, jnp.float32)
  mask = _full_mask(values, mask)
  lo = jnp.min(jnp.where(mask, values, jnp.inf))
  hi = jnp.max(jnp.where(mask, values, -jnp.inf))
  hi = jnp.where(hi > lo, hi, lo + 1.0)
  return jnp.linspace(lo, hi, num_bins + 1)


def bin_centers(edges) -> jax.Array:
  """Midpoints of `edges` [B+1] -> [B]."""
  edges = jnp.asarray(edges)
  return 0.5 * (edges[:-1] + edges[1:])


# --- Features phi: fn(data, metadata) -> [N, T], data a Trajectories or a mapping of its arrays. ---

FeatureFn = Callable[[object, Mapping], object]
FEATURES: Registry[FeatureFn] = Registry("feature")


def _field(data, name: str):
  return data[name] if isinstance(data, Mapping) else getattr(data, name)


def _valid_mask(data):
  """[N, T] bool of real steps, from `mask()` / 'mask' / 'lengths' (None when none is given)."""
  if hasattr(data, "mask") and callable(data.mask):
    return data.mask()
  if isinstance(data, Mapping):
    if "mask" in data:
      return data["mask"]
    if "lengths" in data:
      lengths = np.asarray(data["lengths"])
      return np.arange(np.shape(data["rewards"])[-1])[None, :] < lengths[:, None]
  return None


def _zero_padding(values, data):
  mask = _valid_mask(data)
  return values if mask is None else values * mask


@FEATURES.register("reward")
def reward_feature(data, metadata: Mapping):
  """phi_t = r_t, the dataset reward."""
  del metadata
  return _zero_padding(_field(data, "rewards"), data)


def observation_feature(name: str) -> FeatureFn:
  """phi_t = s_t[metadata['observation_layout'][name]]."""

  def feature(data, metadata: Mapping):
    layout = metadata.get("observation_layout", {})
    if name not in layout:
      raise KeyError(
          f"feature {name!r} is not in the observation layout of {metadata.get('env', 'this dataset')!r}; "
          f"available: {sorted(layout)}")
    return _zero_padding(_field(data, "observations")[..., layout[name]], data)

  return feature


FEATURES.register("x_velocity", observation_feature("x_velocity"))


def get_feature(name: str, metadata: Mapping) -> FeatureFn:
  """The feature fn(data, metadata) of `name`: a registered feature or any name in metadata's observation layout."""
  layout = metadata.get("observation_layout", {})
  if name in FEATURES:
    return FEATURES.get(name)
  if name in layout:
    return observation_feature(name)
  raise KeyError(
      f"unknown feature {name!r}; registered: {FEATURES.names()}, observation layout of "
      f"{metadata.get('env', 'this dataset')!r}: {sorted(layout)}")


def feature_values(trajs, name: str):
  """phi [N, T] (padding zeroed) of feature `name` (see `get_feature`) for a Trajectories or a mapping."""
  metadata = trajs.get("metadata", {}) if isinstance(trajs, Mapping) else _field(trajs, "metadata")
  return get_feature(name, metadata)(trajs, metadata)


# --- Aggregators: fn(phi [N, T], mask [N, T], *, gamma, edges, rtg_scale) -> z [N, T, D]
# (gdt.conditioning.CONDITIONINGS says which kind uses which). ---


def rtg_aggregator(values, mask, *, gamma: float, edges, rtg_scale: float):
  """DT: discounted sum of the future divided by `rtg_scale`, [N, T] -> [N, T, 1]."""
  del edges
  return (returns_to_go(values, gamma, mask) / rtg_scale)[..., None]


def histogram_aggregator(values, mask, *, gamma: float, edges, rtg_scale: float):
  """CDT: normalised histogram of the future on `edges` [B+1], [N, T] -> [N, T, B]."""
  del rtg_scale
  if edges is None:
    raise ValueError("the histogram aggregator needs bin edges (see hindsight.bin_edges)")
  return future_histogram(values, edges, gamma, mask)
