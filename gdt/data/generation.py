"""D4RL-style datasets from Brax: PPO policy snapshots -> random/medium/medium-replay/expert/medium-expert.

Workdir layout (several envs share one): `runs/{env}/` holds config.json, PPO snapshots and the env's
summary.md; `datasets/{env}-{level}.npz` the datasets; `summary.md` every env's table. Stages, each
resumable from its files:
  1. PPO (`gdt.core.ppo.train_ppo`): one orbax snapshot per evaluation in `runs/{env}/snapshots/`; a killed
     run restarts from the last snapshot's params (not bitwise the uninterrupted run: every dataset's metadata
     lists such restarts in `ppo_resumes`).
  2. One dataset per level (`gdt.data.Trajectories`) of whole episodes. Batches of `rollout_envs` envs run
     (`gdt.core.rollout`, one compiled chunk for every batch and level) until the level holds
     `transitions_per_level` transitions; each env plays one episode driven by its own snapshot, until a
     terminal (`done`) or `episode_length` steps (a timeout). No episode is cut or dropped, so long episodes
     are represented as often as the behaviour policy plays them.
  3. Summaries: mean ± std return per level.
Levels are a registry; a level builds the levels it depends on first (medium needs random and expert).

Which snapshots are "expert" and "medium" is decided by a return per snapshot, `config.select_levels_by`:
  - 'mode' (default): the mean return of `mode_eval_episodes` episodes acting with the policy's mode, cached in
    `runs/{env}/mode_returns.json`. DT/CDT/BC act deterministically and learn the data's mean action, i.e. the
    behaviour policy's mode; an early PPO snapshot can move only through its action noise (quick halfcheetah's
    step-163840 snapshot: sampled return 290, mode return ~0), and its data is then beyond any deterministic
    imitator;
  - 'ppo_eval': brax PPO's own evaluation return (sampled actions), what this module used before.
"""

from __future__ import annotations

import glob
import json
import os
import time
import zlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import gdt
from experiments.configs import data as data_configs  # the data config's fields and their rules, beside the defaults
from gdt import envs, hindsight
from gdt.core import rollout
from gdt.core.cli import check_fields
from gdt.core.ppo import Snapshot, make_policy_factory, ppo_resumes, stack_snapshots, train_ppo
from gdt.core.registry import Registry
from gdt.core.workdir import (Progress, WorkdirLock, atomic_write_bytes, format_seconds, prepare_workdir,
                              remove_stale_temp_files)
from gdt.data.trajectories import Trajectories, dataset_path

RUNS_DIR = "runs"
SUMMARY = "summary.md"
MODE_RETURNS = "mode_returns.json"
ROLLOUT_CHUNK_STEPS = 100  # steps per compiled chunk; a batch stops after the chunk its last episode ended in
MEDIUM_REPLAY_NOTE = (
    "rollouts of every PPO policy snapshot up to and including the medium one, in training order; "
    "brax PPO does not expose its training batches, so this is not PPO's own replay data")


# ------------------------------------------------------------------------------------ rollouts

def make_snapshot_act(make_policy: Callable, deterministic: bool) -> rollout.ActFn:
  """A `gdt.core.rollout` act over inputs {params: (normaliser, policy) stacked [S, ...], snapshot [E] i32,
  random [] bool}: env e samples snapshot[e]'s policy (as D4RL's behaviour policies; its mode if `deterministic`),
  or acts uniformly in [-1, 1] if `random` (traced, so the random level shares the policy levels' compilation)."""

  def act_one(params, obs, key):
    action, _ = make_policy(params, deterministic=deterministic)(obs[None], key)
    return action[0]

  def act(inputs, carry, env_state, t, key):
    del t
    policy_key, uniform_key = jax.random.split(key)
    params = jax.tree.map(lambda x: x[inputs["snapshot"]], inputs["params"])
    sampled = jax.vmap(act_one)(params, env_state.obs, jax.random.split(policy_key, env_state.obs.shape[0]))
    uniform = jax.random.uniform(uniform_key, sampled.shape, minval=-1.0, maxval=1.0)
    return jnp.where(inputs["random"], uniform, sampled), carry

  return act


def _chunk_steps(episode_length: int) -> int:
  return min(ROLLOUT_CHUNK_STEPS, episode_length)


