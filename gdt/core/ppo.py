"""Brax PPO as a source of policy snapshots: training that writes one orbax snapshot per evaluation and resumes.

Layout under a run's workdir (`snapshots/`):
  step_<012d>/params   orbax pytree {'normalizer': RunningStatisticsState fields, 'policy': ..., 'value': ...}
  step_<012d>/meta     JSON {step, eval_return, normalizer_mode}
  resumes.json         [{from_step, time}] one entry per restart from a trained snapshot (absent: none)
  done.json            written once training finished (with the resumes)
Each step directory is written by one orbax save (a temp directory renamed on commit), so a killed run leaves
only whole snapshots (a restart deletes the uncommitted temp directories a kill left); a resumed run starts from
the last one's params and never rewrites earlier ones. A resume is not bitwise the uninterrupted run (optimiser and
env states start afresh), so it is recorded (`ppo_resumes`) and every dataset built from the snapshots carries it.
`Snapshot.params` is brax's (normaliser state, policy params, value params) with numpy leaves.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import time
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from brax.training import types as brax_types
from brax.training.acme import running_statistics
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo_train

from gdt.core import runtime
from gdt.core.workdir import Progress, atomic_write_bytes

SNAPSHOT_DIR = "snapshots"
PPO_DONE = "done.json"
PPO_RESUMES = "resumes.json"
_ORBAX_TMP = ".orbax-checkpoint-tmp"  # orbax's suffix for a save's directory before it is committed
_STEP_DIR = re.compile(r"step_(\d+)")


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """A PPO policy at `step` env steps: params = (normaliser state, policy params, value params)."""
  step: int
  eval_return: float
  params: tuple


def network_factory(ppo_config) -> Callable:
  """brax `make_ppo_networks` with the hidden sizes of a config's `ppo` block."""
  return functools.partial(
      ppo_networks.make_ppo_networks,
      policy_hidden_layer_sizes=tuple(ppo_config.policy_hidden_layer_sizes),
      value_hidden_layer_sizes=tuple(ppo_config.value_hidden_layer_sizes))


def make_policy_factory(env, ppo_config) -> Callable:
  """-> brax `make_policy(params, deterministic)` for `env` (reads observation_size, action_size only)."""
  normalize = running_statistics.normalize if ppo_config.normalize_observations else (lambda x, _: x)
  network = network_factory(ppo_config)(env.observation_size, env.action_size, preprocess_observations_fn=normalize)
  return ppo_networks.make_inference_fn(network)


def ppo_kwargs(ppo_config) -> dict:
  """The `ppo.train` keyword arguments of a config's `ppo` block (network sizes go to the factory)."""
  kwargs = dict(ppo_config)
  for key in ("policy_hidden_layer_sizes", "value_hidden_layer_sizes"):
    kwargs.pop(key)
  return kwargs


def snapshot_path(workdir: str, step: int) -> str:
  """Absolute (orbax refuses relative paths) directory of the snapshot at `step`."""
  return os.path.join(os.path.abspath(workdir), SNAPSHOT_DIR, f"step_{step:012d}")


def _checkpointer() -> ocp.Checkpointer:
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def save_snapshot(workdir: str, snapshot: Snapshot) -> None:
  """Writes `snapshot_path(workdir, snapshot.step)` in one atomic orbax save; refuses to overwrite."""
  normaliser, policy, value = snapshot.params
  # numpy leaves, 0-d included: orbax restores numpy scalars as Python numbers, 0-d arrays as arrays.
  tree = jax.tree.map(np.asarray, {"normalizer": _normaliser_fields(normaliser), "policy": policy, "value": value})
  meta = {"step": int(snapshot.step), "eval_return": float(snapshot.eval_return),
          "normalizer_mode": int(normaliser.mode)}  # a static field of the state, not a leaf
  _checkpointer().save(snapshot_path(workdir, snapshot.step),
                       ocp.args.Composite(params=ocp.args.PyTreeSave(tree), meta=ocp.args.JsonSave(meta)))


def _normaliser_fields(state: running_statistics.RunningStatisticsState) -> dict:
  count = state.count
  if isinstance(count, brax_types.UInt64):
    count = {"hi": count.hi, "lo": count.lo}
  return {"mean": state.mean, "std": state.std, "count": count, "summed_variance": state.summed_variance,
          "std_eps": state.std_eps}


def load_snapshot(path: str) -> Snapshot:
  restored = _checkpointer().restore(path, ocp.args.Composite(params=ocp.args.PyTreeRestore(),
                                                              meta=ocp.args.JsonRestore()))
  tree, meta = restored["params"], restored["meta"]
  fields = dict(tree["normalizer"])
  if isinstance(fields["count"], dict):
    fields["count"] = brax_types.UInt64(**fields["count"])
  normaliser = running_statistics.RunningStatisticsState(**fields, mode=meta["normalizer_mode"])
  return Snapshot(meta["step"], meta["eval_return"], (normaliser, tree["policy"], tree["value"]))


