"""PPO experts per MxT env on the core PPO, chosen by deterministic success.

An expert is one env's PPO run (`gdt.core.ppo.train_ppo`: orbax snapshots, resume, skip when done) plus the
snapshot whose deterministic (mode) policy succeeds most often under the env's own success rule (ties: the higher
return). Layout of a root (`train_experts`) and of each `expert_workdir(root, env_name)`:
  config.json                  the experts config (`experiments/configs/mxt_experts.py`), checked on resume
  experts.md, experts.csv      the table env | steps | success | return | accepted
  <env>/snapshots/             PPO snapshots (`gdt.core.ppo`)
  <env>/snapshot_eval.json     per snapshot step: deterministic success rate, return, final distance (reference
                               rules), with the settings they were measured with
  <env>/expert.json            the selection: env, step, success, episodes, accepted, threshold, ppo, shaped_reward, ...
A rerun trains nothing that finished, evaluates only snapshots not yet evaluated with the same settings, and rewrites
expert.json only when the selection or its inputs changed.

Training may use a named shaped reward (`SHAPED_REWARDS`, a brax Wrapper) and fresh goals at every auto-reset
(`wrap_for_training`); both are training-only. PPO's own evaluation, the snapshot evaluation and the selection
read the env's reference reward and success metrics (`morphology.envs.wrap_eval`).

    expert = train_expert("ant_touch_2", config, "workdirs/experts")   # trains, evaluates, selects
    expert = load_expert(expert_workdir("workdirs/experts", "ant_touch_2"))
    act = jax.jit(expert.act_fn())                                     # (obs [obs], rng) -> action [A]
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from brax.envs.base import State, Wrapper
from brax.envs.wrappers.training import EpisodeWrapper, VmapWrapper

from experiments.configs import mxt_experts  # the experts config's fields and their rules, beside the defaults
from gdt.core import ppo, rollout
from gdt.core.cli import check_fields
from gdt.core.registry import Registry
from gdt.core.workdir import WorkdirLock, atomic_write_bytes, config_to_dict, format_seconds, prepare_workdir
from morphology import envs

EXPERT_FILE = "expert.json"
SNAPSHOT_EVAL_FILE = "snapshot_eval.json"
TABLE_FILES = ("experts.md", "experts.csv")
EVAL_CHUNK_STEPS = 100  # steps per compiled rollout chunk; evaluation stops after the chunk its last episode ended in


def expert_workdir(root: str, env_name: str) -> str:
  """<root>/<env_name>: one expert's own workdir."""
  return os.path.join(root, env_name)


# ---------------------------------------------------------------------------------------- shaped rewards

class ProgressReward(Wrapper):
  """Training-only reward: `scale` x (previous distance - current distance) + `success_bonus` on success.

  The distance is the task's own metric (reach: nearest end effector to the ball, touch: root to the ball), so
  the potential is the quantity the success rule thresholds. The previous distance is recomputed from the
  incoming pipeline state rather than carried in `info`, so an auto-reset (brax's keeps `info`) never pays
  for the jump back to the start. Standing still earns 0; the reference reward (-distance) pays every step
  an amount that depends mostly on where the goal was sampled, which PPO's value function must first learn away.
  """

  TASKS = ("reach", "touch")  # tasks whose `distance` is the one their success rule thresholds

  def __init__(self, env: envs.MorphologyTaskEnv, scale: float, success_bonus: float):
    if env.task.name not in self.TASKS:
      raise ValueError(f"shaped reward 'progress' shapes {' or '.join(self.TASKS)} tasks (whose distance the success "
                       f"rule thresholds); {env.name} is a {env.task.name} task")
    super().__init__(env)
    self.scale, self.success_bonus = scale, success_bonus

  @classmethod
  def from_config(cls, env: envs.MorphologyTaskEnv, shaping) -> "ProgressReward":
    return cls(env, scale=shaping.progress_scale, success_bonus=shaping.success_bonus)

  def distance(self, state: State) -> jax.Array:
    return self.env.task.distance(self.env.frame(state.pipeline_state), state.info["goals"])

  def step(self, state: State, action: jax.Array) -> State:
    before = self.distance(state)
    state = self.env.step(state, action)
    reward = self.scale * (before - state.info["distance"]) + self.success_bonus * state.info["success"]
    return state.replace(reward=reward)


