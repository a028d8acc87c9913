"""Env steps/s of an MxT-Bench env (default `ant_reach_4`) vs brax's own `ant`, same backend, on CPU.

Each measurement jits `vmap(reset)` and a `lax.scan` of `--steps` vmapped env steps with random
actions; the first call (compile + run) is reported apart from the timed second call. The MxT env is
measured once per `--floor_contacts` value (`MjcfOptions.floor_contact`): 'all' is v1-faithful,
'end_effectors' collides only the root and the feet with the floor, like brax's ant (other dynamics).

    python benchmarks/bench_morphology_env.py                          # positional, batch 64/256/1024
    python benchmarks/bench_morphology_env.py --backends=positional,spring,generalized --batches=64
    python benchmarks/bench_morphology_env.py --batches=64 --steps=10  # a quick check that it runs

Measured 2026-11-21 on 2 CPU cores (load ~1.5, nothing else running), 100 steps, positional, after v1's
one-ended shins (`Geom.collide_end`: a shin collides with a sphere at the foot, not as a whole capsule):
    batch   64: ant_reach_4 5292 steps/s vs brax ant 6193 (0.85x); end_effectors 6217 (1.00x)
    batch  256: 5116 vs 7115 (0.72x); 200 steps, twice: 5252 vs 6754, 5318 vs 6781 (0.78x); end_effectors 0.93x
    batch 1024: 6200 vs 7607 (0.82x); end_effectors 7428 (0.98x)
  A later quiet run, 200 steps: 64: 4899 vs 5918 (0.83x); 256: 5279 vs 7080 (0.75x); 1024: 6312 vs 7094 (0.89x).
  Compile 8-24 s per env (persistent cache cold). Before the foot caps (shins colliding as whole capsules, 17
  contact points) batch 256 gave 4806 vs 7374 (0.65x) on the same quiet machine.
  Other backends, batch 64, load ~10 (older measurement): spring 11105 vs 14917 (0.74x) but the ant blows up
  under random actions; generalized 426 vs 2547; mjx (20 steps) 953 vs 8223.
The remaining gap is contacts: brax's ant lets only its 4 foot spheres touch the floor; the v1-faithful MxT
ant also collides its torso and 4 thigh capsules (13 contact points). floor_contact='end_effectors' drops the
thighs (other dynamics than v1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from brax import envs as brax_envs  # noqa: E402

from gdt.core import runtime  # noqa: E402
from morphology import envs  # noqa: E402


def measure(env, batch: int, steps: int, seed: int = 0) -> dict:
  """{'compile_s', 'steps_per_s', 'finite'} for `steps` scanned steps of `batch` envs."""
  reset = jax.jit(jax.vmap(env.reset))

  @jax.jit
  def run(state, rng):
    def body(carry, _):
      state, rng = carry
      rng, key = jax.random.split(rng)
      action = jax.random.uniform(key, (batch, env.action_size), minval=-1.0, maxval=1.0)
      return (jax.vmap(env.step)(state, action), rng), None

    (state, _), _ = jax.lax.scan(body, (state, rng), None, length=steps)
    return state

  rngs = jax.random.split(jax.random.PRNGKey(seed), batch)
  state = jax.block_until_ready(reset(rngs))
  t0 = time.perf_counter()
  out = jax.block_until_ready(run(state, jax.random.PRNGKey(1)))
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  out = jax.block_until_ready(run(state, jax.random.PRNGKey(2)))
  run_s = time.perf_counter() - t0
  return {"compile_s": compile_s, "steps_per_s": batch * steps / run_s, "finite": bool(jnp.all(jnp.isfinite(out.obs)))}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--env", default="ant_reach_4")
  parser.add_argument("--backends", default=envs.DEFAULT_BACKEND)
  parser.add_argument("--batches", default="64,256,1024")
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--floor_contacts", default="all,end_effectors",
                      help="MjcfOptions.floor_contact values to measure the env with")
  args = parser.parse_args(argv)
  runtime.enable_compilation_cache()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; {args.steps} steps per call")
  print(f"{'backend':12s} {'batch':>6s} {'env':>16s} {'floor_contact':>14s} {'steps/s':>10s} {'compile s':>10s} "
        f"{'ant steps/s':>12s} {'compile s':>10s} {'ratio':>6s} finite")
  contacts = args.floor_contacts.split(",")
  for backend in args.backends.split(","):
    ours = {c: envs.make(args.env, backend=backend,
                         config=envs.EnvConfig(mjcf_overrides=(("floor_contact", c),))) for c in contacts}
    theirs = brax_envs.get_environment("ant", backend=backend)
    for batch in (int(b) for b in args.batches.split(",")):
      b = measure(theirs, batch, args.steps)
      for contact, env in ours.items():
        a = measure(env, batch, args.steps)
        print(f"{backend:12s} {batch:6d} {args.env:>16s} {contact:>14s} {a['steps_per_s']:10.0f} "
              f"{a['compile_s']:10.1f} {b['steps_per_s']:12.0f} {b['compile_s']:10.1f} "
              f"{a['steps_per_s'] / b['steps_per_s']:6.2f} {a['finite'] and b['finite']}", flush=True)


if __name__ == "__main__":
  main()
