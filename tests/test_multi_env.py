"""Env options from data configs and datasets that mix envs: per-trajectory tasks, joined training data, and
evaluation of each target in the env (with the options) its trajectory came from."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import cdt as cdt_config
from experiments.configs import data as data_configs
from gdt import envs, evaluate, train
from gdt import targets as gdt_targets
from gdt.checkpoint import LoadedPolicy
from gdt.conditioning import Labels
from gdt.data import Trajectories, dataset_path, default_metadata
from gdt.data import generation
from gdt.models import GDTPolicy

S, A, K, NUM_BINS, EPISODES = 17, 6, 4, 8, 2
LAYOUT = envs.observation_layout("halfcheetah")
BACKFLIP_OPTIONS = {"rotation_reward_weight": 2.0, "reference_reward": False}


def make_trajs(env: str, n: int = 8, t: int = 20, seed: int = 0, obs_dim: int = S, env_kwargs=None,
               shift: float = 0.0) -> Trajectories:
  """n random trajectories of `env` (x-velocity shifted by `shift`), the metadata a generator would write."""
  rs = np.random.RandomState(seed)
  lengths = rs.randint(t - 6, t + 1, n).astype(np.int32)
  mask = np.arange(t)[None] < lengths[:, None]
  obs = rs.randn(n, t, obs_dim)
  obs[..., LAYOUT["x_velocity"]] += shift
  meta = default_metadata(env, "expert", "brax", "spring", n, LAYOUT)
  if env_kwargs is not None:
    meta["env_kwargs"] = dict(env_kwargs)
  out = Trajectories((obs * mask[..., None]).astype(np.float32),
                     (rs.uniform(-1, 1, (n, t, A)) * mask[..., None]).astype(np.float32),
                     (rs.randn(n, t) * mask).astype(np.float32), np.zeros((n, t), bool), np.zeros((n, t), bool),
                     lengths, meta)
  out.refresh_level_returns()
  return out


# ----------------------------------------------------------------------------------------------------------------
# Env options in data configs


def test_env_option_defaults_are_the_env_classes_defaults():
  for env, options in data_configs.ENV_OPTIONS.items():
    cls = type(envs.make(env))
    params = inspect.signature(cls.__init__).parameters
    for name, (default, rule) in options.items():
      assert params[name].default == default, (env, name)
      assert rule.accepts(default)


def test_data_config_env_options_are_validated_and_recorded(tmp_path):
  c = data_configs.get_config("env=cheetah_backflip,preset=demo")
  assert dict(c.env_kwargs) == {"rotation_reward_weight": 1.0, "reference_reward": False}
  c.env_kwargs.rotation_reward_weight = 2.0
  generation.validate_config(c)
  g = generation.Generator(c, str(tmp_path))
  assert g.env._rotation_reward_weight == 2.0  # the data env is built with the option
  assert g.metadata("random", ["random"], [-1])["env_kwargs"] == BACKFLIP_OPTIONS

  bad = data_configs.get_config("env=cheetah_backflip,preset=demo")
  bad.env_kwargs.rotation_reward_weight = -1.0
  with pytest.raises(ValueError, match="'env_kwargs.rotation_reward_weight': must be a finite number > 0"):
    generation.validate_config(bad)
  unknown = data_configs.get_config("env=cheetah_backflip,preset=demo")
  unknown.env_kwargs.target_velocity = 2.0  # cheetah_vel's option, not cheetah_backflip's
  with pytest.raises(ValueError, match="'env_kwargs.target_velocity' is unknown"):
    generation.validate_config(unknown)
  plain = data_configs.get_config("env=halfcheetah,preset=demo")
  assert dict(plain.env_kwargs) == {}
  plain.env_kwargs.reference_reward = True
  with pytest.raises(ValueError, match="'env_kwargs.reference_reward' is unknown"):
    generation.validate_config(plain)


# ----------------------------------------------------------------------------------------------------------------
# The container


def test_concatenate_of_two_envs_keeps_task_labels_through_select_save_load(tmp_path):
  fwd = make_trajs("halfcheetah", n=3)
  flip = make_trajs("cheetah_backflip", n=2, seed=1, env_kwargs=BACKFLIP_OPTIONS)
  mixed = Trajectories.concatenate([fwd, flip])
  flip_task = "cheetah_backflip(reference_reward=False,rotation_reward_weight=2.0)"
  assert mixed.tasks() == ["halfcheetah"] * 3 + [flip_task] * 2
  assert mixed.task_specs() == {
      "halfcheetah": {"env": "halfcheetah", "env_kwargs": {}, "backend": "spring"},
      flip_task: {"env": "cheetah_backflip", "env_kwargs": BACKFLIP_OPTIONS, "backend": "spring"}}
  assert mixed.metadata["env"] == "halfcheetah+cheetah_backflip" and "env_kwargs" not in mixed.metadata
  path = str(tmp_path / "mixed.npz")
  mixed.save(path)
  loaded = Trajectories.load(path)
  assert loaded.tasks() == mixed.tasks() and loaded.task_specs() == mixed.task_specs()
  assert loaded.select([4, 0]).tasks() == [flip_task, "halfcheetah"]
  # joining a mixed dataset with another part of a known task keeps every label
  again = Trajectories.concatenate([loaded, make_trajs("halfcheetah", n=1, seed=2)])
  assert again.tasks() == mixed.tasks() + ["halfcheetah"]
  # one env, two option sets: two tasks
  vel = Trajectories.concatenate([make_trajs("cheetah_vel", n=1, env_kwargs={"target_velocity": 1.0}),
                                  make_trajs("cheetah_vel", n=1, env_kwargs={"target_velocity": 3.0})])
  assert vel.tasks() == ["cheetah_vel(target_velocity=1.0)", "cheetah_vel(target_velocity=3.0)"]


def test_concatenate_refuses_other_spaces_and_unknown_task_labels(tmp_path):
  fwd = make_trajs("halfcheetah", n=3)
  with pytest.raises(ValueError, match="different \\(obs_dim, act_dim\\)"):
    Trajectories.concatenate([fwd, make_trajs("cheetah_backflip", n=2, obs_dim=11)])
  mixed = Trajectories.concatenate([fwd, make_trajs("cheetah_backflip", n=2)])
  mixed.metadata["task"][0] = "hopper"
  with pytest.raises(ValueError, match="'task' labels \\['hopper'\\] are not in 'tasks'"):
    mixed.save(str(tmp_path / "bad.npz"))


def test_split_targets_holds_out_best_and_middle_of_each_task():
  fwd = make_trajs("halfcheetah", n=9)
  flip = make_trajs("cheetah_backflip", n=7, seed=1)
  mixed = Trajectories.concatenate([fwd, flip])
  train_idx, target_idx, names = gdt_targets.split_targets(mixed, 1, 1)
  assert names == ["best_traj_0_halfcheetah", "middle_traj_0_halfcheetah", "best_traj_0_cheetah_backflip",
                   "middle_traj_0_cheetah_backflip"]
  returns = mixed.returns()
  assert target_idx[0] == np.argmax(returns[:9]) and target_idx[2] == 9 + np.argmax(returns[9:])
  assert sorted(np.concatenate([train_idx, target_idx]).tolist()) == list(range(16))
  with pytest.raises(ValueError, match="task 'cheetah_backflip'"):
    gdt_targets.split_targets(mixed, 3, 3)  # 9 forward ones can give 6 disjoint targets, 7 backflip ones cannot


# ----------------------------------------------------------------------------------------------------------------
# Training data from several datasets


@pytest.fixture
def data_dir(tmp_path):
  """halfcheetah-expert in <tmp>/fwd and cheetah_backflip-expert (with env options) in <tmp>/flip."""
  fwd, flip = tmp_path / "fwd", tmp_path / "flip"
  make_trajs("halfcheetah", n=9, shift=3.0).save(dataset_path(str(fwd), "halfcheetah", "expert"))
  make_trajs("cheetah_backflip", n=8, seed=1, env_kwargs=BACKFLIP_OPTIONS).save(
      dataset_path(str(flip), "cheetah_backflip", "expert"))
  return str(fwd)


def joined_config(data_dir, **eval_overrides):
  c = cdt_config.get_config(f"env=halfcheetah,dataset=expert,data_dir={data_dir}")
  c.extra_datasets = ("cheetah_backflip:expert@../flip",)
  c.eval.update(best_k=1, middle_k=1, score_features=(), **eval_overrides)
  return c


def test_load_dataset_joins_extra_datasets_with_their_tasks(data_dir):
  c = joined_config(data_dir)
  train.validate_config(c)
  trajs, path = train.load_dataset(c)
  assert trajs.num_trajectories == 17 and " + " in path
  assert set(trajs.tasks()) == {"halfcheetah", "cheetah_backflip(reference_reward=False,rotation_reward_weight=2.0)"}
  one = train.datasets_fingerprint(cdt_config.get_config(f"env=halfcheetah,dataset=expert,data_dir={data_dir}"))
  both = train.datasets_fingerprint(c)
  assert both["sha256"] != one["sha256"] and both["bytes"] > one["bytes"]


def test_incompatible_extra_datasets_are_refused_before_training(data_dir, tmp_path):
  c = joined_config(data_dir)
  c.extra_datasets = ("hopper:expert",)  # another observation layout: refused from the config alone
  with pytest.raises(ValueError, match="'extra_datasets': 'hopper' observes"):
    train.validate_config(c)
  c.extra_datasets = ("cheetah_backflip",)
  with pytest.raises(ValueError, match="'extra_datasets': entry 'cheetah_backflip' is not 'env:dataset'"):
    train.validate_config(c)
  narrow = tmp_path / "narrow"
  make_trajs("cheetah_backflip", n=8, obs_dim=11).save(dataset_path(str(narrow), "cheetah_backflip", "expert"))
  c.extra_datasets = ("cheetah_backflip:expert@../narrow",)
  with pytest.raises(ValueError, match="obs/action sizes 11/6"):
    train.load_dataset(c)
  c.extra_datasets = ("cheetah_vel:expert@../flip",)
  with pytest.raises(FileNotFoundError, match="cheetah_vel-expert.npz not found"):
    train.load_dataset(c)


# ----------------------------------------------------------------------------------------------------------------
# Evaluation: each target in its own task's env


def make_policy(edges) -> LoadedPolicy:
  model = GDTPolicy(state_dim=S, act_dim=A, conditioning="histogram", cond_dim=NUM_BINS, embed_dim=16, num_layers=1,
                    num_heads=1, dropout_rate=0.0, max_timestep=64, z_dim=4, encoder_horizon=3,
                    bdt_unflipped_like_reference=False)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, K, NUM_BINS)), jnp.zeros((1, K, S)), jnp.zeros((1, K, A)),
                      jnp.zeros((1, K), jnp.int32), jnp.ones((1, K), bool), deterministic=True)["params"]
  return LoadedPolicy(model=model, params=params, state_mean=np.zeros(S, np.float32),
                      state_std=np.ones(S, np.float32), context_length=K,
                      labels=Labels("histogram", "x_velocity", edges, 1000.0, 1.0), env="halfcheetah",
                      backend="spring")


@pytest.fixture(scope="module")
def mixed_eval():
  mixed = Trajectories.concatenate([make_trajs("halfcheetah", n=6, shift=3.0),
                                    make_trajs("cheetah_backflip", n=6, seed=1, env_kwargs=BACKFLIP_OPTIONS)])
  edges = gdt_targets.feature_edges(mixed, "x_velocity", NUM_BINS)
  policy = make_policy(edges)
  _, idx, names = gdt_targets.split_targets(mixed, 1, 1)
  held_out = gdt_targets.trajectory_targets(mixed, idx, names, policy.labels)
  config = cdt_config.get_config().eval
  config.update(episodes_per_target=EPISODES, chunk_steps=10, mixture_weights=(0.5,), synthetic="mixture")
  tgts = gdt_targets.concatenate([held_out, gdt_targets.SYNTHETIC.get("mixture")(config, held_out, policy.labels)])
  result = evaluate.evaluate_policy(policy, tgts, config, jax.random.PRNGKey(3))
  return tgts, result


def _backflip_reward(result, j):
  """-2 w_y(s_{t+1}) - 0.1 |a_t|^2 of target j's episodes (the option rotation_reward_weight=2), where t+1 is real."""
  obs, act, valid = result.observations[j], result.actions[j], result.valid[j]
  pitch_rate = obs[:, 1:, LAYOUT["pitch_velocity"]]
  expected = -2.0 * pitch_rate - 0.1 * np.square(act[:, :-1]).sum(-1)
  both = valid[:, 1:]
  return result.rewards[j][:, :-1][both], expected[both]