# name -> a Wrapper class with `TASKS` (the task names it can shape) and `from_config(env, config.shaping)`.
# The config's None trains on the env's reference reward.
SHAPED_REWARDS: Registry[type] = Registry("shaped reward")
SHAPED_REWARDS.register("progress", ProgressReward)


def training_env(env: envs.MorphologyTaskEnv, config):
  """The env PPO trains on: `env` with the config's shaped reward, or `env` itself for the reference reward."""
  if config.shaped_reward is None:
    return env
  return SHAPED_REWARDS.get(config.shaped_reward).from_config(env, config.shaping)


class FreshResetWrapper(Wrapper):
  """Auto-reset with a new reset key each time, so every training episode samples new goals and objects.

  brax's AutoResetWrapper restores the env's first state, so each of PPO's `num_envs` envs would replay one goal
  for the whole run. The episode bookkeeping of the wrapped EpisodeWrapper (`EPISODE_KEYS`) is kept from the
  step, as brax's wrapper keeps it; everything else in `info` comes from the fresh reset.
  """

  EPISODE_KEYS = ("steps", "truncation", "episode_done", "episode_metrics")
  KEY = "reset_key"

  def reset(self, rng: jax.Array) -> State:
    key, rng = jax.random.split(rng)
    state = self.env.reset(rng)
    state.info[self.KEY] = key
    return state

  def step(self, state: State, action: jax.Array) -> State:
    if "steps" in state.info:
      state.info["steps"] = jnp.where(state.done, jnp.zeros_like(state.info["steps"]), state.info["steps"])
    key = state.info[self.KEY]
    state = self.env.step(state.replace(done=jnp.zeros_like(state.done)), action)
    key, reset_key = jax.random.split(key)
    fresh = self.env.reset(reset_key)
    done = state.done > 0
    pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(done, n, o), new, old)
    info = {k: v if k in self.EPISODE_KEYS else pick(fresh.info[k], v) for k, v in state.info.items()
            if k != self.KEY}
    info[self.KEY] = key
    return state.replace(pipeline_state=pick(fresh.pipeline_state, state.pipeline_state),
                         obs=pick(fresh.obs, state.obs), info=info)


def wrap_for_training(env, episode_length: int, action_repeat: int = 1, randomization_fn=None):
  """brax `ppo.train`'s `wrap_env_fn`: time limit, fresh-goal auto-reset, vmap."""
  if randomization_fn is not None:
    raise ValueError("domain randomisation is not supported by the experts' training wrapper")
  return VmapWrapper(FreshResetWrapper(EpisodeWrapper(env, episode_length, action_repeat)))


# ------------------------------------------------------------------------------------- snapshot evaluation

def make_snapshots_act(make_policy: Callable) -> rollout.ActFn:
  """A `gdt.core.rollout` act over inputs {params: (normaliser, policy) stacked [S, ...], snapshot [E] i32}:
  env e acts with the mode of snapshot[e]'s policy."""

  def act_one(params, obs, key):
    action, _ = make_policy(params, deterministic=True)(obs[None], key)
    return action[0]

  def act(inputs, carry, env_state, t, key):
    del t
    params = jax.tree.map(lambda x: x[inputs["snapshot"]], inputs["params"])
    keys = jax.random.split(key, env_state.obs.shape[0])
    return jax.vmap(act_one)(params, env_state.obs, keys), carry

  return act


def _no_outputs(inputs, carry, transition):
  del inputs, transition
  return carry, {}


@functools.lru_cache(maxsize=16)
def _eval_chunk(env, make_policy):
  """(the reference eval env, the jit'd chunk of snapshot-driven episodes on it), once per (env, policy factory)."""
  eval_env = envs.wrap_eval(env)
  return eval_env, rollout.make_chunk(eval_env, make_snapshots_act(make_policy), _no_outputs,
                                      min(EVAL_CHUNK_STEPS, env.episode_length))


