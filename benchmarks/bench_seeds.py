"""Seeds in one process: per-seed train steps/s of N seeds vmapped in one compiled call vs one single run.

The CPU-sized model of experiments/configs/gdt_base.py (CDT, embed 64, 2 layers, batch 32, K 20, 30 bins,
halfcheetah shapes: state 17, action 6) on the synthetic 100 x 1000 trajectories of bench_train_step.py. First the
plain single run (`Trainer.train_many` of one state), then for each N of `--seeds` the N stacked states of
`Trainer.init_many` in one vmapped `train_many` call (a lax.scan of `--steps` steps). Per row: compile seconds, steps/s
per seed (median over `--calls` calls), total seed-steps/s (N x that) and the speed-up over N single runs one after
the other (total / the single run's steps/s).

  python benchmarks/bench_seeds.py [--seeds 1,3,5] [--steps 100] [--calls 3] [--dropout_prng rbg] [--threads N]

Measured 2026-12-02 (bfloat16 matmuls, XLA's legacy CPU emitters; a niced background job, load 2.8), --steps 50
--calls 3: single 64.6 steps/s; N=1 49.6 (0.77x), N=3 17.9 per seed = 53.6 seed-steps/s (0.83x), N=5 11.7 = 58.7
(0.91x); compile 5.7-8.7 s.
Measured 2026-11-21 on 2 CPU cores shared with other jobs (load 2-5), --steps 50 --calls 3, rbg dropout:
  single 22.0 steps/s; N=1 20.4 (0.92x), N=3 6.0 per seed = 17.9 seed-steps/s (0.81x), N=5 3.2 = 16.0 (0.73x);
  compile 8-11 s for every N. On this CPU vmapping seeds does not pay: one run already keeps both cores busy, and
  XLA's CPU backend runs the batched [N, 1920, 64] x [N, 64, 192] dots slower per FLOP than the unbatched GEMM and
  no longer fuses the bias/ReLU and layer-norm-scale broadcasts into them (profiled). The gain purejaxrl reports is
  on accelerators a small model leaves mostly idle; not measured here (no GPU in this session).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.bench_train_step import restrict_cpus, synthetic_data  # noqa: E402
from experiments.configs import cdt  # noqa: E402
from gdt import train  # noqa: E402


def measure(trainer: train.GDTTrainer, state, data, steps: int, calls: int) -> tuple[float, float]:
  """(compile seconds, median seconds per step) of `train_many` on `state` (one or stacked seeds)."""
  t0 = time.perf_counter()
  trainer.compiled(state, data, steps)
  compile_s = time.perf_counter() - t0
  state, _ = trainer.train_many(state, data, steps)  # warm-up call
  times = []
  for _ in range(calls):
    t0 = time.perf_counter()
    state, _ = trainer.train_many(state, data, steps)
    times.append((time.perf_counter() - t0) / steps)
  return compile_s, float(np.median(times))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", default="1,3,5", help="numbers of seeds N to vmap")
  p.add_argument("--steps", type=int, default=100, help="steps per scanned call")
  p.add_argument("--calls", type=int, default=3)
  p.add_argument("--dropout_prng", default=None, help="override train.dropout_prng (threefry | rbg | unsafe_rbg)")
  p.add_argument("--threads", type=int, default=0, help="0: XLA's default; N: run on the first N CPUs")
  args = p.parse_args()
  cpus = restrict_cpus(args.threads)

  config = cdt.get_config()
  config.model.update(embed_dim=64, num_layers=2)
  config.train.batch_size = 32
  if args.dropout_prng is not None:
    config.train.dropout_prng = args.dropout_prng
  s, a, bins = 17, 6, config.num_bins
  trainer = train.GDTTrainer(config, s, a, bins)
  data = trainer.put_data(synthetic_data(100, 1000, s, a, bins))
  print(f"devices: {jax.devices()} ({cpus} CPUs); CDT embed 64, 2 layers, batch 32, K {config.context_length}, "
        f"dropout {config.model.dropout_rate} ({config.train.dropout_prng}); {args.steps} steps per call, median of "
        f"{args.calls} calls")

  compile_s, single_s = measure(trainer, trainer.init(0), data, args.steps, args.calls)
  print(f"{'N':>12}{'compile s':>11}{'steps/s per seed':>18}{'seed-steps/s':>14}{'speed-up vs N single':>22}")
  print(f"{'1 (single)':>12}{compile_s:11.1f}{1 / single_s:18.1f}{1 / single_s:14.1f}{1.0:22.2f}")
  for n in map(int, args.seeds.split(",")):
    compile_s, step_s = measure(trainer, trainer.init_many(range(n)), data, args.steps, args.calls)
    print(f"{n:>12}{compile_s:11.1f}{1 / step_s:18.1f}{n / step_s:14.1f}{single_s * n / step_s:22.2f}", flush=True)


if __name__ == "__main__":
  main()
