"""Env steps/s of an MxT-Bench env (default `ant_reach_4`) vs brax's own `ant`, same backend, on CPU.

Each measurement jits `vmap(reset)` and a `lax.scan` of `--steps` vmapped env steps with random
actions; the first call (compile + run) is reported apart from the timed second call. The MxT env is
measured once per `--floor_contacts` value (`MjcfOptions.floor_contact`): 'all' is v1-faithful,
'end_effectors' collides only the root and the feet with the floor, like brax's ant (other dynamics).

    python benchmarks/bench_morphology_env.py                          # positional, batch 64/256/1024
    python benchmarks/bench_morphology_env.py --backends=positional,spring,generalized --batches=64
    python benchmarks/bench_morphology_env.py --batches=64 --steps=10  # a quick check that it runs

Measured 2026-11-21 on 2 CPU cores shared with other engineers' jobs, 100 steps, positional:
  load ~3 (compile times are persistent-cache hits):
    batch   64: ant_reach_4 3711 steps/s vs brax ant 4410 (0.84x)
    batch  256: 3890 vs 5526 (0.70x);  batch 1024: 3404 vs 4812 (0.71x)
  load ~8-11: batch 64 1668 vs 1536 (1.09x), 256 2497 vs 3898 (0.64x), 1024 1548 vs 2586 (0.60x); compile 36-95 s.
  Other backends, batch 64, load ~10: spring 11105 vs 14917 (0.74x) but the ant blows up under random
  actions; generalized 426 vs 2547; mjx (20 steps) 953 vs 8223.
The gap at large batches is contacts: brax's ant lets only its 4 foot spheres touch the floor; the
v1-faithful MxT ant collides its torso and all 8 leg capsules (17 contact points). With the 4 thigh
capsules made non-colliding (what floor_contact='end_effectors' does to ant_reach_4), batch 256 gave
4449 steps/s (0.80x) in a one-off run at load ~3.
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

from gdt import runtime  # noqa: E402
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
