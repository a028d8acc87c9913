"""Conditioning embedders of the GDT policy: z_t [B, K, C] (or BDT's encoder window) -> [B, K, H].

DT embeds a scaled return-to-go and CDT a future histogram (`DenseConditioning`), BC a learned constant
(`ConstantConditioning`), BDT the output of an `AntiCausalEncoder` run on (future) states
(`AntiCausalConditioning`). Each is called as `embedder(cond, states, timesteps, mask, deterministic)`;
`gdt.conditioning.CONDITIONINGS` says which one a conditioning kind uses.

Initialisation follows the reference: embeddings and heads outside the trunk use torch's defaults (Linear kernel
U(+-1/sqrt(fan_in)), Embedding N(0, 1)), with zero biases; the trunk is N(0, 0.02).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdt.core.transformer import KERNEL_INITS, LN_EPS, TransformerTrunk

TORCH_EMBED_INIT = nn.initializers.normal(stddev=1.0)


def dense(features: int, name: str) -> nn.Dense:
  """A Dense with torch's default kernel init (embeddings and heads outside the trunk)."""
  return nn.Dense(features, kernel_init=KERNEL_INITS.get("torch_linear"), name=name)


def timestep_embedding(timesteps: jax.Array, max_timestep: int, embed_dim: int, name: str) -> jax.Array:
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
  matmul: str = "float32"  # the trunk's (gdt.core.transformer.MATMULS)

  @nn.compact
  def __call__(self, states: jax.Array, timesteps: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    states, timesteps, mask = (jnp.flip(a, axis=1) for a in (states, timesteps, mask))
    h = dense(self.embed_dim, "state_embed")(states)
    h = h + timestep_embedding(timesteps, self.max_timestep, self.embed_dim, "timestep_embed")
    h = nn.LayerNorm(epsilon=LN_EPS, name="embed_ln")(h)
    h = TransformerTrunk(self.num_layers, self.num_heads, self.embed_dim, self.dropout_rate, matmul=self.matmul,
                         name="trunk")(h, mask.astype(bool), deterministic=deterministic, causal=True,
                                       band=self.horizon)
    z = dense(self.z_dim, "z_head")(h)
    return jnp.flip(z, axis=1) if self.flip_back else z


class DenseConditioning(nn.Module):
  """input_fn(cond [B, K, cond_dim]) -> Dense -> [B, K, H] (DT: scaled RTG, cond_dim 1; CDT: histogram, cond_dim B,
  input_fn from `model.histogram_input`)."""

  kind: str
  cond_dim: int
  embed_dim: int
  input_fn: Callable[[jax.Array], jax.Array] = lambda z: z

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
    return dense(self.embed_dim, "embed")(self.input_fn(jnp.asarray(cond, jnp.float32)))


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
  matmul_dtype: str = "float32"

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
        horizon=None if reference else self.encoder_horizon, flip_back=not reference, matmul=self.matmul_dtype,
        name="encoder")(
            cond["states"][:, window], cond["timesteps"][:, window], cond["mask"][:, window],
            deterministic=deterministic)
    return dense(self.embed_dim, "embed")(z[:, :k])
