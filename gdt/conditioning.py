"""What the policy is conditioned on: one record per conditioning kind, and the `Labels` every stage shares.

A `Conditioning` says, for one kind (DT 'rtg', CDT 'histogram', BDT 'anticausal', BC 'none'): how z_t is
relabelled from a trajectory's feature (its aggregator), its width, the policy's embedder for it, how the
closed-loop schedule updates it from what a rollout achieved, and how a synthetic target distribution p* becomes
a schedule. Adding a kind is one record here; no other file branches on the name.

`Labels` is the one description of how z_t was computed for a run (kind, feature, bin edges, rtg_scale, gamma).
Training relabels with it, it is stored in the checkpoint, and evaluation targets are built from the loaded
policy's copy, so targets and training labels cannot disagree (the DT scale bug).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdt import hindsight
from gdt.core.registry import Registry
from gdt.models import embedders


class ScheduleStep(NamedTuple):
  """What a closed-loop update may read at rollout step t (per env)."""
  t: jax.Array  # [] int
  precomputed: jax.Array  # [E, C] the target's open-loop conditioning at index t
  histogram: jax.Array  # [E, B] target distribution p*
  length: jax.Array  # [E] target length T
  total: jax.Array  # [E] target feature sum
  counts: jax.Array  # [E, B] bin counts of the feature achieved at steps < t
  achieved_sum: jax.Array  # [E] feature sum achieved at steps < t
  rtg_scale: float
  left: jax.Array | None = None  # [E, B] target mass T p* not used up by steps < t (`use_nearest_mass`)


def closed_loop_histogram(histogram: jax.Array, length: jax.Array, counts: jax.Array) -> jax.Array:
  """normalise(max(0, T p* - counts)); p* once the target's mass is used up. [E,B],[E],[E,B] -> [E,B]."""
  left = jnp.maximum(0.0, length[..., None] * histogram - counts)
  mass = left.sum(-1, keepdims=True)
  return jnp.where(mass > 0, left / jnp.where(mass > 0, mass, 1.0), histogram)


def use_nearest_mass(left: jax.Array, bins: jax.Array, amount: jax.Array, passes: int = 2) -> jax.Array:
  """Each achieved step uses up `amount` of the target mass left in the bin nearest to its own (ties: the lower
  bin), spilling into the next nearest once that is empty (`passes` bins at most). [E,B],[E] int,[E] -> [E,B].

  Unlike subtracting counts bin by bin, a step that lands one bin off its target mode still spends that mode: with
  the bin-exact rule a standing cheetah one bin off the target's standing bin never spends it, and a runner narrower
  than its target leaves the target's tails, so the remaining histogram drifts to what was not done."""
  idx = jnp.arange(left.shape[-1])
  for _ in range(passes):
    dist = jnp.where(left > 0, jnp.abs(idx - bins[:, None]), left.shape[-1])
    k = jnp.argmin(dist, axis=-1)
    take = jnp.minimum(amount, jnp.take_along_axis(left, k[:, None], axis=-1)[:, 0])
    left = left - jax.nn.one_hot(k, left.shape[-1]) * take[:, None]
    amount = amount - take
  return left


def closed_loop_nearest_histogram(histogram: jax.Array, left: jax.Array) -> jax.Array:
  """normalise(left) (`use_nearest_mass`'s target mass left); p* once it is used up. [E,B],[E,B] -> [E,B]."""
  mass = left.sum(-1, keepdims=True)
  return jnp.where(mass > 1e-6, left / jnp.where(mass > 1e-6, mass, 1.0), histogram)


def closed_loop_rtg(total: jax.Array, achieved_sum: jax.Array, rtg_scale: float) -> jax.Array:
  """(target sum - achieved sum) / rtg_scale: DT's "subtract the received reward". [E],[E] -> [E,1]."""
  return ((total - achieved_sum) / rtg_scale)[..., None]


def _no_synthetic(kind: str):
  def fail(*_):
    raise ValueError(f"{kind!r} conditioning reads demonstration states; synthetic targets have none")
  return fail


@dataclasses.dataclass(frozen=True)
class Conditioning:
  """One conditioning kind.

  aggregator: fn(values [N,T], mask, *, gamma, edges, rtg_scale) -> z [N,T,C], or None (nothing precomputed:
    z is zeros of width 1);
  cond_dim: fn(num_bins) -> C;
  embedder: fn(policy) -> flax module called as (cond, states, timesteps, mask, deterministic) -> [B,K,H];
  closed_loop: fn(ScheduleStep) -> [E,C], the closed-loop schedule's z_t;
  closed_loop_nearest: the `closed_loop_nearest` schedule's z_t (None: the same as `closed_loop`);
  synthetic: fn(p* [M,B], mean [M], steps_left [T], rtg_scale) -> open-loop cond [M,T,C] of a synthetic target;
  reads_demo: the embedder reads demonstration states (BDT's encoder window) instead of z_t.
  """
  aggregator: Callable[..., jax.Array] | None
  cond_dim: Callable[[int], int]
  embedder: Callable[[Any], Any]
  closed_loop: Callable[[ScheduleStep], jax.Array]
  synthetic: Callable[..., np.ndarray]
  reads_demo: bool = False
  closed_loop_nearest: Callable[[ScheduleStep], jax.Array] | None = None