def make_episode_chunk(env, act: rollout.ActFn, episode_length: int):
  """The jit'd chunk `run_episodes` runs: records the D4RL fields of each step (terminal = the env's `done`;
  timeout = the `episode_length`-th step of an episode that did not terminate)."""

  def observe(inputs, carry, tr: rollout.Transition):
    del inputs
    terminal = tr.valid & (tr.next_state.done > 0)
    timeout = tr.valid & ~terminal & (tr.t + 1 >= episode_length)
    return carry, dict(observations=tr.state.obs, actions=tr.action, rewards=tr.next_state.reward,
                       terminals=terminal, timeouts=timeout)

  return rollout.make_chunk(env, act, observe, _chunk_steps(episode_length))


def run_episodes(env, run_chunk, inputs, num_envs: int, episode_length: int, rng, label: str | None = None) -> dict:
  """One whole episode per env -> observations [E, L, obs], actions [E, L, act], rewards, terminals, timeouts and
  valid [E, L] (L = episode_length; the steps after an episode's end are invalid)."""
  reset_rng, step_rng = jax.random.split(rng)
  state = rollout.init_state(env, reset_rng, np.full(num_envs, episode_length), None)
  return rollout.run(run_chunk, inputs, state, episode_length, _chunk_steps(episode_length), step_rng, label).outputs


def collect(env, run_chunk, inputs: dict, episode_inputs: Callable[[np.ndarray], dict], num_envs: int,
            episode_length: int, min_transitions: int, rng, label: str, min_episodes: int = 0) -> tuple[dict, dict]:
  """Batches of `num_envs` whole episodes until they hold `min_transitions` transitions and `min_episodes` episodes;
  rollout episode k acts with `inputs` plus `episode_inputs(k)` (per-env arrays [E] for the indices k [E]).

  -> (the `run_episodes` fields [N, T, ...], zero after each episode's end, T = the longest episode; the per-episode
  inputs [N]), in rollout order.
  """
  progress = Progress(total=min_transitions, unit="transitions", label=f"[rollout {label}] ")
  batches, per_episode, transitions, total_return = [], [], 0, 0.0
  while transitions < min_transitions or len(batches) * num_envs < min_episodes:
    extra = episode_inputs(len(batches) * num_envs + np.arange(num_envs))
    out = run_episodes(env, run_chunk, dict(inputs, **extra), num_envs, episode_length,
                       jax.random.fold_in(rng, len(batches)), f"[rollout {label} batch {len(batches)}] ")
    batches.append(out)
    per_episode.append(extra)
    transitions += int(out["valid"].sum())
    total_return += float(np.where(out["valid"], out["rewards"], 0).sum())
    episodes = len(batches) * num_envs
    progress.report(min(transitions, min_transitions), {"episodes": episodes, "mean_return": total_return / episodes})
  valid = np.concatenate([b["valid"] for b in batches])
  T = int(valid.sum(1).max())

  def gather(k):  # [N, L, ...] zero after each episode's end, cut to T
    x = np.concatenate([b[k] for b in batches])[:, :T]
    return np.where(valid[:, :T].reshape(valid.shape[0], T, *(1,) * (x.ndim - 2)), x, 0).astype(x.dtype)

  return {k: gather(k) for k in batches[0]}, {k: np.concatenate([e[k] for e in per_episode]) for k in per_episode[0]}


def collect_episodes(env, run_chunk, inputs: dict, snapshot_cycle, num_envs: int, episode_length: int,
                     min_transitions: int, rng, label: str) -> tuple[dict, np.ndarray]:
  """`collect` with episode k driven by snapshot snapshot_cycle[k % len(snapshot_cycle)] (`inputs['snapshot']`)
  until every entry of the cycle drove one -> (fields [N, T, ...], snapshot [N]), sorted by snapshot index (stable:
  in training order, then in rollout order)."""
  snapshot_cycle = np.asarray(snapshot_cycle, np.int32)
  out, per_episode = collect(env, run_chunk, inputs, lambda k: {"snapshot": snapshot_cycle[k % len(snapshot_cycle)]},
                             num_envs, episode_length, min_transitions, rng, label, min_episodes=len(snapshot_cycle))
  order = np.argsort(per_episode["snapshot"], kind="stable")
  return {k: v[order] for k, v in out.items()}, per_episode["snapshot"][order]


# -------------------------------------------------------------------------------------- levels

