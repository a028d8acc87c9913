"""The XLA flags `import gdt` sets (`gdt.core.runtime.XLA_DEFAULT_FLAGS`) against XLA's own defaults.

Each round runs two fresh subprocesses with empty compilation caches, one with $SEQRL_NO_XLA_DEFAULTS=1 (XLA's
defaults) and one without (ours), alternating which goes first. Each measures:
  env:   a brax halfcheetah rollout (batch --env_batch, --env_steps steps under random actions, one jit'd scan):
         compile seconds and env steps/s;
  train: the paper-size GDT train step (benchmarks/bench_train_step.py's defaults, scans of 50 steps): compile
         seconds and the median ms/step of 3 calls.

  python benchmarks/bench_xla_flags.py [--rounds=2] [--env_batch=256] [--env_steps=200]

Measured 2026-12-02 (jaxlib 0.10.2, 2 CPU cores, a niced background job paused, load 1.7), medians of 2 rounds:
                          XLA defaults          ours  ours / XLA
  env_compile_s                 15.224        11.142       0.732
  env_steps_per_s            6,829.474     7,052.307       1.033   (rounds spread 5.7k-8.4k: equal within noise)
  train_compile_s               10.901         9.993       0.917
  train_ms                     142.788       120.686       0.845   (same loss)
By hand the same day: the paper-size evaluation (benchmarks/bench_eval.py --steps=200) compiled in 11.1 s instead
of 16.6 s at the same throughput; a 3-step halfcheetah scan with most optimisations off (the tests' setting)
compiled in 4.3 s instead of 9.8 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child(env_batch: int, env_steps: int) -> dict:
  import gdt  # noqa: F401  (sets the flags unless $SEQRL_NO_XLA_DEFAULTS)
  import jax
  import numpy as np

  from benchmarks.bench_train_step import synthetic_data
  from experiments.configs import cdt
  from gdt import envs, train

  out = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
  env = envs.make("halfcheetah")

  @jax.jit
  def rollout(rng):
    reset_rng, act_rng = jax.random.split(rng)
    state = jax.vmap(env.reset)(jax.random.split(reset_rng, env_batch))

    def body(state, key):
      action = jax.random.uniform(key, (env_batch, env.action_size), minval=-1.0, maxval=1.0)
      state = jax.vmap(env.step)(state, action)
      return state, state.reward

    return jax.lax.scan(body, state, jax.random.split(act_rng, env_steps))[1]

  t0 = time.perf_counter()
  compiled = rollout.lower(jax.random.PRNGKey(0)).compile()
  out["env_compile_s"] = time.perf_counter() - t0
  jax.block_until_ready(compiled(jax.random.PRNGKey(1)))
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(jax.random.PRNGKey(2)))
  out["env_steps_per_s"] = env_batch * env_steps / (time.perf_counter() - t0)

  config = cdt.get_config()
  config.train.batch_size = 64
  s, a, bins = 17, 6, config.num_bins
  trainer = train.GDTTrainer(config, s, a, bins)
  data = trainer.put_data(synthetic_data(100, 1000, s, a, bins))
  state = trainer.init(0)
  steps = 50
  t0 = time.perf_counter()
  trainer.compiled(state, data, steps)
  out["train_compile_s"] = time.perf_counter() - t0
  state, _ = trainer.train_many(state, data, steps)
  times = []
  for _ in range(3):
    t0 = time.perf_counter()
    state, metrics = trainer.train_many(state, data, steps)
    times.append((time.perf_counter() - t0) / steps)
  out["train_ms"] = 1e3 * float(np.median(times))
  out["loss"] = float(metrics["loss"])
  return out


def run_child(args, defaults: bool) -> dict:
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=tempfile.mkdtemp(prefix="bench_xla_cache_"))
  env.pop("XLA_FLAGS", None)
  env.pop("JAX_DISABLE_MOST_OPTIMIZATIONS", None)
  if defaults:
    env.pop("SEQRL_NO_XLA_DEFAULTS", None)
  else:
    env["SEQRL_NO_XLA_DEFAULTS"] = "1"
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--env_batch", str(args.env_batch),
                         "--env_steps", str(args.env_steps)], capture_output=True, text=True, env=env, cwd=ROOT)
  lines = proc.stdout.strip().splitlines()
  if proc.returncode or not lines or not lines[-1].startswith("{"):
    raise SystemExit(f"child failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
  return json.loads(lines[-1])


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--env_batch", type=int, default=256)
  p.add_argument("--env_steps", type=int, default=200)
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print(json.dumps(child(args.env_batch, args.env_steps)))
    return

  import numpy as np
  keys = ("env_compile_s", "env_steps_per_s", "train_compile_s", "train_ms", "loss")
  results = {True: [], False: []}
  for r in range(args.rounds):
    for defaults in ((True, False) if r % 2 == 0 else (False, True)):
      res = run_child(args, defaults)
      results[defaults].append(res)
      print(f"round {r} {'ours    ' if defaults else 'XLA own '} " + "  ".join(f"{k} {res[k]:,.3f}" for k in keys)
            + f"  (XLA_FLAGS={res['XLA_FLAGS']!r})", flush=True)
  print(f"\nmedians over {args.rounds} rounds; env: halfcheetah batch {args.env_batch} x {args.env_steps} steps; "
        f"train: paper-size GDT step, batch 64")
  print(f"{'':24}{'XLA defaults':>14}{'ours':>14}{'ours / XLA':>12}")
  for k in keys:
    xla, ours = (float(np.median([x[k] for x in results[d]])) for d in (False, True))
    print(f"{k:24}{xla:14,.3f}{ours:14,.3f}{ours / xla:12.3f}")


if __name__ == "__main__":
  main()
