"""GDT training, read as a pipeline: data -> targets -> labels -> sampler -> model -> train -> evaluate -> tables.

`train_and_evaluate` loads the dataset, holds out the best/middle targets (`gdt.targets`), computes the run's
`Labels` (bins over the training trajectories) and relabels the training data once, keeps it on device, samples
K-step windows inside the jit, trains the GDTPolicy on the core trainer (`gdt.core.trainer`: scanned data-parallel
steps, orbax checkpoints, exact resume), then evaluates the saved policy on targets built from its own labels.
`train_and_evaluate_seeds` does the same for N seeds of one config in one process, their train states vmapped.

Conventions (gdt_reference.md §5.3, §8.7): windows are LEFT-padded to K with zeros and a mask that is True on
real steps; states are normalised with the training trajectories' mean/std (std + 1e-6) and padding stays 0.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import gdt_base  # the config's fields and their rules, beside the defaults
from gdt import checkpoint as ckpt
from gdt import envs, evaluate, hindsight, targets
from gdt import gym_eval  # noqa: F401  registers the Gymnasium evaluation backends
from gdt.conditioning import CONDITIONINGS, HISTOGRAM_INPUTS, Labels
from gdt.core import checkpoint as core_ckpt
from gdt.core.cli import check_fields
from gdt.core.trainer import DROPOUT_PRNGS, OPTIMIZERS, Trainer, train_loop, train_loop_seeds
from gdt.core.transformer import MATMULS
from gdt.core.workdir import (WorkdirLock, atomic_write_bytes, config_to_dict, format_seconds, prepare_workdir,
                              remove_stale_temp_files)
from gdt.data import DatasetError, Trajectories, dataset_path
from gdt.models import GDTPolicy


def validate_config(config) -> None:
  """Refuses, naming the field, a config that could not train and evaluate; runs before anything is loaded or
  written. Every field's type and range, unknown and missing fields (`gdt_base.FIELDS`, the rules beside the
  defaults), names the code must know (registries, the env's observation layout), the devices, and values that
  cannot work together (`gdt_base.conflicts`)."""
  check_fields(config, gdt_base.FIELDS, defaults="experiments/configs/gdt_base.py")
  _get("env", envs.ENVS.get, config.env)
  _get("conditioning", CONDITIONINGS.get, config.conditioning)
  metadata = {"env": config.env, "observation_layout": envs.observation_layout(config.env)}
  for field, name in _features(config):
    _get(field, lambda n: hindsight.get_feature(n, metadata), name)
  _get("train.optimizer", OPTIMIZERS.get, config.train.optimizer)
  _get("model.matmul_dtype", MATMULS.get, config.model.matmul_dtype)
  _get("model.histogram_input", HISTOGRAM_INPUTS.get, config.model.histogram_input)
  _check(config.train.dropout_prng in DROPOUT_PRNGS, "train.dropout_prng",
         f"must be one of {DROPOUT_PRNGS}, got {config.train.dropout_prng!r}")
  _get("eval.schedule", evaluate.SCHEDULES.get, config.eval.schedule)
  if config.eval.synthetic:
    _get("eval.synthetic", targets.SYNTHETIC.get, config.eval.synthetic)
  layout = envs.observation_layout(config.env)
  for env, _, _ in extra_datasets(config):
    _get("extra_datasets", envs.ENVS.get, env)
    _check(envs.observation_layout(env) == layout, "extra_datasets",
           f"{env!r} observes {envs.observation_layout(env)} but {config.env!r} observes {layout}: their "
           "trajectories cannot share one policy's inputs")
  devices = jax.local_device_count()
  _check(config.train.batch_size % devices == 0, "train.batch_size",
         f"{config.train.batch_size} must be a multiple of the {devices} local devices")
  found = gdt_base.conflicts(config)
  if found:
    raise ValueError("; ".join(f"config field {field!r}: {why}" for field, why in found))


def extra_datasets(config) -> list[tuple[str, str, str]]:
  """(env, dataset, data_dir) of each `extra_datasets` entry ('env:dataset' or 'env:dataset@DIR', DIR relative to
  data_dir); raises naming the field on a malformed entry."""
  out = []
  for entry in config.extra_datasets:
    name, _, where = entry.partition("@")
    env, sep, dataset = name.partition(":")
    _check(bool(sep and env and dataset), "extra_datasets",
           f"entry {entry!r} is not 'env:dataset' or 'env:dataset@DIR'")
    out.append((env, dataset, os.path.normpath(os.path.join(config.data_dir, where)) if where else config.data_dir))
  return out


def dataset_paths(config) -> list[tuple[str, str]]:
  """(env, path) of the config's dataset, then of each of `extra_datasets`."""
  return [(config.env, dataset_path(config.data_dir, config.env, config.dataset))] + [
      (env, dataset_path(where, env, dataset)) for env, dataset, where in extra_datasets(config)]


def validate_dataset(config, trajs: Trajectories, path: str) -> None:
  """The dataset at `path` can train and evaluate `config`: its env, every feature (conditioning and scored), the
  best/middle held-out targets (disjoint, leaving >= 2 training trajectories; per task), a backend that can
  evaluate it, and the synthetic targets' tasks."""
  env = trajs.metadata.get("env")
  _check(env == config.env, "env", f"config says {config.env!r} but {path} holds {env!r} data")
  _validate_loaded(config, trajs, path)


def _validate_loaded(config, trajs: Trajectories, path: str) -> None:
  first = trajs.select([0])
  for field, name in _features(config):
    try:
      hindsight.feature_values(first, name)
    except KeyError as e:
      raise ValueError(f"config field {field!r}: {e.args[0]} ({path})") from None
  best_k, middle_k = config.eval.best_k, config.eval.middle_k
  held_out = best_k + middle_k
  num_tasks = len(trajs.task_specs())
  _check(trajs.num_trajectories > num_tasks * held_out + 1, "eval.best_k/middle_k",
         f"{held_out} held-out targets{' per task' if num_tasks > 1 else ''} leave too little training data in "
         f"{path} ({trajs.num_trajectories} trajectories; at least 2 must remain)")
  try:
    targets.split_targets(trajs, best_k, middle_k, config.eval.middle_quantile)
  except ValueError as e:
    raise ValueError(f"config field 'eval.best_k/middle_k': {e} ({path})") from None
  backend = trajs.metadata.get("backend", envs.default_backend(config.env))
  if backend not in evaluate.EVALUATORS:
    raise DatasetError(f"{path}: metadata 'backend' {backend!r} cannot be evaluated (known: "
                       f"{', '.join(evaluate.EVALUATORS.names())}); the run would fail after training")
  if config.eval.synthetic in ("mixture", "twin"):
    if best_k + middle_k == 0:
      raise ValueError(f"config field 'eval.best_k/middle_k': {config.eval.synthetic!r} targets mix held-out targets; "
                       "hold some out")
    if config.eval.synthetic == "twin" and not (best_k and middle_k):
      raise ValueError("config field 'eval.best_k/middle_k': 'twin' targets mix best targets to match middle ones; "
                       "both must be at least 1")
    try:
      targets.mixture_parts(config.eval, list(trajs.task_specs()))
      if config.eval.synthetic == "twin":
        targets.twin_task(config.eval, list(trajs.task_specs()))
    except ValueError as e:
      raise ValueError(f"config field {e} ({path})") from None


def _features(config) -> list[tuple[str, str]]:
  """(field, feature name) of the conditioning feature and every scored one."""
  return [("feature", config.feature)] + [("eval.score_features", f) for f in config.eval.score_features]


def _check(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ValueError(f"config field {field!r}: {message}")


def _get(field: str, getter, name):
  try:
    return getter(name)
  except KeyError as e:
    raise ValueError(f"config field {field!r}: {e.args[0]}") from None


# The data a workdir was trained on: resuming on other data would mix two datasets in one run.
DATASET_FILE = "dataset.json"


def dataset_fingerprint(path: str) -> dict:
  """{path (absolute), bytes, sha256} of a dataset file."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      digest.update(block)
  return {"path": os.path.abspath(path), "bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def check_dataset(workdir: str, fingerprint: dict) -> None:
  """Refuses `workdir` if its recorded dataset (DATASET_FILE) is not the file of `fingerprint`; writes nothing."""
  recorded_path = os.path.join(workdir, DATASET_FILE)
  if not os.path.exists(recorded_path):
    return
  try:
    with open(recorded_path) as f:
      recorded = json.load(f)
    sha = str(recorded["sha256"])
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{recorded_path} is unreadable ({type(e).__name__}: {e}): cannot check which dataset {workdir} "
                     "was trained on; restore the file or use a new --workdir") from None
  if sha != fingerprint["sha256"]:
    raise ValueError(
        f"{workdir} was trained on {recorded.get('path', '?')} (sha256 {sha[:16]}, {recorded.get('bytes', '?')} "
        f"bytes) but the dataset is now {fingerprint['path']} (sha256 {fingerprint['sha256'][:16]}, "
        f"{fingerprint['bytes']} bytes); resuming would mix two datasets in one run: use a new --workdir, or put the "
        "recorded dataset back")


def record_dataset(workdir: str, fingerprint: dict, resumed: bool, log: Callable[[str], None] = print) -> None:
  """Writes DATASET_FILE on a workdir's first run (`check_dataset` has passed; an existing record is kept)."""
  recorded_path = os.path.join(workdir, DATASET_FILE)
  if os.path.exists(recorded_path):
    return
  if resumed:  # a workdir from before the record existed (or whose record was deleted)
    log(f"[train] {workdir} has checkpoints but no {DATASET_FILE}: recording {fingerprint['path']} now; the data of "
        "its earlier steps cannot be checked")
  atomic_write_bytes(recorded_path, (json.dumps(fingerprint, indent=2, sort_keys=True) + "\n").encode())


# ----------------------------------------------------------------------------------------------------------------
# Data: relabelled once, kept on device.


@flax.struct.dataclass
class DeviceData:
  """All training trajectories, padded: states [N,T,S] (normalised, 0 at padding), actions [N,T,A],
  cond [N,T,C] (z_t; zeros when nothing is precomputed), lengths [N] int32, sample_logits [N]."""
  states: jax.Array
  actions: jax.Array
  cond: jax.Array
  lengths: jax.Array
  sample_logits: jax.Array
  row_fields = ("states", "actions", "cond")  # split over the devices with train.shard_data


@dataclasses.dataclass(frozen=True)
class PreparedData:
  data: DeviceData  # numpy arrays; the trainer places them on the mesh
  state_mean: np.ndarray  # [S]
  state_std: np.ndarray  # [S]
  labels: Labels  # how z_t is computed (bins over the statistics' trajectories)


def statistics_trajectories(trajs: Trajectories, config, train_indices) -> Trajectories:
  """The trajectories normalisation statistics and every bin grid come from: the training ones, or all of them
  with `stats_include_targets_like_reference` (gdt_reference.md §8.2)."""
  return trajs if config.stats_include_targets_like_reference else trajs.select(np.asarray(train_indices))


def prepare_data(trajs: Trajectories, config, train_indices: np.ndarray | None = None) -> PreparedData:
  """Normalisation statistics and the run's `Labels` (bins over the training trajectories unless the config's
  `stats_include_targets_like_reference`), labels z_t, and the padded training arrays."""
  train_indices = np.arange(trajs.num_trajectories) if train_indices is None else np.asarray(train_indices)
  stats = statistics_trajectories(trajs, config, train_indices)
  mask = stats.mask()
  valid = stats.observations[mask]
  state_mean = valid.mean(0).astype(np.float32)
  state_std = (valid.std(0) + 1e-6).astype(np.float32)
  # Every conditioning gets the same feature grid: CDT's bins and the evaluation's W1 grid for all methods.
  edges = hindsight.bin_edges(hindsight.feature_values(stats, config.feature), mask, config.num_bins)
  labels = Labels(config.conditioning, config.feature, edges, config.rtg_scale, config.gamma)
  train = trajs.select(train_indices)
  tmask = train.mask()
  states = np.where(tmask[..., None], (train.observations - state_mean) / state_std, 0.0).astype(np.float32)
  lengths = train.lengths.astype(np.int32)
  weights = np.ones_like(lengths, np.float64) if config.train.uniform_traj_sampling else lengths.astype(np.float64)
  data = DeviceData(
      states=states,
      actions=np.where(tmask[..., None], train.actions, 0.0).astype(np.float32),
      cond=labels.relabel(hindsight.feature_values(train, config.feature), tmask),
      lengths=lengths,
      sample_logits=np.log(weights / weights.sum()).astype(np.float32))
  return PreparedData(data, state_mean, state_std, labels)


@flax.struct.dataclass
class Batch:
  """K-step windows: cond [B,K,C] (or the BDT encoder dict), states [B,K,S], actions [B,K,A],
  timesteps [B,K] int32, mask [B,K] bool (left padding False)."""
  cond: Any
  states: jax.Array
  actions: jax.Array
  timesteps: jax.Array
  mask: jax.Array


def sample_batch(data: DeviceData, rng: jax.Array, batch_size: int, context_length: int, max_timestep: int,
                 encoder_horizon: int | None = None, episode_start_fraction: float = 0.0) -> Batch:
  """Trajectory ~ softmax(sample_logits), start ~ U{0..len-1}, window [start, min(start+K, len)) left-padded to K.

  With `encoder_horizon` H the cond is the BDT encoder input {'states','timesteps','mask'} of length K+H-1:
  the window plus the H-1 steps after it (masked beyond the trajectory's end). With `episode_start_fraction` p > 0
  each window starts at step 0 with probability p (else as above); p = 0 draws exactly the windows above.
  """
  k_traj, k_start = jax.random.split(rng)
  t_max = data.states.shape[1]
  idx = jax.random.categorical(k_traj, data.sample_logits, shape=(batch_size,))
  length = data.lengths[idx]
  if episode_start_fraction > 0:
    k_start, k_anchor = jax.random.split(k_start)
  start = jax.random.randint(k_start, (batch_size,), 0, length)
  if episode_start_fraction > 0:
    start = jnp.where(jax.random.bernoulli(k_anchor, episode_start_fraction, (batch_size,)), 0, start)
  end = jnp.minimum(start + context_length, length)
  width = context_length + (encoder_horizon - 1 if encoder_horizon else 0)
  t = end[:, None] - context_length + jnp.arange(width)[None]  # [B, width]
  valid = (t >= start[:, None]) & (t < length[:, None])
  tc = jnp.clip(t, 0, t_max - 1)
  rows = idx[:, None]
  states = jnp.where(valid[..., None], data.states[rows, tc], 0.0)
  timesteps = jnp.where(valid, jnp.minimum(tc, max_timestep - 1), 0).astype(jnp.int32)
  k = context_length
  w_valid, w_tc = valid[:, :k], tc[:, :k]
  actions = jnp.where(w_valid[..., None], data.actions[rows, w_tc], 0.0)
  if encoder_horizon:
    cond = {"states": states, "timesteps": timesteps, "mask": valid}
  else:
    cond = jnp.where(w_valid[..., None], data.cond[rows, w_tc], 0.0)
  return Batch(cond=cond, states=states[:, :k], actions=actions, timesteps=timesteps[:, :k], mask=w_valid)


# ----------------------------------------------------------------------------------------------------------------
# Loss and the model on the core trainer.


def masked_action_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean squared error over valid positions x act_dim: pred/target [B,K,A], mask [B,K]."""
  m = mask.astype(pred.dtype)
  se = jnp.sum(jnp.square(pred - target), axis=-1) * m
  return jnp.sum(se) / jnp.maximum(jnp.sum(m) * pred.shape[-1], 1.0)


class GDTTrainer(Trainer):
  """The core trainer with a run's GDTPolicy, its K-step window sampler and the masked action MSE."""

  def __init__(self, config, state_dim: int, act_dim: int, cond_dim: int, devices=None):
    self.config = config
    self.model = GDTPolicy(**ckpt.policy_kwargs(config_to_dict(config), state_dim, act_dim, cond_dim))
    self.encoder_horizon = config.model.encoder_horizon if self.model_reads_demo else None
    self._dims = (state_dim, act_dim, cond_dim)
    t = config.train
    super().__init__(self._init_params, self._sample, self._loss, OPTIMIZERS.get(t.optimizer)(t),
                     dropout_prng=t.dropout_prng, devices=devices, shard_data=t.shard_data)

  @property
  def model_reads_demo(self) -> bool:
    return CONDITIONINGS.get(self.config.conditioning).reads_demo

  def dummy_batch(self, batch_size: int = 1) -> Batch:
    s, a, c = self._dims
    k = self.config.context_length
    b = jnp.zeros
    if self.encoder_horizon:
      w = k + self.encoder_horizon - 1
      cond = {"states": b((batch_size, w, s)), "timesteps": b((batch_size, w), jnp.int32),
              "mask": jnp.ones((batch_size, w), bool)}
    else:
      cond = b((batch_size, k, c))
    return Batch(cond, b((batch_size, k, s)), b((batch_size, k, a)), b((batch_size, k), jnp.int32),
                 jnp.ones((batch_size, k), bool))

  def _init_params(self, rng):
    x = self.dummy_batch()
    return self.model.init({"params": rng}, x.cond, x.states, x.actions, x.timesteps, x.mask,
                           deterministic=True)["params"]

  def _sample(self, data: DeviceData, rng) -> Batch:
    t = self.config.train
    return sample_batch(data, rng, t.batch_size, self.config.context_length, self.config.model.max_timestep,
                        self.encoder_horizon, t.episode_start_fraction)

  def _loss(self, params, batch: Batch, rng) -> jax.Array:
    pred = self.model.apply({"params": params}, batch.cond, batch.states, batch.actions, batch.timesteps,
                            batch.mask, deterministic=False, rngs={"dropout": rng})
    return masked_action_mse(pred, batch.actions, batch.mask)


# ----------------------------------------------------------------------------------------------------------------
# A whole run.


def load_dataset(config) -> tuple[Trajectories, str]:
  """The config's dataset joined with its `extra_datasets` (each file checked: its env, matching observation and
  action sizes, features, held-out targets) -> (trajectories, the paths joined with ' + ')."""
  parts, paths = [], []
  for i, (env, path) in enumerate(dataset_paths(config)):
    if not os.path.exists(path):
      where = os.path.dirname(os.path.dirname(path))
      raise FileNotFoundError(f"dataset {path} not found (config fields data_dir/env/dataset"
                              f"{'' if i == 0 else '/extra_datasets'}); generate it with python -m "
                              f"experiments.generate_data --config=experiments/configs/data.py:env={env} "
                              f"--workdir={where}")
    trajs = Trajectories.load(path)
    held = trajs.metadata.get("env")
    _check(held == env, "env" if i == 0 else "extra_datasets", f"config says {env!r} but {path} holds {held!r} data")
    if parts and (trajs.obs_dim, trajs.act_dim) != (parts[0].obs_dim, parts[0].act_dim):
      raise ValueError(f"config field 'extra_datasets': {path} has obs/action sizes {trajs.obs_dim}/{trajs.act_dim} "
                       f"but {paths[0]} has {parts[0].obs_dim}/{parts[0].act_dim}: one policy cannot read both")
    parts.append(trajs)
    paths.append(path)
  try:
    trajs = parts[0] if len(parts) == 1 else Trajectories.concatenate(parts)
  except ValueError as e:
    raise ValueError(f"config field 'extra_datasets': cannot join {' + '.join(paths)}: {e}") from None
  path = " + ".join(paths)
  _validate_loaded(config, trajs, path)
  return trajs, path


def datasets_fingerprint(config) -> dict:
  """`dataset_fingerprint` of the config's dataset; with `extra_datasets`, of all files together (sha256 over the
  files' digests in order)."""
  prints = [dataset_fingerprint(path) for _, path in dataset_paths(config)]
  if len(prints) == 1:
    return prints[0]
  return {"path": " + ".join(p["path"] for p in prints), "bytes": sum(p["bytes"] for p in prints),
          "sha256": hashlib.sha256("".join(p["sha256"] for p in prints).encode()).hexdigest()}


def train_and_evaluate(config, workdir: str, log: Callable[[str], None] = print):
  """Trains `config` in `workdir` (resuming from its last checkpoint), then evaluates on the held-out targets.

  Returns the `gdt.evaluate.EvalResult` (also written into the workdir).
  """
  return _train_and_evaluate([config], [workdir], log, vmap_seeds=False)[0]


def train_and_evaluate_seeds(config, seeds: Sequence[int], workdirs: Sequence[str],
                             log: Callable[[str], None] = print) -> list:
  """Trains `config` with each of `seeds` in one process, the train states vmapped in one compiled call
  (`gdt.core.trainer.train_loop_seeds`), seed i in `workdirs[i]` exactly as `train_and_evaluate` of `config` with
  `seed=seeds[i]` would write it (config.json, metrics, checkpoints; resumed when every workdir's checkpoints end
  at the same step), then evaluates each seed as that run would. Returns the seeds' `EvalResult`s in order.

  A seed's trajectory equals its single run's up to float rounding: same init, batches and dropout masks, but XLA
  sums a vmapped (batched) matmul in another order than the unbatched one (tests/test_seeds.py bounds the gap).
  """
  if len(seeds) != len(workdirs) or len(set(seeds)) != len(seeds):
    raise ValueError(f"need distinct seeds and one workdir per seed, got seeds {list(seeds)} and {len(workdirs)} "
                     "workdirs")
  configs = []
  for seed in seeds:
    c = copy.deepcopy(config)
    c.seed = int(seed)
    configs.append(c)
  return _train_and_evaluate(configs, list(workdirs), log, vmap_seeds=True)


def _train_and_evaluate(configs: list, workdirs: list[str], log: Callable[[str], None], vmap_seeds: bool) -> list:
  """`configs` (one per seed, alike but for `seed`): every workdir locked and set up, then trained as one state
  (`train_loop`, one config) or as N vmapped ones (`train_loop_seeds`), then every seed evaluated."""
  config = configs[0]
  validate_config(config)
  trajs, path = load_dataset(config)
  fingerprint = datasets_fingerprint(config)
  with contextlib.ExitStack() as locks:
    for c, workdir in zip(configs, workdirs, strict=True):
      locks.enter_context(WorkdirLock(workdir))
      remove_stale_temp_files(workdir, log=log)  # of writes a killed run interrupted
      saved = core_ckpt.latest_meta(workdir)
      check_dataset(workdir, fingerprint)  # before prepare_workdir rewrites config.json
      prepare_workdir(workdir, c, allow_changes=("train.num_steps", "train.shard_data", "eval"),
                      recorded=None if saved is None else saved["config"])
      record_dataset(workdir, fingerprint, resumed=saved is not None, log=log)
    train_idx, target_idx, names = targets.split_targets(trajs, config.eval.best_k, config.eval.middle_k,
                                                           config.eval.middle_quantile)
    prep = prepare_data(trajs, config, train_idx)
    log(f"[train] {path}: {len(train_idx)} training trajectories "
        f"({int(trajs.select(train_idx).lengths.sum())} steps), {len(target_idx)} held-out targets")
    trainer = GDTTrainer(config, trajs.obs_dim, trajs.act_dim, prep.labels.cond_dim)
    backend = trajs.metadata.get("backend", envs.default_backend(config.env))
    metas = [ckpt.policy_meta(config_to_dict(c), trajs.obs_dim, trajs.act_dim, prep.state_mean, prep.state_std,
                              prep.labels, config.env, backend) for c in configs]
    t = config.train
    loop = dict(num_steps=t.num_steps, steps_per_call=t.steps_per_call, checkpoint_every=t.checkpoint_every,
                max_checkpoints=t.max_checkpoints, log=log)
    data = trainer.put_data(prep.data, log=log)
    if vmap_seeds:
      train_loop_seeds(trainer, trainer.init_many([c.seed for c in configs]), data, workdirs, metas=metas, **loop)
    else:
      train_loop(trainer, trainer.init(config.seed), data, workdirs[0], meta=metas[0], **loop)
    return [evaluate_run(c, w, trajs, target_idx, names, log) for c, w in zip(configs, workdirs, strict=True)]


def held_out_targets(config, trajs: Trajectories, target_idx, names, labels: Labels) -> targets.Targets:
  """The held-out targets conditioned with `labels` (the policy's); extra scored features are binned over the same
  trajectories as the labels' feature (`statistics_trajectories`), so every W1 grid of a run is one grid. With
  `eval.synthetic` the synthetic targets built from them follow (`gdt.targets.SYNTHETIC`)."""
  train_idx = np.setdiff1d(np.arange(trajs.num_trajectories), target_idx)
  stats = statistics_trajectories(trajs, config, train_idx)
  score_edges = {name: targets.feature_edges(stats, name, labels.num_bins) for name in config.eval.score_features}
  held_out = targets.trajectory_targets(trajs, target_idx, names, labels, score_edges)
  if not config.eval.synthetic:
    return held_out
  synthetic = targets.SYNTHETIC.get(config.eval.synthetic)(config.eval, held_out, labels)
  return targets.concatenate([held_out, synthetic])


def evaluate_run(config, workdir: str, trajs: Trajectories, target_idx, names, log: Callable[[str], None] = print,
                 out_dir: str | None = None):
  """Rolls out the latest checkpoint on the held-out trajectories `target_idx` (conditioned with the saved
  policy's own labels) and writes `eval_<conditioning>.{npz,json}` and the histogram plots into `out_dir`
  (default `workdir`; e.g. an extra evaluation of a finished run with other eval settings)."""
  policy = ckpt.load_policy(workdir)
  tgts = held_out_targets(config, trajs, target_idx, names, policy.labels)
  t0 = time.perf_counter()
  evaluate_policy = evaluate.EVALUATORS.get(policy.backend)  # Brax, or Gymnasium MuJoCo for D4RL/Minari data
  result = evaluate_policy(policy, tgts, config.eval, jax.random.PRNGKey(config.seed + 1))
  result.write(out_dir or workdir, config.conditioning)
  log(f"[eval] {len(result.rows)} targets in {format_seconds(time.perf_counter() - t0)}")
  return result
