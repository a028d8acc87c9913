"""GDT training: relabel once, sample K-step windows on device, scanned data-parallel AdamW steps, orbax
checkpoints with exact resume, and the final held-out evaluation (`train_and_evaluate`).

Conventions (gdt_reference.md §5.3, §8.7): windows are LEFT-padded to K with zeros and a mask that is True on
real steps; states are normalised with the training trajectories' mean/std (std + 1e-6) and padding stays 0.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gdt import checkpoint as ckpt
from gdt import envs, evaluate, hindsight
from gdt.data import Trajectories, dataset_path
from gdt.workdir import MetricWriter, Progress, config_to_dict, format_seconds, prepare_workdir

DATA_AXIS = "data"
DROPOUT_PRNGS = ("threefry", "rbg", "unsafe_rbg")



def validate_config(config) -> None:
  """Fails fast, naming the field, on anything that would otherwise fail after data loading or compiling."""
  _get("env", envs.ENVS.get, config.env)
  spec = _get("conditioning", hindsight.CONDITIONING_LABELS.get, config.conditioning)
  if spec.aggregator is not None:
    _get("conditioning -> aggregator", hindsight.AGGREGATORS.get, spec.aggregator)
  layout = envs.observation_layout(config.env)
  if config.feature not in hindsight.FEATURES and config.feature not in layout:
    _get("feature", hindsight.FEATURES.get, config.feature)
  _check(config.context_length > 0, "context_length", f"must be > 0, got {config.context_length}")
  _check(config.num_bins >= 2, "num_bins", f"a histogram needs >= 2 bins, got {config.num_bins}")
  _check(config.rtg_scale > 0, "rtg_scale", f"must be > 0, got {config.rtg_scale}")
  _check(config.train.get("dropout_prng", "threefry") in DROPOUT_PRNGS, "train.dropout_prng",
         f"must be one of {DROPOUT_PRNGS}, got {config.train.get('dropout_prng')!r}")
  _check(0 < config.gamma <= 1, "gamma", f"must be in (0, 1], got {config.gamma}")
  _check(not spec.encoder_window or config.model.encoder_horizon >= 1, "model.encoder_horizon",
         f"must be >= 1, got {config.model.encoder_horizon}")
  _check(config.context_length <= config.model.max_timestep, "context_length",
         f"{config.context_length} exceeds model.max_timestep={config.model.max_timestep}")
  t = config.train
  _check(t.batch_size > 0 and t.batch_size % jax.local_device_count() == 0, "train.batch_size",
         f"{t.batch_size} must be a positive multiple of the {jax.local_device_count()} local devices")
  _check(t.num_steps >= 0 and t.steps_per_call > 0, "train.num_steps/steps_per_call",
         f"need num_steps >= 0 and steps_per_call > 0, got {t.num_steps}, {t.steps_per_call}")


def validate_dataset(config, trajs: Trajectories, path: str) -> None:
  """The dataset matches the config: env, feature index, enough trajectories for the held-out targets."""
  env = trajs.metadata.get("env")
  _check(env == config.env, "env", f"config says {config.env!r} but {path} holds {env!r} data")
  if config.feature != "reward":
    try:
      trajs.feature_index(config.feature)
    except KeyError as e:
      raise ValueError(f"config field 'feature': {e.args[0]}") from None
  held_out = config.eval.best_k + config.eval.middle_k
  _check(trajs.num_trajectories > held_out + 1, "eval.best_k/middle_k",
         f"{held_out} held-out targets leave no training data in {path} ({trajs.num_trajectories} trajectories)")


def _check(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ValueError(f"config field {field!r}: {message}")


def _get(field: str, getter, name):
  try:
    return getter(name)
  except KeyError as e:
    raise ValueError(f"config field {field!r}: {e.args[0]}") from None


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


@dataclasses.dataclass(frozen=True)
class PreparedData:
  data: DeviceData  # numpy arrays; `Trainer` places them on the mesh
  state_mean: np.ndarray  # [S]
  state_std: np.ndarray  # [S]
  bin_edges: np.ndarray  # [B+1] histogram bins of the feature (CDT's z_t and the W1 grid)
  cond_dim: int


def relabel(trajs: Trajectories, config, edges: np.ndarray | None) -> np.ndarray:
  """Hindsight labels z_t [N,T,C] of every step (zeros at padding), computed once and vectorised."""
  spec = hindsight.CONDITIONING_LABELS.get(config.conditioning)
  mask = trajs.mask()
  if spec.aggregator is None:
    return np.zeros(mask.shape + (1,), np.float32)
  phi = hindsight.feature_values(trajs, config.feature)
  z = hindsight.AGGREGATORS.get(spec.aggregator)(phi, mask, gamma=config.gamma, edges=edges,
                                                 rtg_scale=config.rtg_scale)
  z = np.asarray(z, np.float32)
  _check(z.shape[-1] == spec.cond_dim(config), "num_bins",
         f"relabelled z_t has width {z.shape[-1]} but the policy expects {spec.cond_dim(config)}")
  return z


def prepare_data(trajs: Trajectories, config, train_indices: np.ndarray | None = None) -> PreparedData:
  """Normalisation statistics and bin edges (over the training trajectories unless the config's
  `stats_include_targets_like_reference`), labels z_t, and the padded training arrays."""
  all_idx = np.arange(trajs.num_trajectories)
  train_indices = all_idx if train_indices is None else np.asarray(train_indices)
  stats = trajs if config.stats_include_targets_like_reference else trajs.select(train_indices)
  mask = stats.mask()
  valid = stats.observations[mask]
  state_mean = valid.mean(0).astype(np.float32)
  state_std = (valid.std(0) + 1e-6).astype(np.float32)
  # Every conditioning gets the same feature grid: CDT's bins and the evaluation's W1 grid for all methods.
  edges = np.asarray(hindsight.bin_edges(hindsight.feature_values(stats, config.feature), mask, config.num_bins),
                     np.float32)
  train = trajs.select(train_indices)
  tmask = train.mask()
  states = np.where(tmask[..., None], (train.observations - state_mean) / state_std, 0.0).astype(np.float32)
  lengths = train.lengths.astype(np.int32)
  weights = np.ones_like(lengths, np.float64) if config.train.uniform_traj_sampling else lengths.astype(np.float64)
  data = DeviceData(
      states=states,
      actions=np.where(tmask[..., None], train.actions, 0.0).astype(np.float32),
      cond=relabel(train, config, edges),
      lengths=lengths,
      sample_logits=np.log(weights / weights.sum()).astype(np.float32))
  cond_dim = hindsight.CONDITIONING_LABELS.get(config.conditioning).cond_dim(config)
  return PreparedData(data, state_mean, state_std, edges, cond_dim)


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
                 encoder_horizon: int | None = None) -> Batch:
  """Trajectory ~ softmax(sample_logits), start ~ U{0..len-1}, window [start, min(start+K, len)) left-padded to K.

  With `encoder_horizon` H the cond is the BDT encoder input {'states','timesteps','mask'} of length K+H-1:
  the window plus the H-1 steps after it (masked beyond the trajectory's end).
  """
  k_traj, k_start = jax.random.split(rng)
  t_max = data.states.shape[1]
  idx = jax.random.categorical(k_traj, data.sample_logits, shape=(batch_size,))
  length = data.lengths[idx]
  start = jax.random.randint(k_start, (batch_size,), 0, length)
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
# Loss, optimiser, train step.


def masked_action_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean squared error over valid positions x act_dim: pred/target [B,K,A], mask [B,K]."""
  m = mask.astype(pred.dtype)
  se = jnp.sum(jnp.square(pred - target), axis=-1) * m
  return jnp.sum(se) / jnp.maximum(jnp.sum(m) * pred.shape[-1], 1.0)


def make_optimizer(train_config) -> optax.GradientTransformation:
  """clip_by_global_norm then AdamW with linear warmup lr * min((step+1)/warmup, 1) (gdt_reference.md §5.1)."""
  lr, warmup = train_config.learning_rate, max(train_config.warmup_steps, 1)

  def schedule(step):
    return lr * jnp.minimum((step + 1) / warmup, 1.0)

  return optax.chain(
      optax.clip_by_global_norm(train_config.grad_clip_norm),
      optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=train_config.weight_decay))


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar
  params: Any
  opt_state: Any
  rng: jax.Array  # raw uint32 key

  def extras(self) -> dict:
    """What besides params a checkpoint needs for an exact resume."""
    return {"step": self.step, "opt_state": self.opt_state, "rng": self.rng}


