"""Masks (causal, band, padding), BDT anti-causality, dropout switch and parameter count of the Flax models.

Dependence is read off exact Jacobians: a masked attention weight is a `where`, so an input a token may
not see has a Jacobian of exactly zero.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import gdt_base
from gdt.checkpoint import policy_kwargs
from gdt.conditioning import CONDITIONINGS
from gdt.core.transformer import TransformerTrunk
from gdt.models import AntiCausalEncoder, GDTPolicy

B, K, S, A, H, HORIZON, Z = 2, 6, 3, 2, 8, 3, 3
TINY = dict(embed_dim=H, num_layers=2, num_heads=2, dropout_rate=0.1, max_timestep=50, z_dim=Z, encoder_horizon=HORIZON)
COND_DIM = {"rtg": 1, "histogram": 4, "none": 1, "anticausal": 1}


def _inputs(conditioning, seed=0, reference=False):
  rng = np.random.default_rng(seed)
  mask = np.ones((B, K), bool)
  mask[1, :2] = False  # left padding
  states = rng.normal(size=(B, K, S)).astype(np.float32)
  actions = rng.uniform(-1, 1, size=(B, K, A)).astype(np.float32)
  timesteps = np.tile(np.arange(10, 10 + K), (B, 1)).astype(np.int32)
  if conditioning == "anticausal":
    length = K + HORIZON - 1
    cond_mask = np.ones((B, length), bool)
    cond_mask[1, :2] = False
    cond_mask[0, -1] = False  # the episode ends inside the encoder's look-ahead
    cond = {"states": rng.normal(size=(B, length, S)).astype(np.float32),
            "timesteps": np.tile(np.arange(10, 10 + length), (B, 1)).astype(np.int32), "mask": cond_mask}
  else:
    cond = rng.random((B, K, COND_DIM[conditioning])).astype(np.float32)
  return cond, states, actions, timesteps, mask


@functools.lru_cache(maxsize=None)
def _policy(conditioning, reference=False):
  """(model, params, jitted apply) per conditioning, built once per test session."""
  model = GDTPolicy(S, A, conditioning, COND_DIM[conditioning], bdt_unflipped_like_reference=reference, **TINY)
  params = jax.jit(model.init, static_argnames="deterministic")(jax.random.key(0), *_inputs(conditioning), deterministic=True)
  apply = jax.jit(model.apply, static_argnames="deterministic")
  return model, params, apply


def _dep_matrices(fn, *xs, row=0):
  """For each x: bool [L_out, L_in], does output step t of batch `row` depend on step t' of x[row]?"""
  jacs = jax.jit(jax.jacrev(fn, argnums=tuple(range(len(xs)))))(*xs)  # each [B, L_out, F_out, B, L_in, ...]
  deps = []
  for jac in jacs:
    assert np.isfinite(jac).all()  # also through fully masked (left-padded) attention rows
    jac = np.abs(np.asarray(jac)[row, :, :, row])
    deps.append(jac.reshape(jac.shape[0], jac.shape[1], jac.shape[2], -1).sum(axis=(1, 3)) > 0)
  return deps


def _dep_matrix(fn, x, row=0):
  return _dep_matrices(fn, x, row=row)[0]


def _expected(n_out, n_in, rule):
  t, u = np.meshgrid(np.arange(n_out), np.arange(n_in), indexing="ij")
  return rule(t, u)


@pytest.mark.parametrize("causal,band", [(True, None), (True, 4), (False, None), (False, 2)])
def test_trunk_attention_pattern_and_padding(causal, band):
  """3 layers: `band` bounds the receptive field of the whole stack, not of each layer."""
  trunk = TransformerTrunk(num_layers=3, num_heads=2, embed_dim=8, dropout_rate=0.1)
  length = 7
  x = jax.random.normal(jax.random.key(1), (B, length, 8))
  mask = jnp.ones((B, length), bool).at[1, :3].set(False)
  params = trunk.init(jax.random.key(0), x, mask, deterministic=True)
  fn = lambda x: trunk.apply(params, x, mask, deterministic=True, causal=causal, band=band)
  out = fn(x)
  assert bool(jnp.isfinite(out).all())  # fully masked query rows give no NaN
  t, u = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
  want = np.ones((length, length), bool)
  if causal:
    want &= u <= t
  if band is not None:
    want &= np.abs(t - u) < band
  np.testing.assert_array_equal(_dep_matrix(fn, x, row=0), want)
  # Row 1: real queries never read the left-padded keys.
  assert not _dep_matrix(fn, x, row=1)[3:, :3].any()


