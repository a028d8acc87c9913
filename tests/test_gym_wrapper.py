"""Gymnasium-style wrapper round trip and `rollout_qpos`."""

import numpy as np
import pytest

from morphology import envs
from morphology.gym_wrapper import Box, GymEnv, rollout_qpos

NAME = "ant_reach_2"


@pytest.fixture(scope="module")
def gym_env():
  return GymEnv(NAME, episode_length=3)


def test_spaces_describe_the_env(gym_env):
  env = gym_env.unwrapped
  assert gym_env.action_space.shape == (env.action_size,) == (4,)
  assert np.all(gym_env.action_space.low == -1) and np.all(gym_env.action_space.high == 1)
  # The egocentric observation: root height, gravity, root velocity and spin (1 + 3 + 3 + 3), 4 hinge angles and
  # velocities, one goal's offset in the root frame.
  assert gym_env.observation_space.shape == (10 + 4 + 4 + 3,)
  sample = gym_env.action_space.sample(np.random.default_rng(0))
  assert gym_env.action_space.contains(sample) and sample.dtype == np.float32
  assert not gym_env.action_space.contains(sample * 3)


def test_reset_step_round_trip_with_numpy(gym_env):
  obs, info = gym_env.reset(seed=7)
  assert isinstance(obs, np.ndarray) and obs.shape == gym_env.observation_space.shape
  assert info["goals"].shape == (1, 3) and info["steps"] == 0 and not info["success"]
  # Same seed, same goal; a later reset without a seed continues the stream (new goal).
  obs_again, info_again = gym_env.reset(seed=7)
  np.testing.assert_array_equal(obs, obs_again)
  _, info_next = gym_env.reset()
  assert not np.allclose(info_next["goals"], info_again["goals"])
  gym_env.reset(seed=7)
  action = np.zeros(gym_env.action_space.shape, np.float32)
  truncated_at = None
  for t in range(3):
    obs, reward, terminated, truncated, info = gym_env.step(action)
    assert isinstance(reward, float) and np.isfinite(reward) and np.all(np.isfinite(obs))
    assert reward == pytest.approx(-info["distance"], rel=1e-5)  # reach: reward is -distance
    assert not terminated
    if truncated:
      truncated_at = t
  assert truncated_at == 2 and info["steps"] == 3
  with pytest.raises(ValueError, match="action shape"):
    gym_env.step(np.zeros(5))


def test_box_sample_respects_bounds():
  box = Box(np.array([0.0, -np.inf], np.float32), np.array([2.0, np.inf], np.float32))
  x = np.stack([box.sample(np.random.default_rng(i)) for i in range(50)])
  assert np.all((x[:, 0] >= 0) & (x[:, 0] <= 2)) and box.contains(x[0])


def test_rollout_qpos_for_rendering(gym_env):
  out = rollout_qpos(gym_env.unwrapped, num_steps=4, seed=1)
  env = gym_env.unwrapped
  assert out.qpos.shape == (5, env.sys.q_size()) and out.reward.shape == (4,) and out.goals.shape == (1, 3)
  np.testing.assert_allclose(out.qpos[0, 7:], np.asarray(env.sys.init_q)[7:], atol=1e-6)
  assert np.all(np.isfinite(out.qpos)) and out.length == 4 and out.dt == pytest.approx(envs.ENV_DT)
  assert "<mujoco" in out.xml
