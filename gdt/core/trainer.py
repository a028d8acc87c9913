"""The trainer skeleton every algorithm plugs into: train state, optimizers, scanned AOT steps, mesh, host loop.

An algorithm supplies three pure functions and a model:
  init_params(rng) -> params
  sample(data, rng) -> batch          (a pytree with a leading batch axis, drawn from on-device data)
  loss(params, batch, dropout_rng) -> scalar
`Trainer.train_many` runs `num_steps` AdamW-style steps in one `lax.scan`, AOT-compiled once per shape (compile
time measured apart). Batches are sampled from the global RNG stream and then sharded on the `data` axis of a
Mesh, so 1 and N devices see the same windows; params, optimiser state and the data are replicated.
`train_loop` is the host loop around it: resume from the workdir's last checkpoint, progress, metrics, a
non-finite guard, checkpoints, and hooks (e.g. a periodic evaluation).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gdt.core import checkpoint as ckpt
from gdt.core.registry import Registry
from gdt.core.workdir import MetricWriter, Progress

DATA_AXIS = "data"
DROPOUT_PRNGS = ("threefry", "rbg", "unsafe_rbg")

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


def dropout_key(rng: jax.Array, impl: str) -> jax.Array:
  """A dropout key of PRNG `impl`: 'rbg' draws mask bits with XLA's RngBitGenerator (cheaper on CPU than
  threefry; its masks depend on the device count, threefry's do not)."""
  if impl == "threefry":
    return rng
  return jax.random.wrap_key_data(jax.random.bits(rng, (4,), jnp.uint32), impl=impl)


class Trainer:
  """The optimiser and jitted `train_many` of one model and loss over a 1-axis data Mesh of `devices`."""

  def __init__(self, init_params: Callable, sample: Callable, loss: Callable, optimizer: optax.GradientTransformation,
               *, dropout_prng: str = "threefry", devices=None):
    if dropout_prng not in DROPOUT_PRNGS:
      raise ValueError(f"dropout_prng must be one of {DROPOUT_PRNGS}, got {dropout_prng!r}")
    self.init_params, self.sample, self._loss = init_params, sample, loss
    self.optimizer = optimizer
    self.dropout_prng = dropout_prng
    self.mesh = Mesh(np.asarray(devices if devices is not None else jax.local_devices()), (DATA_AXIS,))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self._compiled: dict[tuple, Any] = {}
    self.compile_seconds = 0.0  # total spent compiling train_many

  def init(self, seed: int) -> TrainState:
    init_rng, train_rng = jax.random.split(jax.random.PRNGKey(seed))
    params = self.init_params(init_rng)
    state = TrainState(jnp.zeros((), jnp.int32), params, self.optimizer.init(params), train_rng)
    return jax.device_put(state, self.replicated)

  def put_data(self, data: Any) -> Any:
    return jax.device_put(jax.tree.map(jnp.asarray, data), self.replicated)

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
    return state, out

  def compiled(self, state: TrainState, data: Any, num_steps: int):
    """AOT-compiled `train_many` for `num_steps` steps (compile time is then measured apart)."""
    key = (num_steps,) + tuple(x.shape for x in jax.tree.leaves(data))
    if key not in self._compiled:
      fn = jax.jit(functools.partial(self._train_many, num_steps=num_steps), donate_argnums=0,
                   out_shardings=(self.replicated, self.replicated))
      t0 = time.perf_counter()
      self._compiled[key] = fn.lower(state, data).compile()
      self.compile_seconds += time.perf_counter() - t0
    return self._compiled[key]

  def train_many(self, state: TrainState, data: Any, num_steps: int) -> tuple[TrainState, dict]:
    """`num_steps` scanned steps in one call. Blocks on the result: queueing several calls that contain
    collectives without waiting has deadlocked on simulated CPU devices."""
    state, metrics = self.compiled(state, data, num_steps)(state, data)
    return state, jax.device_get(metrics)


@dataclasses.dataclass(frozen=True)
class Hook:
  """`fn(step, state) -> dict | None` every `every` steps (at call boundaries) and at the end; a returned dict
  of scalars is written with that step's metrics (e.g. a periodic evaluation)."""
  every: int
  fn: Callable[[int, TrainState], dict | None]


def train_loop(trainer: Trainer, state: TrainState, data: Any, workdir: str, *, num_steps: int, steps_per_call: int,
               checkpoint_every: int, max_checkpoints: int | None, meta: dict, hooks: Sequence[Hook] = (),
               log: Callable[[str], None] = print) -> TrainState:
  """Trains to `num_steps`, resuming from the workdir's latest checkpoint (params, optimiser, step, RNG).

  Per scanned call of `steps_per_call` steps: a progress line and a metrics row (rows a killed run wrote after
  its last checkpoint are dropped on resume); a checkpoint every `checkpoint_every` steps and at the end; a
  non-finite loss stops the run before it is checkpointed.
  """
  mngr = ckpt.manager(workdir, max_to_keep=max_checkpoints)
  last = mngr.latest_step()
  if last is not None:
    params, extras = ckpt.restore(mngr, last, state.params, state.extras())
    state = TrainState.from_extras(params, extras)
    log(f"[train] resumed from step {last}")
  step = int(state.step)
  if step >= num_steps:
    mngr.close()
    return state
  writer = MetricWriter(workdir, resume_step=step)
  progress = Progress(num_steps, start=step, label="[train] ")
  while step < num_steps:
    n = min(steps_per_call, num_steps - step)
    before = trainer.compile_seconds
    fn = trainer.compiled(state, data, n)
    if trainer.compile_seconds > before:
      log(f"[train] compiled train_many({n} steps) in {trainer.compile_seconds - before:.1f}s")
      progress = Progress(num_steps, start=step, label="[train] ")  # rates exclude compile time
    t0 = time.perf_counter()
    state, metrics = fn(state, data)
    metrics = jax.device_get(metrics)
    dt = time.perf_counter() - t0
    step += n
    metrics["steps_per_sec"] = n / dt
    if not math.isfinite(float(metrics["loss"])):
      writer.write(step, metrics)
      raise FloatingPointError(f"loss became {metrics['loss']} at step {step}; stopping before checkpointing it")
    for hook in hooks:
      if step % hook.every == 0 or step == num_steps:
        metrics.update(hook.fn(step, state) or {})
    writer.write(step, metrics)
    progress.report(step, {"loss": metrics["loss"]})
    if step % checkpoint_every == 0 or step == num_steps:
      ckpt.save(mngr, step, state.params, state.extras(), meta)
  writer.close()
  mngr.close()
  log(f"[train] done: {step} steps (compile {trainer.compile_seconds:.1f}s)")
  return state
