"""D4RL-style datasets from Brax: PPO policy snapshots -> random/medium/medium-replay/expert/medium-expert.

Workdir layout (several envs share one): `runs/{env}/` holds config.json, PPO snapshots and the env's
summary.md; `datasets/{env}-{level}.npz` the datasets; `summary.md` every env's table. Stages, each
resumable from its files:
  1. PPO (`brax.training.agents.ppo.train`). Every evaluation writes `runs/{env}/snapshots/step_<n>.pkl`
     (params = (normaliser, policy, value), eval return); `snapshots/done.json` marks the end. A killed
     run restarts from the last snapshot's params (optimiser state and PPO's env states start afresh).
  2. One dataset per level (`gdt.data.Trajectories`). Rollouts are one jit'd `lax.scan` of
     `episode_length` steps over `rollout_envs` envs, each env driven by its own snapshot and reset after
     a terminal (`done`) or `episode_length` steps (timeout); a stream's unfinished last episode is dropped.
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

import dataclasses
import functools
import glob
import json
import os
import pickle
import re
import time
import zlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from brax.training.acme import running_statistics
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo_train

import gdt
from gdt import envs
from gdt.core import runtime
from gdt.data.trajectories import Trajectories, dataset_path
from gdt.core.registry import Registry
from gdt.core.workdir import Progress, atomic_write_bytes, format_seconds, prepare_workdir

SNAPSHOT_DIR = "snapshots"
PPO_DONE = "done.json"
RUNS_DIR = "runs"
SUMMARY = "summary.md"
MODE_RETURNS = "mode_returns.json"
MEDIUM_REPLAY_NOTE = (
    "rollouts of every PPO policy snapshot up to and including the medium one, in training order; "
    "brax PPO does not expose its training batches, so this is not PPO's own replay data")


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """A PPO policy at `step` env steps: params = (normaliser state, policy params, value params)."""
  step: int
  eval_return: float
  params: tuple


# ----------------------------------------------------------------------------------------- PPO

def _network_factory(ppo_config):
  return functools.partial(
      ppo_networks.make_ppo_networks,
      policy_hidden_layer_sizes=tuple(ppo_config.policy_hidden_layer_sizes),
      value_hidden_layer_sizes=tuple(ppo_config.value_hidden_layer_sizes))


def make_policy_factory(env, ppo_config) -> Callable:
  """-> brax `make_policy(params, deterministic)` for `env`, rebuilt without training code."""
  normalize = running_statistics.normalize if ppo_config.normalize_observations else (lambda x, _: x)
  network = _network_factory(ppo_config)(env.observation_size, env.action_size,
                                         preprocess_observations_fn=normalize)
  return ppo_networks.make_inference_fn(network)


def snapshot_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, SNAPSHOT_DIR, f"step_{step:012d}.pkl")


def load_snapshots(workdir: str) -> list[Snapshot]:
  """All snapshots in `workdir/snapshots`, in training order."""
  out = []
  for path in glob.glob(os.path.join(workdir, SNAPSHOT_DIR, "step_*.pkl")):
    if re.fullmatch(r"step_\d+\.pkl", os.path.basename(path)):
      with open(path, "rb") as f:
        out.append(Snapshot(**pickle.load(f)))
  return sorted(out, key=lambda s: s.step)


def _save_snapshot(workdir: str, snapshot: Snapshot) -> None:
  # vars, not dataclasses.asdict: asdict would turn brax's normaliser state into a dict.
  atomic_write_bytes(snapshot_path(workdir, snapshot.step), pickle.dumps(vars(snapshot)))


def ppo_kwargs(ppo_config) -> dict:
  """The `ppo.train` keyword arguments of a config's `ppo` block (network sizes go to the factory)."""
  kwargs = dict(ppo_config)
  for key in ("policy_hidden_layer_sizes", "value_hidden_layer_sizes"):
    kwargs.pop(key)
  return kwargs