def load_snapshots(workdir: str) -> list[Snapshot]:
  """All snapshots in `workdir/snapshots`, in training order (orbax's uncommitted temp dirs do not match)."""
  root = os.path.join(workdir, SNAPSHOT_DIR)
  names = os.listdir(root) if os.path.isdir(root) else []
  steps = sorted(int(m.group(1)) for m in map(_STEP_DIR.fullmatch, names) if m)
  return [load_snapshot(snapshot_path(workdir, step)) for step in steps]


def stack_snapshots(snapshots: list[Snapshot]) -> Any:
  """Params stacked along a new leading snapshot axis [S, ...] (numpy)."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[s.params for s in snapshots])


def train_ppo(env, ppo_config, workdir: str, *, seed: int, episode_length: int, eval_env=None,
              wrap_env_fn: Callable | None = None) -> list[Snapshot]:
  """Trains (or resumes, or skips) PPO on `env` with a config's `ppo` block; returns the snapshots in order.

  A resumed run restarts from the last snapshot's params with the remaining env steps and evaluations
  (optimiser state and PPO's env states start afresh; its seed is `seed + start step`). `eval_env` (PPO's
  evaluation, hence the snapshots' eval_return; default `env`) and `wrap_env_fn` (brax's training wrapper,
  default time limit + auto-reset + vmap) are passed to brax: a training-only reward or reset scheme.
  """
  snapshots = load_snapshots(workdir)
  done_path = os.path.join(workdir, SNAPSHOT_DIR, PPO_DONE)
  if os.path.exists(done_path):
    print(f"[ppo] done ({len(snapshots)} snapshots in {workdir}/{SNAPSHOT_DIR}); skipping training", flush=True)
    return snapshots
  _remove_uncommitted_snapshots(workdir)
  total = ppo_config.num_timesteps
  start = snapshots[-1].step if snapshots else 0
  t0 = time.perf_counter()
  if start >= total:  # killed after the final snapshot, before the done marker: nothing is left to train
    return _mark_done(workdir, t0)
  runtime.install_brax_compat()
  evals_left = max(1, round((ppo_config.num_evals - 1) * (total - start) / total))
  if start:  # a restart from step 0 replays the uninterrupted run (same seed, the initial params): not a resume
    print(f"[ppo] resuming from the step-{start} snapshot: {total - start} env steps, {evals_left} evals left "
          "(recorded in every dataset's metadata: the run is no longer the uninterrupted seed's)", flush=True)
    resumes = ppo_resumes(workdir) + [{"from_step": int(start), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    atomic_write_bytes(os.path.join(workdir, SNAPSHOT_DIR, PPO_RESUMES), json.dumps(resumes, indent=1).encode())
  progress = Progress(total=total, start=start, unit="env steps", label="[ppo] ")
  params_at, returns_at = {}, {}

  # brax calls policy_params_fn and progress_fn once per evaluation, in either order; a snapshot is
  # written once both the params and the eval return of a step are known.
  def record(step):
    if step in params_at and step in returns_at and not os.path.exists(snapshot_path(workdir, step)):
      save_snapshot(workdir, Snapshot(step, returns_at[step], params_at.pop(step)))

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

  kwargs = ppo_kwargs(ppo_config)
  kwargs.update(num_timesteps=total - start, num_evals=evals_left + 1, episode_length=episode_length,
                seed=seed + start)
  ppo_train.train(
      environment=env, eval_env=eval_env, wrap_env_fn=wrap_env_fn, network_factory=network_factory(ppo_config),
      progress_fn=progress_fn,
      policy_params_fn=policy_params_fn, restore_params=snapshots[-1].params if snapshots else None, **kwargs)
  return _mark_done(workdir, t0)


def _mark_done(workdir: str, t0: float) -> list[Snapshot]:
  snapshots = load_snapshots(workdir)
  done = {"final_step": snapshots[-1].step, "num_snapshots": len(snapshots), "seconds": time.perf_counter() - t0,
          "resumes": ppo_resumes(workdir)}
  atomic_write_bytes(os.path.join(workdir, SNAPSHOT_DIR, PPO_DONE), json.dumps(done).encode())
  return snapshots


def ppo_resumes(workdir: str) -> list[dict]:
  """[{from_step, time}] of each restart of `workdir`'s PPO from a trained snapshot, in order; [] when it ran
  uninterrupted (or restarted only from its step-0 snapshot, which replays the same run).

    ppo_resumes("workdirs/data/runs/hopper")  # [{'from_step': 163840, 'time': '2026-12-02T00:40:12'}]
  """
  path = os.path.join(workdir, SNAPSHOT_DIR, PPO_RESUMES)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)


def _remove_uncommitted_snapshots(workdir: str) -> None:
  """Deletes the temp directories of snapshot saves a kill interrupted (never read; a later save of the same step
  would replace one, but a resumed run evaluates at other steps)."""
  root = os.path.join(workdir, SNAPSHOT_DIR)
  stale = sorted(n for n in (os.listdir(root) if os.path.isdir(root) else []) if _ORBAX_TMP in n)
  for name in stale:
    shutil.rmtree(os.path.join(root, name))
  if stale:
    print(f"[ppo] removed {len(stale)} uncommitted snapshot save(s) left by an interrupted run: {', '.join(stale)}",
          flush=True)
