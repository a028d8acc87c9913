"""Episodes that switch behaviour once: the expert of one PPO run until a random step, then another run's expert.

  python -m launch.paper --experiment=gdt_bimodal --scale=quick   # its data job `halfcheetah_stand_switch_quick`

Datasets of two uni-modal behaviours (a running and a standing cheetah) hold no trajectory whose future feature
distribution has both modes: the state tells the behaviour apart after a few steps, so a model conditioned on a
bimodal target has never seen a running cheetah stop. Here each episode starts with one expert (`first` or
`second`, half the episodes each) and hands over to the other at a step drawn uniformly from [0, episode_length], so
every mix of the two behaviours within an episode is in the data. Rollouts run in the first run's env (its recorded
env options); the two runs must act on the same observations with the same policy network.

Config (experiments/configs/switch_data.py): first = 'env@DIR', DIR a data workdir of `gdt.data.generation`
(relative to this job's workdir) whose PPO run is finished, its expert snapshot the one its own data was drawn from
(`Generator.expert_index`); second = the same, or 'scripted:NAME', a `gdt.data.scripted` behaviour played in the
first run's env. Writes `<workdir>/datasets/<first env>-switch.npz` whose
trajectories are one task of their own (`task_name`), played in the first env, so held-out targets of the original
behaviours' tasks stay uni-modal; metadata: `switch_steps` [N] (the step the second policy takes over; this file's
order), `policy_levels` 'first>second' or 'second>first'.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import gdt
from experiments.configs import switch_data as switch_configs
from gdt import envs
from gdt.core.cli import check_fields
from gdt.core.ppo import PPO_DONE, SNAPSHOT_DIR, make_policy_factory, ppo_resumes, stack_snapshots
from gdt.core.workdir import (WorkdirLock, atomic_write_bytes, format_seconds, load_config, prepare_workdir,
                              remove_stale_temp_files)
from gdt.data import generation, scripted
from gdt.data.trajectories import Trajectories, dataset_path, task_label

LEVEL = "switch"
ORDERS = ("first>second", "second>first")


def parse_source(field: str, entry: str, workdir: str) -> tuple[str, str]:
  """'env@DIR' -> (env, DIR resolved against `workdir`); ValueError naming the field."""
  env, sep, where = entry.partition("@")
  if not (sep and env and where):
    raise ValueError(f"config field {field!r}: expected 'env@DIR' (DIR a data workdir), got {entry!r}")
  return env, os.path.normpath(os.path.join(workdir, where))


SCRIPTED = "scripted:"


def source_generator(field: str, entry: str, workdir: str) -> generation.Generator:
  """The `gdt.data.generation.Generator` of the finished PPO run `entry` names (its recorded config)."""
  env, where = parse_source(field, entry, workdir)
  run_dir = generation.run_dir(where, env)
  try:
    config = ml_collections.ConfigDict(load_config(run_dir))
  except FileNotFoundError:
    raise ValueError(f"config field {field!r}: no data run of {env!r} in {where} ({run_dir}/config.json is missing; "
                     "generate it first)") from None
  config.levels = tuple(config.levels)
  config.ppo.policy_hidden_layer_sizes = tuple(config.ppo.policy_hidden_layer_sizes)
  config.ppo.value_hidden_layer_sizes = tuple(config.ppo.value_hidden_layer_sizes)
  if not os.path.exists(os.path.join(run_dir, SNAPSHOT_DIR, PPO_DONE)):  # else the Generator would train PPO here
    raise ValueError(f"config field {field!r}: the PPO run in {run_dir} has not finished; generate its data first")
  return generation.Generator(config, where)


Source = generation.Generator | str  # a finished PPO run, or the name of a scripted behaviour


def source_label(source: Source, env: str) -> str:
  """The task label of what `source` plays (a scripted behaviour plays in `env`)."""
  if isinstance(source, str):
    return scripted.task_name(env, source)
  return task_label(source.env_name, source.env_kwargs)


def task_name(first: generation.Generator, second: Source) -> str:
  return f"switch({source_label(first, first.env_name)}>{source_label(second, first.env_name)})"


def validate_config(config, workdir: str) -> tuple[generation.Generator, Source]:
  """Refuses, naming the field, a config that could not run, before anything is written; -> the two sources."""
  check_fields(config, switch_configs.FIELDS, defaults="experiments/configs/switch_data.py")
  first = source_generator("first", config.first, workdir)
  if config.second.startswith(SCRIPTED):
    second = config.second[len(SCRIPTED):]
    scripted.check_env("second", second, first.env_name)
    return first, second
  second = source_generator("second", config.second, workdir)
  if envs.observation_layout(first.env_name) != envs.observation_layout(second.env_name):
    raise ValueError(f"config fields 'first', 'second': {first.env_name} and {second.env_name} observe differently")
  for key in ("policy_hidden_layer_sizes", "normalize_observations"):
    if first.config.ppo[key] != second.config.ppo[key]:
      raise ValueError(f"config field 'second': its PPO {key} {second.config.ppo[key]} differs from the first run's "
                       f"{first.config.ppo[key]}; one policy network must run both")
  return first, second


def make_switch_act(snapshot_act, scripted_second=None):
  """A `gdt.core.rollout` act over inputs {params [S, ...], first [E] i32 (0 or 1), switch_step [E] i32}: env e acts
  with source first[e] before step switch_step[e] and with the other from then on. The sources are the PPO
  snapshots 0 and 1 of `params` (`snapshot_act`'s), or, given `scripted_second` (a scripted act), snapshot 0 and
  that."""

  def act(inputs, carry, env_state, t, key):
    acting = jnp.where(t < inputs["switch_step"], inputs["first"], 1 - inputs["first"])
    if scripted_second is None:
      return snapshot_act(dict(inputs, snapshot=acting), carry, env_state, t, key)
    action, carry = snapshot_act(dict(inputs, snapshot=jnp.zeros_like(acting)), carry, env_state, t, key)
    scripted_action, carry = scripted_second(inputs, carry, env_state, t, key)
    return jnp.where((acting == 1)[:, None], scripted_action, action), carry

  return act


def source_record(source: Source, expert) -> dict:
  """What the metadata records of a source: its PPO run and expert step, or the scripted behaviour."""
  if isinstance(source, str):
    return {"scripted": source}
  return {"env": source.env_name, "env_kwargs": dict(source.env_kwargs), "workdir": source.workdir,
          "expert_step": int(expert.step), "ppo_resumes": ppo_resumes(source.run_dir)}


def switch_episodes(config, first: generation.Generator, second: Source) -> Trajectories:
  """`config.transitions_per_level` transitions of switching episodes, played in the first run's env."""
  length = first.config.episode_length
  deterministic = config.policy == "deterministic"
  sources = (first, second)
  snapshot_act = generation.make_snapshot_act(make_policy_factory(first.env, first.config.ppo), deterministic)
  scripted_second = scripted.make_act(second, float(first.env.dt)) if isinstance(second, str) else None
  chunk = generation.make_episode_chunk(first.env, make_switch_act(snapshot_act, scripted_second), length)
  experts = [None if isinstance(g, str) else g.snapshots[g.expert_index()] for g in sources]
  # (normaliser, policy) of the PPO experts; the value params do not act
  params = stack_snapshots([e for e in experts if e is not None])[:2]
  draws = np.random.default_rng(config.seed)
  drawn: dict[str, np.ndarray] = {}

  def episode_inputs(k):  # one draw per rollout episode, in order, so the data do not depend on rollout_envs
    while len(drawn.get("first", ())) <= k.max():
      n = 1024
      drawn["first"] = np.concatenate([drawn.get("first", np.zeros(0, np.int32)),
                                       draws.integers(0, 2, n).astype(np.int32)])
      drawn["switch_step"] = np.concatenate([drawn.get("switch_step", np.zeros(0, np.int32)),
                                             draws.integers(0, length + 1, n).astype(np.int32)])
    return {key: v[k] for key, v in drawn.items()}

  rng = jax.random.PRNGKey(config.seed)
  out, per_episode = generation.collect(first.env, chunk, dict(params=params, random=np.bool_(False)), episode_inputs,
                                        config.rollout_envs, length, config.transitions_per_level, rng, LEVEL)
  label = task_name(first, second)
  n = len(per_episode["first"])
  metadata = dict(
      env=first.env_name, env_kwargs=dict(first.env_kwargs), backend=first.backend, dataset=LEVEL,
      observation_layout=envs.observation_layout(first.env_name), source="brax", version=gdt.__version__,
      seed=int(config.seed), episode_length=int(length), behaviour_policy=config.policy,
      task=[label] * n, tasks={label: {"env": first.env_name, "env_kwargs": dict(first.env_kwargs),
                                       "backend": first.backend}},
      policy_levels=[ORDERS[int(f)] for f in per_episode["first"]],
      # the starting expert's PPO step (0: a scripted behaviour)
      policy_steps=[0 if experts[int(f)] is None else int(experts[int(f)].step) for f in per_episode["first"]],
      switch_steps=[int(s) for s in per_episode["switch_step"]],
      switch_sources={name: source_record(g, e) for name, g, e in zip(("first", "second"), sources, experts,
                                                                      strict=True)})
  trajs = Trajectories(out["observations"], out["actions"], out["rewards"], out["terminals"], out["timeouts"],
                       out["valid"].sum(1).astype(np.int32), metadata)
  trajs.refresh_level_returns()
  return trajs


def generate(config, workdir: str) -> Trajectories:
  """Writes (or, when it exists, loads) `<workdir>/datasets/<first env>-switch.npz`; resumable by rerunning."""
  first, second = validate_config(config, workdir)
  with WorkdirLock(workdir):
    remove_stale_temp_files(workdir)
    prepare_workdir(workdir, config)
    path = dataset_path(workdir, first.env_name, LEVEL)
    if os.path.exists(path):
      print(f"[data] {path} exists; skipping", flush=True)
      return Trajectories.load(path)
    t0 = time.perf_counter()
    trajs = switch_episodes(config, first, second)
    trajs.save(path)
    r = trajs.returns()
    summary = (f"# Switching episodes ({task_name(first, second)})\n\n{trajs.num_trajectories} episodes, "
               f"{trajs.num_transitions} transitions, return {r.mean():.1f} ± {r.std():.1f}, orders "
               + json.dumps({o: trajs.metadata["policy_levels"].count(o) for o in ORDERS}) + "\n")
    atomic_write_bytes(os.path.join(workdir, generation.SUMMARY), summary.encode())
    print(f"[data] wrote {path}: {summary.splitlines()[-1]} ({format_seconds(time.perf_counter() - t0)})", flush=True)
    return trajs
