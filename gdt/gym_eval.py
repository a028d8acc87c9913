"""Evaluation of policies trained on D4RL / Minari data on Gymnasium's MuJoCo envs (v5), batched.

Owns the Gymnasium side of evaluation: which Gymnasium env (id and kwargs) plays each dataset env, D4RL's reference
returns for normalised scores, and the host loop that drives one `gymnasium.vector.SyncVectorEnv` holding every
(target, episode) pair. The policy itself is `gdt.evaluate`'s: the same `policy_step_fns` (context window, schedule,
features), `prepare_rollout` and `score_rollout`, so the `EvalResult` (rows, W1, npz, plots) is the Brax path's.

Per env step there is one jit'd call for all episodes: it records step t (observe) and computes the action of step
t+1 (act). Episodes freeze once terminated, truncated or past their target's length (the `valid` mask, as on Brax);
features come from the observation the policy acted in (or the next one with `xvel_offset_like_gdt`); rewards are
the env's. Env i = target i // episodes is reset with seed `episode_seeds(rng, E)[i]`.

D4RL's v2 files (backend 'gym-mujoco') were recorded on gym's mujoco-py envs; their v5 successors keep the
observation layout (ant: the 27-D one only) and the rewards, on MuJoCo rather than mujoco-py physics. Minari's
MuJoCo datasets (backend 'gymnasium-mujoco') were recorded on the v5 envs themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from gdt import evaluate
from gdt.core import rollout
from gdt.core.registry import Registry
from gdt.data.loaders import D4RL_BACKEND, GYM_OBSERVATION_LAYOUTS, MINARI_BACKEND

# D4RL's reference returns (random policy, expert policy) of its v2 MuJoCo tasks: REF_MIN_SCORE / REF_MAX_SCORE of
# '<env>-random-v0' in d4rl/infos.py (Farama-Foundation/D4RL), which the v1/v2 datasets of every env reuse.
D4RL_REFERENCE_RETURNS = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


@dataclasses.dataclass(frozen=True)
class GymEnvSpec:
  """The Gymnasium env that evaluates policies of one dataset env.

  `variants` maps an observation size to the `gymnasium.make` kwargs giving it (ant: 27-D without contact forces,
  105-D with them, as Minari's Ant-v5 data). `reference` is (random, expert) returns for normalised scores, or None.
  """
  env_id: str
  variants: dict[int, dict[str, Any]]
  layout: dict[str, int]
  reference: tuple[float, float] | None = None

  def make_kwargs(self, obs_dim: int) -> dict[str, Any]:
    if obs_dim not in self.variants:
      hint = " (D4RL's 111-D ant has no v5 equivalent: its contact forces came from mujoco-py)" if obs_dim == 111 else ""
      raise ValueError(f"{self.env_id} offers observations of size {sorted(self.variants)}, not {obs_dim}{hint}")
    return dict(self.variants[obs_dim])


GYM_ENVS: Registry[GymEnvSpec] = Registry("gymnasium env")
for _name, _id, _variants in (("halfcheetah", "HalfCheetah-v5", {17: {}}), ("hopper", "Hopper-v5", {11: {}}),
                              ("walker2d", "Walker2d-v5", {17: {}}),
                              ("ant", "Ant-v5", {27: {"include_cfrc_ext_in_observation": False}, 105: {}})):
  GYM_ENVS.register(_name, GymEnvSpec(_id, _variants, GYM_OBSERVATION_LAYOUTS[_name], D4RL_REFERENCE_RETURNS[_name]))


def episode_seeds(rng: jax.Array, num_envs: int) -> list[int]:
  """The reset seed of each of `num_envs` envs, a deterministic function of `rng`."""
  return [int(s) for s in np.asarray(jax.random.bits(rng, (num_envs,), jnp.uint32))]


@contextlib.contextmanager
def _collect_mujoco_warnings(into: list[str]):
  """MuJoCo's compiler warns once per model (mujoco 4 on HalfCheetah's settotalmass): collected, not printed E
  times."""
  previous = mujoco.get_mju_user_warning()
  mujoco.set_mju_user_warning(into.append)
  try:
    yield
  finally:
    mujoco.set_mju_user_warning(previous)


def make_vector_env(env: str, obs_dim: int, num_envs: int, max_episode_steps: int) -> gym.vector.SyncVectorEnv:
  """`num_envs` copies of the Gymnasium env of dataset env `env` with `obs_dim`-D observations."""
  spec = GYM_ENVS.get(env)
  make = functools.partial(gym.make, spec.env_id, max_episode_steps=max_episode_steps, **spec.make_kwargs(obs_dim))
  warnings: list[str] = []
  with _collect_mujoco_warnings(warnings):
    vec = gym.vector.SyncVectorEnv([make] * num_envs)
  for message in dict.fromkeys(warnings):
    print(f"[eval] MuJoCo ({spec.env_id}): {message.strip()}", flush=True)
  return vec


class _Obs(NamedTuple):
  """What `evaluate.policy_step_fns` reads of an env state."""
  obs: jax.Array  # [E, S]
  reward: jax.Array  # [E]


@functools.lru_cache(maxsize=16)
def _step_fn(model, env: str, context_length: int, conditioning: str, schedule: str, features: tuple[str, ...],
              xvel_offset_like_gdt: bool):
  """jit'd step(inputs, carry, obs, action, next_obs, reward, valid, t) -> (carry, outputs, obs, next action);
  cached so another evaluation of the same model and protocol reuses the compilation."""
  act, observe = evaluate.policy_step_fns(model, env, context_length, conditioning, schedule, features,
                                          xvel_offset_like_gdt, layout=GYM_ENVS.get(env).layout)

  def step(inputs, carry, obs, action, next_obs, reward, valid, t):
    """Records step t (obs -> action -> next_obs, reward), freezes ended episodes, acts for step t+1. At t = -1
    with nothing valid it records nothing and only computes the first action (one compiled function, not two)."""
    tr = rollout.Transition(_Obs(obs, jnp.zeros_like(reward)), action, _Obs(next_obs, reward), valid, t)
    carry, out = observe(inputs, carry, tr)
    obs = rollout.freeze(valid, next_obs, obs)
    next_action, carry = act(inputs, carry, _Obs(obs, reward), t + 1, None)
    return carry, dict(out, valid=valid), obs, next_action

  return jax.jit(step)


def evaluate_gym(policy, targets, config, rng) -> evaluate.EvalResult:
  """`gdt.evaluate.evaluate_policy` on the Gymnasium MuJoCo env of `policy.env`: every target x episode in one
  vector env, one jit'd policy call per step; rows and aggregates add D4RL-normalised returns where the env has
  reference returns.
  """
  setup = evaluate.prepare_rollout(policy, targets, config)
  settings = setup.settings
  spec = GYM_ENVS.get(policy.env)
  num_envs, t_max = len(setup.env_target), targets.max_length
  obs_dim = int(policy.model.state_dim)
  step = _step_fn(policy.model, policy.env, int(policy.context_length), targets.labels.conditioning,
                  settings["schedule"], setup.features, bool(settings["xvel_offset_like_gdt"]))
  vec = make_vector_env(policy.env, obs_dim, num_envs, t_max)
  try:
    obs, _ = vec.reset(seed=episode_seeds(rng, num_envs))
    obs = jnp.asarray(obs, jnp.float32)
    t0 = time.perf_counter()
    nothing = (jnp.zeros((num_envs, policy.model.act_dim)), obs, jnp.zeros(num_envs), jnp.zeros(num_envs, bool))
    step_c = step.lower(setup.inputs, setup.carry, obs, *nothing, jnp.int32(-1)).compile()
    compile_s = time.perf_counter() - t0
    carry, _, obs, action = step_c(setup.inputs, setup.carry, obs, *nothing, jnp.int32(-1))
    limits = targets.lengths[setup.env_target]
    alive = np.ones(num_envs, bool)
    outputs, env_s, t_run = [], 0.0, time.perf_counter()
    for t in range(t_max):
      t_env = time.perf_counter()
      next_obs, reward, terminated, truncated, _ = vec.step(np.asarray(action))
      env_s += time.perf_counter() - t_env
      valid = alive & (t < limits)
      carry, out, obs, action = step_c(setup.inputs, carry, obs, action, next_obs.astype(np.float32),
                                       reward.astype(np.float32), valid, jnp.int32(t))
      outputs.append(out)
      alive = valid & ~(terminated | truncated)
      if not alive.any():
        break
    outputs = jax.device_get(outputs)
    run_s = time.perf_counter() - t_run
  finally:
    vec.close()
  steps = len(outputs)

  def stack(*xs):  # per-step [E, ...] -> [E, t_max, ...], zero (invalid) past `steps`
    x = np.stack(xs, axis=1)
    return np.pad(x, [(0, 0), (0, t_max - steps)] + [(0, 0)] * (x.ndim - 2))

  result = evaluate.score_rollout(policy, targets, setup, jax.tree.map(stack, *outputs), steps, compile_s, run_s,
                                  reference=spec.reference)
  protocol = dict(result.protocol, gym_env_id=spec.env_id, env_s=env_s)
  return dataclasses.replace(result, protocol=protocol)


for _backend in (D4RL_BACKEND, MINARI_BACKEND):
  evaluate.EVALUATORS.register(_backend, evaluate_gym)
