"""The GPT-2 trunk shared by the GDT policy, the BDT encoder and the MxT-Bench token transformer.

Pre-LN blocks as in the reference's trajectory_gpt2.py (gdt_reference.md §5.2): input dropout,
x += Drop(Proj(Attn(LN x))) with dropout on the attention probabilities, x += Drop(W2 ReLU(W1 LN x))
with a 4H MLP, a final LayerNorm (eps 1e-5); kernels N(0, 0.02), zero biases, no positional
embedding (order comes from timestep embeddings and the causal mask).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

LN_EPS = 1e-5
GPT2_INIT = nn.initializers.normal(stddev=0.02)


def _dense(features: int, name: str) -> nn.Dense:
  return nn.Dense(features, kernel_init=GPT2_INIT, bias_init=nn.initializers.zeros, name=name)


def attention_mask(mask: jax.Array, causal: bool, band: int | None) -> jax.Array:
  """Which keys each query may attend to: mask [B, L] bool (True = real token) -> [B, 1, L, L] bool.

  `causal`: key j <= query i. `band`: |i - j| < band (with causal: the previous `band` positions,
  self included).
  """
  length = mask.shape[-1]
  i = jnp.arange(length)[:, None]
  j = jnp.arange(length)[None, :]
  allowed = jnp.ones((length, length), bool)
  if causal:
    allowed &= j <= i
  if band is not None:
    allowed &= jnp.abs(i - j) < band
  return allowed[None, None] & mask[:, None, None, :]


def layer_bands(band: int | None, num_layers: int) -> list[int | None]:
  """Per-layer bands whose reaches (band_l - 1) add up to band - 1, earlier layers taking the remainder."""
  if band is None:
    return [None] * num_layers
  reach, extra = divmod(band - 1, num_layers)
  return [1 + reach + (layer < extra) for layer in range(num_layers)]


class SelfAttention(nn.Module):
  """Multi-head self-attention with plain einsums; disallowed logits are set to the dtype's minimum."""

  num_heads: int
  embed_dim: int
  dropout_rate: float

  @nn.compact
  def __call__(self, x: jax.Array, allowed: jax.Array, deterministic: bool) -> jax.Array:
    batch, length, _ = x.shape
    head_dim = self.embed_dim // self.num_heads
    qkv = _dense(3 * self.embed_dim, "qkv")(x).reshape(batch, length, 3, self.num_heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, L, heads, d]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(head_dim).astype(jnp.float32)
    logits = jnp.where(allowed, logits, jnp.finfo(jnp.float32).min)
    # A fully masked query row (left padding) softmaxes to uniform; zeroing it keeps the output finite and
    # independent of padded keys.
    probs = jnp.where(allowed, jax.nn.softmax(logits, axis=-1), 0.0).astype(x.dtype)
    probs = nn.Dropout(self.dropout_rate)(probs, deterministic=deterministic)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(batch, length, self.embed_dim)
    return _dense(self.embed_dim, "proj")(out)


class Block(nn.Module):
  """One pre-LN GPT-2 block."""

  num_heads: int
  embed_dim: int
  dropout_rate: float

  @nn.compact
  def __call__(self, x: jax.Array, allowed: jax.Array, deterministic: bool) -> jax.Array:
    h = SelfAttention(self.num_heads, self.embed_dim, self.dropout_rate, name="attn")(
        nn.LayerNorm(epsilon=LN_EPS, name="ln1")(x), allowed, deterministic)
    x = x + nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    h = _dense(4 * self.embed_dim, "fc")(nn.LayerNorm(epsilon=LN_EPS, name="ln2")(x))
    h = _dense(self.embed_dim, "fc_out")(nn.relu(h))
    return x + nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)


class TransformerTrunk(nn.Module):
  """GPT-2 stack: x [B, L, H], mask [B, L] bool (True = real token) -> [B, L, H].

  `causal=True` for the GDT policy and the BDT encoder, False for MxT-Bench limb tokens. `band` bounds
  the receptive field of the whole stack: output i depends only on inputs j with |i - j| < band (with
  causal: the previous `band` positions, self included). One band per layer would compound to
  num_layers * (band - 1) + 1, so the band - 1 steps of reach are split over the layers
  (`layer_bands`). Dropout (input, attention probabilities, residuals) is off when `deterministic`.
  """

  num_layers: int
  num_heads: int
  embed_dim: int
  dropout_rate: float = 0.1

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool, causal: bool = True,
               band: int | None = None) -> jax.Array:
    if x.ndim != 3 or x.shape[-1] != self.embed_dim:
      raise ValueError(f"TransformerTrunk expects x [B, L, {self.embed_dim}], got {x.shape}")
    if mask.shape != x.shape[:2]:
      raise ValueError(f"TransformerTrunk mask must be [B, L] = {x.shape[:2]}, got {mask.shape}")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
    if band is not None and band < 1:
      raise ValueError(f"band must be >= 1 (self included), got {band}")
    mask = mask.astype(bool)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    for layer, layer_band in enumerate(layer_bands(band, self.num_layers)):
      allowed = attention_mask(mask, causal, layer_band)
      x = Block(self.num_heads, self.embed_dim, self.dropout_rate, name=f"block_{layer}")(x, allowed, deterministic)
    return nn.LayerNorm(epsilon=LN_EPS, name="ln_f")(x)
