"""gdt.data.generation: whole-episode batches, level selection, and a tiny end-to-end PPO -> datasets run that
resumes."""

import json
import os
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import data as data_configs
from gdt import envs, hindsight
from gdt.core import ppo
from gdt.core.workdir import WorkdirBusy, WorkdirLock, remove_stale_temp_files
from gdt.data import Trajectories, generation
from gdt.data.trajectories import default_metadata


class DrawState(NamedTuple):
  obs: jax.Array  # [1] the episode's draw u, fixed at reset
  reward: jax.Array
  done: jax.Array
  t: jax.Array


class DrawEnv:
  """An episode terminates after 2 steps if its reset draw u < 0.5, else never (it runs into the time limit);
  the reward is the action."""
  action_size = 1

  def reset(self, key):
    return DrawState(jax.random.uniform(key, (1,)), jnp.float32(0), jnp.float32(0), jnp.int32(0))

  def step(self, state, action):
    t = state.t + 1
    return DrawState(state.obs, action[0], jnp.where((state.obs[0] < 0.5) & (t >= 2), 1.0, 0.0), t)


def act_with_snapshot_index(inputs, carry, env_state, t, key):
  return jnp.broadcast_to(inputs["snapshot"][:, None].astype(jnp.float32), env_state.obs.shape), carry


def test_collect_episodes_keeps_every_episode_whole(monkeypatch):
  """Each env plays exactly one episode, long ones included (the old fixed-length streams dropped episodes that
  ran past a stream's end, so long episodes were under-represented), in batches until 25 transitions."""
  monkeypatch.setattr(generation, "ROLLOUT_CHUNK_STEPS", 4)  # several chunks per episode, the last one overrun
  env, num_envs, episode_length, cycle = DrawEnv(), 4, 10, [0, 1, 2]
  chunk = generation.make_episode_chunk(env, act_with_snapshot_index, episode_length)
  out, snapshot = generation.collect_episodes(env, chunk, {}, cycle, num_envs, episode_length, 25,
                                              jax.random.PRNGKey(0), "test")
  n = len(snapshot)
  trajs = Trajectories(out["observations"], out["actions"], out["rewards"], out["terminals"], out["timeouts"],
                       out["valid"].sum(1).astype(np.int32), default_metadata("draw", "test", "brax", "-", n, {}))
  trajs.refresh_level_returns()
  trajs.validate()  # zero padding, ends only at the last step
  u, last = trajs.observations[:, 0, 0], np.arange(n)
  assert n % num_envs == 0 and 0 < (u < 0.5).sum() < n
  # Every episode is whole: a terminal after 2 steps or a timeout at exactly episode_length.
  np.testing.assert_array_equal(trajs.lengths, np.where(u < 0.5, 2, episode_length))
  np.testing.assert_array_equal(trajs.terminals[last, trajs.lengths - 1], u < 0.5)
  np.testing.assert_array_equal(trajs.timeouts[last, trajs.lengths - 1], u >= 0.5)
  # Round robin over the cycle (equal shares), returned in snapshot order; each episode acted with its snapshot.
  np.testing.assert_array_equal(snapshot, np.sort(np.arange(n) % len(cycle)))
  np.testing.assert_array_equal(trajs.returns(), snapshot * trajs.lengths)
  # The batches stopped at the first that reached 25 transitions: rollout episode k = 3 j + s is the j-th of s.
  k = len(cycle) * (np.arange(n) - np.searchsorted(snapshot, snapshot)) + snapshot
  assert trajs.num_transitions >= 25 > trajs.lengths[k < n - num_envs].sum()


def test_collect_episodes_runs_every_snapshot_of_the_cycle():
  env = DrawEnv()
  chunk = generation.make_episode_chunk(env, act_with_snapshot_index, 3)
  _, snapshot = generation.collect_episodes(env, chunk, {}, np.arange(5), 2, 3, 1, jax.random.PRNGKey(1), "test")
  np.testing.assert_array_equal(snapshot, [0, 0, 1, 2, 3, 4])  # 3 batches of 2, though 1 transition was enough


