"""MxT-Bench policies (morphology.models): shapes and range on ant_reach_4 tokens rendered from a real reset,
padding invariance, permutation equivariance without (and not with) learned positions, the reference's
parameter count, the sqrt(F) embedding scale, the masked BC loss and its normaliser, checkpoint round trips
through load_model, and the observation-config mismatch error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from gdt.core import checkpoint as core_ckpt
from morphology import envs, graph
from morphology.models import MxtMLP, MxtTransformer, check_observation_config, masked_token_mse

F = graph.OBS_CONFIGS.get(graph.DEFAULT_CONFIG).token_size  # 32
L = graph.MAX_TOKENS
TINY = dict(num_layers=2, embed_dim=16, num_heads=2, mlp_dim=32)  # embed_dim != F, so sqrt(F) is told apart
TINY_MLP = dict(hidden_dim=32, num_hidden=2)
KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def ant():
  """ant_reach_4 (10 tokens, 8 actions) at reset and 2 perturbed copies, rendered per token and flat."""
  env = envs.make("ant_reach_4")
  state = jax.jit(env.reset)(jax.random.PRNGKey(3))
  layout, flat = graph.layout_for_env(env), graph.layout_for_env(env, "flat")
  raw = graph.raw_state_from_env_state(state)
  scale = jnp.array([0.0, 1.0, 3.0])[:, None, None]  # copy 0 is the reset state itself
  vel = raw.vel + scale * jax.random.normal(KEY, raw.vel.shape)
  raws = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,) + x.shape), raw)._replace(vel=vel)
  render = jax.jit(jax.vmap(lambda r: (graph.render(layout, r), graph.render(flat, r))))
  (tokens, mask), (flat_tokens, flat_mask) = render(raws)
  return layout, flat, tokens, mask, flat_tokens, flat_mask


def init_and_apply(model, tokens, mask):
  params = model.init(KEY, tokens, mask)["params"]
  return params, jax.jit(model.apply)


def num_params(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


# ---- the token transformer ----


def test_transformer_on_real_tokens_has_shape_range_and_ignores_padding(ant):
  layout, _, tokens, mask, _, _ = ant
  n = layout.num_tokens
  assert tokens.shape == (3, L, F) and mask.shape == (3, L) and int(mask[0].sum()) == n == 10
  model = MxtTransformer(**TINY)
  params, apply = init_and_apply(model, tokens, mask)
  out = np.asarray(apply({"params": params}, tokens, mask))
  assert out.shape == (3, L) and np.all(np.abs(out) < 1.0) and np.abs(out[:, :n]).min() > 0
  # Garbage on padded rows, or fewer padded rows (positions are sliced), leave real tokens' actions unchanged.
  garbage = tokens.at[:, n:].set(100.0 * jax.random.normal(KEY, (3, L - n, F)))
  np.testing.assert_allclose(np.asarray(apply({"params": params}, garbage, mask))[:, :n], out[:, :n], atol=1e-6)
  short = np.asarray(apply({"params": params}, tokens[:, :n + 2], mask[:, :n + 2]))
  np.testing.assert_allclose(short[:, :n], out[:, :n], atol=1e-5)
  # ... while masking out a real token does change the others: the mask is what makes padding inert.
  dropped = np.asarray(apply({"params": params}, tokens, mask.at[:, n - 1].set(False)))
  assert np.abs(dropped[:, :n - 1] - out[:, :n - 1]).max() > 1e-4


def test_transformer_is_permutation_equivariant_only_without_positions(ant):
  layout, _, tokens, mask, _, _ = ant
  n = layout.num_tokens
  perm = np.concatenate([np.random.default_rng(0).permutation(n), np.arange(n, L)])
  assert (perm[:n] != np.arange(n)).any()
  for max_positions, equivariant in ((None, True), (L, False)):
    model = MxtTransformer(**TINY, max_positions=max_positions)
    params, apply = init_and_apply(model, tokens, mask)
    assert ("positions" in params["trunk"]) == (max_positions is not None)
    out = np.asarray(apply({"params": params}, tokens, mask))[:, perm][:, :n]
    out_of_permuted = np.asarray(apply({"params": params}, tokens[:, perm], mask[:, perm]))[:, :n]
    gap = np.abs(out_of_permuted - out).max()
    assert (gap < 1e-5) if equivariant else (gap > 1e-3), (max_positions, gap)


def test_parameter_count_of_reference_size_transformer_and_mlp():
  """mxt_reference 4: about 1.59M + 256 L for F = 32, term by term (shapes only, nothing compiled)."""
  h, ff, layers = 256, 512, 3
  block = (h * 3 * h + 3 * h) + (h * h + h) + 2 * h + (h * ff + ff) + (ff * h + h) + 2 * h  # qkv, out, LN, FF, LN
  want_no_pe = (F * h + h) + layers * block + 2 * h + ((h + F) * 1 + 1)  # embed, blocks, final LN, decoder
  assert want_no_pe == 1_590_561  # the reference's ~1.59M
  tokens, mask = jnp.zeros((1, L, F)), jnp.ones((1, L), bool)
  shapes = lambda model, *x: jax.eval_shape(model.init, KEY, *x)["params"]
  assert num_params(shapes(MxtTransformer(), tokens, mask)) == want_no_pe + h * L
  assert num_params(shapes(MxtTransformer(max_positions=None), tokens, mask)) == want_no_pe
  want_mlp = (L * F * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * L + L)
  assert num_params(shapes(MxtMLP(), jnp.zeros((1, 1, L * F)), jnp.ones((1, 1), bool))) == want_mlp


def test_token_embedding_is_scaled_by_sqrt_of_the_token_size(ant):
  """The trunk's input is (x W + b) sqrt(F), with F = 32 the per-token feature size, not sqrt(embed_dim)."""
  _, _, tokens, mask, _, _ = ant
  seen = {}

  def record_trunk_input(next_fun, args, kwargs, context):
    if context.module.name == "trunk" and context.method_name == "__call__":
      seen["x"] = args[0]
    return next_fun(*args, **kwargs)

  for scale in (True, False):
    model = MxtTransformer(**TINY, scale_embedding=scale)
    params = model.init(KEY, tokens, mask)["params"]
    embed = params["embed"]
    embed = dict(embed, bias=jax.random.normal(KEY, embed["bias"].shape))  # a nonzero bias is scaled too
    with nn.intercept_methods(record_trunk_input):
      model.apply({"params": dict(params, embed=embed)}, tokens, mask)
    manual = np.asarray(tokens) @ np.asarray(embed["kernel"]) + np.asarray(embed["bias"])
    manual = manual * (np.sqrt(F) if scale else 1.0)
    np.testing.assert_allclose(np.asarray(seen["x"]), manual, rtol=1e-5, atol=1e-5)
    assert float(embed["kernel"].min()) >= 0.0 and float(embed["kernel"].max()) < 0.1  # U[0, 0.1)


