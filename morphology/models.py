"""MxT-Bench distillation policies over MTG tokens, their BC loss and the observation-config check.

Owns `MxtTransformer` (the reference's `transformer_pe` policy, mxt_reference 4) and `MxtMLP` (its
`mlp_1024_1024` baseline on the flat padded observation), both registered in `gdt.core.checkpoint.MODELS`
('mxt_transformer', 'mxt_mlp') so `load_model(workdir)` rebuilds them; `masked_token_mse`, the BC loss shared by
both; and `check_observation_config`, which refuses a dataset rendered under another config than the model's.

Both models take exactly what a vmapped `morphology.graph.render` gives for their `obs_config` and return one
action per token slot, [B, L] in (-1, 1), so targets (`graph.tokens_from_actions`), loss mask
(`layout.action_mask`) and env actions (`graph.actions_from_tokens`) are the same for both.

Departures from the reference (all layout or padding details; no change to the function class on real tokens):
- q/k/v are one fused Dense in the shared trunk (reference: three DenseGeneral); same parameters, reshaped.
- LayerNorm eps is the trunk's 1e-5 (reference: flax's default 1e-6).
- A padded query row attends to nothing (trunk zeroes its probabilities); the reference's row is uniform over all
  keys. Only padded tokens' outputs differ, and the BC loss never reads them.
- tanh is applied inside the module (reference: outside), so outputs are actions.
- The learned positions cover `max_positions` (default `graph.MAX_TOKENS`) and are sliced to the input's L, so one
  checkpoint serves every env (reference: tied to the config's max_num_limb, quirk 17).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdt.core.checkpoint import MODELS
from gdt.core.transformer import TransformerTrunk
from morphology import graph

# Token embedding and decoder init of the reference: U[0, 0.1), all positive (jax `uniform(scale=0.1)`).
TOKEN_INIT = nn.initializers.uniform(scale=0.1)


def check_observation_config(dataset_config: str, model_config: str) -> None:
  """Raises ValueError naming both when a dataset rendered under `dataset_config` would feed a model built for
  `model_config`: same-sized configs (e.g. mtg_v2_base_m vs mtg_v1_base_m) would otherwise train silently."""
  for name in (dataset_config, model_config):
    graph.OBS_CONFIGS.get(name)  # KeyError with the closest names for a typo
  if dataset_config != model_config:
    raise ValueError(f"dataset observation config {dataset_config!r} does not match the model's "
                     f"observation config {model_config!r}; re-render the dataset under {model_config!r}")


def masked_token_mse(pred: jax.Array, target: jax.Array, action_mask: jax.Array, *,
                     legacy_mean: bool = False) -> jax.Array:
  """BC loss: pred, target [B, L], action_mask [B, L] (True on actuated tokens) -> scalar.

  Default: squared error summed over actuated tokens / their count (mxt_reference 7.7), so the loss scale does
  not depend on the padding L or on how many non-actuated tokens a batch holds. `legacy_mean`: the reference's
  `0.5 * mean over all B * L` of the masked squared error (quirk 2), for parity runs.
  """
  if pred.ndim != 2 or pred.shape != target.shape or pred.shape != action_mask.shape:
    raise ValueError(f"masked_token_mse expects pred, target, action_mask all [B, L]; got {pred.shape}, "
                     f"{target.shape}, {action_mask.shape}")
  mask = action_mask.astype(pred.dtype)
  sq = jnp.square(pred - target) * mask
  if legacy_mean:
    return 0.5 * jnp.mean(sq)
  return jnp.sum(sq) / jnp.maximum(jnp.sum(mask), 1.0)  # an all-unactuated batch gives 0, not NaN


class MxtTransformer(nn.Module):
  """Per-token actions [B, L] in (-1, 1) from MTG tokens [B, L, F] and mask [B, L] (True = real token).

  Reference `transformer_pe` (mxt_reference 4): Dense(embed_dim) with U[0, 0.1) kernel and zero bias, times
  sqrt(F); learned positions N(0, 1) over the token index (`max_positions=None`: none, the reference's
  `transformer` config); `num_layers` post-LN blocks with lecun_normal kernels and full attention among real
  tokens; a final LayerNorm; decoder Dense(1) on concat(encoder output, raw tokens), U[0, 0.1) kernel, then tanh.
  """

  obs_config: str = graph.DEFAULT_CONFIG
  num_layers: int = 3
  embed_dim: int = 256
  num_heads: int = 2
  mlp_dim: int = 512
  dropout_rate: float = 0.0
  max_positions: int | None = graph.MAX_TOKENS
  norm: str = "post"
  scale_embedding: bool = True  # the reference's sqrt(F) (an Amorpheus legacy; not sqrt(embed_dim))

  @nn.compact
  def __call__(self, tokens: jax.Array, mask: jax.Array, *, deterministic: bool = True) -> jax.Array:
    cfg = graph.OBS_CONFIGS.get(self.obs_config)
    if cfg.flat:
      raise ValueError(f"MxtTransformer reads per-token configs; {self.obs_config!r} is flat (use MxtMLP)")
    if tokens.ndim != 3 or tokens.shape[-1] != cfg.token_size:
      raise ValueError(f"MxtTransformer({self.obs_config!r}) expects tokens [B, L, {cfg.token_size}], "
                       f"got {tokens.shape}")
    if mask.shape != tokens.shape[:2]:
      raise ValueError(f"MxtTransformer expects mask [B, L] = {tokens.shape[:2]}, got {mask.shape}")
    h = nn.Dense(self.embed_dim, kernel_init=TOKEN_INIT, bias_init=nn.initializers.zeros, name="embed")(tokens)
    if self.scale_embedding:
      h = h * jnp.sqrt(jnp.float32(tokens.shape[-1]))
    h = TransformerTrunk(self.num_layers, self.num_heads, self.embed_dim, self.dropout_rate, norm=self.norm,
                         mlp_dim=self.mlp_dim, kernel_init="lecun_normal", max_positions=self.max_positions,
                         name="trunk")(h, mask, deterministic=deterministic, causal=False)
    h = jnp.concatenate([h, tokens], axis=-1)  # the reference's condition_decoder
    out = nn.Dense(1, kernel_init=TOKEN_INIT, bias_init=nn.initializers.zeros, name="decoder")(h)
    return jnp.tanh(out[..., 0])


class MxtMLP(nn.Module):
  """Per-token-slot actions [B, L] in (-1, 1) from the flat padded observation [B, 1, L * F] (mask [B, 1]).

  Reference `mlp_1024_1024` (brax networks.MLP): `num_hidden` Dense(hidden_dim) layers with relu, lecun_uniform
  kernels, zero biases, a linear output layer, then tanh (sizes are ints so the checkpoint record stays JSON).
  The output has one unit per token slot (L = `max_tokens`), like the reference's per-token action distribution,
  so the BC targets, mask and loss are the transformer's.
  """

  obs_config: str = "flat"
  max_tokens: int = graph.MAX_TOKENS
  hidden_dim: int = 1024
  num_hidden: int = 2

  @nn.compact
  def __call__(self, tokens: jax.Array, mask: jax.Array, *, deterministic: bool = True) -> jax.Array:
    del deterministic  # no dropout; the argument keeps one call signature for both models
    cfg = graph.OBS_CONFIGS.get(self.obs_config)
    if not cfg.flat:
      raise ValueError(f"MxtMLP reads flat configs; {self.obs_config!r} is per-token (use MxtTransformer)")
    width = self.max_tokens * cfg.token_size
    if tokens.ndim != 3 or tokens.shape[1:] != (1, width):
      raise ValueError(f"MxtMLP({self.obs_config!r}, max_tokens={self.max_tokens}) expects tokens [B, 1, {width}], "
                       f"got {tokens.shape}")
    if mask.shape != tokens.shape[:2]:
      raise ValueError(f"MxtMLP expects mask [B, 1], got {mask.shape}")
    h = tokens[:, 0]
    for k in range(self.num_hidden):
      h = nn.relu(nn.Dense(self.hidden_dim, kernel_init=nn.initializers.lecun_uniform(), name=f"hidden_{k}")(h))
    out = nn.Dense(self.max_tokens, kernel_init=nn.initializers.lecun_uniform(), name="out")(h)
    return jnp.tanh(out)


MODELS.register("mxt_transformer", MxtTransformer)
MODELS.register("mxt_mlp", MxtMLP)
