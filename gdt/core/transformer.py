"""The transformer trunk shared by every sequence model: causal or bidirectional, pre- or post-LN.

Defaults are GPT-2's pre-LN blocks as in GDT's trajectory_gpt2.py (gdt_reference.md §5.2): input dropout,
x += Drop(Proj(Attn(LN x))) with dropout on the attention probabilities, x += Drop(W2 ReLU(W1 LN x)) with a 4H
MLP, a final LayerNorm (eps 1e-5); kernels N(0, 0.02), zero biases, no positional embedding (order comes from the
caller's timestep embeddings and the causal mask). Fields select the other published variants, e.g. MxT-Bench's
post-LN encoder (mxt_reference.md §4): `norm='post'` (x = LN(x + Drop(Attn x)), x = LN(x + Drop(MLP x))),
`mlp_dim=512`, `kernel_init='lecun_normal'`, learned positions (`max_positions`, N(0, 1)).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdt.core.registry import Registry

LN_EPS = 1e-5
KERNEL_INITS: Registry = Registry("kernel init")
KERNEL_INITS.register("gpt2", nn.initializers.normal(stddev=0.02))
KERNEL_INITS.register("lecun_normal", nn.initializers.lecun_normal())
KERNEL_INITS.register("torch_linear", nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"))
NORMS = ("pre", "post")


@jax.custom_vjp
def _bf16_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  return jnp.matmul(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), preferred_element_type=jnp.float32)


def _bf16_matmul_fwd(x, w):
  xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  return jnp.matmul(xb, wb, preferred_element_type=jnp.float32), (xb, wb)


def _bf16_matmul_bwd(res, g):
  # Both gradient matmuls also take bf16 inputs and accumulate in float32 (autodiff of the forward alone would
  # run them in float32 against a bf16 operand).
  xb, wb = res
  gb = g.astype(jnp.bfloat16)
  dx = jnp.matmul(gb, wb.T, preferred_element_type=jnp.float32)
  dw = jnp.matmul(xb.reshape(-1, xb.shape[-1]).T, gb.reshape(-1, gb.shape[-1]), preferred_element_type=jnp.float32)
  return dx, dw


_bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)


def bf16_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  """A Dense layer's `x @ kernel` with bfloat16 inputs and float32 accumulation and output, forward and backward
  (float32 parameters, activations and optimiser; only the matmul inputs are rounded to bfloat16)."""
  del precision, preferred_element_type
  (lhs_contract, rhs_contract), batch = dimension_numbers
  if tuple(lhs_contract) != (lhs.ndim - 1,) or tuple(rhs_contract) != (0,) or rhs.ndim != 2 or any(batch):
    raise ValueError(f"bf16_dot_general computes x @ kernel only, got dimension_numbers {dimension_numbers}")
  return _bf16_matmul(lhs, rhs)


# The trunk's Dense matmuls: 'float32', or 'bfloat16' inputs with float32 accumulation (CPUs with AVX-512 BF16 and
# accelerators run these faster; benchmarks/bench_train_step.py measures both).
MATMULS: Registry = Registry("matmul dtype")
MATMULS.register("float32", jax.lax.dot_general)
MATMULS.register("bfloat16", bf16_dot_general)


def _dense(features: int, name: str, kernel_init: str, matmul: str = "float32") -> nn.Dense:
  return nn.Dense(features, kernel_init=KERNEL_INITS.get(kernel_init), bias_init=nn.initializers.zeros, name=name,
                  dot_general=MATMULS.get(matmul))


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


class Dropout(nn.Module):
  """Inverted dropout whose keep mask compares 16-bit uniforms with the rate (each 32-bit random word gives two):
  half the random bits, and no float conversion, of flax's Dropout, which dominated the paper-size CPU step's
  dropout cost (benchmarks/bench_train_step.py). The drop probability is round(rate * 65536) / 65536 (0.1 ->
  0.1000061) and kept values are scaled by the inverse of the exact keep probability."""

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    threshold = round(self.rate * 65536)
    if deterministic or threshold == 0:
      return x
    if threshold >= 65536:
      return jnp.zeros_like(x)
    # Along the last axis only, so a batch-sharded x keeps its sharding.
    last = x.shape[-1]
    bits = jax.random.bits(self.make_rng("dropout"), x.shape[:-1] + (-(-last // 2),), jnp.uint32)
    uniform16 = jnp.concatenate([bits & 0xFFFF, bits >> 16], axis=-1)[..., :last]
    keep = uniform16 >= threshold
    return jnp.where(keep, x * (65536 / (65536 - threshold)), 0.0).astype(x.dtype)


class _QKV(nn.Module):
  """The fused q/k/v projection (parameters as a Dense(3 * embed_dim) named 'qkv'); with `keep`, queries only at
  those positions (keys and values at all)."""
  embed_dim: int
  kernel_init: str
  matmul: str

  @nn.compact
  def __call__(self, x: jax.Array, keep: slice | None) -> tuple[jax.Array, jax.Array]:
    e = self.embed_dim
    kernel = self.param("kernel", KERNEL_INITS.get(self.kernel_init), (x.shape[-1], 3 * e))
    bias = self.param("bias", nn.initializers.zeros, (3 * e,))
    dot = lambda a, w: MATMULS.get(self.matmul)(a, w, (((a.ndim - 1,), (0,)), ((), ())))
    if keep is None:
      qkv = dot(x, kernel) + bias
      return qkv[..., :e], qkv[..., e:]
    return dot(x[:, keep], kernel[:, :e]) + bias[:e], dot(x, kernel[:, e:]) + bias[e:]


class SelfAttention(nn.Module):
  """Multi-head self-attention with plain einsums; disallowed logits are set to the dtype's minimum. With `keep`
  (a slice of positions) only those positions query: out [B, len(keep), H]."""

  num_heads: int
  embed_dim: int
  dropout_rate: float
  kernel_init: str = "gpt2"
  matmul: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array, allowed: jax.Array, deterministic: bool, keep: slice | None = None) -> jax.Array:
    batch, length, _ = x.shape
    head_dim = self.embed_dim // self.num_heads
    q, kv = _QKV(self.embed_dim, self.kernel_init, self.matmul, name="qkv")(x, keep)
    q = q.reshape(batch, q.shape[1], self.num_heads, head_dim)  # [B, Lq, heads, d]
    kv = kv.reshape(batch, length, 2, self.num_heads, head_dim)
    k, v = kv[:, :, 0], kv[:, :, 1]
    allowed = allowed if keep is None else allowed[:, :, keep]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(head_dim).astype(jnp.float32)
    logits = jnp.where(allowed, logits, jnp.finfo(jnp.float32).min)
    # A fully masked query row (left padding) softmaxes to uniform; zeroing it keeps the output finite and
    # independent of padded keys.
    probs = jnp.where(allowed, jax.nn.softmax(logits, axis=-1), 0.0).astype(x.dtype)
    probs = Dropout(self.dropout_rate)(probs, deterministic=deterministic)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(batch, q.shape[1], self.embed_dim)
    return _dense(self.embed_dim, "proj", self.kernel_init, self.matmul)(out)


class Block(nn.Module):
  """One transformer block: pre-LN (GPT-2) or post-LN (the original / PyTorch default). With `keep`, only those
  positions are computed (attending to all): the outputs there are the full block's."""

  num_heads: int
  embed_dim: int
  dropout_rate: float
  mlp_dim: int
  norm: str = "pre"
  kernel_init: str = "gpt2"
  matmul: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array, allowed: jax.Array, deterministic: bool, keep: slice | None = None) -> jax.Array:
    ln1, ln2 = nn.LayerNorm(epsilon=LN_EPS, name="ln1"), nn.LayerNorm(epsilon=LN_EPS, name="ln2")
    pre = self.norm == "pre"
    attn = SelfAttention(self.num_heads, self.embed_dim, self.dropout_rate, self.kernel_init, self.matmul,
                         name="attn")
    a = attn(ln1(x) if pre else x, allowed, deterministic, keep)
    x = (x if keep is None else x[:, keep]) + Dropout(self.dropout_rate)(a, deterministic=deterministic)
    x = x if pre else ln1(x)
    h = _dense(self.mlp_dim, "fc", self.kernel_init, self.matmul)(ln2(x) if pre else x)
    h = _dense(self.embed_dim, "fc_out", self.kernel_init, self.matmul)(nn.relu(h))
    x = x + Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return x if pre else ln2(x)


