"""gdt.data.switching: episodes that hand over from one run's expert to another's at a recorded random step."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.training.acme import running_statistics, specs

from experiments.configs import data as data_configs
from experiments.configs import switch_data
from gdt import envs
from gdt.core import ppo
from gdt.core.workdir import prepare_workdir
from gdt.data import Trajectories, default_metadata, generation, switching
from gdt.targets import split_targets
from tests.test_generation import DrawEnv, act_with_snapshot_index


def test_switch_act_hands_over_at_each_episodes_step():
  """Env e acts with policy first[e] before switch_step[e] and with the other one from then on, whatever the chunk
  boundaries; episodes that end early keep their recorded inputs."""
  env, num_envs, length = DrawEnv(), 4, 7
  chunk = generation.make_episode_chunk(env, switching.make_switch_act(act_with_snapshot_index), length)
  draws = {"first": np.array([0, 1, 1, 0, 1, 0], np.int32), "switch_step": np.array([0, 3, 7, 5, 1, 2], np.int32)}
  out, per_episode = generation.collect(env, chunk, {}, lambda k: {n: v[k % 6] for n, v in draws.items()}, num_envs,
                                        length, 20, jax.random.PRNGKey(0), "test")
  n = out["actions"].shape[0]
  first, switch = per_episode["first"], per_episode["switch_step"]
  np.testing.assert_array_equal(first, draws["first"][np.arange(n) % 6])
  t = np.arange(out["actions"].shape[1])
  expected = np.where(t[None] < switch[:, None], first[:, None], 1 - first[:, None])
  np.testing.assert_array_equal(np.where(out["valid"], out["actions"][..., 0], -1),
                                np.where(out["valid"], expected, -1))
  assert out["valid"].sum() >= 20 and (out["valid"].sum(1) == length).any() and (out["valid"].sum(1) < length).any()


def fake_run(workdir, seed, hidden=(8,), episode_length=12):
  """A finished hopper data run with one random-params snapshot (what `switching` reads: config.json, the snapshot
  and the PPO done marker)."""
  config = data_configs.get_config("env=hopper,preset=demo")
  config.episode_length, config.expert_snapshot = episode_length, "final"
  config.ppo.update(policy_hidden_layer_sizes=hidden, value_hidden_layer_sizes=(8,))
  run_dir = generation.run_dir(str(workdir), "hopper")
  prepare_workdir(run_dir, config)
  env = envs.make("hopper")
  network = ppo.network_factory(config.ppo)(env.observation_size, env.action_size,
                                            preprocess_observations_fn=running_statistics.normalize)
  k_pol, k_val = jax.random.split(jax.random.PRNGKey(seed))
  normaliser = running_statistics.init_state(specs.Array((env.observation_size,), np.float32))
  params = (normaliser, network.policy_network.init(k_pol), network.value_network.init(k_val))
  ppo.save_snapshot(run_dir, ppo.Snapshot(100 + seed, 0.0, jax.device_get(params)))
  with open(os.path.join(run_dir, ppo.SNAPSHOT_DIR, ppo.PPO_DONE), "w") as f:
    json.dump({"final_step": 100 + seed}, f)
  return config


def switch_config(**kw):
  c = switch_data.get_config("first=hopper@../a,second=hopper@../b,transitions=30")
  c.rollout_envs = 3
  c.update(kw)
  return c


def test_bad_sources_are_refused_naming_the_field(tmp_path):
  wd = str(tmp_path / "switch")
  with pytest.raises(ValueError, match="config field 'first': expected 'env@DIR'"):
    switching.validate_config(switch_config(first="hopper"), wd)
  with pytest.raises(ValueError, match="config field 'second': no data run of 'hopper'"):
    fake_run(tmp_path / "a", 0)
    switching.validate_config(switch_config(), wd)
  fake_run(tmp_path / "b", 1, hidden=(4,))
  with pytest.raises(ValueError, match="config field 'second': its PPO policy_hidden_layer_sizes"):
    switching.validate_config(switch_config(), wd)
  os.remove(os.path.join(generation.run_dir(str(tmp_path / "a"), "hopper"), ppo.SNAPSHOT_DIR, ppo.PPO_DONE))
  with pytest.raises(ValueError, match="config field 'first': the PPO run .* has not finished"):
    switching.validate_config(switch_config(), wd)
  with pytest.raises(ValueError, match="transitions_per_level"):
    switching.validate_config(switch_config(transitions_per_level=0), wd)


@pytest.mark.slow
def test_switching_dataset_acts_with_each_expert_on_its_side_of_the_switch(tmp_path):
  """End to end on hopper with two random-params 'experts': every recorded action is the deterministic action of the
  expert that should be acting at that step; the data are their own task, and a rerun loads the file."""
  configs = [fake_run(tmp_path / name, seed) for name, seed in (("a", 0), ("b", 1))]
  wd = str(tmp_path / "switch")
  trajs = switching.generate(switch_config(), wd)
  m = trajs.metadata
  steps = np.asarray(m["switch_steps"])
  assert trajs.num_trajectories == 3 and len(steps) == 3 and ((steps >= 0) & (steps <= 12)).all()
  label = "switch(hopper>hopper)"
  assert trajs.tasks() == [label] * 3 and trajs.task_specs()[label]["env"] == "hopper"
  assert set(m["policy_levels"]) <= set(switching.ORDERS)

  env = envs.make("hopper")
  act = []
  for i, c in enumerate(configs):
    snap = ppo.load_snapshots(generation.run_dir(str(tmp_path / "ab"[i]), "hopper"))[-1]
    policy = ppo.make_policy_factory(env, c.ppo)(snap.params[:2], deterministic=True)
    act.append(jax.jit(lambda o, p=policy: p(o, jax.random.PRNGKey(0))[0]))
  for i in range(trajs.num_trajectories):
    obs, length = jnp.asarray(trajs.observations[i]), trajs.lengths[i]
    first = switching.ORDERS.index(m["policy_levels"][i])
    acting = np.where(np.arange(trajs.max_length) < steps[i], first, 1 - first)[:length]
    both = np.stack([np.asarray(a(obs))[:length] for a in act])
    np.testing.assert_allclose(trajs.actions[i, :length], both[acting, np.arange(length)], atol=1e-5)
    assert not np.allclose(both[0], both[1], atol=1e-3)  # the two experts really differ

  # Mixed with a plain hopper dataset, the switching episodes are held out as a task of their own.
  plain = Trajectories(trajs.observations, trajs.actions, trajs.rewards, trajs.terminals, trajs.timeouts, trajs.lengths,
                       default_metadata("hopper", "expert", "brax", m["backend"], 3, m["observation_layout"],
                                        policy_steps=[0] * 3))
  _, _, names = split_targets(Trajectories.concatenate([plain, trajs]), 1, 0)
  assert names == ["best_traj_0_hopper", f"best_traj_0_{label}"]
  trajs_path = generation.dataset_path(wd, "hopper", "switch")
  mtime = os.path.getmtime(trajs_path)
  switching.generate(switch_config(), wd)
  assert os.path.getmtime(trajs_path) == mtime
