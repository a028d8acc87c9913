"""gdt.data.scripted: episodes whose actions are a fixed function of time (the demo's standing and rocking
cheetahs), alone and as the second source of switching episodes."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import scripted_data, switch_data
from gdt.data import generation, scripted, switching
from tests.test_generation import DrawState, act_with_snapshot_index
from tests.test_switching import fake_run

XVEL = 8  # halfcheetah's x-velocity slot


class ScriptEnv:
  """A 17-D 'cheetah' whose x-velocity slot is the last action's first entry; never ends."""
  action_size, dt = 6, 0.05

  def reset(self, key):
    del key
    return DrawState(jnp.zeros(17), jnp.float32(0), jnp.float32(0), jnp.int32(0))

  def step(self, state, action):
    return DrawState(state.obs.at[XVEL].set(action[0]), action[0], jnp.float32(0), state.t + 1)


class Obs:
  def __init__(self, n):
    self.obs = jnp.zeros((n, 17))


def test_stand_acts_with_zeros_and_rock_with_its_sine_of_time():
  stand, rock = (scripted.make_act(b, 0.05) for b in ("stand", "rock"))
  for t in (0, 7):
    a, carry = stand({}, "carry", Obs(3), jnp.int32(t), None)
    assert a.shape == (3, 6) and carry == "carry" and not np.asarray(a).any()
    expected = scripted.ROCK_AMPLITUDE * np.sin(2 * np.pi * scripted.ROCK_FREQUENCY_HZ * 0.05 * t
                                                + np.array(scripted.ROCK_PHASES))
    np.testing.assert_allclose(np.asarray(rock({}, None, Obs(3), jnp.int32(t), None)[0]), np.tile(expected, (3, 1)),
                               atol=1e-6)
  assert len(scripted.ROCK_PHASES) == 6  # one per halfcheetah joint


def test_bad_configs_are_refused_naming_the_field():
  config = scripted_data.get_config("behaviour=rock")
  scripted.validate_config(config)
  with pytest.raises(ValueError, match="scripted behaviour"):
    scripted.validate_config(scripted_data.get_config("behaviour=dance"))
  with pytest.raises(ValueError, match="config field 'behaviour': behaviour 'rock' is scripted for halfcheetah"):
    scripted.validate_config(scripted_data.get_config("env=hopper,behaviour=rock"))
  with pytest.raises(ValueError, match="transitions"):
    scripted.validate_config(scripted_data.get_config("transitions=0"))


def test_scripted_dataset_records_the_script_as_a_task_of_its_own(tmp_path, monkeypatch):
  monkeypatch.setattr(scripted.envs, "make", lambda name: ScriptEnv())
  config = scripted_data.get_config("behaviour=rock,transitions=30")
  config.update(episode_length=8, rollout_envs=2)
  wd = str(tmp_path / "rock")
  trajs = scripted.generate(config, wd)
  assert trajs.num_trajectories == 4 and (trajs.lengths == 8).all()  # whole episodes until 30 transitions
  t = np.arange(8)
  script = np.stack([np.asarray(scripted.BEHAVIOURS.get("rock").action(jnp.int32(i), 0.05)) for i in t])
  np.testing.assert_allclose(trajs.actions, np.broadcast_to(script, trajs.actions.shape), atol=1e-6)
  label = "rock(halfcheetah)"
  assert trajs.tasks() == [label] * 4 and trajs.task_specs()[label]["env"] == "halfcheetah"
  assert trajs.metadata["behaviour_policy"] == "scripted rock"
  path = generation.dataset_path(wd, "halfcheetah", "rock")
  mtime = os.path.getmtime(path)
  assert scripted.generate(config, wd).num_trajectories == 4 and os.path.getmtime(path) == mtime  # loaded
  assert "rock(halfcheetah)" in open(os.path.join(wd, generation.SUMMARY)).read()


def test_switch_act_hands_over_to_a_scripted_second_source():
  """Env e acts with snapshot 0 of the PPO params (the first source) or with the script, on each side of its
  switch step."""
  script = lambda i, c, s, t, k: (jnp.full((s.obs.shape[0], 1), 7.0), c)  # noqa: E731
  act = switching.make_switch_act(act_with_snapshot_index, script)
  inputs = {"first": jnp.array([0, 1]), "switch_step": jnp.array([2, 2])}
  for t, expected in ((0, [0.0, 7.0]), (1, [0.0, 7.0]), (2, [7.0, 0.0]), (5, [7.0, 0.0])):
    a, _ = act(inputs, None, Obs(2), jnp.int32(t), None)
    np.testing.assert_array_equal(np.asarray(a)[:, 0], expected)


def test_a_scripted_second_source_is_checked_against_the_first_runs_env(tmp_path):
  fake_run(tmp_path / "a", 0)  # a hopper run
  config = switch_data.get_config("first=hopper@../a,second=scripted:stand,transitions=30")
  with pytest.raises(ValueError, match="config field 'second': behaviour 'stand' is scripted for halfcheetah"):
    switching.validate_config(config, str(tmp_path / "switch"))
  config.second = "scripted:dance"
  with pytest.raises(ValueError, match="scripted behaviour"):
    switching.validate_config(config, str(tmp_path / "switch"))