def test_each_target_plays_in_its_task_env_with_the_dataset_env_options(mixed_eval):
  tgts, result = mixed_eval
  flip_task = "cheetah_backflip(reference_reward=False,rotation_reward_weight=2.0)"
  assert [r["task"] for r in result.rows] == ["halfcheetah"] * 2 + [flip_task] * 2 + ["halfcheetah"] * 2
  assert result.protocol["tasks"][flip_task]["env_kwargs"] == BACKFLIP_OPTIONS
  for j, row in enumerate(result.rows):
    got, expected = _backflip_reward(result, j)
    if row["task"] == flip_task:
      np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    else:  # halfcheetah pays for running forward, not for pitching
      assert np.abs(got - expected).max() > 0.1
    assert result.valid[j].sum(-1).tolist() == [tgts.lengths[j]] * EPISODES


def test_mixture_targets_are_scored_with_their_weight(mixed_eval):
  tgts, result = mixed_eval
  mix = [r for r in result.rows if "mixture_weight" in r]
  assert [r["name"] for r in mix] == ["mix0.5_0", "mix0.5_1"] and all(r["mixture_weight"] == 0.5 for r in mix)
  np.testing.assert_allclose(tgts.histograms[4], 0.5 * tgts.histograms[0] + 0.5 * tgts.histograms[2], atol=1e-6)
  agg = result.aggregates
  assert agg["w1_mix0.5"] == pytest.approx(np.mean([r["w1"] for r in mix]))
  assert agg["w1_task=halfcheetah"] == pytest.approx(np.mean([r["w1"] for r in result.rows[:2]]))
  assert set(agg) >= {"w1_best", "w1_middle", "w1_mix", "w1_all"}
