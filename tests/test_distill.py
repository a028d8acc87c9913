"""MxT behaviour distillation (morphology.distill): the BC loss reads actuated tokens only, batches are uniform over
envs and then over each env's transitions, config refusals, and a tiny end to end on random-policy data of 2 envs:
train, evaluate (tables in the workdir), few-shot fine-tuning initialised from the source checkpoint, and
`morphology.load_policy` round trips."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import morphology
from experiments.configs import mxt_base
from morphology import data, distill, envs, graph

# Two tasks on one MJCF model (the goals are not bodies), so their collections compile to the same program: the
# persistent compilation cache serves the second.
# Different token counts and action sizes are covered by the loss and sampling tests and the slow test.
ENVS = ("ant_reach_2", "ant_reach_hard_2")
T = 12
TINY_MODEL = dict(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=16, hidden_dim=16, num_hidden=1)


def tiny_config(dataset_dir: str, arg: str = "", **train):
  c = mxt_base.get_config(f"dataset_dir={dataset_dir}" + (f",{arg}" if arg else ""))
  c.model.update(TINY_MODEL)
  c.train.update(dict(dict(batch_size=16, num_steps=20, steps_per_call=10, checkpoint_every=10), **train))
  c.eval.update(dict(episodes=3, episode_length=8, chunk_steps=8))
  return c


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("mxt_data"))
  for name in ENVS:
    ds = data.collect(name, data.random_policy(4), episodes=3, seed=7, episode_length=T)
    ds.save(data.dataset_path(root, name))
  return root


# ---- loss and sampling (no env) ----


def test_bc_loss_reads_only_actuated_tokens():
  c = tiny_config("unused")
  L, F = graph.MAX_TOKENS, graph.OBS_CONFIGS.get(c.obs_config).token_size
  trainer = distill.MxtTrainer(c, (L, F))
  params = jax.jit(trainer.init_params)(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  mask = np.zeros((4, L), bool)
  mask[:, :6] = True  # 6 real tokens: root, 4 hinge tokens, the goal
  action_mask = np.zeros((4, L), bool)
  action_mask[:, 1:5] = True
  tokens = rng.normal(size=(4, L, F)).astype(np.float32) * mask[..., None]
  targets = np.where(action_mask, rng.uniform(-1, 1, (4, L)), 0.0).astype(np.float32)
  batch = lambda tg: distill.Batch(jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(tg), jnp.asarray(action_mask),
                                   jnp.zeros(4, jnp.int32))
  loss = jax.jit(trainer.loss)
  key = jax.random.PRNGKey(1)
  base = float(loss(params, batch(targets), key))
  changed = targets.copy()
  changed[:, 0] = 5.0  # root
  changed[:, 5] = -5.0  # the goal token
  changed[:, 6:] = 3.0  # padding
  assert float(loss(params, batch(changed), key)) == base
  changed = targets.copy()
  changed[0, 2] += 0.5  # one actuated token
  assert float(loss(params, batch(changed), key)) != base
  # Normalised by the actuated count: the mean squared error over the 16 actuated entries.
  pred = jax.jit(trainer.model.apply)({"params": params}, tokens, mask)
  want = np.sum(np.square(np.asarray(pred) - targets) * action_mask) / action_mask.sum()
  np.testing.assert_allclose(base, want, rtol=1e-5)


def test_batches_are_uniform_over_envs_then_over_transitions():
  counts = np.array([10, 1000, 90], np.int32)
  offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
  rows = int(counts.sum())
  ids = np.arange(rows, dtype=np.float32)
  mt = distill.MultiTaskData(tokens=jnp.asarray(ids)[:, None, None], mask=jnp.ones((rows, 1), bool),
                             targets=jnp.zeros((rows, 1)), action_mask=jnp.ones((rows, 1), bool),
                             offsets=jnp.asarray(offsets), counts=jnp.asarray(counts))
  n = 30_000
  b = jax.jit(distill.sample_batch, static_argnums=2)(mt, jax.random.PRNGKey(0), n)
  env, row = np.asarray(b.env), np.asarray(b.tokens[:, 0, 0]).astype(int)
  # Every row belongs to the env it was drawn for.
  assert np.all((row >= offsets[env]) & (row < offsets[env] + counts[env]))
  # Envs: ~n/3 each (4 sigma of a binomial), not in proportion to their sizes (10 : 1000 : 90).
  per_env = np.bincount(env, minlength=3)
  sigma = np.sqrt(n * (1 / 3) * (2 / 3))
  assert np.all(np.abs(per_env - n / 3) < 4 * sigma), per_env
  # Within the 10-row env, rows are uniform: each ~1/10 of its draws.
  small = np.bincount(row[env == 0], minlength=10)
  expect = per_env[0] / 10
  assert np.all(np.abs(small - expect) < 5 * np.sqrt(expect)), small


def test_config_refusals():
  with pytest.raises(ValueError, match="obs_config.*flat"):
    c = tiny_config("d", "envs=ant_reach_2")
    c.obs_config = "flat"  # a flat config for the token transformer
    distill.validate_config(c)
  with pytest.raises(ValueError, match="split"):
    distill.validate_config(tiny_config("d", "mode=zero_shot"))
  with pytest.raises(ValueError, match="source_workdir"):
    distill.validate_config(tiny_config("d", "mode=few_shot,envs=ant_reach_2,num_demos=1"))
  with pytest.raises(ValueError, match="ant_reach_99"):
    distill.validate_config(tiny_config("d", "envs=ant_reach_99"))
  train, test = distill.run_envs(tiny_config("d", "mode=zero_shot,split=ant_reach_zs_5"))
  assert "ant_reach_5" in test and "ant_reach_5" not in train
  mlp = mxt_base.get_config("model=mxt_mlp,envs=ant_reach_2")
  assert mlp.obs_config == "flat"
  distill.validate_config(mlp)


# ---- end to end on random-policy data ----


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("mxt_bc"))
  # Trained on both envs, evaluated on the smaller (one evaluation compilation).
  c = tiny_config(dataset_dir, "envs=" + "+".join(ENVS))
  c.eval.envs = ("ant_reach_2",)
  rows = distill.train_and_evaluate(c, workdir, log=lambda s: None)
  return c, workdir, rows


def test_train_and_evaluate_writes_checkpoints_metrics_and_tables(trained):
  c, workdir, rows = trained
  assert [r["env"] for r in rows] == ["ant_reach_2"] and rows[0]["episodes"] == 3
  r = rows[0]
  assert 0.0 <= r["success_rate"] <= 1.0 and np.isfinite(r["final_distance"]) and r["final_over_initial"] > 0
  assert r["episode_length"] == 8  # a random-data policy does not reach the ball in 8 steps: the time limit ends it
  for name in ("eval_train.md", "eval_train.csv", "eval_train.json", "config.json", "metrics.csv", "datasets.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert "| ant_reach_2 |" in open(os.path.join(workdir, "eval_train.md")).read()
  assert sorted(json.load(open(os.path.join(workdir, "datasets.json")))) == sorted(ENVS)
  losses = [float(line.split(",")[1]) for line in open(os.path.join(workdir, "metrics.csv")).readlines()[1:]]
  assert len(losses) == 2 and all(np.isfinite(losses))


def test_load_policy_round_trip(trained, dataset_dir):
  c, workdir, _ = trained
  policy = morphology.load_policy(workdir)
  assert policy.step == c.train.num_steps and policy.obs_config == c.obs_config
  assert policy.meta["train_envs"] == list(ENVS) and policy.meta["config"]["seed"] == c.seed
  env = ENVS[1]
  ds = data.MxtDataset.load(data.dataset_path(dataset_dir, env))
  layout = graph.layout_for_name(env, c.obs_config)

  @jax.jit
  def direct(params, raw):  # the model applied by hand to the rendered tokens
    tokens, mask = graph.render(layout, raw)
    return graph.actions_from_tokens(layout, policy.model.apply({"params": params}, tokens[None], mask[None]))[0]

  want = direct(policy.params, ds.state(1, 4))
  got = policy.act(env, ds.state(1, 4))
  assert got.shape == (4,)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
  batch = jax.tree.map(lambda x: x[:, 4], ds.raw)  # 3 episodes' step-4 states at once
  np.testing.assert_allclose(np.asarray(policy.act(env, batch)[1]), np.asarray(want), atol=1e-6)


def test_training_tokens_drop_only_padding(dataset_dir):
  """Per-token data keep the largest env's real tokens (attention masks the rest); flat data keep their size."""
  c = tiny_config(dataset_dir)
  datasets = [data.MxtDataset.load(data.dataset_path(dataset_dir, n)) for n in ENVS]
  layouts = [graph.layout_for_name(n, c.obs_config) for n in ENVS]
  rendered = [data.render_dataset(ds, lay) for ds, lay in zip(datasets, layouts, strict=True)]
  mt = distill.multitask_data(rendered, c.obs_config)
  keep = max(lay.num_tokens for lay in layouts)
  assert keep < graph.MAX_TOKENS and mt.tokens.shape[1] == mt.mask.shape[1] == mt.targets.shape[1] == keep
  full = rendered[0].tokens[rendered[0].valid.astype(bool)]
  np.testing.assert_array_equal(mt.tokens[:int(mt.counts[0])], full[:, :keep])
  assert not full[:, keep:].any()  # what was dropped was padding
  flat = [data.render_dataset(ds, graph.layout_for_name(ds.env_name, "flat")) for ds in datasets]
  assert distill.multitask_data(flat, "flat").tokens.shape[1:] == flat[0].tokens.shape[2:]