# ---- the MLP baseline and the shared BC pipeline ----


def test_mlp_reads_the_flat_render_and_shares_the_transformers_targets_and_loss(ant):
  layout, flat, tokens, mask, flat_tokens, flat_mask = ant
  assert flat_tokens.shape == (3, 1, L * F) and flat_mask.shape == (3, 1)
  np.testing.assert_array_equal(np.asarray(flat_tokens).reshape(3, L, F), np.asarray(tokens))  # same information
  mlp = MxtMLP(**TINY_MLP, max_tokens=flat.max_tokens)
  params, apply = init_and_apply(mlp, flat_tokens, flat_mask)
  out = apply({"params": params}, flat_tokens, flat_mask)
  assert out.shape == (3, L) and bool(jnp.all(jnp.abs(out) < 1.0))
  # Env actions -> per-token targets -> the loss over actuated tokens; both models emit [B, L] slots.
  actions = jax.random.uniform(KEY, (3, layout.action_size), minval=-1, maxval=1)
  target = graph.tokens_from_actions(layout, actions)
  action_mask = jnp.broadcast_to(layout.action_mask, (3, L))
  want = np.mean((np.asarray(graph.actions_from_tokens(layout, out)) - np.asarray(actions)) ** 2)
  np.testing.assert_allclose(float(masked_token_mse(out, target, action_mask)), want, rtol=1e-5)
  with pytest.raises(ValueError, match=r"expects tokens \[B, 1, 1280\]"):
    apply({"params": params}, tokens, mask)


