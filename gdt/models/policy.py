"""The GDT policy: one causal transformer over (z_t, s_t, a_t) tokens; the conditioning embedder picks the method.

DT embeds a scaled return-to-go, CDT a future histogram, BDT the output of an `AntiCausalEncoder` run on
(future) states, and `none` is behaviour cloning with the same trunk (embedders in `gdt.models.embedders`,
chosen by the conditioning kind's record in `gdt.conditioning.CONDITIONINGS`).

Initialisation follows the reference: the trunk is N(0, 0.02) (gdt.core.transformer); the embeddings and the
action head outside it use torch's defaults (Linear kernel U(+-1/sqrt(fan_in)), Embedding N(0, 1)), with zero
biases. Every field is set by the run's config (experiments/configs/gdt_base.py holds the defaults).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdt import conditioning
from gdt.core.checkpoint import MODELS
from gdt.core.transformer import LN_EPS, TransformerTrunk
from gdt.models.embedders import dense, timestep_embedding


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
  embed_dim: int
  num_layers: int
  num_heads: int
  dropout_rate: float
  max_timestep: int
  z_dim: int
  encoder_horizon: int
  bdt_unflipped_like_reference: bool
  matmul_dtype: str = "float32"  # the trunk's Dense matmul inputs (gdt.core.transformer.MATMULS)
  histogram_input: str = "probability"  # what CDT embeds of z_t (gdt.conditioning.HISTOGRAM_INPUTS)

  @nn.compact
  def __call__(self, cond, states, actions, timesteps, mask, *, deterministic: bool) -> jax.Array:
    batch, k = self._check_shapes(states, actions, timesteps, mask)
    mask = mask.astype(bool)
    z = conditioning.CONDITIONINGS.get(self.conditioning).embedder(self)(cond, states, timesteps, mask, deterministic)
    s = dense(self.embed_dim, "state_embed")(states)
    a = dense(self.embed_dim, "action_embed")(actions)
    t = timestep_embedding(timesteps, self.max_timestep, self.embed_dim, "timestep_embed")
    tokens = (jnp.stack([z, s, a], axis=2) + t[:, :, None]).reshape(batch, 3 * k, self.embed_dim)
    tokens = nn.LayerNorm(epsilon=LN_EPS, name="embed_ln")(tokens)
    h_state = TransformerTrunk(self.num_layers, self.num_heads, self.embed_dim, self.dropout_rate,
                               matmul=self.matmul_dtype, name="trunk")(
        tokens, jnp.repeat(mask, 3, axis=1), deterministic=deterministic, causal=True, keep=slice(1, None, 3))
    return jnp.tanh(dense(self.act_dim, "action_head")(h_state))

  def _check_shapes(self, states, actions, timesteps, mask) -> tuple[int, int]:
    if states.ndim != 3 or states.shape[-1] != self.state_dim:
      raise ValueError(f"GDTPolicy expects states [B, K, state_dim={self.state_dim}], got {states.shape}")
    batch, k = states.shape[:2]
    for name, x, want in (("actions", actions, (batch, k, self.act_dim)), ("timesteps", timesteps, (batch, k)),
                          ("mask", mask, (batch, k))):
      if x.shape != want:
        raise ValueError(f"GDTPolicy expects {name} {want} (B, K from states {states.shape}), got {x.shape}")
    return batch, k


MODELS.register("gdt_policy", GDTPolicy)
