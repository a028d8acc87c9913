"""The trainer skeleton every algorithm plugs into: train state, optimizers, scanned AOT steps, mesh, host loop.

An algorithm supplies three pure functions and a model:
  init_params(rng) -> params
  sample(data, rng) -> batch          (a pytree with a leading batch axis, drawn from on-device data)
  loss(params, batch, dropout_rng) -> scalar
`Trainer.train_many` runs `num_steps` AdamW-style steps in one `lax.scan`, AOT-compiled once per shape (compile
time measured apart). Batches are sampled from the global RNG stream and then sharded on the `data` axis of a
Mesh, so 1 and N devices see the same windows; params and optimiser state are replicated, and so is the data unless
`shard_data`: then the data's `row_fields` (its big per-row arrays) are split by rows over the `data` axis, each
device holding 1/N of them and each process placing only its own devices' rows (`distributed.put_rows`); samplers
draw row indices from the unpadded index arrays, so the batches, and the results, are the replicated ones.
`train_loop` is the host loop around it: resume from the workdir's newest intact checkpoint (verified against its
checksums, `gdt.core.checkpoint`), progress, metrics, a divergence guard (non-finite loss; non-finite or exploding
params and gradients: `MAX_PARAM_NORM`, `MAX_GRAD_NORM`), checkpoints, and hooks (e.g. a periodic evaluation).
Seeds in one process (as purejaxrl does): `Trainer.init_many(seeds)` stacks each seed's `init(seed)` on a leading
seed axis, and `train_many` of such a stacked state runs vmapped over that axis with the data shared: every seed
draws its batches and dropout masks from its own RNG stream bit for bit as its single run does, and its params match
its single run's up to float rounding (XLA sums a batched matmul in another order; tests/test_seeds.py bounds it).
`train_loop_seeds` is `train_loop` for the stacked state, writing each seed's workdir as its single run would.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import time
from typing import Any, Callable, Sequence

import flax
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gdt.core import checkpoint as ckpt
from gdt.core.distributed import barrier, put_process_local, put_rows
from gdt.core.registry import Registry
from gdt.core.workdir import MetricWriter, Progress

DATA_AXIS = "data"
DROPOUT_PRNGS = ("threefry", "rbg", "unsafe_rbg")

# The host loop's divergence guard: a call whose final params' global L2 norm, or whose largest per-step gradient
# global norm (before clipping), is not finite or exceeds these stops the run before that state is checkpointed.
# Both sit far above what these models reach (GDT params: 250 at init and after 3000 steps for the CPU size, 360 at
# init for the paper size; gradient norms < 0.4), so only divergence trips them; a model that legitimately grows
# larger sets `trainer.max_param_norm` / `max_grad_norm`.
MAX_PARAM_NORM = 1e6
MAX_GRAD_NORM = 1e6
# The config fields (of a run config's `train` block) a tripped guard names, with their values when it can.
GUARD_FIELDS = ("learning_rate", "grad_clip_norm", "warmup_steps", "batch_size", "weight_decay")

# name -> factory(train_config) -> optax.GradientTransformation
OPTIMIZERS: Registry[Callable[[Any], optax.GradientTransformation]] = Registry("optimizer")


@OPTIMIZERS.register("adamw_warmup")
def adamw_warmup(train_config) -> optax.GradientTransformation:
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

  @classmethod
  def from_extras(cls, params, extras: dict) -> "TrainState":
    return cls(extras["step"], params, extras["opt_state"], extras["rng"])


def _per_key(fn: Callable) -> Callable:
  """`fn(key, *static)` that, vmapped, runs once per key (a loop) instead of through XLA's RngBitGenerator batching
  rule, which draws EVERY key's bits from the first key's stream: vmapped seeds would share dropout masks that
  differ from their single runs'. Unbatched it is the same ops, so single runs are unchanged."""
  def call(key, *static):
    return jax.custom_batching.sequential_vmap(lambda k: fn(k, *static))(key)
  return call


def _per_key_impl(impl):
  """jax's PRNGImpl `impl` (rbg | unsafe_rbg) with its RngBitGenerator-based split and bits made vmap-exact."""
  fold_in = jax.custom_batching.sequential_vmap(impl.fold_in)  # unsafe_rbg's fold_in uses RngBitGenerator too
  return jax.extend.random.define_prng_impl(
      key_shape=impl.key_shape, seed=impl.seed, split=_per_key(impl.split), random_bits=_per_key(impl.random_bits),
      fold_in=fold_in, name=f"{impl.name}_per_key", tag=f"{impl.tag}k")