def _layer_norm(x, p):
  mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + 1e-5) * np.asarray(p["scale"]) + np.asarray(p["bias"])


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_trunk_norm_placement_matches_a_numpy_block(norm):
  """One block, one head, no dropout, bidirectional, learned positions and a 5-wide MLP, against numpy."""
  trunk = TransformerTrunk(num_layers=1, num_heads=1, embed_dim=4, dropout_rate=0.0, norm=norm, mlp_dim=5,
                           kernel_init="lecun_normal", max_positions=6)
  x = np.asarray(jax.random.normal(jax.random.key(2), (1, 3, 4)))
  params = trunk.init(jax.random.key(0), x, jnp.ones((1, 3), bool), deterministic=True)["params"]
  got = np.asarray(trunk.apply({"params": params}, x, jnp.ones((1, 3), bool), deterministic=True, causal=False))
  b = params["block_0"]
  assert b["fc"]["kernel"].shape == (4, 5) and params["positions"].shape == (6, 4)
  dense = lambda h, p: h @ np.asarray(p["kernel"]) + np.asarray(p["bias"])

  def attn(h):
    q, k, v = np.split(dense(h, b["attn"]["qkv"]), 3, axis=-1)
    logits = q @ k.transpose(0, 2, 1) / 2.0
    w = np.exp(logits - logits.max(-1, keepdims=True))
    return dense((w / w.sum(-1, keepdims=True)) @ v, b["attn"]["proj"])

  mlp = lambda h: dense(np.maximum(dense(h, b["fc"]), 0), b["fc_out"])
  h = x + np.asarray(params["positions"])[:3]
  if norm == "pre":
    h = h + attn(_layer_norm(h, b["ln1"]))
    h = h + mlp(_layer_norm(h, b["ln2"]))
  else:
    h = _layer_norm(h + attn(h), b["ln1"])
    h = _layer_norm(h + mlp(h), b["ln2"])
  np.testing.assert_allclose(got, _layer_norm(h, params["ln_f"]), rtol=1e-4, atol=1e-5)


def test_trunk_positions_break_permutation_equivariance():
  """Without positions a bidirectional trunk is permutation-equivariant (tokens carry order themselves);
  learned positions make token order matter (MxT's limb tokens)."""
  x = jax.random.normal(jax.random.key(3), (1, 5, 8))
  mask = jnp.ones((1, 5), bool)
  perm = np.array([2, 0, 4, 1, 3])
  for positions, equivariant in ((None, True), (5, False)):
    trunk = TransformerTrunk(2, 2, 8, dropout_rate=0.0, norm="post", max_positions=positions)
    params = trunk.init(jax.random.key(0), x, mask, deterministic=True)
    f = lambda x, trunk=trunk, params=params: np.asarray(trunk.apply(params, x, mask, deterministic=True, causal=False))
    assert np.allclose(f(x)[:, perm], f(x[:, perm]), atol=1e-5) == equivariant
  with pytest.raises(ValueError, match="max_positions"):
    TransformerTrunk(1, 1, 8, max_positions=3).init(jax.random.key(0), x, mask, deterministic=True)


def test_trunk_rejects_bad_shapes():
  trunk = TransformerTrunk(num_layers=1, num_heads=3, embed_dim=8)
  with pytest.raises(ValueError, match="not divisible"):
    trunk.init(jax.random.key(0), jnp.zeros((1, 4, 8)), jnp.ones((1, 4), bool), deterministic=True)
  with pytest.raises(ValueError, match=r"mask must be \[B, L\]"):
    TransformerTrunk(1, 1, 8).init(jax.random.key(0), jnp.zeros((1, 4, 8)), jnp.ones((1, 5), bool), deterministic=True)