# model.histogram_input -> what CDT's Dense embedding reads of its histogram z_t [..., B bins] (rows sum to 1).
# 'probability': z_t as is, the reference's (a spread histogram's entries are ~1/B, so under Adam the embedding moves
# B times slower than DT's O(1) scaled return); 'density': B x z_t (a uniform histogram is all ones); 'cdf': the
# cumulative sum over bins, whose L1 distance between two targets is their W1 over the bin width, so targets that
# are close in the metric CDT is scored by are close in its input (one bin's shift leaves a density input
# orthogonal). experiments/paper/gdt_bimodal.py measures them.
HISTOGRAM_INPUTS: Registry[Callable[[jax.Array], jax.Array]] = Registry("histogram input")
HISTOGRAM_INPUTS.register("probability", lambda z: z)
HISTOGRAM_INPUTS.register("density", lambda z: z * z.shape[-1])
HISTOGRAM_INPUTS.register("cdf", lambda z: jnp.cumsum(z, axis=-1))

CONDITIONINGS: Registry[Conditioning] = Registry("conditioning")
CONDITIONINGS.register("rtg", Conditioning(  # DT: future sum of the feature / rtg_scale
    aggregator=hindsight.rtg_aggregator, cond_dim=lambda b: 1,
    embedder=lambda p: embedders.DenseConditioning("rtg", p.cond_dim, p.embed_dim, name="cond_embed"),
    closed_loop=lambda s: closed_loop_rtg(s.total, s.achieved_sum, s.rtg_scale),
    synthetic=lambda p, mean, left, scale: (mean[:, None] * left[None, :] / scale)[..., None]))
CONDITIONINGS.register("histogram", Conditioning(  # CDT: normalised histogram of the future feature
    aggregator=hindsight.histogram_aggregator, cond_dim=lambda b: b,
    embedder=lambda p: embedders.DenseConditioning("histogram", p.cond_dim, p.embed_dim,
                                                   HISTOGRAM_INPUTS.get(p.histogram_input),
                                                   name="cond_embed"),
    closed_loop=lambda s: closed_loop_histogram(s.histogram, s.length, s.counts),
    closed_loop_nearest=lambda s: closed_loop_nearest_histogram(s.histogram, s.left),
    synthetic=lambda p, mean, left, scale: np.broadcast_to(p[:, None, :], (p.shape[0], left.shape[0], p.shape[1]))))
CONDITIONINGS.register("anticausal", Conditioning(  # BDT: a learned encoder of the demonstration's states
    aggregator=None, cond_dim=lambda b: 1,
    embedder=lambda p: embedders.AntiCausalConditioning(
        p.state_dim, p.embed_dim, p.num_layers, p.num_heads, p.dropout_rate, p.max_timestep, p.z_dim,
        p.encoder_horizon, p.bdt_unflipped_like_reference, p.matmul_dtype, name="cond_embed"),
    closed_loop=lambda s: s.precomputed, synthetic=_no_synthetic("anticausal"), reads_demo=True))
CONDITIONINGS.register("none", Conditioning(  # BC: the same trunk, a constant z
    aggregator=None, cond_dim=lambda b: 1,
    embedder=lambda p: embedders.ConstantConditioning(p.embed_dim, name="cond_embed"),
    closed_loop=lambda s: s.precomputed,
    synthetic=lambda p, mean, left, scale: np.zeros((p.shape[0], left.shape[0], 1), np.float32)))


@dataclasses.dataclass(frozen=True)
class Labels:
  """How a run's z_t is computed from a trajectory's feature values (one copy, saved with the policy)."""
  conditioning: str
  feature: str
  edges: np.ndarray  # [B+1] bins of the feature: CDT's z_t and the W1 grid
  rtg_scale: float  # DT's z_t = future sum / rtg_scale
  gamma: float

  def __post_init__(self):
    CONDITIONINGS.get(self.conditioning)
    object.__setattr__(self, "edges", np.asarray(self.edges, np.float32))

  @property
  def kind(self) -> Conditioning:
    return CONDITIONINGS.get(self.conditioning)

  @property
  def num_bins(self) -> int:
    return len(self.edges) - 1

  @property
  def cond_dim(self) -> int:
    return self.kind.cond_dim(self.num_bins)

  def relabel(self, values, mask) -> np.ndarray:
    """Hindsight labels z_t [N,T,C] of every step of feature values [N,T] (zeros at padding): what training
    conditions on and what an open-loop evaluation target feeds."""
    values = np.asarray(values, np.float32)
    if self.kind.aggregator is None:
      return np.zeros(values.shape + (1,), np.float32)
    z = self.kind.aggregator(values, mask, gamma=self.gamma, edges=self.edges, rtg_scale=self.rtg_scale)
    return np.asarray(z, np.float32)

  def to_json(self) -> dict:
    return {"conditioning": self.conditioning, "feature": self.feature, "edges": self.edges.tolist(),
            "rtg_scale": float(self.rtg_scale), "gamma": float(self.gamma)}

  @classmethod
  def from_json(cls, d: dict) -> "Labels":
    return cls(d["conditioning"], d["feature"], np.asarray(d["edges"], np.float32), float(d["rtg_scale"]),
               float(d["gamma"]))

  def same_as(self, other: "Labels") -> bool:
    return self.to_json() == other.to_json()