_DROPOUT_IMPLS = {"rbg": _per_key_impl(jax.extend.random.rbg_prng_impl),
                  "unsafe_rbg": _per_key_impl(jax.extend.random.unsafe_rbg_prng_impl)}


def dropout_key(rng: jax.Array, impl: str) -> jax.Array:
  """A dropout key of PRNG `impl`: 'rbg' draws mask bits with XLA's RngBitGenerator (cheaper on CPU than
  threefry; its masks depend on the device count, threefry's do not). Same bits as jax's `impl`, also under vmap."""
  if impl == "threefry":
    return rng
  return jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl=_DROPOUT_IMPLS[impl])


class Trainer:
  """The optimiser and jitted `train_many` of one model and loss over a 1-axis data Mesh of `devices`."""

  def __init__(self, init_params: Callable, sample: Callable, loss: Callable, optimizer: optax.GradientTransformation,
               *, dropout_prng: str = "threefry", devices=None, shard_data: bool = False):
    if dropout_prng not in DROPOUT_PRNGS:
      raise ValueError(f"dropout_prng must be one of {DROPOUT_PRNGS}, got {dropout_prng!r}")
    self.init_params, self.sample, self._loss = init_params, sample, loss
    self.optimizer = optimizer
    self.dropout_prng = dropout_prng
    self.shard_data = shard_data
    # All processes' devices: on a multi-host run every process runs this same program over one global mesh.
    self.mesh = Mesh(np.asarray(devices if devices is not None else jax.devices()), (DATA_AXIS,))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self._compiled: dict[tuple, Any] = {}
    self.compile_seconds = 0.0  # total spent compiling train_many
    self.max_param_norm, self.max_grad_norm = MAX_PARAM_NORM, MAX_GRAD_NORM  # the host loop's guard

  def init(self, seed: int) -> TrainState:
    init_rng, train_rng = jax.random.split(jax.random.PRNGKey(seed))
    params = self.init_params(init_rng)
    state = TrainState(jnp.zeros((), jnp.int32), params, self.optimizer.init(params), train_rng)
    return put_process_local(state, self.replicated)

  def init_many(self, seeds: Sequence[int]) -> TrainState:
    """`init(seed)` of every seed, stacked on a leading seed axis: the state `train_many` then runs vmapped."""
    return put_process_local(stack_states([self.init(seed) for seed in seeds]), self.replicated)

  def put_data(self, data: Any, log: Callable[[str], None] | None = None) -> Any:
    """Host data on the mesh: replicated, or with `shard_data` its `row_fields` split by rows (zero rows pad them
    to a multiple of the device count; samplers never draw those), which `log` reports."""
    rows = getattr(data, "row_fields", ()) if self.shard_data else ()
    if self.shard_data and not rows:
      raise ValueError(f"shard_data: {type(data).__name__} declares no row_fields to split over the devices")
    if not rows:
      return put_process_local(jax.tree.map(jnp.asarray, data), self.replicated)
    placed = {f.name: put_rows(getattr(data, f.name), self.batch_sharding) if f.name in rows
              else put_process_local(getattr(data, f.name), self.replicated) for f in dataclasses.fields(data)}
    if log is not None:
      first = placed[rows[0]]
      local = sorted({s.index[0].indices(first.shape[0])[:2] for s in first.addressable_shards})
      n = np.shape(getattr(data, rows[0]))[0]
      log(f"[data] {', '.join(rows)} split by rows over {first.sharding.mesh.size} devices: process "
          f"{jax.process_index()} placed rows {local[0][0]}-{min(local[-1][1], n)} of {n} "
          f"(+{first.shape[0] - n} padding) on its {len(local)}")
    return data.replace(**placed)

  def loss(self, params, batch, rng) -> jax.Array:
    """The algorithm's loss with a dropout key of the configured PRNG."""
    return self._loss(params, batch, dropout_key(rng, self.dropout_prng))

  def train_step(self, state: TrainState, data: Any) -> tuple[TrainState, dict]:
    """One optimiser step on a freshly sampled batch; pure."""
    rng, k_batch, k_drop = jax.random.split(state.rng, 3)
    batch = jax.lax.with_sharding_constraint(self.sample(data, k_batch), self.batch_sharding)
    loss, grads = jax.value_and_grad(self.loss)(state.params, batch, k_drop)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return TrainState(state.step + 1, params, opt_state, rng), metrics

  def _train_many(self, state: TrainState, data: Any, num_steps: int) -> tuple[TrainState, dict]:
    state, metrics = jax.lax.scan(lambda s, _: self.train_step(s, data), state, None, length=num_steps)
    out = {k: jnp.mean(v) for k, v in metrics.items()}
    out["final_loss"] = metrics["loss"][-1]
    # For the host loop's guard, computed here so the params never travel to the host for it.
    out["grad_norm_max"] = jnp.max(metrics["grad_norm"])
    out["param_norm"] = global_norm(state.params)
    return state, out

  def _train_many_seeds(self, states: TrainState, data: Any, num_steps: int) -> tuple[TrainState, dict]:
    # vmap over the train state only (data shared, not copied): each seed samples its batches and dropout masks from
    # its own RNG. Under vmap the batch's sharding constraint keeps the per-seed batch axis on `data` (the seed
    # axis is left unconstrained), so data parallelism splits every seed's batch as in its single run.
    return jax.vmap(functools.partial(self._train_many, num_steps=num_steps), in_axes=(0, None))(states, data)

  def compiled(self, state: TrainState, data: Any, num_steps: int):
    """AOT-compiled `train_many` for `num_steps` steps (compile time is then measured apart); for a stacked state
    (`init_many`), `train_many` vmapped over its seeds."""
    seeds = jnp.shape(state.step)  # () for one state, (N,) for N stacked seeds
    key = (seeds, num_steps) + tuple(x.shape for x in jax.tree.leaves(data))
    if key not in self._compiled:
      fn = jax.jit(functools.partial(self._train_many_seeds if seeds else self._train_many, num_steps=num_steps),
                   donate_argnums=0, out_shardings=(self.replicated, self.replicated))
      t0 = time.perf_counter()
      self._compiled[key] = fn.lower(state, data).compile()
      self.compile_seconds += time.perf_counter() - t0
    return self._compiled[key]

  def train_many(self, state: TrainState, data: Any, num_steps: int) -> tuple[TrainState, dict]:
    """`num_steps` scanned steps in one call; of every seed at once for a stacked state (`init_many`: metrics then
    have a leading seed axis). Blocks on the result: queueing several calls that contain collectives without
    waiting has deadlocked on simulated CPU devices."""
    fn = self.compiled(state, data, num_steps)
    barrier("train_many")  # multi-host: every process enters the call's collectives together
    state, metrics = fn(state, data)
    return state, jax.device_get(metrics)