@pytest.mark.parametrize("select_by, expert_step, medium_step", [("mode", 4, 3), ("ppo_eval", 3, 1)])
def test_levels_are_chosen_by_the_configured_returns(tmp_path, select_by, expert_step, medium_step):
  """An early snapshot that moves only through its action noise (high sampled, ~0 mode return) is not medium
  under 'mode'; 'ppo_eval' ranks by the sampled return."""
  config = tiny_config()
  config.select_levels_by = select_by
  g = generation.Generator(config, str(tmp_path))
  eval_returns = [0.0, 40.0, 60.0, 120.0, 100.0]  # brax PPO's sampled-action evaluation
  mode_returns = [0.0, 1.0, 2.0, 45.0, 150.0]  # acting with the mode
  g._snapshots = [ppo.Snapshot(step, r, None) for step, r in enumerate(eval_returns)]
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
  snapshots = ppo.load_snapshots(run_dir)
  assert [s.step for s in snapshots] == sorted(s.step for s in snapshots) and len(snapshots) == 4

  loaded = {level: Trajectories.load(g.path(level)) for level in config.levels}
  for level, trajs in loaded.items():
    m = trajs.metadata
    assert (m["env"], m["backend"], m["dataset"], m["source"]) == ("hopper", envs.default_backend("hopper"), level, "brax")
    assert m["observation_layout"] == envs.observation_layout("hopper")
    assert m["seed"] == 0 and m["version"] and m["ppo"]["num_timesteps"] == 400
    assert m["ppo_resumes"] == []  # PPO ran uninterrupted
    assert len(m["policy_levels"]) == len(m["policy_steps"]) == trajs.num_trajectories
    if level != "medium-expert":  # whole batches of whole episodes, up to the first batch reaching the target
      assert trajs.num_trajectories % config.rollout_envs == 0 and trajs.num_transitions >= 60
    assert trajs.max_length <= 20
    ends = trajs.terminals | trajs.timeouts
    assert ends[np.arange(trajs.num_trajectories), trajs.lengths - 1].all()  # every episode finished
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
  summary = open(os.path.join(workdir, "summary.md")).read()
  random = loaded["random"]
  speed = hindsight.feature_values(random, "x_velocity")[random.mask()].mean()
  assert (f"| random | {random.num_trajectories} | {random.num_transitions} | "
          f"{random.num_transitions / random.num_trajectories:.0f} | ") in summary and f"| {speed:.2f} m/s |" in summary
  mode_returns = json.load(open(os.path.join(run_dir, generation.MODE_RETURNS)))
  assert sorted(map(int, mode_returns)) == [s.step for s in snapshots]
  assert loaded["medium"].metadata["snapshot_selection_returns"] == mode_returns

  # Rerun: every stage is found on disk; nothing is rewritten.
  mtimes = {p: os.path.getmtime(p) for p in map(g.path, config.levels)}
  again = generation.generate(config, workdir)
  assert again.built == []
  assert mtimes == {p: os.path.getmtime(p) for p in mtimes}

  # A PPO run killed after its second snapshot resumes from it and does not rewrite the earlier snapshots.
  os.remove(os.path.join(run_dir, ppo.SNAPSHOT_DIR, ppo.PPO_DONE))
  for s in snapshots[2:]:
    shutil.rmtree(ppo.snapshot_path(run_dir, s.step))
  kept = {s.step: os.path.getmtime(ppo.snapshot_path(run_dir, s.step)) for s in snapshots[:2]}
  resumed = ppo.train_ppo(envs.make("hopper"), config.ppo, run_dir, seed=config.seed,
                          episode_length=config.episode_length)
  assert resumed[-1].step >= config.ppo.num_timesteps
  assert [r["from_step"] for r in ppo.ppo_resumes(run_dir)] == [snapshots[1].step]  # recorded for the datasets
  assert {s.step: os.path.getmtime(ppo.snapshot_path(run_dir, s.step)) for s in snapshots[:2]} == kept


