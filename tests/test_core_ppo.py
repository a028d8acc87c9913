"""gdt.core.ppo: orbax snapshots round-trip exactly and drive the same policy; restarts are recorded."""

import json
import os
import shutil
import types

import jax
import ml_collections
import numpy as np
import pytest
from brax.training.acme import running_statistics, specs

from gdt.core import ppo

OBS, ACT = 5, 2


@pytest.fixture(scope="module")
def ppo_config():
  return ml_collections.ConfigDict(dict(normalize_observations=True, policy_hidden_layer_sizes=(8,),
                                        value_hidden_layer_sizes=(8, 8), num_timesteps=10))


def snapshot(ppo_config, step, seed):
  """Trained-looking params: a non-default normaliser (EMA mode, updated statistics) and random network params."""
  network = ppo.network_factory(ppo_config)(OBS, ACT)
  k_norm, k_pol, k_val = jax.random.split(jax.random.PRNGKey(seed), 3)
  normaliser = running_statistics.init_state(specs.Array((OBS,), np.float32), std_eps=1e-3, mode="ema")
  normaliser = running_statistics.update(normaliser, jax.random.normal(k_norm, (16, OBS)) * 3 + 1)
  params = (normaliser, network.policy_network.init(k_pol), network.value_network.init(k_val))
  return ppo.Snapshot(step, 12.5 + step, jax.device_get(params))


def test_snapshots_round_trip_bitwise_and_act_the_same(tmp_path, ppo_config, monkeypatch):
  monkeypatch.chdir(tmp_path)
  workdir = "runs/env"  # relative, as on the command line (orbax itself needs absolute paths)
  saved = [snapshot(ppo_config, step, seed) for seed, step in enumerate([300, 20])]
  for s in saved:
    ppo.save_snapshot(workdir, s)
  loaded = ppo.load_snapshots(workdir)
  assert [s.step for s in loaded] == [20, 300]  # training order, whatever the write order
  for want, got in zip(saved[::-1], loaded, strict=True):
    assert (got.step, got.eval_return) == (want.step, want.eval_return)
    assert jax.tree.structure(got.params) == jax.tree.structure(want.params)  # the normaliser's mode included
    for a, b in zip(jax.tree.leaves(want.params), jax.tree.leaves(got.params), strict=True):
      a, b = np.asarray(a), np.asarray(b)
      assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

  make_policy = ppo.make_policy_factory(types.SimpleNamespace(observation_size=OBS, action_size=ACT), ppo_config)
  obs = jax.random.normal(jax.random.PRNGKey(7), (4, OBS))
  for deterministic in (False, True):
    act = [make_policy(s.params, deterministic)(obs, jax.random.PRNGKey(1))[0] for s in (saved[1], loaded[0])]
    np.testing.assert_array_equal(*act)

  stacked = ppo.stack_snapshots(loaded)
  assert stacked[0].mean.shape == (2, OBS) and stacked[0].count.lo.shape == (2,)
  with pytest.raises(ValueError, match="exists"):  # snapshots are never rewritten
    ppo.save_snapshot(workdir, saved[0])


def test_ppo_kwargs_leave_network_sizes_to_the_factory(ppo_config):
  assert ppo.ppo_kwargs(ppo_config) == dict(normalize_observations=True, num_timesteps=10)


def fake_brax_train(calls):
  """Stands in for brax's `ppo.train`: evaluates (progress_fn, then policy_params_fn) at steps 0, T/(E-1), ..., T
  of its own count, with the restored params (or a fixed snapshot's), and records its arguments in `calls`."""

  def train(*, progress_fn, policy_params_fn, restore_params, num_timesteps, num_evals, seed, **kwargs):
    calls.append(dict(restore_params=restore_params, num_timesteps=num_timesteps, num_evals=num_evals, seed=seed))
    params = restore_params if restore_params is not None else snapshot(kwargs["ppo_config"], 0, 0).params
    for i in range(num_evals):
      step = i * num_timesteps // (num_evals - 1)
      progress_fn(step, {"eval/episode_reward": 1.0 + step, "eval/episode_reward_std": 0.0})
      policy_params_fn(step, None, params)

  return train


