"""A Gymnasium-style single-env view of an MxT-Bench env (numpy in/out, jitted underneath), and
`rollout_qpos` for rendering an episode (one env of `gdt.core.rollout`).

    env = GymEnv("ant_reach_4")
    obs, info = env.reset(seed=0)                       # obs [obs_dim] float32
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample(rng))

`terminated` is the task's success; `truncated` is the 1000-step time limit. No gymnasium
dependency: the spaces are small `Box` records with `shape`, `low`, `high`, `dtype`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.wrappers.training import EpisodeWrapper

from gdt.core import rollout
from morphology import envs

Policy = Callable[[jax.Array, jax.Array], jax.Array]  # (obs [obs_dim], rng) -> action [action_dim]
QPOS_CHUNK_STEPS = 100  # steps per compiled chunk; the rollout stops after the chunk of the first success


@dataclasses.dataclass(frozen=True)
class Box:
  """A bounded box space: arrays of `shape` with low <= x <= high."""

  low: np.ndarray
  high: np.ndarray

  @property
  def shape(self) -> tuple[int, ...]:
    return self.low.shape

  @property
  def dtype(self) -> np.dtype:
    return self.low.dtype

  def contains(self, x) -> bool:
    x = np.asarray(x)
    return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

  def sample(self, rng: np.random.Generator) -> np.ndarray:
    """Uniform over a bounded box (standard normal on unbounded axes)."""
    bounded = np.isfinite(self.low) & np.isfinite(self.high)
    x = np.where(bounded, rng.uniform(np.where(bounded, self.low, 0), np.where(bounded, self.high, 1)),
                 rng.standard_normal(self.shape))
    return x.astype(self.dtype)


def _as_env(env: envs.MorphologyTaskEnv | str, backend: Optional[str]) -> envs.MorphologyTaskEnv:
  return envs.make(env, backend=backend) if isinstance(env, str) else env


class GymEnv:
  """One env, reset(seed) / step(action) with numpy arrays; the state lives on the device."""

  def __init__(self, env: envs.MorphologyTaskEnv | str, backend: Optional[str] = None,
               episode_length: Optional[int] = None):
    self.unwrapped = _as_env(env, backend)
    self.episode_length = episode_length or self.unwrapped.episode_length
    timed = EpisodeWrapper(self.unwrapped, self.episode_length, action_repeat=1)
    self._reset = jax.jit(timed.reset)
    self._step = jax.jit(timed.step)
    obs_shape = jax.eval_shape(self.unwrapped.reset, jax.random.PRNGKey(0)).obs.shape
    self.observation_space = Box(np.full(obs_shape, -np.inf, np.float32), np.full(obs_shape, np.inf, np.float32))
    act = self.unwrapped.action_size
    self.action_space = Box(-np.ones(act, np.float32), np.ones(act, np.float32))
    self._rng = jax.random.PRNGKey(0)
    self._state = None

  def reset(self, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[np.ndarray, dict]:
    """Returns (obs [obs_dim], info); `seed` restarts the env's random stream."""
    if seed is not None:
      self._rng = jax.random.PRNGKey(seed)
    self._rng, key = jax.random.split(self._rng)
    self._state = self._reset(key)
    return np.asarray(self._state.obs), self._info()

  def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
    """action [action_dim] in [-1, 1] -> (obs, reward, terminated, truncated, info)."""
    if self._state is None:
      raise RuntimeError("call reset() before step()")
    action = np.asarray(action, dtype=np.float32)
    if action.shape != self.action_space.shape:
      raise ValueError(f"action shape {action.shape} != {self.action_space.shape}")
    self._state = self._step(self._state, jnp.asarray(action))
    s = self._state
    return (np.asarray(s.obs), float(s.reward), bool(s.info["success"] > 0), bool(s.info["truncation"] > 0),
            self._info())

  def _info(self) -> dict:
    info = self._state.info
    return {"success": bool(info["success"] > 0), "distance": float(info["distance"]),
            "goals": np.asarray(info["goals"]), "steps": int(info["steps"])}

  def close(self) -> None:
    self._state = None


@dataclasses.dataclass(frozen=True)
class QposRollout:
  """One episode for rendering: qpos [T + 1, nq] (reset state first), goals [G, 3] (fixed per episode),
  reward / success / distance [T]; T = `length` counts steps up to and including the first success (else the
  step limit): MxT envs report `done` = success, and the rollout freezes an episode at its `done`."""

  qpos: np.ndarray
  goals: np.ndarray
  reward: np.ndarray
  success: np.ndarray
  distance: np.ndarray
  length: int
  dt: float
  xml: str


def random_policy(obs: jax.Array, rng: jax.Array, action_size: int) -> jax.Array:
  return jax.random.uniform(rng, (action_size,), minval=-1.0, maxval=1.0)


def rollout_qpos(env: envs.MorphologyTaskEnv | str, policy: Optional[Policy] = None, num_steps: Optional[int] = None,
                 seed: int = 0, backend: Optional[str] = None) -> QposRollout:
  """Runs `policy` (default: uniform random actions) for one episode of at most `num_steps` steps (default: the
  episode length), jitted in chunks, and returns its qpos trajectory; the MJCF is in `.xml` for a MuJoCo renderer.

  The episode ends at its first success (MxT's `done`), so the arrays stop there (see QposRollout).
  """
  env = _as_env(env, backend)
  num_steps = num_steps or env.episode_length
  policy = policy or functools.partial(random_policy, action_size=env.action_size)

  def act(inputs, carry, env_state, t, key):
    return jax.vmap(policy)(env_state.obs, jax.random.split(key, env_state.obs.shape[0])), carry

  def observe(inputs, carry, tr: rollout.Transition):
    s = tr.next_state
    return carry, dict(q=s.pipeline_state.q, reward=s.reward, success=s.info["success"], distance=s.info["distance"])

  reset_key, step_key = jax.random.split(jax.random.PRNGKey(seed))
  state = rollout.init_state(env, reset_key, [num_steps], None)
  chunk_steps = min(QPOS_CHUNK_STEPS, num_steps)
  out = rollout.run(rollout.make_chunk(env, act, observe, chunk_steps), None, state, num_steps, chunk_steps,
                    step_key).outputs
  length = int(out["valid"][0].sum())
  q, reward, success, distance = (out[k][0, :length] for k in ("q", "reward", "success", "distance"))
  first = state.env_state
  return QposRollout(np.concatenate([np.asarray(first.pipeline_state.q), q]), np.asarray(first.info["goals"][0]),
                     reward, success, distance, length, float(env.dt), env.xml)