def evaluate_snapshots(env: envs.MorphologyTaskEnv, ppo_config, snapshots: list[ppo.Snapshot], episodes: int,
                       seed: int) -> list[dict]:
  """Deterministic success rate, return and final distance of each snapshot over `episodes` reference episodes.

  Every snapshot plays the same `episodes` resets (one batched rollout of S x episodes envs, one compilation
  per env), so snapshots are compared on the same goals. -> per snapshot {step, success, return, final_distance}.
  """
  length = env.episode_length
  eval_env, run_chunk = _eval_chunk(env, _policy_factory(env, ppo_config))
  reset_rng, step_rng = jax.random.split(jax.random.PRNGKey(seed))
  one = rollout.init_state(eval_env, reset_rng, np.full(episodes, length), None)
  num = len(snapshots)
  state = jax.tree.map(lambda x: jnp.concatenate([x] * num), one)  # snapshot-major: env s * episodes + k
  inputs = dict(params=ppo.stack_snapshots(snapshots)[:2],  # the value params do not act
                snapshot=np.repeat(np.arange(num, dtype=np.int32), episodes))
  result = rollout.run(run_chunk, inputs, state, length, min(EVAL_CHUNK_STEPS, length), step_rng)
  ev = jax.device_get(result.state.env_state.info["eval"])
  per = lambda k: np.asarray(ev[k], np.float64).reshape(num, episodes).mean(1)
  success, returns, final = per("success"), per("episode_return"), per("final_distance")
  return [dict(step=int(s.step), success=float(success[i]), episode_return=float(returns[i]),
               final_distance=float(final[i])) for i, s in enumerate(snapshots)]


@functools.lru_cache(maxsize=16)
def _policy_factory_cached(observation_size: int, action_size: int, ppo_json: str):
  sizes = type("Sizes", (), dict(observation_size=observation_size, action_size=action_size))
  return ppo.make_policy_factory(sizes, ml_collections.ConfigDict(json.loads(ppo_json)))


def _policy_factory(env, ppo_config) -> Callable:
  """`ppo.make_policy_factory`, one object per (sizes, config), so compiled chunks keyed on it are reused."""
  return _policy_factory_cached(env.observation_size, env.action_size,
                                json.dumps(config_to_dict(ppo_config), sort_keys=True))


def select(evaluations: list[dict]) -> dict:
  """The evaluation with the highest deterministic success; ties go to the higher return, then the later step."""
  return max(evaluations, key=lambda e: (e["success"], e["episode_return"], e["step"]))


# ------------------------------------------------------------------------------------------------ experts