def test_successful_only_keeps_successful_episodes_and_refuses_data_without(dataset_dir, tmp_path):
  c = tiny_config(dataset_dir, "envs=ant_reach_2")
  c.data.successful_only = True
  with pytest.raises(ValueError, match="data.successful_only.*none of the 3 episodes succeeded"):
    distill.load_datasets(c, ["ant_reach_2"], log=lambda s: None)
  ds = data.MxtDataset.load(data.dataset_path(dataset_dir, "ant_reach_2"))
  ds.success[1, 3] = 1.0  # one episode marked successful, saved under another root
  root = str(tmp_path / "marked")
  ds.save(data.dataset_path(root, "ant_reach_2"))
  c.data.dataset_dir = root
  [kept] = distill.load_datasets(c, ["ant_reach_2"], log=lambda s: None)
  np.testing.assert_array_equal(kept.actions, ds.actions[[1]])
  with pytest.raises(ValueError, match="2 episodes asked for.*1 successful"):
    distill.load_datasets(c, ["ant_reach_2"], episodes=2, log=lambda s: None)


def test_few_shot_starts_from_the_source_params_and_refuses_another_model(trained, dataset_dir, tmp_path):
  c, workdir, rows = trained
  source = morphology.load_policy(workdir)
  fs = tiny_config(dataset_dir, f"mode=few_shot,envs=ant_reach_2,source_workdir={workdir},num_demos=1",
                   learning_rate=1e-9, num_steps=10)
  fs_rows = distill.train_and_evaluate(fs, str(tmp_path / "fs"), log=lambda s: None)
  tuned = morphology.load_policy(str(tmp_path / "fs"))
  # A learning rate of 1e-9 leaves the params where they started: at the source's, not at a fresh init's.
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), tuned.params, source.params))
  assert max(diffs) < 1e-6
  fresh = distill.MxtTrainer(fs, (graph.MAX_TOKENS, 32)).init(fs.seed).params
  assert max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), fresh, source.params))) > 1e-3
  assert json.load(open(tmp_path / "fs" / "datasets.json")) == {"ant_reach_2": mock_sha(dataset_dir, 1)}
  assert fs_rows[0]["env"] == "ant_reach_2" and os.path.exists(tmp_path / "fs" / "eval_few_shot.md")
  other = tiny_config(dataset_dir, f"mode=few_shot,envs=ant_reach_2,source_workdir={workdir},num_demos=1")
  other.model.embed_dim = 32
  with pytest.raises(ValueError, match="embed_dim"):
    distill.train_and_evaluate(other, str(tmp_path / "fs_other"), log=lambda s: None)