def train_ppo(env, config, workdir: str) -> list[Snapshot]:
  """Trains (or resumes, or skips) PPO; returns the snapshots in training order."""
  snapshots = load_snapshots(workdir)
  done_path = os.path.join(workdir, SNAPSHOT_DIR, PPO_DONE)
  if os.path.exists(done_path):
    print(f"[ppo] done ({len(snapshots)} snapshots in {workdir}/{SNAPSHOT_DIR}); skipping training", flush=True)
    return snapshots
  runtime.install_brax_compat()
  ppo = config.ppo
  total = ppo.num_timesteps
  start = snapshots[-1].step if snapshots else 0
  evals_left = max(1, round((ppo.num_evals - 1) * (total - start) / total))
  if start:
    print(f"[ppo] resuming from the step-{start} snapshot: {total - start} env steps, {evals_left} evals left",
          flush=True)
  t0 = time.perf_counter()
  progress = Progress(total=total, start=start, unit="env steps", label="[ppo] ")
  params_at, returns_at = {}, {}

  # brax calls policy_params_fn and progress_fn once per evaluation, in either order; a snapshot is
  # written once both the params and the eval return of a step are known.
  def record(step):
    if step in params_at and step in returns_at and not os.path.exists(snapshot_path(workdir, step)):
      _save_snapshot(workdir, Snapshot(step, returns_at[step], params_at.pop(step)))

  def policy_params_fn(step, make_policy, params):
    del make_policy
    params_at[start + step] = jax.device_get(params)
    record(start + step)

  def progress_fn(step, metrics):
    step = start + step
    returns_at[step] = float(metrics["eval/episode_reward"])
    progress.report(min(step, total), {"eval_return": returns_at[step],
                                       "eval_return_std": metrics["eval/episode_reward_std"]})
    record(step)

  kwargs = ppo_kwargs(ppo)
  kwargs.update(num_timesteps=total - start, num_evals=evals_left + 1, episode_length=config.episode_length,
                seed=config.seed + start)
  ppo_train.train(
      environment=env, network_factory=_network_factory(ppo), progress_fn=progress_fn,
      policy_params_fn=policy_params_fn, restore_params=snapshots[-1].params if snapshots else None, **kwargs)
  snapshots = load_snapshots(workdir)
  atomic_write_bytes(done_path, json.dumps({"final_step": snapshots[-1].step, "num_snapshots": len(snapshots),
                                            "seconds": time.perf_counter() - t0}).encode())
  return snapshots


# ------------------------------------------------------------------------------------ rollouts

def make_rollout_fn(env, make_policy, num_envs: int, episode_length: int, deterministic: bool):
  """-> jit'd fn(stacked_params [S, ...], snapshot_index [num_envs] i32, random_actions bool, rng) -> dict of [num_envs, L].

  Each env runs L = `episode_length` steps driven by snapshot `snapshot_index[i]`, resetting (fresh
  random initial state) after a terminal (`done`) or after `episode_length` steps of an episode
  (timeout). Actions are samples of the PPO policy's distribution (as D4RL's behaviour policies), its
  mode if `deterministic`, or uniform in [-1, 1] if `random_actions` (a traced flag, so the random level
  shares the policy levels' compilation). Returns observations [B, L, obs] (before the step), actions
  [B, L, act], rewards, terminals, timeouts [B, L].
  """

  def act(params, obs, key):
    action, _ = make_policy(params, deterministic=deterministic)(obs[None], key)
    return action[0]

  def run(stacked_params, snapshot_index, random_actions, rng):
    reset_key, step_key = jax.random.split(rng)
    params = jax.tree.map(lambda x: x[snapshot_index], stacked_params)
    state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def body(carry, key):
      state, t = carry
      act_key, uniform_key, reset_key = jax.random.split(key, 3)
      action = jnp.where(random_actions,
                         jax.random.uniform(uniform_key, (num_envs, env.action_size), minval=-1.0, maxval=1.0),
                         jax.vmap(act)(params, state.obs, jax.random.split(act_key, num_envs)))
      next_state = jax.vmap(env.step)(state, action)
      terminal = next_state.done > 0
      timeout = (t + 1 >= episode_length) & ~terminal
      out = dict(observations=state.obs, actions=action, rewards=next_state.reward, terminals=terminal,
                 timeouts=timeout)
      fresh = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
      end = terminal | timeout
      next_state = jax.tree.map(lambda f, n: jnp.where(end.reshape((-1,) + (1,) * (n.ndim - 1)), f, n),
                                fresh, next_state)
      return (next_state, jnp.where(end, 0, t + 1)), out

    _, out = jax.lax.scan(body, (state, jnp.zeros(num_envs, jnp.int32)), jax.random.split(step_key, episode_length))
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out)

  return jax.jit(run)