class Generator:
  """Builds (or loads) each level's dataset once; levels call `dataset(other)` for their inputs."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    self.run_dir = run_dir(workdir, config.env)
    self.env_name = config.env
    self.backend = config.backend or envs.default_backend(config.env)
    self.env_kwargs = dict(config.env_kwargs)  # recorded in every dataset's metadata; evaluation rebuilds the env
    self.env = envs.make(self.env_name, self.backend, **self.env_kwargs)
    self._datasets: dict[str, Trajectories] = {}
    self._snapshots: list[Snapshot] | None = None
    self._chunks: dict[bool, Callable] = {}  # deterministic -> the compiled-once episode chunk
    self._policy_params = None  # the snapshots' (normaliser, policy) params stacked [S, ...]
    self.built: list[str] = []  # levels generated (not loaded) by this process, in order

  @property
  def snapshots(self) -> list[Snapshot]:
    if self._snapshots is None:
      self._snapshots = train_ppo(self.env, self.config.ppo, self.run_dir, seed=self.config.seed,
                                  episode_length=self.config.episode_length)
    return self._snapshots

  def path(self, level: str) -> str:
    return dataset_path(self.workdir, self.env_name, level)

  def dataset(self, level: str) -> Trajectories:
    if level not in self._datasets:
      path = self.path(level)
      if os.path.exists(path):
        print(f"[data] {path} exists; skipping", flush=True)
        self._datasets[level] = Trajectories.load(path)
      else:
        t0 = time.perf_counter()
        trajs = LEVELS.get(level)(self)
        trajs.save(path)
        self.built.append(level)
        r = trajs.returns()
        print(f"[data] wrote {path}: {trajs.num_trajectories} episodes, {trajs.num_transitions} transitions, "
              f"return {r.mean():.1f} ± {r.std():.1f} ({format_seconds(time.perf_counter() - t0)})", flush=True)
        self._datasets[level] = trajs
    return self._datasets[level]

  def snapshot_returns(self) -> np.ndarray:
    """[num_snapshots] the returns the expert and medium snapshots are chosen by (`config.select_levels_by`)."""
    return np.asarray(SELECTION_RETURNS.get(self.config.select_levels_by)(self), np.float64)

  def mode_returns(self) -> np.ndarray:
    """Mean return of `mode_eval_episodes` episodes per snapshot acting with the policy's mode (cached)."""
    path = os.path.join(self.run_dir, MODE_RETURNS)
    steps = [str(s.step) for s in self.snapshots]
    cached = {}
    if os.path.exists(path):
      with open(path) as f:
        cached = json.load(f)
    if not set(steps) <= set(cached):
      n, num = self.config.mode_eval_episodes, len(self.snapshots)
      t0 = time.perf_counter()
      inputs = dict(self.policy_inputs(random_actions=False), snapshot=np.repeat(np.arange(num, dtype=np.int32), n))
      out = run_episodes(self.env, self.episode_chunk(deterministic=True), inputs, num * n, self.config.episode_length,
                         jax.random.PRNGKey(self.config.seed))
      returns = np.where(out["valid"], out["rewards"], 0).sum(1).reshape(num, n).mean(1)
      cached = {step: float(r) for step, r in zip(steps, returns, strict=True)}
      atomic_write_bytes(path, json.dumps(cached, indent=1).encode())
      print(f"[data] mode returns of {num} snapshots x {n} episodes ({format_seconds(time.perf_counter() - t0)}): "
            + ", ".join(f"{s}: {cached[s]:.0f}" for s in steps), flush=True)
    return np.array([cached[s] for s in steps])

  def expert_index(self) -> int:
    if self.config.expert_snapshot == "final":
      return len(self.snapshots) - 1
    return int(np.argmax(self.snapshot_returns()))

  def medium_index(self) -> int:
    """The snapshot before the expert whose return is closest to random + f (expert - random)."""
    returns = self.snapshot_returns()
    expert = self.expert_index()
    random_return = float(self.dataset("random").returns().mean())
    target = random_return + self.config.medium_fraction * (returns[expert] - random_return)
    candidates = range(expert) if expert > 0 else range(1)
    return min(candidates, key=lambda i: abs(returns[i] - target))

  def episode_chunk(self, deterministic: bool) -> Callable:
    """The jit'd chunk of snapshot-driven episodes, one per action mode, shared by every batch and level."""
    if deterministic not in self._chunks:
      act = make_snapshot_act(make_policy_factory(self.env, self.config.ppo), deterministic)
      self._chunks[deterministic] = make_episode_chunk(self.env, act, self.config.episode_length)
    return self._chunks[deterministic]

  def policy_inputs(self, random_actions: bool) -> dict:
    """`make_snapshot_act` inputs less the per-episode `snapshot` index."""
    if self._policy_params is None:
      self._policy_params = stack_snapshots(self.snapshots)[:2]  # the value params do not act
    return dict(params=self._policy_params, random=np.bool_(random_actions))

  def rollout(self, level: str, snapshot_cycle, random_actions: bool = False) -> Trajectories:
    """Whole episodes (`collect_episodes`), episode k driven by snapshot snapshot_cycle[k % len(snapshot_cycle)]."""
    cfg = self.config
    rng = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), zlib.crc32(level.encode()) % 2**31)
    out, snapshot = collect_episodes(
        self.env, self.episode_chunk(cfg.policy == "deterministic"), self.policy_inputs(random_actions),
        snapshot_cycle, cfg.rollout_envs, cfg.episode_length, cfg.transitions_per_level, rng, level)
    steps = [-1 if random_actions else self.snapshots[i].step for i in snapshot]
    trajs = Trajectories(out["observations"], out["actions"], out["rewards"], out["terminals"], out["timeouts"],
                         out["valid"].sum(1).astype(np.int32), self.metadata(level, [level] * len(steps), steps))
    trajs.refresh_level_returns()
    return trajs

  def metadata(self, level: str, policy_levels: list[str], policy_steps: list[int]) -> dict:
    """Dataset metadata; level_returns are filled in from the trajectories."""
    cfg = self.config
    out = dict(env=self.env_name, env_kwargs=dict(self.env_kwargs), backend=self.backend, dataset=level,
               observation_layout=envs.observation_layout(self.env_name), policy_levels=list(policy_levels),
               policy_steps=[int(s) for s in policy_steps], seed=int(cfg.seed),
               version=gdt.__version__, source="brax", episode_length=int(cfg.episode_length),
               behaviour_policy=cfg.policy, ppo=json.loads(json.dumps(cfg.ppo.to_dict())))
    if level != "random":
      out.update(expert_step=self.snapshots[self.expert_index()].step, select_levels_by=cfg.select_levels_by,
                 snapshot_eval_returns={str(s.step): s.eval_return for s in self.snapshots},
                 snapshot_selection_returns={str(s.step): float(r) for s, r in zip(self.snapshots,
                                                                                   self.snapshot_returns(), strict=True)})
    if level not in ("random", "expert"):
      out.update(medium_step=self.snapshots[self.medium_index()].step, medium_fraction=float(cfg.medium_fraction))
    if level == "medium-replay":
      out["medium_replay_note"] = MEDIUM_REPLAY_NOTE
    # [{from_step, time}] per PPO restart after a kill, [] when uninterrupted: a resumed PPO run is not bitwise the
    # uninterrupted seed's, so neither are data drawn from its snapshots.
    out["ppo_resumes"] = ppo_resumes(self.run_dir)
    return out