@pytest.fixture
def fake_train(ppo_config, monkeypatch):
  calls = []
  train = fake_brax_train(calls)
  monkeypatch.setattr(ppo.ppo_train, "train", lambda **kw: train(ppo_config=ppo_config, **kw))
  return calls


def run_config(ppo_config, **overrides):
  config = ml_collections.ConfigDict(ppo_config.to_dict())
  config.update(num_timesteps=100, num_evals=3, **overrides)
  return config


def test_a_restart_from_a_trained_snapshot_is_recorded_and_a_clean_run_records_none(tmp_path, ppo_config,
                                                                                    fake_train):
  config = run_config(ppo_config)
  env = types.SimpleNamespace(observation_size=OBS, action_size=ACT)
  clean = str(tmp_path / "clean")
  snapshots = ppo.train_ppo(env, config, clean, seed=3, episode_length=10)
  assert [s.step for s in snapshots] == [0, 50, 100]
  assert ppo.ppo_resumes(clean) == []
  assert json.load(open(os.path.join(clean, ppo.SNAPSHOT_DIR, ppo.PPO_DONE)))["resumes"] == []

  # Killed after the step-50 snapshot (an uncommitted save of the next one left behind): resumed and recorded.
  killed = str(tmp_path / "killed")
  for s in snapshots[:2]:
    ppo.save_snapshot(killed, s)
  uncommitted = ppo.snapshot_path(killed, 75) + ".orbax-checkpoint-tmp"
  os.makedirs(os.path.join(uncommitted, "params"))
  resumed = ppo.train_ppo(env, config, killed, seed=3, episode_length=10)
  assert not os.path.exists(uncommitted)
  call = fake_train[-1]
  assert (call["num_timesteps"], call["seed"]) == (50, 3 + 50)
  assert jax.tree.structure(call["restore_params"]) == jax.tree.structure(snapshots[1].params)
  assert [s.step for s in resumed] == [0, 50, 100]
  (record,) = ppo.ppo_resumes(killed)
  assert record["from_step"] == 50 and record["time"]
  assert json.load(open(os.path.join(killed, ppo.SNAPSHOT_DIR, ppo.PPO_DONE)))["resumes"] == [record]
  # Killed again mid-run: a second entry; a finished run is skipped and its record kept.
  os.remove(os.path.join(killed, ppo.SNAPSHOT_DIR, ppo.PPO_DONE))
  shutil.rmtree(ppo.snapshot_path(killed, 100))
  ppo.train_ppo(env, config, killed, seed=3, episode_length=10)
  assert [r["from_step"] for r in ppo.ppo_resumes(killed)] == [50, 50]
  ppo.train_ppo(env, config, killed, seed=3, episode_length=10)
  assert len(fake_train) == 3 and len(ppo.ppo_resumes(killed)) == 2


def test_a_run_killed_after_its_final_snapshot_is_marked_done_without_training(tmp_path, ppo_config, fake_train):
  """brax's last evaluation can land past num_timesteps; a resume would then ask brax for negative env steps."""
  config = run_config(ppo_config)
  workdir = str(tmp_path)
  for step in (0, 120):
    ppo.save_snapshot(workdir, snapshot(ppo_config, step, step))
  snapshots = ppo.train_ppo(None, config, workdir, seed=0, episode_length=10)
  assert fake_train == [] and [s.step for s in snapshots] == [0, 120]
  assert ppo.ppo_resumes(workdir) == []  # the snapshots are the uninterrupted run's
  assert json.load(open(os.path.join(workdir, ppo.SNAPSHOT_DIR, ppo.PPO_DONE)))["final_step"] == 120