@pytest.mark.parametrize("conditioning", ["rtg", "histogram", "none", "anticausal"])
def test_policy_is_causal(conditioning):
  """Action at t depends on s_<=t, a_<t and z_<=t (BDT: cond states <= t+H-1), and on nothing later."""
  model, params, _ = _policy(conditioning)
  cond, states, actions, timesteps, mask = _inputs(conditioning)
  anticausal = conditioning == "anticausal"
  c = cond["states"] if anticausal else cond
  call = lambda c, s, a: model.apply(params, dict(cond, states=c) if anticausal else c, s, a, timesteps, mask,
                                     deterministic=True)
  dep_c, dep_s, dep_a = _dep_matrices(call, c, states, actions)
  np.testing.assert_array_equal(dep_s, _expected(K, K, lambda t, u: u <= t))
  np.testing.assert_array_equal(dep_a, _expected(K, K, lambda t, u: u < t))
  if anticausal:
    want = _expected(K, K + HORIZON - 1, lambda t, u: u <= t + HORIZON - 1) & cond["mask"][0]
    np.testing.assert_array_equal(dep_c, want)
  elif conditioning == "none":
    assert not dep_c.any()
  else:
    np.testing.assert_array_equal(dep_c, _expected(K, K, lambda t, u: u <= t))


@pytest.mark.parametrize("conditioning", ["rtg", "histogram", "anticausal"])
def test_padded_inputs_do_not_change_real_outputs(conditioning):
  _, params, apply = _policy(conditioning)
  cond, states, actions, timesteps, mask = _inputs(conditioning)
  out = np.asarray(apply(params, cond, states, actions, timesteps, mask, deterministic=True))
  assert np.isfinite(out).all()
  rng = np.random.default_rng(7)
  pad = ~mask
  states2 = np.where(pad[..., None], rng.normal(size=states.shape) * 100, states).astype(np.float32)
  actions2 = np.where(pad[..., None], -10.0, actions).astype(np.float32)
  timesteps2 = np.where(pad, 0, timesteps).astype(np.int32)
  if conditioning == "anticausal":
    cpad = ~cond["mask"]
    cond2 = dict(cond, states=np.where(cpad[..., None], 50.0, cond["states"]).astype(np.float32),
                 timesteps=np.where(cpad, 0, cond["timesteps"]).astype(np.int32))
  else:
    cond2 = np.where(pad[..., None], 3.0, cond).astype(np.float32)
  out2 = np.asarray(apply(params, cond2, states2, actions2, timesteps2, mask, deterministic=True))
  np.testing.assert_allclose(out2[mask], out[mask], atol=1e-6)
  assert not np.allclose(out2[~mask], out[~mask])  # the perturbation did reach the model


def test_anticausal_encoder_window_and_reference_quirk():
  """Default: z_t summarises states t..t+H-1. Reference mode: z_i summarises states L-1-i..L-1."""
  length = 8
  states = jax.random.normal(jax.random.key(2), (B, length, S))
  timesteps = jnp.tile(jnp.arange(length), (B, 1))
  mask = jnp.ones((B, length), bool)
  deps = {}
  for reference in (False, True):
    enc = AntiCausalEncoder(H, 2, 2, 0.1, 50, Z, horizon=None if reference else HORIZON, flip_back=not reference)
    params = enc.init(jax.random.key(0), states, timesteps, mask, deterministic=True)
    fn = functools.partial(enc.apply, params, timesteps=timesteps, mask=mask, deterministic=True)
    deps[reference] = _dep_matrix(fn, states)
  np.testing.assert_array_equal(deps[False], _expected(length, length, lambda t, u: (u >= t) & (u < t + HORIZON)))
  np.testing.assert_array_equal(deps[True], _expected(length, length, lambda t, u: u >= length - 1 - t))
  # The reference policy's acting (last) position reads a summary of the past window, not the future.
  assert deps[True][-1, 0] and not deps[False][-1, 0]