class Trainer:
  """The model, optimiser and jitted `train_many` of one config, over a 1-axis data Mesh of `devices`.

  Batches are sampled from the global RNG stream (so 1 and N devices see the same windows) and then
  sharded on the data axis; params, optimiser state and the dataset are replicated.
  """

  def __init__(self, config, state_dim: int, act_dim: int, cond_dim: int, devices=None):
    self.config = config
    self.model = ckpt.policy_from_config(config_to_dict(config), state_dim, act_dim, cond_dim)
    self.optimizer = make_optimizer(config.train)
    self.mesh = Mesh(np.asarray(devices if devices is not None else jax.local_devices()), (DATA_AXIS,))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self._compiled: dict[tuple, Any] = {}
    self.compile_seconds = 0.0  # total spent compiling train_many
    spec = hindsight.CONDITIONING_LABELS.get(config.conditioning)
    self._encoder_horizon = config.model.encoder_horizon if spec.encoder_window else None
    self._dims = (state_dim, act_dim, cond_dim)
    self._dropout_prng = config.train.get("dropout_prng", "threefry")  # configs written before the field: threefry

  def dummy_batch(self, batch_size: int = 1) -> Batch:
    s, a, c = self._dims
    k = self.config.context_length
    b = jnp.zeros
    if self._encoder_horizon:
      w = k + self._encoder_horizon - 1
      cond = {"states": b((batch_size, w, s)), "timesteps": b((batch_size, w), jnp.int32),
              "mask": jnp.ones((batch_size, w), bool)}
    else:
      cond = b((batch_size, k, c))
    return Batch(cond, b((batch_size, k, s)), b((batch_size, k, a)), b((batch_size, k), jnp.int32),
                 jnp.ones((batch_size, k), bool))

  def init(self, seed: int) -> TrainState:
    init_rng, train_rng = jax.random.split(jax.random.PRNGKey(seed))
    x = self.dummy_batch()
    params = self.model.init({"params": init_rng}, x.cond, x.states, x.actions, x.timesteps, x.mask,
                             deterministic=True)["params"]
    state = TrainState(jnp.zeros((), jnp.int32), params, self.optimizer.init(params), train_rng)
    return jax.device_put(state, self.replicated)

  def put_data(self, data: DeviceData) -> DeviceData:
    return jax.device_put(jax.tree.map(jnp.asarray, data), self.replicated)

  def loss(self, params, batch: Batch, rng) -> jax.Array:
    if self._dropout_prng != "threefry":  # e.g. 'rbg': cheaper mask bits on CPU
      rng = jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl=self._dropout_prng)
    pred = self.model.apply({"params": params}, batch.cond, batch.states, batch.actions, batch.timesteps,
                            batch.mask, deterministic=False, rngs={"dropout": rng})
    return masked_action_mse(pred, batch.actions, batch.mask)

  def train_step(self, state: TrainState, data: DeviceData) -> tuple[TrainState, dict]:
    """One AdamW step on a freshly sampled batch; pure."""
    rng, k_batch, k_drop = jax.random.split(state.rng, 3)
    t = self.config.train
    batch = sample_batch(data, k_batch, t.batch_size, self.config.context_length, self.config.model.max_timestep,
                         self._encoder_horizon)
    batch = jax.lax.with_sharding_constraint(batch, self.batch_sharding)
    loss, grads = jax.value_and_grad(self.loss)(state.params, batch, k_drop)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return TrainState(state.step + 1, params, opt_state, rng), metrics

  def _train_many(self, state: TrainState, data: DeviceData, num_steps: int) -> tuple[TrainState, dict]:
    state, metrics = jax.lax.scan(lambda s, _: self.train_step(s, data), state, None, length=num_steps)
    out = {k: jnp.mean(v) for k, v in metrics.items()}
    out["final_loss"] = metrics["loss"][-1]
    return state, out

  def compiled(self, state: TrainState, data: DeviceData, num_steps: int):
    """AOT-compiled `train_many` for `num_steps` steps (compile time is then measured apart)."""
    key = (num_steps,) + tuple(x.shape for x in jax.tree.leaves(data))
    if key not in self._compiled:
      fn = jax.jit(functools.partial(self._train_many, num_steps=num_steps), donate_argnums=0,
                   out_shardings=(self.replicated, self.replicated))
      t0 = time.perf_counter()
      self._compiled[key] = fn.lower(state, data).compile()
      self.compile_seconds += time.perf_counter() - t0
    return self._compiled[key]

  def train_many(self, state: TrainState, data: DeviceData, num_steps: int) -> tuple[TrainState, dict]:
    """`num_steps` scanned steps in one call. Blocks on the result: queueing several calls that contain
    collectives without waiting has deadlocked on simulated CPU devices."""
    state, metrics = self.compiled(state, data, num_steps)(state, data)
    return state, jax.device_get(metrics)