def rollout_streams(rollout_fn, stacked_params, stream_snapshots: np.ndarray, random_actions: bool, rng,
                    num_envs: int, label: str) -> tuple[dict, np.ndarray]:
  """Runs one stream per entry of `stream_snapshots` [M] (chunks of `num_envs`); drops each stream's
  unfinished last episode. -> flat arrays over the kept steps, and episodes per stream [M]."""
  flat = {}
  episodes = np.zeros(len(stream_snapshots), np.int64)
  n = len(stream_snapshots)
  progress = Progress(total=n, unit="streams", label=f"[rollout {label}] ")
  kept_steps, returns = 0, []
  for c, lo in enumerate(range(0, n, num_envs)):
    index = stream_snapshots[lo:lo + num_envs]
    padded = np.concatenate([index, np.full(num_envs - len(index), index[-1])]).astype(np.int32)
    out = jax.device_get(rollout_fn(stacked_params, padded, random_actions, jax.random.fold_in(rng, c)))
    for i in range(len(index)):
      ends = np.flatnonzero(out["terminals"][i] | out["timeouts"][i])
      episodes[lo + i] = ends.size
      if ends.size:
        for k, v in out.items():
          flat.setdefault(k, []).append(v[i, :ends[-1] + 1])
        starts = np.concatenate([[0], ends[:-1] + 1])
        returns += [out["rewards"][i, a:b + 1].sum() for a, b in zip(starts, ends, strict=True)]
        kept_steps += ends[-1] + 1
    progress.report(min(lo + num_envs, n), {"transitions": kept_steps, "episodes": len(returns),
                                            "mean_return": np.mean(returns) if returns else float("nan")})
  if not flat:
    raise RuntimeError(f"[rollout {label}] no episode finished within {out['rewards'].shape[1]} steps")
  return {k: np.concatenate(v) for k, v in flat.items()}, episodes


def first_episode_returns(rewards, terminals, timeouts) -> np.ndarray:
  """[B, L] stream arrays -> [B]: the return of each stream's first episode (its steps up to its first end)."""
  ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
  ended_before = np.cumsum(ends, axis=1) - ends
  return (np.asarray(rewards) * (ended_before == 0)).sum(axis=1)


def stack_snapshots(snapshots: list[Snapshot]):
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[s.params for s in snapshots])


# -------------------------------------------------------------------------------------- levels

