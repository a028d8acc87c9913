"""The GDT policy: one causal transformer over (z_t, s_t, a_t) tokens; the conditioning embedder picks the method.

DT embeds a scaled return-to-go, CDT a future histogram, BDT the output of an `AntiCausalEncoder` run on
(future) states, and `none` is behaviour cloning with the same trunk. Embedders live in `EMBEDDERS`
(name -> factory(policy) -> module called as `embedder(cond, states, timesteps, mask, deterministic)`
returning [B, K, H]).

Initialisation follows the reference: the trunk is N(0, 0.02) (transformer.py); the embeddings and the
action head outside it use torch's defaults (Linear kernel U(+-1/sqrt(fan_in)), Embedding N(0, 1)),
with zero biases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdt.models.transformer import LN_EPS, TransformerTrunk
from gdt.registry import Registry

TORCH_LINEAR_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
TORCH_EMBED_INIT = nn.initializers.normal(stddev=1.0)


def _dense(features: int, name: str) -> nn.Dense:
  return nn.Dense(features, kernel_init=TORCH_LINEAR_INIT, name=name)


def _timestep_embedding(timesteps: jax.Array, max_timestep: int, embed_dim: int, name: str) -> jax.Array:
  """Embedding of absolute timesteps [B, L] -> [B, L, H]; later steps share the last row (as the reference)."""
  table = nn.Embed(max_timestep, embed_dim, embedding_init=TORCH_EMBED_INIT, name=name)
  return table(jnp.clip(timesteps.astype(jnp.int32), 0, max_timestep - 1))


class AntiCausalEncoder(nn.Module):
  """BDT's learned aggregator: states [B, L, S], timesteps [B, L], mask [B, L] -> z [B, L, z_dim].

  Dense(state) + timestep embedding -> LN -> causal trunk on the TIME-REVERSED sequence -> Dense(z_dim).
  With `flip_back` the output is flipped back to the original order and, with `horizon` = H,
  z_t summarises exactly states t..t+H-1 (anti-causal; the trunk's band bounds the receptive field of
  the whole stack, see TransformerTrunk). Without `flip_back` and with
  `horizon=None` it is the reference's un-flipped encoder (gdt_reference.md §3.2): the output at
  position i summarises states L-1-i..L-1.
  """

  embed_dim: int
  num_layers: int
  num_heads: int
  dropout_rate: float
  max_timestep: int
  z_dim: int
  horizon: int | None
  flip_back: bool = True

  @nn.compact
  def __call__(self, states: jax.Array, timesteps: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    states, timesteps, mask = (jnp.flip(a, axis=1) for a in (states, timesteps, mask))
    h = _dense(self.embed_dim, "state_embed")(states)
    h = h + _timestep_embedding(timesteps, self.max_timestep, self.embed_dim, "timestep_embed")
    h = nn.LayerNorm(epsilon=LN_EPS, name="embed_ln")(h)
    h = TransformerTrunk(self.num_layers, self.num_heads, self.embed_dim, self.dropout_rate, name="trunk")(
        h, mask.astype(bool), deterministic=deterministic, causal=True, band=self.horizon)
    z = _dense(self.z_dim, "z_head")(h)
    return jnp.flip(z, axis=1) if self.flip_back else z


# --- Conditioning embedders ---

EmbedderFactory = Callable[["GDTPolicy"], nn.Module]
EMBEDDERS: Registry[EmbedderFactory] = Registry("conditioning embedder")


class DenseConditioning(nn.Module):
  """cond [B, K, cond_dim] -> Dense -> [B, K, H] (DT: scaled RTG, cond_dim 1; CDT: histogram, cond_dim B)."""

  kind: str
  cond_dim: int
  embed_dim: int

  @nn.compact
  def __call__(self, cond, states, timesteps, mask, deterministic):
    del timesteps, mask, deterministic
    expected = (*states.shape[:2], self.cond_dim)
    if isinstance(cond, Mapping):
      raise ValueError(f"{self.kind!r} conditioning expects an array cond {expected}, got a dict")
    shape = jnp.shape(cond)
    if len(shape) == 3 and shape[:2] == expected[:2] and shape[2] != self.cond_dim:
      raise ValueError(f"{self.kind!r} conditioning: cond last dim {shape[2]} != cond_dim {self.cond_dim}")
    if shape != expected:
      raise ValueError(f"{self.kind!r} conditioning expects cond [B, K, cond_dim] = {expected}, got {shape}")
    return _dense(self.embed_dim, "embed")(jnp.asarray(cond, jnp.float32))


class ConstantConditioning(nn.Module):
  """No hindsight information: one learned vector at every step (behaviour cloning, same trunk)."""

  embed_dim: int

  @nn.compact
  def __call__(self, cond, states, timesteps, mask, deterministic):
    del cond, timesteps, mask, deterministic
    z = self.param("z", nn.initializers.normal(stddev=0.02), (self.embed_dim,))
    return jnp.broadcast_to(z, (*states.shape[:2], self.embed_dim))


class AntiCausalConditioning(nn.Module):
  """BDT: cond = {'states' [B, K+H-1, S], 'timesteps' [B, K+H-1], 'mask' [B, K+H-1]} -> Dense(z) [B, K, H].

  The cond window holds the policy window's K states plus the H-1 after it (H = encoder_horizon), so z_t
  for t < K summarises states t..t+H-1. In reference mode only the first K entries are encoded (in
  training these are the policy window's own states), reversed and never flipped back.
  """

  state_dim: int
  embed_dim: int
  num_layers: int
  num_heads: int
  dropout_rate: float
  max_timestep: int
  z_dim: int
  encoder_horizon: int
  bdt_unflipped_like_reference: bool

  @nn.compact
  def __call__(self, cond, states, timesteps, mask, deterministic):
    del timesteps, mask
    batch, k = states.shape[:2]
    reference = self.bdt_unflipped_like_reference
    if not isinstance(cond, Mapping) or not {"states", "timesteps", "mask"} <= set(cond):
      raise ValueError("'anticausal' conditioning expects cond = {'states', 'timesteps', 'mask'}, got "
                       + (f"keys {sorted(cond)}" if isinstance(cond, Mapping) else f"shape {jnp.shape(cond)}"))
    length = cond["states"].shape[1]
    want = k if reference else k + self.encoder_horizon - 1
    if (cond["states"].shape != (batch, length, self.state_dim) or cond["timesteps"].shape != (batch, length)
        or cond["mask"].shape != (batch, length) or length < want or (not reference and length != want)):
      steps = f"at least K = {want}" if reference else f"K+H-1 = {want} (K={k}, encoder_horizon={self.encoder_horizon})"
      raise ValueError(
          f"'anticausal' cond must hold [B={batch}, {steps}] steps of states with state_dim {self.state_dim}; got "
          f"states {cond['states'].shape}, timesteps {cond['timesteps'].shape}, mask {cond['mask'].shape}")
    window = slice(0, k) if reference else slice(None)
    z = AntiCausalEncoder(
        self.embed_dim, self.num_layers, self.num_heads, self.dropout_rate, self.max_timestep, self.z_dim,
        horizon=None if reference else self.encoder_horizon, flip_back=not reference, name="encoder")(
            cond["states"][:, window], cond["timesteps"][:, window], cond["mask"][:, window],
            deterministic=deterministic)
    return _dense(self.embed_dim, "embed")(z[:, :k])


EMBEDDERS.register("rtg", lambda p: DenseConditioning("rtg", p.cond_dim, p.embed_dim, name="cond_embed"))
EMBEDDERS.register("histogram", lambda p: DenseConditioning("histogram", p.cond_dim, p.embed_dim, name="cond_embed"))
EMBEDDERS.register("none", lambda p: ConstantConditioning(p.embed_dim, name="cond_embed"))
EMBEDDERS.register("anticausal", lambda p: AntiCausalConditioning(
    p.state_dim, p.embed_dim, p.num_layers, p.num_heads, p.dropout_rate, p.max_timestep, p.z_dim, p.encoder_horizon,
    p.bdt_unflipped_like_reference, name="cond_embed"))


class GDTPolicy(nn.Module):
  """Actions [B, K, act_dim] in (-1, 1) from tokens (z_t, s_t, a_t), read off each s_t token.

  `cond`: [B, K, 1] scaled RTG ('rtg'), [B, K, cond_dim] histogram ('histogram'), ignored ('none'), or the
  encoder window dict ('anticausal', see AntiCausalConditioning). states [B, K, state_dim] (normalised),
  actions [B, K, act_dim], timesteps [B, K] int, mask [B, K] bool (left padding, True on real steps).
  The action at step t depends only on z_<=t, s_<=t and a_<t.
  """

  state_dim: int
  act_dim: int
  conditioning: str
  cond_dim: int
  embed_dim: int = 128
  num_layers: int = 3
  num_heads: int = 1
  dropout_rate: float = 0.1
  max_timestep: int = 1000
  z_dim: int = 16
  encoder_horizon: int = 20
  bdt_unflipped_like_reference: bool = False

  @nn.compact
  def __call__(self, cond, states, actions, timesteps, mask, *, deterministic: bool) -> jax.Array:
    batch, k = self._check_shapes(states, actions, timesteps, mask)
    mask = mask.astype(bool)
    z = EMBEDDERS.get(self.conditioning)(self)(cond, states, timesteps, mask, deterministic)
    s = _dense(self.embed_dim, "state_embed")(states)
    a = _dense(self.embed_dim, "action_embed")(actions)
    t = _timestep_embedding(timesteps, self.max_timestep, self.embed_dim, "timestep_embed")
    tokens = (jnp.stack([z, s, a], axis=2) + t[:, :, None]).reshape(batch, 3 * k, self.embed_dim)
    tokens = nn.LayerNorm(epsilon=LN_EPS, name="embed_ln")(tokens)
    h = TransformerTrunk(self.num_layers, self.num_heads, self.embed_dim, self.dropout_rate, name="trunk")(
        tokens, jnp.repeat(mask, 3, axis=1), deterministic=deterministic, causal=True)
    h_state = h.reshape(batch, k, 3, self.embed_dim)[:, :, 1]
    return jnp.tanh(_dense(self.act_dim, "action_head")(h_state))

  def _check_shapes(self, states, actions, timesteps, mask) -> tuple[int, int]:
    if states.ndim != 3 or states.shape[-1] != self.state_dim:
      raise ValueError(f"GDTPolicy expects states [B, K, state_dim={self.state_dim}], got {states.shape}")
    batch, k = states.shape[:2]
    for name, x, want in (("actions", actions, (batch, k, self.act_dim)), ("timesteps", timesteps, (batch, k)),
                          ("mask", mask, (batch, k))):
      if x.shape != want:
        raise ValueError(f"GDTPolicy expects {name} {want} (B, K from states {states.shape}), got {x.shape}")
    return batch, k