# ----------------------------------------------------------------------------------------------------------------
# A whole run.


def load_dataset(config) -> tuple[Trajectories, str]:
  path = dataset_path(config.data_dir, config.env, config.dataset)
  if not os.path.exists(path):
    raise FileNotFoundError(f"dataset {path} not found (config fields data_dir/env/dataset); generate it with "
                            f"python -m experiments.generate_data --config=experiments/configs/data.py:env={config.env} "
                            f"--workdir={config.data_dir}")
  trajs = Trajectories.load(path)
  validate_dataset(config, trajs, path)
  return trajs, path


def held_out_targets(config, trajs: Trajectories, target_idx, names, bin_edges) -> "evaluate.Targets":
  """The evaluation targets of `config`: their open-loop z_t are exactly what `relabel` trains on."""
  return evaluate.trajectory_targets(trajs, target_idx, names, config.feature, bin_edges, config.conditioning,
                                     rtg_scale=config.rtg_scale, gamma=config.gamma,
                                     score_features=tuple(config.eval.score_features))


def train_and_evaluate(config, workdir: str, log: Callable[[str], None] = print):
  """Trains `config` in `workdir` (resuming from its last checkpoint), then evaluates on the held-out targets.

  Returns the `gdt.evaluate.EvalResult` (also written into the workdir).
  """
  validate_config(config)
  trajs, path = load_dataset(config)
  prepare_workdir(workdir, config, allow_changes=("train.num_steps", "eval"))
  train_idx, target_idx, names = evaluate.split_targets(trajs, config.eval.best_k, config.eval.middle_k)
  prep = prepare_data(trajs, config, train_idx)
  targets = held_out_targets(config, trajs, target_idx, names, prep.bin_edges)
  log(f"[train] {path}: {len(train_idx)} training trajectories "
      f"({int(trajs.select(train_idx).lengths.sum())} steps), {trajs.num_trajectories - len(train_idx)} held-out targets")

  trainer = Trainer(config, trajs.obs_dim, trajs.act_dim, prep.cond_dim)
  data = trainer.put_data(prep.data)
  state = trainer.init(config.seed)
  mngr = ckpt.manager(workdir, max_to_keep=config.train.max_checkpoints)
  backend = trajs.metadata.get("backend", envs.default_backend(config.env))
  meta = ckpt.policy_meta(config_to_dict(config), trajs.obs_dim, trajs.act_dim, prep.cond_dim, prep.state_mean,
                          prep.state_std, prep.bin_edges, config.env, backend)
  last = mngr.latest_step()
  if last is not None:
    params, extras = ckpt.restore(mngr, last, state.params, state.extras())
    state = TrainState(extras["step"], params, extras["opt_state"], extras["rng"])
    log(f"[train] resumed from step {last}")
  state = _train(trainer, state, data, config, workdir, mngr, meta, log)
  mngr.close()
  return evaluate_run(config, workdir, targets, log)


