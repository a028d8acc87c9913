"""Training: window sampling, the masked loss, config validation, and a tiny CDT that learns."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from experiments.configs import bdt, cdt, dt
from gdt import targets as gdt_targets
from gdt import train
from gdt.data import Trajectories, default_metadata, level_return_stats
from gdt.core.workdir import read_jsonl

S, A = 17, 6
sample = jax.jit(train.sample_batch, static_argnums=(2, 3, 4, 5))


def synthetic_trajectories(n=12, t_max=40, seed=0, layout=None, min_length=5):
  """Trajectories whose actions are a fixed function of the state (learnable) and reward = x velocity."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(min_length, t_max + 1, n).astype(np.int32)
  lengths[0] = t_max
  mask = np.arange(t_max)[None] < lengths[:, None]
  obs = (rng.normal(size=(n, t_max, S)) * mask[..., None]).astype(np.float32)
  act = (np.tanh(obs[..., :A] - 0.5 * obs[..., A:2 * A]) * mask[..., None]).astype(np.float32)
  rew = (obs[..., 8] * mask).astype(np.float32)
  timeouts = np.zeros((n, t_max), bool)
  timeouts[np.arange(n), lengths - 1] = True
  meta = default_metadata("halfcheetah", "medium", "brax", "positional", n,
                          {"x_velocity": 8} if layout is None else layout, seed=0)
  meta["level_returns"] = level_return_stats(rew.sum(1), meta["policy_levels"])
  return Trajectories(obs, act, rew, np.zeros((n, t_max), bool), timeouts, lengths, meta)


def tiny(config_module, **overrides):
  c = config_module.get_config("steps=100")
  c.model.update(embed_dim=16, num_layers=1, num_heads=1, dropout_rate=0.0, encoder_horizon=3)
  c.context_length = 5
  c.num_bins = 8
  c.train.update(batch_size=16, steps_per_call=50, warmup_steps=1, learning_rate=3e-3)
  c.eval.update(best_k=1, middle_k=1)
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.fixture(scope="module")
def trajs():
  return synthetic_trajectories()


@pytest.fixture(scope="module")
def cdt_setup(trajs):
  config = tiny(cdt)
  prep = train.prepare_data(trajs, config, np.arange(2, trajs.num_trajectories))
  trainer = train.GDTTrainer(config, S, A, prep.labels.cond_dim)
  return config, prep, trainer, trainer.put_data(prep.data)


def marker_data(lengths, t_max, cond_dim=1):
  """DeviceData whose state at (i, t) is (i + 1, t + 1, 0...) so a window says where it came from."""
  lengths = np.asarray(lengths, np.int32)
  n = len(lengths)
  mask = np.arange(t_max)[None] < lengths[:, None]
  states = np.zeros((n, t_max, 3), np.float32)
  states[..., 0] = np.arange(1, n + 1)[:, None]
  states[..., 1] = np.arange(1, t_max + 1)[None]
  states *= mask[..., None]
  return train.DeviceData(
      states=jnp.asarray(states), actions=jnp.asarray(states[..., :2]), cond=jnp.asarray(states[..., 1:2]),
      lengths=jnp.asarray(lengths), sample_logits=jnp.log(jnp.asarray(lengths / lengths.sum(), jnp.float32)))


def test_windows_are_left_padded_contiguous_slices():
  lengths, k, h = [3, 7, 25], 6, 4
  data = marker_data(lengths, 25)
  b = sample(data, jax.random.PRNGKey(0), 512, k, 1000, h)
  assert b.states.shape == (512, k, 3) and b.actions.shape == (512, k, 2) and b.mask.shape == (512, k)
  assert b.cond["states"].shape == (512, k + h - 1, 3) and b.cond["mask"].shape == (512, k + h - 1)
  states, mask, ts = np.asarray(b.states), np.asarray(b.mask), np.asarray(b.timesteps)
  for row in range(512):
    m = mask[row]
    first = np.argmax(m)
    assert m[first:].all() and not m[:first].any(), "mask is not a left padding"
    traj = int(states[row, -1, 0]) - 1
    t = states[row, first:, 1].astype(int) - 1
    np.testing.assert_array_equal(t, np.arange(t[0], t[0] + k - first))  # consecutive steps of one trajectory
    assert (states[row, first:, 0] == traj + 1).all()
    assert t[-1] < lengths[traj] and (k - first == k or t[-1] == lengths[traj] - 1)  # short only at the end
    np.testing.assert_array_equal(ts[row, first:], t)
    assert (states[row, :first] == 0).all() and (ts[row, :first] == 0).all()
    # The encoder window continues past the policy window up to the trajectory's end.
    enc_s, enc_m = np.asarray(b.cond["states"][row]), np.asarray(b.cond["mask"][row])
    np.testing.assert_array_equal(enc_s[:k], states[row])
    future = np.arange(t[-1] + 1, t[-1] + h)
    np.testing.assert_array_equal(enc_m[k:], future < lengths[traj])
    np.testing.assert_array_equal(enc_s[k:, 1][enc_m[k:]], future[future < lengths[traj]] + 1)