def test_masked_token_mse_ignores_unactuated_tokens_and_normalises_by_their_count():
  rng = np.random.default_rng(0)
  pred, target = (jnp.asarray(rng.normal(size=(2, 6)), jnp.float32) for _ in range(2))
  action_mask = jnp.array([[0, 1, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0]], bool)  # 3 actuated of 12
  sq = (np.asarray(pred) - np.asarray(target)) ** 2
  loss = float(masked_token_mse(pred, target, action_mask))
  np.testing.assert_allclose(loss, sq[np.asarray(action_mask)].mean(), rtol=1e-6)
  assert not np.isclose(loss, sq[np.asarray(action_mask)].sum() / 12)  # not normalised by B * L
  moved = jnp.where(action_mask, pred, pred + 100.0)
  np.testing.assert_allclose(float(masked_token_mse(moved, target, action_mask)), loss, rtol=1e-6)
  grad = jax.grad(masked_token_mse)(pred, target, action_mask)
  assert np.all(np.asarray(grad)[~np.asarray(action_mask)] == 0)
  legacy = float(masked_token_mse(pred, target, action_mask, legacy_mean=True))
  np.testing.assert_allclose(legacy, 0.5 * sq[np.asarray(action_mask)].sum() / 12, rtol=1e-6)
  assert float(masked_token_mse(pred, target, jnp.zeros_like(action_mask))) == 0.0
  with pytest.raises(ValueError, match="all \\[B, L\\]"):
    masked_token_mse(pred, target[:, :5], action_mask)


# ---- checkpoints and configs ----


@pytest.mark.parametrize("name, cls, kwargs, flat", [
    ("mxt_transformer", MxtTransformer, dict(TINY, dropout_rate=0.0, max_positions=L), False),
    ("mxt_mlp", MxtMLP, dict(TINY_MLP, max_tokens=L), True),
])
def test_models_round_trip_through_load_model(ant, tmp_path, name, cls, kwargs, flat):
  _, _, tokens, mask, flat_tokens, flat_mask = ant
  x, m = (flat_tokens, flat_mask) if flat else (tokens, mask)
  model = cls(**kwargs)
  params = model.init(KEY, x, m)["params"]
  mngr = core_ckpt.manager(str(tmp_path))
  core_ckpt.save(mngr, 5, params, {"step": jnp.int32(5)}, {"model": core_ckpt.model_spec(name, **kwargs)})
  mngr.close()
  loaded = core_ckpt.load_model(str(tmp_path))
  assert loaded.step == 5 and loaded.model == model and loaded.model.obs_config == ("flat" if flat else "mtg_v2_base_m")
  np.testing.assert_array_equal(np.asarray(loaded.model.apply({"params": loaded.params}, x, m)),
                                np.asarray(model.apply({"params": params}, x, m)))


def test_observation_config_mismatch_names_both_configs(ant):
  layout, flat, tokens, mask, _, _ = ant
  check_observation_config(layout.config, MxtTransformer().obs_config)
  check_observation_config(flat.config, MxtMLP().obs_config)
  with pytest.raises(ValueError, match="'mtg_v1_base_m'.*'mtg_v2_base_m'"):
    check_observation_config("mtg_v1_base_m", MxtTransformer().obs_config)  # same token size, other features
  with pytest.raises(ValueError, match="'mtg_v2_base_m'.*'flat'"):
    check_observation_config(layout.config, MxtMLP().obs_config)
  with pytest.raises(KeyError, match="mtg_v2_base_m"):
    check_observation_config("mtg_v2_base_mm", "mtg_v2_base_m")
  # The shape guards catch the mismatches whose token sizes differ, before any parameter is made.
  with pytest.raises(ValueError, match=r"MxtTransformer\('amorpheus'\) expects tokens \[B, L, 19\]"):
    MxtTransformer(obs_config="amorpheus").init(KEY, tokens, mask)
  with pytest.raises(ValueError, match="is flat"):
    MxtTransformer(obs_config="flat").init(KEY, tokens, mask)
  with pytest.raises(ValueError, match="is per-token"):
    MxtMLP(obs_config=graph.DEFAULT_CONFIG).init(KEY, tokens, mask)