def _train(trainer: Trainer, state: TrainState, data: DeviceData, config, workdir: str, mngr, meta: dict,
           log: Callable[[str], None]) -> TrainState:
  """The host loop: scanned calls of `steps_per_call` steps, a progress line and metrics per call,
  a checkpoint every `checkpoint_every` steps and at the end."""
  t = config.train
  step = int(state.step)
  if step >= t.num_steps:
    return state
  writer = MetricWriter(workdir)
  progress = Progress(t.num_steps, start=step, label="[train] ")
  while step < t.num_steps:
    n = min(t.steps_per_call, t.num_steps - step)
    before = trainer.compile_seconds
    fn = trainer.compiled(state, data, n)
    if trainer.compile_seconds > before:
      log(f"[train] compiled train_many({n} steps) in {trainer.compile_seconds - before:.1f}s")
      progress = Progress(t.num_steps, start=step, label="[train] ")  # rates exclude compile time
    t0 = time.perf_counter()
    state, metrics = fn(state, data)
    metrics = jax.device_get(metrics)
    dt = time.perf_counter() - t0
    step += n
    metrics["steps_per_sec"] = n / dt
    writer.write(step, metrics)
    progress.report(step, {"loss": metrics["loss"]})
    if not math.isfinite(float(metrics["loss"])):
      raise FloatingPointError(f"loss became {metrics['loss']} at step {step}; stopping before checkpointing it")
    if step % t.checkpoint_every == 0 or step == t.num_steps:
      ckpt.save(mngr, step, state.params, state.extras(), meta)
  writer.close()
  log(f"[train] done: {step} steps (compile {trainer.compile_seconds:.1f}s)")
  return state


def evaluate_run(config, workdir: str, targets, log: Callable[[str], None] = print):
  """Rolls out the latest checkpoint on the held-out `targets` (`gdt.evaluate.Targets`) and writes
  `eval_<conditioning>.{npz,json}` and the histogram plots into `workdir`."""
  policy = ckpt.load_policy(workdir)
  t0 = time.perf_counter()
  result = evaluate.evaluate_policy(policy, targets, config.eval, jax.random.PRNGKey(config.seed + 1))
  result.write(workdir, config.conditioning)
  log(f"[eval] {len(result.rows)} targets in {format_seconds(time.perf_counter() - t0)}")
  return result
