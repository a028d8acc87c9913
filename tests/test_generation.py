"""gdt.data.generation: stream splitting, and a tiny end-to-end PPO -> datasets run that resumes."""

import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import data as data_configs
from gdt import envs
from gdt.data import Trajectories, generation


def fake_rollout_fn(ends_per_env):
  """A rollout fn whose env i ends episodes (terminal) at the steps in ends_per_env[i]; rewards = 1."""

  def run(stacked_params, snapshot_index, random_actions, rng):
    B, L = len(snapshot_index), 10
    terminals = np.zeros((B, L), bool)
    for i, ends in enumerate(ends_per_env[:B]):
      terminals[i, ends] = True
    return dict(observations=np.arange(B * L, dtype=np.float32).reshape(B, L, 1) + 100 * snapshot_index[:, None, None],
                actions=np.zeros((B, L, 1), np.float32), rewards=np.ones((B, L), np.float32),
                terminals=terminals, timeouts=np.zeros((B, L), bool))

  return run


def test_rollout_streams_keeps_finished_episodes_only():
  # Stream 0 ends episodes after steps 2 and 6 (steps 7-9 unfinished, dropped); stream 1 never ends (all
  # dropped); stream 2 (second chunk, padded to 2 envs) ends after step 9.
  ends = [[2, 6], [], [9]]
  flat, episodes = generation.rollout_streams(
      lambda p, idx, r, rng: fake_rollout_fn([ends[0], ends[1]] if idx[0] == 0 else [ends[2], []])(p, idx, r, rng),
      None, np.array([0, 0, 1], np.int32), False, jax.random.PRNGKey(0), num_envs=2, label="test")
  np.testing.assert_array_equal(episodes, [2, 0, 1])
  assert flat["rewards"].shape == (7 + 10,)
  np.testing.assert_array_equal(np.flatnonzero(flat["terminals"]), [2, 6, 16])
  trajs = Trajectories.from_flat(flat["observations"], flat["actions"], flat["rewards"], flat["terminals"],
                                 flat["timeouts"])
  np.testing.assert_array_equal(trajs.lengths, [3, 4, 10])
  assert trajs.observations[2, 0, 0] == 100  # the second chunk's stream came from snapshot 1


def test_first_episode_returns_stop_at_the_first_end():
  rewards = np.arange(12, dtype=np.float32).reshape(2, 6)
  terminals = np.zeros((2, 6), bool)
  timeouts = np.zeros((2, 6), bool)
  terminals[0, 2] = True  # stream 0: steps 0-2 (0 + 1 + 2)
  timeouts[1, 5] = True  # stream 1: the whole stream
  np.testing.assert_array_equal(generation.first_episode_returns(rewards, terminals, timeouts), [3, 6 + 7 + 8 + 9 + 10 + 11])


@pytest.mark.parametrize("select_by, expert_step, medium_step", [("mode", 4, 3), ("ppo_eval", 3, 1)])
def test_levels_are_chosen_by_the_configured_returns(tmp_path, select_by, expert_step, medium_step):
  """An early snapshot that moves only through its action noise (high sampled, ~0 mode return) is not medium
  under 'mode'; 'ppo_eval' ranks by the sampled return."""
  config = tiny_config()
  config.select_levels_by = select_by
  g = generation.Generator(config, str(tmp_path))
  eval_returns = [0.0, 40.0, 60.0, 120.0, 100.0]  # brax PPO's sampled-action evaluation
  mode_returns = [0.0, 1.0, 2.0, 45.0, 150.0]  # acting with the mode
  g._snapshots = [generation.Snapshot(step, r, None) for step, r in enumerate(eval_returns)]
  os.makedirs(g.run_dir)
  with open(os.path.join(g.run_dir, generation.MODE_RETURNS), "w") as f:
    json.dump({str(step): r for step, r in enumerate(mode_returns)}, f)
  g._datasets["random"] = Trajectories.from_flat(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros(4), np.eye(4)[3] > 0,
                                                 np.zeros(4, bool))
  # medium: nearest random (0) + (expert - random) / 3 among the snapshots before the expert.
  assert (g.snapshots[g.expert_index()].step, g.snapshots[g.medium_index()].step) == (expert_step, medium_step)
  config.select_levels_by = "sampled"
  with pytest.raises(KeyError, match="sampled"):
    g.snapshot_returns()