SELECTION_RETURNS: Registry[Callable[[Generator], np.ndarray]] = Registry("snapshot return for level selection")
SELECTION_RETURNS.register("mode", Generator.mode_returns)
SELECTION_RETURNS.register("ppo_eval", lambda g: [s.eval_return for s in g.snapshots])

LEVELS: Registry[Callable[[Generator], Trajectories]] = Registry("dataset level")


@LEVELS.register("random")
def _random(g: Generator) -> Trajectories:
  return g.rollout("random", [0], random_actions=True)


@LEVELS.register("expert")
def _expert(g: Generator) -> Trajectories:
  return g.rollout("expert", [g.expert_index()])


@LEVELS.register("medium")
def _medium(g: Generator) -> Trajectories:
  return g.rollout("medium", [g.medium_index()])


@LEVELS.register("medium-replay")
def _medium_replay(g: Generator) -> Trajectories:
  """Equal shares of episodes (round robin, at least one each) for snapshots 0..medium, in training order."""
  return g.rollout("medium-replay", np.arange(g.medium_index() + 1))


@LEVELS.register("medium-expert")
def _medium_expert(g: Generator) -> Trajectories:
  medium, expert = g.dataset("medium"), g.dataset("expert")
  metadata = g.metadata("medium-expert", medium.metadata["policy_levels"] + expert.metadata["policy_levels"],
                        medium.metadata["policy_steps"] + expert.metadata["policy_steps"])
  return Trajectories.concatenate([medium, expert], metadata=metadata)