def test_reference_mode_policy_encodes_the_window_only():
  model, params, _ = _policy("anticausal", reference=True)
  cond, states, actions, timesteps, mask = _inputs("anticausal")
  fn = lambda s: model.apply(params, dict(cond, states=s), states, actions, timesteps, mask, deterministic=True)
  dep = _dep_matrix(fn, cond["states"])
  assert dep[:, :K].any() and not dep[:, K:].any()
  assert dep[0, K - 1]  # position 0 reads the last window state (the un-flipped quirk)


def test_dropout_only_when_not_deterministic():
  _, params, apply = _policy("histogram")
  args = _inputs("histogram")
  det = [apply(params, *args, deterministic=True, rngs={"dropout": jax.random.key(i)}) for i in (0, 1)]
  np.testing.assert_array_equal(det[0], det[1])
  sto = [apply(params, *args, deterministic=False, rngs={"dropout": jax.random.key(i)}) for i in (0, 1)]
  assert not np.allclose(sto[0], sto[1])


def test_shape_errors_name_the_problem():
  model, params, apply = _policy("histogram")
  cond, states, actions, timesteps, mask = _inputs("histogram")
  with pytest.raises(ValueError, match="cond last dim 5 != cond_dim 4"):
    model.apply(params, np.zeros((B, K, 5), np.float32), states, actions, timesteps, mask, deterministic=True)
  with pytest.raises(ValueError, match=r"actions \(2, 6, 2\)"):
    model.apply(params, cond, states, actions[:, :, :1], timesteps, mask, deterministic=True)
  model, params, _ = _policy("anticausal")
  acond, *_ = _inputs("anticausal")
  with pytest.raises(ValueError, match=r"K\+H-1 = 8 \(K=6, encoder_horizon=3\)"):
    model.apply(params, dict(acond, states=acond["states"][:, :K]), states, actions, timesteps, mask, deterministic=True)
  with pytest.raises(KeyError, match="unknown conditioning"):
    CONDITIONINGS.get("categorical")


def _num_params(model, cond):
  args = (cond, jnp.zeros((1, 20, 17)), jnp.zeros((1, 20, 6)), jnp.zeros((1, 20), jnp.int32), jnp.ones((1, 20), bool))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, deterministic=True))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


def test_parameter_count_of_reference_config():
  """halfcheetah CDT, 3 layers x 128 x 1 head: the reference's ~0.73M (gdt_reference.md §5.1), term by term."""
  h, s, a, bins, layers = 128, 17, 6, 30, 3
  block = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
  gpt = layers * block + 2 * h
  embeddings = 1000 * h + (bins * h + h) + (s * h + h) + (a * h + h) + 2 * h
  want = gpt + embeddings + (h * a + a)
  assert want == 731_270
  def paper_size(conditioning, cond_dim):  # the model block of the GDT configs
    config = gdt_base.get_config(conditioning=conditioning).to_dict()
    return GDTPolicy(**policy_kwargs(config, s, a, cond_dim))

  assert _num_params(paper_size("histogram", bins), jnp.zeros((1, 20, bins))) == want
  # BDT: a second trunk with its own state/timestep embeddings, LN and z head; z_dim=16 replaces the 30 bins.
  cond = {"states": jnp.zeros((1, 39, s)), "timesteps": jnp.zeros((1, 39), jnp.int32), "mask": jnp.ones((1, 39), bool)}
  encoder = gpt + 1000 * h + (s * h + h) + 2 * h + (h * 16 + 16)
  assert _num_params(paper_size("anticausal", 1), cond) == want - (bins * h + h) + (16 * h + h) + encoder


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("causal", [True, False])
def test_trunk_keep_computes_exactly_the_kept_outputs(norm, causal):
  trunk = TransformerTrunk(num_layers=2, num_heads=2, embed_dim=H, dropout_rate=0.1, norm=norm)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B, 9, H)).astype(np.float32)
  mask = np.ones((B, 9), bool)
  mask[1, :4] = False  # left padding
  params = trunk.init(jax.random.PRNGKey(0), x, mask, deterministic=True)
  full = trunk.apply(params, x, mask, deterministic=True, causal=causal)
  kept = trunk.apply(params, x, mask, deterministic=True, causal=causal, keep=slice(1, None, 3))
  assert kept.shape == (B, 3, H)
  np.testing.assert_allclose(kept, full[:, 1::3], atol=1e-5)