def global_norm(tree: Any) -> jax.Array:
  """The global L2 norm, scaled by the largest |x| so that float32 does not overflow: params of 1e30 give ~1e30,
  not inf (NaN or inf values still give NaN)."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros((), jnp.float32)
  m = jnp.max(jnp.stack([jnp.max(jnp.abs(x)).astype(jnp.float32) for x in leaves]))
  scale = jnp.where(m > 0, m, 1.0)
  return scale * jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32) / scale)) for x in leaves))


def stack_states(states: Sequence[TrainState]) -> TrainState:
  """One train state per seed -> one state whose leaves have a leading seed axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def unstack_states(states: TrainState) -> list[TrainState]:
  """The inverse of `stack_states`: each seed's slice of a stacked state."""
  return [jax.tree.map(operator.itemgetter(i), states) for i in range(jnp.shape(states.step)[0])]


@dataclasses.dataclass(frozen=True)
class Hook:
  """`fn(step, state) -> dict | None` every `every` steps (at call boundaries) and at the end; a returned dict
  of scalars is written with that step's metrics (e.g. a periodic evaluation)."""
  every: int
  fn: Callable[[int, TrainState], dict | None]


def train_loop(trainer: Trainer, state: TrainState, data: Any, workdir: str, *, num_steps: int, steps_per_call: int,
               checkpoint_every: int, max_checkpoints: int | None, meta: dict, hooks: Sequence[Hook] = (),
               log: Callable[[str], None] = print) -> TrainState:
  """Trains to `num_steps`, resuming from the workdir's newest intact checkpoint (params, optimiser, step, RNG).

  Per scanned call of `steps_per_call` steps: a progress line and a metrics row (rows a killed run wrote after
  its last checkpoint are dropped on resume); a checkpoint every `checkpoint_every` steps and at the end. A newer
  step that fails verification is skipped with a warning and moved to `checkpoints_corrupt/`. A non-finite loss,
  or params / gradients whose global norm is non-finite or above `trainer.max_param_norm` / `max_grad_norm`,
  stops the run with a FloatingPointError before that state is checkpointed, naming the config values to look at.
  """
  return _host_loop(trainer, state, data, [workdir], [meta], stacked=False, num_steps=num_steps,
                    steps_per_call=steps_per_call, checkpoint_every=checkpoint_every, max_checkpoints=max_checkpoints,
                    hooks=hooks, log=log)