def test_every_dataset_records_the_ppo_restarts(tmp_path):
  """Data drawn from a PPO run resumed after a kill (not bitwise the uninterrupted seed's) say so; others record
  none."""
  config = tiny_config()
  config.select_levels_by = "ppo_eval"
  g = generation.Generator(config, str(tmp_path))
  g._snapshots = [ppo.Snapshot(step, float(step), None) for step in (0, 160, 320)]
  g._datasets["random"] = Trajectories.from_flat(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros(4), np.eye(4)[3] > 0,
                                                 np.zeros(4, bool))
  levels = [("random", -1), ("expert", 320), ("medium", 0)]
  assert [g.metadata(level, [level], [step])["ppo_resumes"] for level, step in levels] == [[], [], []]
  resumes = [{"from_step": 160, "time": "2026-12-02T00:40:00"}]
  os.makedirs(os.path.join(g.run_dir, ppo.SNAPSHOT_DIR))
  with open(os.path.join(g.run_dir, ppo.SNAPSHOT_DIR, ppo.PPO_RESUMES), "w") as f:
    json.dump(resumes, f)
  assert [g.metadata(level, [level], [step])["ppo_resumes"] for level, step in levels] == [resumes] * 3


def test_temp_files_of_killed_saves_are_removed_at_the_next_start_and_nothing_else(tmp_path, monkeypatch, capsys):
  """A dataset save killed before its rename leaves `.tmp-XXXXXXXX<name>`; `generate` deletes such files under the
  workdir's lock before any work, and leaves files that only look similar, directories and user files alone."""
  workdir, copies = tmp_path / "data", tmp_path / "copies"
  copies.mkdir()
  real_replace = os.replace

  def replace_keeping_the_temp_file(src, dst):  # a copy of the temp file as a kill before the rename leaves it
    shutil.copy(src, copies / os.path.basename(src))
    real_replace(src, dst)

  monkeypatch.setattr(os, "replace", replace_keeping_the_temp_file)
  trajs = Trajectories.from_flat(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros(4), np.eye(4)[3] > 0, np.zeros(4, bool),
                                 default_metadata("hopper", "random", "brax", "spring", 1, {}))
  trajs.save(generation.dataset_path(str(workdir), "hopper", "random"))
  monkeypatch.setattr(os, "replace", real_replace)
  (leftover,) = os.listdir(copies)
  assert leftover.startswith(".tmp-") and leftover.endswith("hopper-random.npz")
  stale = [workdir / "datasets" / leftover, workdir / "runs" / "hopper" / ".tmp-ab_d1234summary.md"]
  others = [workdir / "notes.tmp-abcd1234.txt", workdir / ".tmp-short", workdir / ".tmp-ABCDEFGHsummary.md",
            workdir / "runs" / "mine.txt"]
  for p in stale[1:] + others:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("x")
  shutil.move(copies / leftover, stale[0])
  (workdir / ".tmp-abcdefghdir").mkdir()

  seen = []

  def fake_generate(config, workdir_):  # the stages, run once the lock is held and the temp files are gone
    with pytest.raises(WorkdirBusy):
      WorkdirLock(workdir_).acquire()
    seen.append([p.exists() for p in stale])

  monkeypatch.setattr(generation, "_generate", fake_generate)
  capsys.readouterr()
  generation.generate(tiny_config(), str(workdir))
  assert seen == [[False, False]]
  (line,) = capsys.readouterr().out.splitlines()
  assert line.startswith(f"[workdir] removed 2 temp files left by interrupted writes in {workdir}: ")
  assert all(p.exists() for p in others) and (workdir / ".tmp-abcdefghdir").is_dir()
  assert Trajectories.load(generation.dataset_path(str(workdir), "hopper", "random")).num_trajectories == 1
  lines = []
  assert remove_stale_temp_files(str(workdir), log=lines.append) == [] and lines == []  # once: nothing left
