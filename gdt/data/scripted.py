"""Scripted behaviours: episodes whose actions are a fixed function of time, with no policy to learn first.

  python -m launch.paper --experiment=gdt_bimodal --scale=demo   # data jobs halfcheetah_{stand,rock}_scripted

Two cheetahs with the same zero expected x-velocity and different distributions of it, so a model conditioned on
the future x-velocity sum (DT) is told nearly the same for both, one conditioned on its histogram (CDT) is not:
  stand  no torque: the joints' springs and damping bring the cheetah to rest within ~20 steps (x-velocity std
         ~0.03 m/s); a rest a policy reaches again from wherever it drifts by acting with zeros.
  rock   an open-loop sine on every joint (3 Hz, amplitude 0.5, fixed phases found by a search over 512 random
         phase sets for a steady gait with no net motion): the cheetah rocks in place, x-velocity spread over about
         -2..2 m/s (std ~1) with per-episode means within +-0.1.
Unlike a PPO run's, these data do not depend on what a CPU's float rounding does to training; the rollouts still
go through the simulator.

Config (experiments/configs/scripted_data.py): env, behaviour, seed, transitions. Writes
`<workdir>/datasets/<env>-<behaviour>.npz`, one task of its own (`task_name`) played in `env`.
"""

from __future__ import annotations

import dataclasses
import os
import time
import zlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import gdt
from experiments.configs import scripted_data as scripted_configs
from gdt import envs
from gdt.core.cli import check_fields
from gdt.core.registry import Registry, unknown_name_message
from gdt.core.workdir import (WorkdirLock, atomic_write_bytes, format_seconds, prepare_workdir,
                              remove_stale_temp_files)
from gdt.data import generation
from gdt.data.trajectories import Trajectories, dataset_path


@dataclasses.dataclass(frozen=True)
class Behaviour:
  """`action(t, dt)`: the [A] action at step t (traced int32) of an env whose step lasts dt seconds; `envs`: the
  env names it is scripted for (their actuators, in order)."""
  action: Callable[[jax.Array, float], jax.Array]
  envs: tuple[str, ...]
  description: str


BEHAVIOURS: Registry[Behaviour] = Registry("scripted behaviour")
CHEETAHS = ("halfcheetah", "cheetah_vel", "cheetah_backflip")
# rock: joints (bthigh, bshin, bfoot, fthigh, fshin, ffoot); the most regular of the zero-mean gaits of the search.
ROCK_PHASES = (4.37, 2.06, 1.10, 4.24, 2.28, 2.07)
ROCK_FREQUENCY_HZ, ROCK_AMPLITUDE = 3.0, 0.5

BEHAVIOURS.register("stand", Behaviour(lambda t, dt: jnp.zeros(6), CHEETAHS, "no torque: comes to rest"))
BEHAVIOURS.register("rock", Behaviour(
    lambda t, dt: ROCK_AMPLITUDE * jnp.sin(2 * jnp.pi * ROCK_FREQUENCY_HZ * dt * t + jnp.asarray(ROCK_PHASES)),
    CHEETAHS, "an open-loop sine on every joint: rocks in place"))


def check_env(field: str, behaviour: str, env: str) -> None:
  """ValueError naming `field` when `behaviour` is unknown or not scripted for `env`."""
  if behaviour not in BEHAVIOURS:
    known = unknown_name_message("scripted behaviour", behaviour, BEHAVIOURS.names())
    raise ValueError(f"config field {field!r}: {known}")
  spec = BEHAVIOURS.get(behaviour)
  if env not in spec.envs:
    raise ValueError(f"config field {field!r}: behaviour {behaviour!r} is scripted for {', '.join(spec.envs)}, "
                     f"not {env!r}")


def make_act(behaviour: str, dt: float) -> Callable:
  """A `gdt.core.rollout` act: every env takes the behaviour's action at step t (inputs and key unused)."""
  action = BEHAVIOURS.get(behaviour).action

  def act(inputs, carry, env_state, t, key):
    del inputs, key
    a = action(t, dt)
    return jnp.broadcast_to(a, (env_state.obs.shape[0], a.shape[-1])), carry

  return act


def task_name(env: str, behaviour: str) -> str:
  """The task label of a scripted behaviour's trajectories, e.g. 'rock(halfcheetah)'."""
  return f"{behaviour}({env})"


def validate_config(config) -> None:
  """Refuses, naming the field, a config that could not run, before anything is written."""
  check_fields(config, scripted_configs.FIELDS, defaults="experiments/configs/scripted_data.py")
  if config.env not in envs.ENVS:
    raise ValueError(f"config field 'env': {unknown_name_message('env', config.env, envs.registered_names())}")
  check_env("behaviour", config.behaviour, config.env)


def episodes(config) -> Trajectories:
  """`config.transitions` transitions of whole episodes of the behaviour in `config.env` (default backend)."""
  env = envs.make(config.env)
  length = config.episode_length
  chunk = generation.make_episode_chunk(env, make_act(config.behaviour, float(env.dt)), length)
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), zlib.crc32(config.behaviour.encode()) % 2**31)
  out, _ = generation.collect(env, chunk, {}, lambda k: {}, config.rollout_envs, length, config.transitions, rng,
                              config.behaviour)
  label = task_name(config.env, config.behaviour)
  n = out["observations"].shape[0]
  backend = envs.default_backend(config.env)
  metadata = dict(
      env=config.env, env_kwargs={}, backend=backend, dataset=config.behaviour,
      observation_layout=envs.observation_layout(config.env), source="brax", version=gdt.__version__,
      seed=int(config.seed), episode_length=int(length), behaviour_policy=f"scripted {config.behaviour}",
      task=[label] * n, tasks={label: {"env": config.env, "env_kwargs": {}, "backend": backend}},
      policy_levels=[config.behaviour] * n, policy_steps=[0] * n)
  trajs = Trajectories(out["observations"], out["actions"], out["rewards"], out["terminals"], out["timeouts"],
                       out["valid"].sum(1).astype(np.int32), metadata)
  trajs.refresh_level_returns()
  return trajs


def generate(config, workdir: str) -> Trajectories:
  """Writes (or, when it exists, loads) `<workdir>/datasets/<env>-<behaviour>.npz`; resumable by rerunning."""
  validate_config(config)
  with WorkdirLock(workdir):
    remove_stale_temp_files(workdir)
    prepare_workdir(workdir, config)
    path = dataset_path(workdir, config.env, config.behaviour)
    if os.path.exists(path):
      print(f"[data] {path} exists; skipping", flush=True)
      return Trajectories.load(path)
    t0 = time.perf_counter()
    trajs = episodes(config)
    trajs.save(path)
    summary = (f"# Scripted episodes ({task_name(config.env, config.behaviour)}: "
               f"{BEHAVIOURS.get(config.behaviour).description})\n\n{trajs.num_trajectories} episodes, "
               f"{trajs.num_transitions} transitions, return {trajs.returns().mean():.1f} ± "
               f"{trajs.returns().std():.1f}, {generation.mean_x_velocity(trajs)}\n")
    atomic_write_bytes(os.path.join(workdir, generation.SUMMARY), summary.encode())
    print(f"[data] wrote {path}: {summary.splitlines()[-1]} ({format_seconds(time.perf_counter() - t0)})", flush=True)
    return trajs