def train_loop_seeds(trainer: Trainer, states: TrainState, data: Any, workdirs: Sequence[str], *, num_steps: int,
                     steps_per_call: int, checkpoint_every: int, max_checkpoints: int | None, metas: Sequence[dict],
                     hooks: Sequence[Hook] = (), log: Callable[[str], None] = print) -> TrainState:
  """`train_loop` for N stacked seeds (`Trainer.init_many`), all advanced by one vmapped call per `steps_per_call`
  steps. Seed i writes `workdirs[i]` as its own `train_loop` would: its metrics rows, and checkpoints of its slice
  of the state with `metas[i]`. Resumes when every workdir's latest checkpoint is at the same step (or none has one)
  and refuses, naming the steps, when they differ (each workdir's newest intact step counts). Hooks run per seed, on
  that seed's slice, into its row. A tripped guard (see `train_loop`) of any seed stops all of them before
  checkpointing. Returns the stacked state.
  """
  if len(workdirs) != jnp.shape(states.step)[0] or len(metas) != len(workdirs):
    raise ValueError(f"{jnp.shape(states.step)[0]} stacked seeds need as many workdirs and metas, got "
                     f"{len(workdirs)} and {len(metas)}")
  return _host_loop(trainer, states, data, list(workdirs), list(metas), stacked=True, num_steps=num_steps,
                    steps_per_call=steps_per_call, checkpoint_every=checkpoint_every, max_checkpoints=max_checkpoints,
                    hooks=hooks, log=log)


