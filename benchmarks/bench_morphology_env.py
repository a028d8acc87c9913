"""Env steps/s of an MxT-Bench env (default `ant_reach_4`) vs brax's own `ant`, same backend, on CPU.

Each measurement jits `vmap(reset)` and a `lax.scan` of `--steps` vmapped env steps with random
actions; the first call (compile + run) is reported apart from the timed second call. The MxT env is
measured once per `--floor_contacts` value (`MjcfOptions.floor_contact`): 'all' is v1-faithful,
'end_effectors' collides only the root and the feet with the floor, like brax's ant (other dynamics).

    python benchmarks/bench_morphology_env.py                          # positional, batch 64/256/1024
    python benchmarks/bench_morphology_env.py --backends=positional,spring,generalized --batches=64
    python benchmarks/bench_morphology_env.py --batches=64 --steps=10  # a quick check that it runs

Measured 2026-12-02 on 2 CPU cores (a niced background job paused), 200 steps, positional, with the XLA flags
`import gdt` sets (benchmarks/bench_xla_flags.py); this host ran brax's ant 25-35% slower than on 2026-11-21:
    batch   64: ant_reach_4 3006 steps/s vs brax ant 3733 (0.81x); end_effectors 3493 (0.94x)
    batch  256: 2884 vs 3810 (0.76x); end_effectors 4181 (1.10x)
    batch 1024: 4071 vs 4566 (0.89x); end_effectors 5076 (1.11x)
  Batch 256 again, A/B in two processes: with the flags 3614 vs 5230 (0.69x; compile 17.0 vs 13.1 s), without
  them 3110 vs 4142 (0.75x; compile 29.2 vs 26.7 s); end_effectors 0.97x / 1.03x.
Measured 2026-11-21 (quieter host, XLA's default flags), 100-200 steps: batch 64 0.83-0.85x, 256 0.72-0.78x,
1024 0.82-0.89x; end_effectors 0.93-1.00x. Before v1's one-ended shins (`Geom.collide_end`: a shin collides
with a sphere at the foot, not as a whole capsule; 17 contact points) batch 256 gave 0.65x.
  Other backends, batch 64, load ~10 (older measurement): spring 11105 vs 14917 (0.74x) but the ant blows up
  under random actions; generalized 426 vs 2547; mjx (20 steps) 953 vs 8223.
Why the reference contact set stays below brax's ant: the bodies and joints are the same (9 bodies, 8 hinges), the
contacts are not. brax's ant collides only its 4 foot spheres with the floor (4 contact points); v1's ant also
collides its torso sphere and its 4 thigh capsules (1 + 4 x 2 + 4 feet = 13 points), and the positional pipeline's
step cost grows with the contact points. With brax's contact set (floor_contact='end_effectors') the same env runs
at 0.94-1.11x. The 4 inner thigh caps look redundant but are not: at hip yaw 30 degrees the inner cap's centre is
0.192 m from the torso centre, so its lowest point (0.272 m below the centre when the ant lies on its side) is
below the torso sphere's (0.25 m); dropping them changes the dynamics of a fallen ant.
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