@dataclasses.dataclass(frozen=True)
class Expert:
  """A selected PPO snapshot of one env and its measured deterministic success rate."""

  env_name: str  # a registered MxT env name, e.g. "ant_reach_3"
  step: int  # PPO env step of the selected snapshot
  success: float  # deterministic success rate (reference success rule) measured at selection
  workdir: str  # the expert's own workdir
  env_config: envs.EnvConfig = envs.EnvConfig()  # the env it was trained on (backend, flat observation)

  def act_fn(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Pure, jittable, vmappable deterministic (mode) policy: (flat env observation [obs], rng) -> action [A]
    in the env's actuator order, for `morphology.envs.make(env_name, config=self.env_config)`.
    (The observation normaliser is baked in.)"""
    record = read_expert_json(self.workdir)
    snapshot = ppo.load_snapshot(ppo.snapshot_path(self.workdir, self.step))
    make_policy = _policy_factory_cached(record["observation_size"], record["action_size"],
                                         json.dumps(record["ppo"], sort_keys=True))
    policy = make_policy(jax.tree.map(jnp.asarray, snapshot.params[:2]), deterministic=True)

    def act(obs: jax.Array, rng: jax.Array) -> jax.Array:
      action, _ = policy(obs[None], rng)
      return action[0]

    return act


def read_expert_json(workdir: str) -> dict:
  """<workdir>/expert.json as a dict."""
  path = os.path.join(workdir, EXPERT_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir!r} holds no selected expert (run experiments.train_experts)")
  with open(path) as f:
    return json.load(f)


def load_expert(workdir: str, allow_rejected: bool = False) -> Expert:
  """The expert recorded in <workdir>/expert.json; raises ValueError for one whose success fell below its threshold
  unless `allow_rejected`."""
  record = read_expert_json(workdir)
  if not record["accepted"] and not allow_rejected:
    raise ValueError(f"{workdir}: the {record['env']} expert was rejected (deterministic success "
                     f"{record['success']:.3f} < threshold {record['threshold']}); pass allow_rejected=True to use it")
  if not os.path.isdir(ppo.snapshot_path(workdir, record["step"])):
    raise FileNotFoundError(f"{workdir}: expert.json names snapshot step {record['step']}, which is missing")
  return Expert(record["env"], int(record["step"]), float(record["success"]), workdir, recorded_env_config(record))


def recorded_env_config(record: dict) -> envs.EnvConfig:
  """The EnvConfig of an expert.json record; records from before `observation` existed saw the world frame."""
  return envs.EnvConfig(backend=record["backend"], observation=record.get("observation", "world"))


def _load_json(path: str) -> dict | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def expert_seed(config, env_name: str) -> int:
  """The seed of `env_name`'s expert: its entry in config.env_seeds ("env:seed"), else config.seed."""
  for item in config.env_seeds:
    env, _, seed = item.partition(":")
    if env == env_name:
      return int(seed)
  return int(config.seed)


def snapshot_evaluations(env, config, workdir: str, snapshots: list[ppo.Snapshot]) -> list[dict]:
  """Every snapshot's deterministic evaluation, from snapshot_eval.json when it was measured with the same
  settings; only snapshots missing from it are rolled out (one batch)."""
  path = os.path.join(workdir, SNAPSHOT_EVAL_FILE)
  seed = expert_seed(config, env.name)
  settings = dict(episodes=int(config.eval_episodes), seed=seed, episode_length=int(env.episode_length))
  cached = _load_json(path)
  by_step = {int(k): v for k, v in cached["steps"].items()} if cached and cached["settings"] == settings else {}
  missing = [s for s in snapshots if s.step not in by_step]
  if missing:
    t0 = time.perf_counter()
    for e in evaluate_snapshots(env, config.ppo, missing, config.eval_episodes, seed):
      by_step[e["step"]] = e
    atomic_write_bytes(path, json.dumps(dict(settings=settings, steps={str(k): by_step[k] for k in sorted(by_step)}),
                                        indent=1).encode())
    print(f"[experts] {env.name}: evaluated {len(missing)} snapshots x {config.eval_episodes} episodes "
          f"({format_seconds(time.perf_counter() - t0)})", flush=True)
  return [by_step[s.step] for s in snapshots]


def train_expert(env_name: str, config, root: str) -> Expert:
  """Trains (or resumes, or skips) PPO on `env_name`, evaluates every snapshot's mode policy on the reference
  success rule, selects the best and writes expert.json. Returns the Expert, accepted or not (`load_expert`
  refuses a rejected one). Reruns reuse the snapshots, their evaluations and the selection."""
  workdir = expert_workdir(root, env_name)
  seed = expert_seed(config, env_name)
  # The root's config.json lets env_seeds change (an env may be added with its own seed); an env trained with
  # another seed is refused here rather than resumed as if it were this seed's run.
  previous = _load_json(os.path.join(workdir, EXPERT_FILE))
  if previous is not None and previous["seed"] != seed:
    raise ValueError(f"{workdir}: {env_name}'s expert was trained with seed {previous['seed']}, the config asks for "
                     f"seed {seed} (config field 'env_seeds' / 'seed'); use another experts root")
  env = envs.make(env_name, config=envs.EnvConfig(backend=config.backend or envs.DEFAULT_BACKEND,
                                                  observation=config.observation))
  train_env = training_env(env, config)  # refuses a shaped reward the task cannot use, before any work
  snapshots = ppo.train_ppo(train_env, config.ppo, workdir, seed=seed,
                            episode_length=config.train_episode_length, eval_env=env,
                            wrap_env_fn=wrap_for_training)
  evaluations = snapshot_evaluations(env, config, workdir, snapshots)
  best = select(evaluations)
  record = dict(env=env_name, step=best["step"], success=best["success"], episode_return=best["episode_return"],
                final_distance=best["final_distance"], episodes=int(config.eval_episodes),
                accepted=bool(best["success"] >= config.accept_success), threshold=float(config.accept_success),
                ppo=config_to_dict(config.ppo), shaped_reward=config.shaped_reward,
                shaping=config_to_dict(config.shaping), train_episode_length=int(config.train_episode_length),
                backend=env.config.backend, observation=env.config.observation,
                observation_size=int(env.observation_size), action_size=int(env.action_size), seed=seed)
  path = os.path.join(workdir, EXPERT_FILE)
  if _load_json(path) != record:
    atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
  print(f"[experts] {env_name}: step {record['step']}, success {record['success']:.3f} over {record['episodes']} "
        f"episodes, return {record['episode_return']:.1f} -> {'accepted' if record['accepted'] else 'rejected'}",
        flush=True)
  return Expert(env_name, record["step"], record["success"], workdir, env.config)


# ------------------------------------------------------------------------------------------- all envs

def validate_config(config) -> None:
  """Refuses, naming the field, an experts config that could not train, before anything is written: the rules
  beside the defaults (`mxt_experts.FIELDS`, `mxt_experts.conflicts`), env, shaped-reward and backend names, the
  devices, and a shaped reward an env's task cannot use."""
  check_fields(config, mxt_experts.FIELDS, defaults="experiments/configs/mxt_experts.py")
  found = mxt_experts.conflicts(config)
  tasks = {}
  for name in config.envs:
    try:
      tasks[name] = envs.parse(name).task.name
    except KeyError as e:
      found.append(("envs", e.args[0]))
  if config.shaped_reward is not None:
    if config.shaped_reward in SHAPED_REWARDS:
      shaping = SHAPED_REWARDS.get(config.shaped_reward)
      found += [("shaped_reward", f"{config.shaped_reward!r} shapes {' or '.join(shaping.TASKS)} tasks; {name} is a "
                                  f"{task} task") for name, task in tasks.items() if task not in shaping.TASKS]
    else:
      found.append(("shaped_reward", f"{config.shaped_reward!r} is not one of {', '.join(SHAPED_REWARDS)} "
                                     "(or 'none' for the reference reward)"))
  if config.observation not in envs.OBSERVATIONS:
    found.append(("observation", f"one of {', '.join(envs.OBSERVATIONS)}, got {config.observation!r}"))
  if config.backend and config.backend not in envs.BACKENDS:
    found.append(("backend", f"one of {', '.join(envs.BACKENDS)} or '' (default), got {config.backend!r}"))
  devices = jax.local_device_count()
  if config.ppo.num_envs % devices:
    found.append(("ppo.num_envs", f"{config.ppo.num_envs} must be a multiple of the {devices} local devices"))
  if found:
    raise ValueError("; ".join(f"config field {field!r}: {why}" for field, why in found))


def table(results: list[Expert]) -> list[dict]:
  """One row per expert from its expert.json: env, steps, success, episodes, return, accepted."""
  rows = []
  for e in results:
    r = read_expert_json(e.workdir)
    rows.append(dict(env=r["env"], steps=r["step"], success=r["success"], episodes=r["episodes"],
                     episode_return=r["episode_return"], accepted=r["accepted"]))
  return rows


def table_markdown(rows: list[dict]) -> str:
  lines = ["| env | steps | success | return | accepted |", "|---|---|---|---|---|"]
  lines += [f"| {r['env']} | {r['steps']} | {r['success']:.3f} ({r['episodes']} episodes) | {r['episode_return']:.1f} "
            f"| {'yes' if r['accepted'] else 'no'} |" for r in rows]
  return "\n".join(lines) + "\n"


def table_csv(rows: list[dict]) -> str:
  with io.StringIO() as buf:
    writer = csv.writer(buf)
    writer.writerow(["env", "steps", "success", "return", "accepted", "episodes"])
    writer.writerows([r["env"], r["steps"], r["success"], r["episode_return"], r["accepted"], r["episodes"]]
                     for r in rows)
    return buf.getvalue()


def train_experts(config, root: str) -> list[dict]:
  """Every env's expert (`train_expert`) under one workdir lock on `root`; writes experts.md / experts.csv there and
  returns the table rows. config.json protects a resumed root from another config (envs may be added)."""
  validate_config(config)
  with WorkdirLock(root):
    prepare_workdir(root, config, allow_changes=("envs", "env_seeds"))
    rows = table([train_expert(name, config, root) for name in config.envs])
    text = table_markdown(rows)
    atomic_write_bytes(os.path.join(root, TABLE_FILES[0]), text.encode())
    atomic_write_bytes(os.path.join(root, TABLE_FILES[1]), table_csv(rows).encode())
  print(text, flush=True)
  return rows
