"""Brax backend throughput and finiteness per locomotion env: the numbers behind `gdt.envs` backends.

For every env x backend: batch of 256 envs, uniform random actions in [-1, 1], 1000 steps in one jit'd
`lax.scan` (no resets, so fallen hopper/walker bodies keep being simulated, as in a worst case).
Reports compile time apart from steady-state env steps/s and whether every observation stayed finite.
`generalized` is left out by default: on 2 CPU cores halfcheetah did not finish 256k steps in 10 minutes, and ant
gives NaN; measure it with --backends=generalized (on a GPU).

  python benchmarks/bench_envs.py [--envs=halfcheetah,hopper] [--backends=positional] [--batch=256] [--steps=1000]
"""

from __future__ import annotations

import argparse
import time

import brax.envs
import jax
import jax.numpy as jnp

from gdt.core import runtime

ENVS = ("halfcheetah", "hopper", "walker2d", "ant")
BACKENDS = ("spring", "positional")


def random_rollout_fn(env, batch: int, steps: int):
  """-> jit'd fn(rng) -> (num non-finite obs entries, fraction of envs done at the end)."""

  def run(rng):
    reset_rng, act_rng = jax.random.split(rng)
    state = jax.vmap(env.reset)(jax.random.split(reset_rng, batch))

    def body(carry, key):
      state, bad = carry
      action = jax.random.uniform(key, (batch, env.action_size), minval=-1.0, maxval=1.0)
      state = jax.vmap(env.step)(state, action)
      return (state, bad + jnp.sum(~jnp.isfinite(state.obs))), None

    (state, bad), _ = jax.lax.scan(body, (state, jnp.int32(0)), jax.random.split(act_rng, steps))
    return bad, jnp.mean(state.done)

  return jax.jit(run)


def measure(name: str, backend: str, batch: int, steps: int) -> dict:
  env = brax.envs.get_environment(name, backend=backend)
  fn = random_rollout_fn(env, batch, steps)
  rng = jax.random.PRNGKey(0)
  t0 = time.perf_counter()
  jax.block_until_ready(fn.lower(rng).compile())
  compile_s = time.perf_counter() - t0
  fn(rng)[0].block_until_ready()  # first call after compile pays dispatch set-up
  t0 = time.perf_counter()
  bad, done = jax.block_until_ready(fn(jax.random.PRNGKey(1)))
  run_s = time.perf_counter() - t0
  return dict(env=name, backend=backend, compile_s=compile_s, steps_per_s=batch * steps / run_s,
              nonfinite=int(bad), done_frac=float(done))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--envs", default=",".join(ENVS))
  parser.add_argument("--backends", default=",".join(BACKENDS))
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=1000)
  args = parser.parse_args()
  runtime.enable_compilation_cache()
  print(f"devices: {jax.devices()}  batch={args.batch} steps={args.steps}")
  print(f"{'env':12s} {'backend':12s} {'compile_s':>9s} {'steps/s':>10s} {'non-finite':>10s} {'done@end':>8s}")
  for name in args.envs.split(","):
    for backend in args.backends.split(","):
      r = measure(name, backend, args.batch, args.steps)
      print(f"{r['env']:12s} {r['backend']:12s} {r['compile_s']:9.1f} {r['steps_per_s']:10,.0f} "
            f"{r['nonfinite']:10d} {r['done_frac']:8.2f}", flush=True)


if __name__ == "__main__":
  main()