def _host_loop(trainer: Trainer, state: TrainState, data: Any, workdirs: list[str], metas: list[dict], *, stacked: bool,
               num_steps: int, steps_per_call: int, checkpoint_every: int, max_checkpoints: int | None,
               hooks: Sequence[Hook], log: Callable[[str], None]) -> TrainState:
  """`train_loop` of one state (`stacked=False`, one workdir) or of N stacked seeds (one workdir each)."""
  split = unstack_states if stacked else (lambda s: [s])
  mngrs = [ckpt.manager(w, max_to_keep=max_checkpoints) for w in workdirs]
  writers: list[MetricWriter] = []
  try:
    found = [ckpt.restore_latest(m, s.params, s.extras(), set_aside=True)
             for m, s in zip(mngrs, split(state), strict=True)]
    lasts = [None if f is None else f[0] for f in found]
    if len(set(lasts)) > 1:
      steps = ", ".join(f"{w}: {'none' if s is None else s}" for w, s in zip(workdirs, lasts, strict=True))
      raise ValueError(f"the seeds' workdirs have their latest checkpoints at different steps ({steps}); resume "
                       "them one at a time (launch.seeds without --vmap_seeds) or remove the runs that differ")
    if lasts[0] is not None:
      restored = [TrainState.from_extras(f[1], f[2]) for f in found]
      state = put_process_local(stack_states(restored), trainer.replicated) if stacked else restored[0]
      skipped = sorted({s for f in found for s, _ in f[3]})
      log(f"[train] resumed from step {lasts[0]}" + (
          f" (newer steps {skipped} failed verification: moved to {ckpt.CORRUPT_DIR}/)" if skipped else ""))
    last_saved = lasts[0]  # the newest checkpoint: the one a tripped guard leaves as the last good state
    step = int(np.asarray(state.step).flat[0])  # every seed's step is the same
    if step >= num_steps:
      return state
    writers = [MetricWriter(w, resume_step=step) for w in workdirs]
    label = f"[train {len(workdirs)} seeds] " if stacked else "[train] "
    progress = Progress(num_steps, start=step, label=label)
    while step < num_steps:
      n = min(steps_per_call, num_steps - step)
      before = trainer.compile_seconds
      fn = trainer.compiled(state, data, n)
      if trainer.compile_seconds > before:
        log(f"[train] compiled train_many({n} steps) in {trainer.compile_seconds - before:.1f}s")
        progress = Progress(num_steps, start=step, label=label)  # rates exclude compile time
      barrier("train_many")  # multi-host: every process enters the call's collectives together
      t0 = time.perf_counter()
      state, metrics = fn(state, data)
      metrics = jax.device_get(metrics)
      dt = time.perf_counter() - t0
      step += n
      # One row per seed; steps_per_sec is each seed's own rate (all seeds advance n steps in dt).
      rows = [{k: v[i] for k, v in metrics.items()} for i in range(len(workdirs))] if stacked else [metrics]
      for row in rows:
        row["steps_per_sec"] = n / dt
      tripped = [(w, bad) for w, row in zip(workdirs, rows, strict=True) if (bad := _guard(trainer, row))]
      if tripped:  # the rows show what went wrong; the state is never checkpointed
        for writer, row in zip(writers, rows, strict=True):
          writer.write(step, row)
        raise FloatingPointError(_guard_message(trainer, step, tripped, last_saved))
      due = [hook for hook in hooks if step % hook.every == 0 or step == num_steps]
      checkpoint = step % checkpoint_every == 0 or step == num_steps
      slices = split(state) if due or checkpoint else None
      for hook in due:
        for row, s in zip(rows, slices, strict=True):
          row.update(hook.fn(step, s) or {})
      for writer, row in zip(writers, rows, strict=True):
        writer.write(step, row)
      progress.report(step, {"loss" if not stacked else f"loss{i}": row["loss"] for i, row in enumerate(rows)})
      if checkpoint:
        for mngr, s, meta in zip(mngrs, slices, metas, strict=True):
          ckpt.save(mngr, step, s.params, s.extras(), meta)
        last_saved = step
  finally:
    for writer in writers:
      writer.close()
    for mngr in mngrs:
      mngr.close()
  log(f"[train] done: {step} steps (compile {trainer.compile_seconds:.1f}s)")
  return state


def _guard(trainer: Trainer, row: dict) -> list[str]:
  """What of one call's metrics row trips the divergence guard (empty: nothing)."""
  bad = []
  loss = float(row["loss"])
  if not math.isfinite(loss):
    bad.append(f"loss is {loss}")
  for key, what, limit, attr in (
      ("grad_norm_max", "gradient global norm (largest step of the call, before clipping)", trainer.max_grad_norm,
       "max_grad_norm"),
      ("param_norm", "params global norm", trainer.max_param_norm, "max_param_norm")):
    if key not in row:  # a subclass's train_many without the norms: the loss check still holds
      continue
    value = float(row[key])
    if not math.isfinite(value):
      bad.append(f"{what} is {value} (non-finite values, or too large for float32)")
    elif value > limit:
      bad.append(f"{what} is {value:.3g} > trainer.{attr}={limit:g}")
  return bad


def _guard_message(trainer: Trainer, step: int, tripped: list[tuple[str, list[str]]], last_saved: int | None) -> str:
  """The tripped guard's error: step, what failed where, the checkpoint kept, and the config values to look at."""
  what = "; ".join(f"{', '.join(bad)} in {w}" for w, bad in tripped)
  kept = (f"the latest checkpoint, step {last_saved}, stays the last good one" if last_saved is not None
          else "no checkpoint had been written yet")
  train = getattr(getattr(trainer, "config", None), "train", None)  # a run config's train block, when it has one
  fields = ", ".join(f"train.{k}={train[k]}" if train is not None and k in train else f"train.{k}"
                     for k in GUARD_FIELDS)
  return (f"training diverged at step {step}: {what}. Stopped before checkpointing it; {kept}. Config values to look "
          f"at: {fields} (a lower learning_rate, a longer warmup or a tighter grad_clip_norm; if norms this large "
          "are expected, raise trainer.max_param_norm / max_grad_norm)")