def test_windows_start_uniformly_in_the_trajectory():
  data = marker_data([10], 10)
  b = sample(data, jax.random.PRNGKey(1), 5000, 4, 1000)
  last_t = np.asarray(b.states[:, -1, 1]).astype(int) - 1  # the window's last step = min(start + K, len) - 1
  starts = np.where(last_t < 9, last_t - 3, -1)
  counts = np.bincount(starts[starts >= 0], minlength=10)[:6]  # starts 0..5 end before the last step
  assert counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500  # U{0..9}: 500 each


def test_episode_start_fraction_starts_that_share_of_windows_at_step_zero():
  """train.episode_start_fraction p: a window starts at the episode's first step with probability p; p = 0 draws
  exactly the default (reference) windows."""
  data = marker_data([50, 80], 80)
  draw = jax.jit(train.sample_batch, static_argnums=(2, 3, 4, 5, 6))
  key, n, k = jax.random.PRNGKey(3), 4000, 4
  default = sample(data, key, n, k, 1000)
  same = draw(data, key, n, k, 1000, None, 0.0)
  for a, b in zip(jax.tree.leaves(default), jax.tree.leaves(same), strict=True):
    np.testing.assert_array_equal(a, b)
  first_t = lambda b: np.asarray(b.states[:, 0, 1]).astype(int) - 1  # lengths >= K: no padding, column 0 = start
  assert (first_t(default) == 0).mean() < 0.03  # uniform starts: 1/50 or 1/80 of the windows
  half = draw(data, key, n, k, 1000, None, 0.5)
  assert 0.46 < (first_t(half) == 0).mean() < 0.56
  one = draw(data, key, n, k, 1000, None, 1.0)
  assert np.asarray(one.mask).all() and (np.asarray(one.timesteps) == np.arange(k)).all()
  np.testing.assert_array_equal(np.asarray(one.states[:, :, 1]), np.tile(np.arange(1, k + 1), (n, 1)))


@pytest.mark.parametrize("uniform, expected", [(False, [0.25, 0.75]), (True, [0.5, 0.5])])
def test_trajectory_sampling_frequencies(trajs, uniform, expected):
  two = trajs.select([0, 1])
  two.lengths[:] = [10, 30]
  config = tiny(cdt)
  config.train.uniform_traj_sampling = uniform
  logits = train.prepare_data(two, config).data.sample_logits
  data = marker_data([10, 30], 40).replace(sample_logits=jnp.asarray(logits))
  b = sample(data, jax.random.PRNGKey(2), 20000, 5, 1000)
  traj = np.asarray(b.states[:, -1, 0]).astype(int) - 1
  np.testing.assert_allclose(np.bincount(traj, minlength=2) / len(traj), expected, atol=0.015)