def tiny_config(levels=("random", "expert", "medium", "medium-replay", "medium-expert")):
  c = data_configs.get_config("env=hopper,preset=demo")
  c.episode_length = 20
  c.levels = levels
  c.transitions_per_level = 60
  c.rollout_envs = 2
  c.ppo.update(num_timesteps=400, num_evals=4, num_envs=4, batch_size=4, num_minibatches=2, unroll_length=5,
               num_eval_envs=2, policy_hidden_layer_sizes=(8,), value_hidden_layer_sizes=(8,))
  return c


@pytest.mark.slow
def test_tiny_generation_writes_datasets_and_resumes(tmp_path):
  workdir = str(tmp_path)
  config = tiny_config()
  g = generation.generate(config, workdir)
  assert g.built == list(config.levels)
  run_dir = generation.run_dir(workdir, "hopper")
  snapshots = generation.load_snapshots(run_dir)
  assert [s.step for s in snapshots] == sorted(s.step for s in snapshots) and len(snapshots) == 4

  loaded = {level: Trajectories.load(g.path(level)) for level in config.levels}
  for level, trajs in loaded.items():
    m = trajs.metadata
    assert (m["env"], m["backend"], m["dataset"], m["source"]) == ("hopper", envs.default_backend("hopper"), level, "brax")
    assert m["observation_layout"] == envs.observation_layout("hopper")
    assert m["seed"] == 0 and m["version"] and m["ppo"]["num_timesteps"] == 400
    assert len(m["policy_levels"]) == len(m["policy_steps"]) == trajs.num_trajectories
    assert trajs.max_length <= 20
    ends = trajs.terminals | trajs.timeouts
    assert ends[np.arange(trajs.num_trajectories), trajs.lengths - 1].all()  # every kept episode finished
    assert not (trajs.timeouts & (trajs.lengths[:, None] < 20)).any()  # timeouts only at the step limit
    assert np.isfinite(trajs.observations).all()
    short = trajs.lengths < 20  # an episode cut before the step limit ended in a fall (terminal)
    assert trajs.terminals[np.arange(trajs.num_trajectories), trajs.lengths - 1][short].all()
  assert set(loaded["random"].metadata["policy_levels"]) == {"random"}
  assert loaded["random"].metadata["policy_steps"][0] == -1
  assert "brax PPO does not expose its training batches" in loaded["medium-replay"].metadata["medium_replay_note"]
  replay_steps = loaded["medium-replay"].metadata["policy_steps"]
  assert replay_steps == sorted(replay_steps) and max(replay_steps) == loaded["medium"].metadata["medium_step"]
  me = loaded["medium-expert"]
  assert me.num_trajectories == loaded["medium"].num_trajectories + loaded["expert"].num_trajectories
  assert set(me.metadata["level_returns"]) == {"medium", "expert"}
  np.testing.assert_allclose(me.metadata["level_returns"]["expert"]["mean"], loaded["expert"].returns().mean(),
                             rtol=1e-5)
  assert os.path.exists(os.path.join(workdir, "summary.md"))
  mode_returns = json.load(open(os.path.join(run_dir, generation.MODE_RETURNS)))
  assert sorted(map(int, mode_returns)) == [s.step for s in snapshots]
  assert loaded["medium"].metadata["snapshot_selection_returns"] == mode_returns

  # Rerun: every stage is found on disk; nothing is rewritten.
  mtimes = {p: os.path.getmtime(p) for p in map(g.path, config.levels)}
  again = generation.generate(config, workdir)
  assert again.built == []
  assert mtimes == {p: os.path.getmtime(p) for p in mtimes}

  # A PPO run killed after its second snapshot resumes from it and does not rewrite the earlier snapshots.
  os.remove(os.path.join(run_dir, generation.SNAPSHOT_DIR, generation.PPO_DONE))
  for s in snapshots[2:]:
    os.remove(generation.snapshot_path(run_dir, s.step))
  kept = {s.step: os.path.getmtime(generation.snapshot_path(run_dir, s.step)) for s in snapshots[:2]}
  resumed = generation.train_ppo(envs.make("hopper"), config, run_dir)
  assert resumed[-1].step >= config.ppo.num_timesteps
  assert {s.step: os.path.getmtime(generation.snapshot_path(run_dir, s.step)) for s in snapshots[:2]} == kept