class Generator:
  """Builds (or loads) each level's dataset once; levels call `dataset(other)` for their inputs."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    self.run_dir = run_dir(workdir, config.env)
    self.env_name = config.env
    self.backend = config.backend or envs.default_backend(config.env)
    self.env = envs.make(self.env_name, self.backend)
    self._datasets: dict[str, Trajectories] = {}
    self._snapshots: list[Snapshot] | None = None
    self._rollout_fn = None
    self.built: list[str] = []  # levels generated (not loaded) by this process, in order

  @property
  def snapshots(self) -> list[Snapshot]:
    if self._snapshots is None:
      self._snapshots = train_ppo(self.env, self.config, self.run_dir)
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
      fn = make_rollout_fn(self.env, make_policy_factory(self.env, self.config.ppo), num * n,
                           self.config.episode_length, deterministic=True)
      out = fn(stack_snapshots(self.snapshots), np.repeat(np.arange(num, dtype=np.int32), n), False,
               jax.random.PRNGKey(self.config.seed))
      returns = first_episode_returns(out["rewards"], out["terminals"], out["timeouts"]).reshape(num, n).mean(1)
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

  def rollout(self, level: str, stream_snapshots: np.ndarray, random_actions: bool = False) -> Trajectories:
    """Episodes of one `episode_length`-step stream per entry of `stream_snapshots` (snapshot indices)."""
    cfg = self.config
    if self._rollout_fn is None:
      self._rollout_fn = make_rollout_fn(self.env, make_policy_factory(self.env, cfg.ppo), cfg.rollout_envs,
                                         cfg.episode_length, deterministic=cfg.policy == "deterministic")
    rng = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), zlib.crc32(level.encode()) % 2**31)
    flat, episodes = rollout_streams(self._rollout_fn, stack_snapshots(self.snapshots), stream_snapshots,
                                     random_actions, rng, cfg.rollout_envs, level)
    steps = np.repeat([-1 if random_actions else self.snapshots[i].step for i in stream_snapshots], episodes)
    return Trajectories.from_flat(flat["observations"], flat["actions"], flat["rewards"], flat["terminals"],
                                  flat["timeouts"], self.metadata(level, [level] * len(steps), steps.tolist()))

  def num_streams(self) -> int:
    """Streams of `episode_length` steps for `transitions_per_level` (fewer kept if episodes terminate)."""
    return max(1, int(np.ceil(self.config.transitions_per_level / self.config.episode_length)))

  def metadata(self, level: str, policy_levels: list[str], policy_steps: list[int]) -> dict:
    """Dataset metadata; level_returns are filled in by the Trajectories constructors."""
    cfg = self.config
    out = dict(env=self.env_name, backend=self.backend, dataset=level,
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
    return out


SELECTION_RETURNS: Registry[Callable[[Generator], np.ndarray]] = Registry("snapshot return for level selection")
SELECTION_RETURNS.register("mode", Generator.mode_returns)
SELECTION_RETURNS.register("ppo_eval", lambda g: [s.eval_return for s in g.snapshots])

LEVELS: Registry[Callable[[Generator], Trajectories]] = Registry("dataset level")


@LEVELS.register("random")
def _random(g: Generator) -> Trajectories:
  return g.rollout("random", np.zeros(g.num_streams(), np.int32), random_actions=True)


@LEVELS.register("expert")
def _expert(g: Generator) -> Trajectories:
  return g.rollout("expert", np.full(g.num_streams(), g.expert_index(), np.int32))


@LEVELS.register("medium")
def _medium(g: Generator) -> Trajectories:
  return g.rollout("medium", np.full(g.num_streams(), g.medium_index(), np.int32))


@LEVELS.register("medium-replay")
def _medium_replay(g: Generator) -> Trajectories:
  """Equal shares of streams for snapshots 0..medium, in training order (at least one each)."""
  n_snap = g.medium_index() + 1
  n = max(n_snap, g.num_streams())
  return g.rollout("medium-replay", (np.arange(n) * n_snap // n).astype(np.int32))


@LEVELS.register("medium-expert")
def _medium_expert(g: Generator) -> Trajectories:
  medium, expert = g.dataset("medium"), g.dataset("expert")
  metadata = g.metadata("medium-expert", medium.metadata["policy_levels"] + expert.metadata["policy_levels"],
                        medium.metadata["policy_steps"] + expert.metadata["policy_steps"])
  return Trajectories.concatenate([medium, expert], metadata=metadata)


# ------------------------------------------------------------------------------------- driver

def summary_table(generator: Generator, levels) -> str:
  rows = ["| level | episodes | transitions | return mean ± std | min | max |", "|---|---|---|---|---|---|"]
  for level in levels:
    trajs = generator.dataset(level)
    r = trajs.returns()
    rows.append(f"| {level} | {trajs.num_trajectories} | {trajs.num_transitions} | {r.mean():.1f} ± {r.std():.1f} "
                f"| {r.min():.1f} | {r.max():.1f} |")
  return "\n".join(rows)


def run_dir(workdir: str, env: str) -> str:
  return os.path.join(workdir, RUNS_DIR, env)


def generate(config, workdir: str) -> Generator:
  """Runs every stage not already done for `config` in `workdir`; returns the Generator (datasets loaded)."""
  for level in config.levels:
    LEVELS.get(level)
  SELECTION_RETURNS.get(config.select_levels_by)
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
