"""One batched rollout: E copies of a Brax env, vmapped, driven by a pure policy step, scanned in chunks on device.

Each env plays one episode: it starts from its own reset, steps while it is alive and `t < limit` (its time
limit), and is frozen from the step where the env reports `done` (or the limit is reached) onward, so every
output row after that is marked invalid. Chunks of `chunk_steps` steps are one jit'd `lax.scan` each; the carry
stays on device between chunks, the host only reports progress and stops early once every env has ended.

A policy is two pure functions over a carry of its own (context buffers, counters, ...):
  act(inputs, carry, env_state, t, key) -> (action [E, A], carry)
  observe(inputs, carry, transition: Transition) -> (carry, outputs: dict of [E, ...])
`inputs` is any pytree the policy reads (params, normalisation, targets); it is an argument of the compiled
chunk, so new params or targets of the same shapes reuse one compilation.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdt.core.workdir import Progress


class Transition(NamedTuple):
  """What one step did, per env: state before and after, the action, and whether the step counted."""
  state: Any  # env state the action was taken in (obs [E, S])
  action: jax.Array  # [E, A]
  next_state: Any  # env state after the step (reward [E], done [E])
  valid: jax.Array  # [E] bool: the env was alive and inside its time limit
  t: jax.Array  # [] int32 step index


class EpisodeState(NamedTuple):
  env_state: Any
  policy: Any  # the policy's carry
  alive: jax.Array  # [E] bool
  limit: jax.Array  # [E] int32 time limit per env


ActFn = Callable[[Any, Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
ObserveFn = Callable[[Any, Any, Transition], tuple[Any, dict]]


def freeze(valid: jax.Array, new, old):
  """Per env, `new` where `valid` [E] else `old` (pytrees with a leading env axis)."""
  return jax.tree.map(lambda n, o: jnp.where(valid.reshape(valid.shape + (1,) * (n.ndim - 1)), n, o), new, old)


@functools.lru_cache(maxsize=64)
def _batched_reset(env):
  return jax.jit(jax.vmap(env.reset))


def init_state(env, rng: jax.Array, limits, policy_carry) -> EpisodeState:
  """E = len(limits) fresh episodes (env e reset with key split(rng, E)[e]); the batched reset is jit'd once
  per env object."""
  limits = jnp.asarray(limits, jnp.int32)
  env_state = _batched_reset(env)(jax.random.split(rng, limits.shape[0]))
  return EpisodeState(env_state, policy_carry, jnp.ones(limits.shape, bool), limits)


def make_chunk(env, act: ActFn, observe: ObserveFn, chunk_steps: int):
  """-> jit'd run_chunk(inputs, state, t0, rng) -> (state, outputs [chunk_steps, E, ...] with 'valid').

  The key of step t is fold_in(rng, t): a rollout is the same whatever its chunk size.
  """

  def step(inputs, state: EpisodeState, t, rng):
    action, policy = act(inputs, state.policy, state.env_state, t, jax.random.fold_in(rng, t))
    nxt = jax.vmap(env.step)(state.env_state, action)
    valid = state.alive & (t < state.limit)
    policy, out = observe(inputs, policy, Transition(state.env_state, action, nxt, valid, t))
    env_state = freeze(valid, nxt, state.env_state)
    alive = valid & (nxt.done == 0)
    return EpisodeState(env_state, policy, alive, state.limit), dict(out, valid=valid)

  def run_chunk(inputs, state, t0, rng):
    ts = t0 + jnp.arange(chunk_steps, dtype=jnp.int32)
    return jax.lax.scan(lambda s, t: step(inputs, s, t, rng), state, ts)

  return jax.jit(run_chunk)


class RolloutResult(NamedTuple):
  outputs: dict  # name -> [E, T, ...] numpy (T = num_steps; rows past an early stop are zero / invalid)
  state: EpisodeState
  compile_s: float
  run_s: float
  steps: int  # scan steps actually run (<= num_steps)


def run(run_chunk, inputs, state: EpisodeState, num_steps: int, chunk_steps: int, rng: jax.Array,
        label: str | None = None) -> RolloutResult:
  """Runs `num_steps` steps in chunks (AOT-compiled once; compile time reported apart) and stacks the outputs.

  Stops after the chunk in which the last env ended. `label` prints a progress line per chunk when the
  rollout takes more than one chunk.
  """
  t0 = time.perf_counter()
  compiled = run_chunk.lower(inputs, state, jnp.int32(0), rng).compile()
  compile_s = time.perf_counter() - t0
  num_envs = state.alive.shape[0]
  progress = Progress(num_steps * num_envs, unit="env steps", label=label or "")
  t_run = time.perf_counter()
  chunks = []
  for start in range(0, num_steps, chunk_steps):
    state, out = compiled(inputs, state, jnp.int32(start), rng)
    chunks.append(jax.device_get(out))
    if label and num_steps > chunk_steps:
      progress.report(min(start + chunk_steps, num_steps) * num_envs, {"alive": state.alive.mean()})
    if not bool(state.alive.any()):
      break
  run_s = time.perf_counter() - t_run
  steps = min(len(chunks) * chunk_steps, num_steps)

  def stack(*xs):  # [chunk, E, ...] pieces -> [E, num_steps, ...], zero past `steps`
    x = np.moveaxis(np.concatenate(xs, axis=0)[:steps], 0, 1)
    return np.pad(x, [(0, 0), (0, num_steps - steps)] + [(0, 0)] * (x.ndim - 2))

  outputs = jax.tree.map(stack, *chunks) if len(chunks) > 1 else jax.tree.map(stack, chunks[0])
  return RolloutResult(outputs, state, compile_s, run_s, steps)