def mock_sha(dataset_dir: str, episodes: int) -> str:
  """The datasets.json entry of ant_reach_2's file with `episodes` episodes used."""
  record = json.load(open(os.path.join(dataset_dir, "ant_reach_2.json")))
  return f"{record['npz_sha256']}/{episodes}"


def test_missing_datasets_are_collected_once_from_the_experts(dataset_dir, tmp_path, monkeypatch):
  from morphology import experts
  calls = []

  def fake_load_expert(workdir, allow_rejected=False):  # an expert acting at random, on the world obs
    calls.append((workdir, allow_rejected))
    return experts.Expert(env_name="ant_reach_2", step=123, success=0.9, workdir=workdir,
                          env_config=envs.EnvConfig(observation="world"))

  world_size = envs.make("ant_reach_2", config=envs.EnvConfig(observation="world")).observation_size
  seen = []

  def act_fn(self):
    def act(obs, rng):
      seen.append(obs.shape)  # at trace time: the observation the expert was trained on
      return data.random_policy(4)(obs, rng)
    return act

  monkeypatch.setattr(experts, "load_expert", fake_load_expert)
  monkeypatch.setattr(experts, "read_expert_json", lambda workdir: {"accepted": False})
  monkeypatch.setattr(experts.Expert, "act_fn", act_fn)
  c = tiny_config(str(tmp_path / "data"), f"envs=ant_reach_2,experts_root={tmp_path / 'experts'}")
  c.data.update(dict(collect_episodes=3, episode_length=T, allow_rejected_experts=True))
  (ds,) = distill.load_datasets(c, ["ant_reach_2"], log=lambda s: None)
  assert calls == [(experts.expert_workdir(str(tmp_path / "experts"), "ant_reach_2"), True)]
  assert ds.metadata["expert_accepted"] is False  # the data say they came from a rejected expert
  assert ds.metadata["expert_step"] == 123 and ds.metadata["expert_success"] == 0.9 and ds.num_episodes == 3
  assert set(seen) == {(world_size,)} and ds.metadata["env_config"]["observation"] == "world"
  assert os.path.exists(data.dataset_path(str(tmp_path / "data"), "ant_reach_2"))
  (again,) = distill.load_datasets(c, ["ant_reach_2"], episodes=2, log=lambda s: None)
  assert len(calls) == 1 and again.num_episodes == 2  # reused, not collected again
  np.testing.assert_array_equal(again.actions, ds.actions[:2])


@pytest.mark.slow
def test_mlp_baseline_and_zero_shot_on_envs_of_different_sizes(tmp_path):
  root = str(tmp_path / "data")
  for name, actions in (("ant_reach_2", 4), ("ant_reach_3", 6), ("ant_reach_4", 8)):
    data.collect(name, data.random_policy(actions), episodes=4, seed=1, episode_length=20).save(
        data.dataset_path(root, name))
  for model in ("mxt_mlp", "mxt_transformer"):
    # Trained on ants with 2 and 4 legs, evaluated on the held-out 3-legged one (zero-shot).
    c = tiny_config(root, f"model={model},envs=ant_reach_2+ant_reach_4", num_steps=40)
    c.eval.envs = ("ant_reach_3",)
    rows = distill.train_and_evaluate(c, str(tmp_path / model), log=lambda s: None)
    assert rows[0]["env"] == "ant_reach_3" and np.isfinite(rows[0]["final_distance"])
    assert morphology.load_policy(str(tmp_path / model)).model.__class__.__name__ == {
        "mxt_mlp": "MxtMLP", "mxt_transformer": "MxtTransformer"}[model]