class TransformerTrunk(nn.Module):
  """GPT-2 stack: x [B, L, H], mask [B, L] bool (True = real token) -> [B, L, H].

  `causal=True` for the GDT policy and the BDT encoder, False for MxT-Bench limb tokens. `band` bounds
  the receptive field of the whole stack: output i depends only on inputs j with |i - j| < band (with
  causal: the previous `band` positions, self included). One band per layer would compound to
  num_layers * (band - 1) + 1, so the band - 1 steps of reach are split over the layers
  (`layer_bands`). Dropout (input, attention probabilities, residuals) is off when `deterministic`.
  `keep` (a slice of positions): only those outputs are returned and the last layer computes only them (the GDT
  policy reads its state tokens: a third of the last layer's work).
  """

  num_layers: int
  num_heads: int
  embed_dim: int
  dropout_rate: float = 0.1
  norm: str = "pre"  # 'pre' (GPT-2) or 'post'
  mlp_dim: int | None = None  # None: 4 * embed_dim
  kernel_init: str = "gpt2"  # a name in KERNEL_INITS
  max_positions: int | None = None  # learned absolute positions over the first max_positions tokens; None: none
  matmul: str = "float32"  # a MATMULS name: the dtype of the Dense layers' matmul inputs

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool, causal: bool = True,
               band: int | None = None, keep: slice | None = None) -> jax.Array:
    if x.ndim != 3 or x.shape[-1] != self.embed_dim:
      raise ValueError(f"TransformerTrunk expects x [B, L, {self.embed_dim}], got {x.shape}")
    if mask.shape != x.shape[:2]:
      raise ValueError(f"TransformerTrunk mask must be [B, L] = {x.shape[:2]}, got {mask.shape}")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
    if band is not None and band < 1:
      raise ValueError(f"band must be >= 1 (self included), got {band}")
    if self.norm not in NORMS:
      raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
    mask = mask.astype(bool)
    if self.max_positions is not None:
      if x.shape[1] > self.max_positions:
        raise ValueError(f"{x.shape[1]} tokens exceed max_positions={self.max_positions}")
      table = self.param("positions", nn.initializers.normal(stddev=1.0), (self.max_positions, self.embed_dim))
      x = x + table[:x.shape[1]]
    x = Dropout(self.dropout_rate)(x, deterministic=deterministic)
    mlp_dim = self.mlp_dim or 4 * self.embed_dim
    for layer, layer_band in enumerate(layer_bands(band, self.num_layers)):
      allowed = attention_mask(mask, causal, layer_band)
      last = layer == self.num_layers - 1
      x = Block(self.num_heads, self.embed_dim, self.dropout_rate, mlp_dim, self.norm, self.kernel_init, self.matmul,
                name=f"block_{layer}")(x, allowed, deterministic, keep if last else None)
    return nn.LayerNorm(epsilon=LN_EPS, name="ln_f")(x)