# ------------------------------------------------------------------------------------- driver

def summary_table(generator: Generator, levels) -> str:
  """Per level: episodes, transitions, mean episode length, returns and the mean x-velocity per step (what a
  dataset's behaviour does: e.g. an "expert" that stands still)."""
  rows = ["| level | episodes | transitions | mean length | return mean ± std | min | max | x-velocity per step |",
          "|---|---|---|---|---|---|---|---|"]
  for level in levels:
    trajs = generator.dataset(level)
    r = trajs.returns()
    rows.append(f"| {level} | {trajs.num_trajectories} | {trajs.num_transitions} | "
                f"{trajs.num_transitions / trajs.num_trajectories:.0f} | {r.mean():.1f} ± {r.std():.1f} "
                f"| {r.min():.1f} | {r.max():.1f} | {mean_x_velocity(trajs)} |")
  return "\n".join(rows)


def mean_x_velocity(trajs: Trajectories) -> str:
  """The mean x-velocity over every step, '-' where the env's observation has none."""
  try:
    v = hindsight.feature_values(trajs, "x_velocity")
  except KeyError:
    return "-"
  return f"{float(np.asarray(v)[trajs.mask()].mean()):.2f} m/s"


def run_dir(workdir: str, env: str) -> str:
  return os.path.join(workdir, RUNS_DIR, env)


def validate_config(config) -> None:
  """Refuses, naming the field, a data config that could not generate, before anything is written: every field's
  type and range, unknown and missing fields (`data.FIELDS`, the rules beside the defaults), names the code must know,
  the devices, and values that cannot work together (`data.conflicts`)."""
  check_fields(config, {**data_configs.FIELDS, **data_configs.env_option_fields(config.env)},
               defaults="experiments/configs/data.py")

  def known(field: str, getter, name) -> None:
    try:
      getter(name)
    except KeyError as e:
      raise ValueError(f"config field {field!r}: {e.args[0]}") from None

  known("env", envs.ENVS.get, config.env)
  if config.env not in data_configs.PPO_FULL:
    raise ValueError(f"config field 'env': {config.env!r} has no PPO settings in experiments/configs/data.py "
                     f"(PPO_FULL: {', '.join(sorted(data_configs.PPO_FULL))})")
  if config.backend:
    offered = envs.offered_backends(config.env)
    if config.backend not in offered:
      raise ValueError(f"config field 'backend': {config.env} offers {', '.join(offered)}, got {config.backend!r}")
  known("preset", data_configs.PRESETS.get, config.preset)
  for level in config.levels:
    known("levels", LEVELS.get, level)
  known("select_levels_by", SELECTION_RETURNS.get, config.select_levels_by)
  devices = jax.local_device_count()
  found = data_configs.conflicts(config)
  if config.ppo.num_envs % devices:
    found.append(("ppo.num_envs", f"{config.ppo.num_envs} must be a multiple of the {devices} local devices"))
  if found:
    raise ValueError("; ".join(f"config field {field!r}: {why}" for field, why in found))


def generate(config, workdir: str) -> Generator:
  """Runs every stage not already done for `config` in `workdir`; returns the Generator (datasets loaded).

  Holds `workdir`'s lock throughout (one writer: every env's run shares datasets/ and summary.md) and first deletes
  the temp files of writes a killed run interrupted.
  """
  validate_config(config)
  with WorkdirLock(workdir):
    remove_stale_temp_files(workdir)
    return _generate(config, workdir)


def _generate(config, workdir: str) -> Generator:
  prepare_workdir(run_dir(workdir, config.env), config)
  generator = Generator(config, workdir)
  for level in config.levels:
    generator.dataset(level)
  section = (f"## {config.env} ({generator.backend}, preset {config.preset}, seed {config.seed}, "
             f"{config.policy} behaviour policy)\n\n{summary_table(generator, config.levels)}\n")
  atomic_write_bytes(os.path.join(generator.run_dir, SUMMARY), section.encode())
  sections = [open(p).read() for p in sorted(glob.glob(os.path.join(workdir, RUNS_DIR, "*", SUMMARY)))]
  atomic_write_bytes(os.path.join(workdir, SUMMARY), ("# Dataset returns\n\n" + "\n".join(sections)).encode())
  print(section, flush=True)
  return generator