def test_dropout_drops_the_rate_and_keeps_the_mean():
  from gdt.core.transformer import Dropout
  x = jnp.ones((64, 60, 127))  # an odd last axis: each 32-bit word gives two 16-bit uniforms
  out = Dropout(0.1).apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
  dropped = float(jnp.mean(out == 0))
  assert abs(dropped - 0.1) < 0.003, dropped  # 487,680 draws: std 4.3e-4
  assert abs(float(jnp.mean(out)) - 1.0) < 0.005
  np.testing.assert_allclose(np.unique(np.asarray(out)), [0.0, 65536 / (65536 - 6554)], rtol=1e-6)
  again = Dropout(0.1).apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.array_equal(out, again)  # the mask follows the key
  np.testing.assert_array_equal(Dropout(0.1).apply({}, x, deterministic=True), x)
  off = Dropout(0.0).apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
  np.testing.assert_array_equal(off, x)


def test_bf16_matmul_rounds_inputs_only_forward_and_backward():
  from gdt.core.transformer import bf16_dot_general
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(4, 5, 16)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
  c = jnp.asarray(rng.normal(size=(4, 5, 8)), jnp.float32)
  dims = (((2,), (0,)), ((), ()))
  r = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)  # what bfloat16 keeps of a float32
  y, (dx, dw) = jax.value_and_grad(lambda x, w: jnp.sum(bf16_dot_general(x, w, dims) * c), argnums=(0, 1))(x, w)
  np.testing.assert_allclose(y, jnp.sum((r(x) @ r(w)) * c), rtol=1e-5)
  np.testing.assert_allclose(dx, r(c) @ r(w).T, rtol=1e-5, atol=1e-5)  # the gradient's inputs are rounded too
  np.testing.assert_allclose(dw, jnp.einsum("bti,bto->io", r(x), r(c)), rtol=1e-5, atol=1e-5)
  assert not np.allclose(dx, c @ w.T, rtol=1e-5, atol=1e-5)  # ... and it is not the float32 gradient
  with pytest.raises(ValueError, match="x @ kernel only"):
    bf16_dot_general(x, w, (((1,), (0,)), ((), ())))


def test_histogram_inputs_density_and_cdf_transform_the_probability_input():
  """model.histogram_input='density' feeds CDT's embedding B x the histogram (same params), 'cdf' its cumulative sum;
  'probability' (the reference) feeds it as is; DT's scalar is untouched by the option."""
  _, params, apply = _policy("histogram")
  cond, states, actions, timesteps, mask = _inputs("histogram")
  density = GDTPolicy(S, A, "histogram", COND_DIM["histogram"], bdt_unflipped_like_reference=False,
                      histogram_input="density", **TINY)
  got = density.apply(params, cond, states, actions, timesteps, mask, deterministic=True)
  np.testing.assert_allclose(got, apply(params, cond * COND_DIM["histogram"], states, actions, timesteps, mask,
                                        deterministic=True), rtol=1e-5, atol=1e-6)
  assert not np.allclose(got, apply(params, cond, states, actions, timesteps, mask, deterministic=True), atol=1e-4)
  # 'cdf' feeds the cumulative histogram over the bins
  cdf = GDTPolicy(S, A, "histogram", COND_DIM["histogram"], bdt_unflipped_like_reference=False,
                  histogram_input="cdf", **TINY)
  got = cdf.apply(params, cond, states, actions, timesteps, mask, deterministic=True)
  np.testing.assert_allclose(got, apply(params, jnp.cumsum(cond, axis=-1), states, actions, timesteps, mask,
                                        deterministic=True), rtol=1e-5, atol=1e-6)
  assert not np.allclose(got, apply(params, cond, states, actions, timesteps, mask, deterministic=True), atol=1e-4)
  _, rtg_params, rtg_apply = _policy("rtg")
  rtg = _inputs("rtg")
  np.testing.assert_array_equal(
      GDTPolicy(S, A, "rtg", 1, bdt_unflipped_like_reference=False, histogram_input="density", **TINY).apply(rtg_params, *rtg, deterministic=True),
      rtg_apply(rtg_params, *rtg, deterministic=True))