def test_loss_ignores_padding_and_averages_over_valid_positions():
  rng = np.random.default_rng(0)
  pred, target = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
  mask = np.array([[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], bool)
  loss = float(train.masked_action_mse(pred, target, mask))
  expected = ((pred - target) ** 2)[mask].mean()
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  pred2 = np.where(mask[..., None], pred, 1e3)
  target2 = np.where(mask[..., None], target, -7.0)
  np.testing.assert_allclose(float(train.masked_action_mse(pred2, target2, mask)), loss, rtol=1e-6)


def test_relabelled_conditioning(trajs):
  config = tiny(dt)
  prep = train.prepare_data(trajs, config)
  phi = np.where(trajs.mask(), trajs.observations[..., 8], 0.0)
  rtg = np.cumsum(phi[:, ::-1], axis=1)[:, ::-1] / config.rtg_scale
  np.testing.assert_allclose(prep.data.cond[..., 0], rtg * trajs.mask(), rtol=1e-4, atol=1e-6)
  h = train.prepare_data(trajs, tiny(cdt)).data.cond
  np.testing.assert_allclose(h.sum(-1), trajs.mask().astype(np.float32), atol=1e-5)
  # Normalisation: zero mean, unit std over the valid steps; padding stays 0.
  s = prep.data.states[trajs.mask()]
  np.testing.assert_allclose(s.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(s.std(0), 1.0, atol=1e-3)
  assert (prep.data.states[~trajs.mask()] == 0).all()


@pytest.mark.parametrize("module", [dt, cdt])
def test_evaluation_conditions_on_what_training_relabels(trajs, module):
  """A target's open-loop z_t is the training label of the same trajectory (same scale, bins, gamma)."""
  config = tiny(module)
  prep = train.prepare_data(trajs, config)
  idx = np.array([1, 4])
  targets = gdt_targets.trajectory_targets(trajs, idx, ["a", "b"], prep.labels)
  t = targets.cond.shape[1]
  np.testing.assert_allclose(targets.cond, prep.data.cond[idx, :t], rtol=1e-5, atol=1e-6)


def test_statistics_exclude_held_out_targets_unless_asked(trajs):
  config = tiny(cdt)
  train_idx = np.arange(3, trajs.num_trajectories)
  own = train.prepare_data(trajs, config, train_idx)
  config.stats_include_targets_like_reference = True
  ref = train.prepare_data(trajs, config, train_idx)
  assert own.data.states.shape[0] == ref.data.states.shape[0] == len(train_idx)
  valid = trajs.observations[trajs.mask()]
  np.testing.assert_allclose(ref.state_mean, valid.mean(0), rtol=1e-5, atol=1e-6)
  assert not np.allclose(own.state_mean, ref.state_mean)


def test_tiny_cdt_learns(cdt_setup):
  config, prep, trainer, data = cdt_setup
  state = trainer.init(0)
  losses = []
  for _ in range(4):
    state, metrics = trainer.train_many(state, data, config.train.steps_per_call)
    losses.append(float(metrics["loss"]))
  assert int(state.step) == 4 * config.train.steps_per_call
  assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("field, value, message", [
    ("feature", "x_velocty", "x_velocity"),
    ("conditioning", "histgram", "histogram"),
    ("env", "halfcheeta", "halfcheetah"),
    ("num_bins", 1, "num_bins"),
    ("context_length", 0, "context_length"),
])
def test_bad_config_fails_naming_the_field(field, value, message):
  config = tiny(cdt)
  config[field] = value
  with pytest.raises(ValueError, match=field) as e:
    train.validate_config(config)
  assert message in str(e.value)


def test_dropout_prng_is_validated_and_seeded(trajs):
  config = tiny(cdt)
  config.train.dropout_prng = "philox"
  with pytest.raises(ValueError, match="train.dropout_prng"):
    train.validate_config(config)
  losses = {}
  for impl in ("rbg", "threefry"):
    config = tiny(cdt)
    config.model.dropout_rate = 0.3
    config.train.dropout_prng = impl
    prep = train.prepare_data(trajs, config)
    trainer = train.GDTTrainer(config, S, A, prep.labels.cond_dim)
    state = trainer.init(0)
    batch = train.sample_batch(trainer.put_data(prep.data), jax.random.PRNGKey(0), 8, config.context_length,
                               config.model.max_timestep)
    loss = jax.jit(trainer.loss)
    losses[impl] = [float(loss(state.params, batch, jax.random.PRNGKey(k))) for k in (1, 1, 2)]
  for impl, (a, b, c) in losses.items():
    assert a == b and a != c, impl  # a function of the key: same key, same masks; another key, other masks
  assert losses["rbg"][0] != losses["threefry"][0]


def test_bad_batch_size_names_the_field():
  config = tiny(cdt)
  config.train.batch_size = 0
  with pytest.raises(ValueError, match="train.batch_size"):
    train.validate_config(config)


def test_dataset_without_the_feature_index_fails_naming_it(tmp_path):
  trajs = synthetic_trajectories(layout={"z_height": 0})
  config = tiny(cdt, data_dir=str(tmp_path))
  trajs.save(str(tmp_path / "datasets" / "halfcheetah-medium-expert.npz"))
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="feature") as e:
    train.train_and_evaluate(config, str(workdir), log=lambda _: None)
  assert "x_velocity" in str(e.value) and "z_height" in str(e.value)
  assert not (workdir / "checkpoints").exists()  # failed before any training


def test_dataset_of_another_env_fails(tmp_path):
  config = tiny(cdt, env="hopper")
  with pytest.raises(ValueError, match="'env'"):
    train.validate_dataset(config, synthetic_trajectories(), "x.npz")


def test_bdt_batch_feeds_the_encoder(trajs):
  config = tiny(bdt)
  prep = train.prepare_data(trajs, config)
  trainer = train.GDTTrainer(config, S, A, prep.labels.cond_dim)
  state = trainer.init(0)
  data = trainer.put_data(prep.data)
  batch = sample(data, jax.random.PRNGKey(0), 4, config.context_length, 1000,
                             config.model.encoder_horizon)
  loss = jax.jit(trainer.loss)(state.params, batch, jax.random.PRNGKey(1))
  assert np.isfinite(float(loss))


@pytest.mark.slow
def test_train_and_evaluate_writes_a_workdir_and_resumes(tmp_path):
  trajs = synthetic_trajectories(n=8, t_max=30, min_length=30)
  trajs.save(str(tmp_path / "datasets" / "halfcheetah-medium-expert.npz"))
  config = tiny(cdt, data_dir=str(tmp_path))
  config.train.update(num_steps=50, steps_per_call=25, checkpoint_every=25)
  config.eval.update(episodes_per_target=2, chunk_steps=10, plots=False)
  workdir = tmp_path / "run"
  lines = []
  result = train.train_and_evaluate(config, str(workdir), log=lines.append)
  assert {r["name"] for r in result.rows} == {"best_traj_0", "middle_traj_0"}
  assert all(np.isfinite(r["w1"]) for r in result.rows)
  for name in ("config.json", "metrics.csv", "metrics.jsonl", "eval_histogram.json", "eval_histogram.npz"):
    assert (workdir / name).exists(), name
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["25", "50"]
  config.train.num_steps = 75  # a longer run resumes from step 50, here with the data split over the devices
  config.train.shard_data = True
  lines.clear()
  train.train_and_evaluate(config, str(workdir), log=lines.append)
  assert "[train] resumed from step 50" in lines
  assert any(line.endswith("process 0 placed rows 0-6 of 6 (+0 padding) on its 1") for line in lines), lines
  rows = [r["step"] for r in read_jsonl(str(workdir / "metrics.jsonl"))]
  assert rows == [25, 50, 75]


def test_every_w1_grid_comes_from_the_training_trajectories():
  """The reward grid scored beside x_velocity is binned over the same (training) trajectories as the labels'
  x_velocity grid, not over all trajectories, unless the reference flag asks for all."""
  config = tiny(cdt)
  config.eval.score_features = ("reward",)
  big = synthetic_trajectories()
  big.rewards[0, 0] = 1e3  # a held-out target with an extreme reward would stretch an all-trajectory grid
  train_idx, target_idx = np.arange(2, big.num_trajectories), np.array([0, 1])
  labels = train.prepare_data(big, config, train_idx).labels
  tgts = train.held_out_targets(config, big, target_idx, ["a", "b"], labels)
  (_, x_edges, _), (name, r_edges, _) = tgts.score_features
  assert name == "reward" and np.array_equal(x_edges, labels.edges)
  np.testing.assert_allclose(r_edges, gdt_targets.feature_edges(big.select(train_idx), "reward", config.num_bins))
  assert r_edges[-1] < 1e3
  config.stats_include_targets_like_reference = True
  (_, _, _), (_, r_all, _) = train.held_out_targets(config, big, target_idx, ["a", "b"], labels).score_features
  assert r_all[-1] == pytest.approx(1e3)
