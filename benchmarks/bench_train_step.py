"""Train-step throughput of the reference configuration vs this machine's fp32 matmul roofline.

Reference configuration (gdt_reference.md §5.1): batch 64, K 20 (60 tokens), 3 layers, embed 128, 1 head, CDT with
30 bins, halfcheetah shapes (state 17, action 6). Reports compile time apart from the steady state (a lax.scan of
`--steps` steps per call), XLA's FLOP count per step (cost analysis of the compiled scan / steps), the machine's fp32
matmul GFLOP/s measured in the same process, and the fraction of that roofline the step reaches.

  python benchmarks/bench_train_step.py [--steps 100] [--calls 3] [--batch 64] [--dropout 0] [--dropout_prng threefry]

Measured 2026-11-21, 2 CPU cores (quiet; a nice-19 job in the background), 15.27 GFLOP/step (XLA count):
  default (dropout 0.1, train.dropout_prng 'rbg')  161-163 ms/step, 94 GFLOP/s = 30.5-32% of a ~300 GFLOP/s
                                                   2048^3 matmul measured in the same run
  --dropout_prng threefry (jax's default PRNG)     187-192 ms/step, 24.5-26% (threefry mask bits are costly on CPU)
  --dropout 0                                      143 ms/step, 35.1% of roofline
Where the rest goes: the matmuls are small (3840 x 128 x 512 for the MLP, 60 x 60 x 128 per sequence for the
single-head attention), far below the 2048^3 rate on CPU; layer norms, softmax, ReLU and the AdamW update are
memory-bound elementwise passes; the backward pass costs ~2x the forward's FLOPs plus the dropout masks' recompute.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.configs import cdt  # noqa: E402
from gdt import train  # noqa: E402


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
  """Sustained fp32 GFLOP/s of an n x n x n matmul (the compute roofline for this step)."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  f(a, b).block_until_ready()
  t0 = time.perf_counter()
  for _ in range(reps):
    out = f(a, b)
  out.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def synthetic_data(num_traj: int, length: int, s: int, a: int, bins: int) -> train.DeviceData:
  rng = np.random.default_rng(0)
  cond = rng.random((num_traj, length, bins)).astype(np.float32)
  return train.DeviceData(
      states=rng.normal(size=(num_traj, length, s)).astype(np.float32),
      actions=rng.uniform(-1, 1, (num_traj, length, a)).astype(np.float32),
      cond=cond / cond.sum(-1, keepdims=True),
      lengths=np.full(num_traj, length, np.int32),
      sample_logits=np.zeros(num_traj, np.float32))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=100, help="steps per scanned call")
  p.add_argument("--calls", type=int, default=3)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--dropout", type=float, default=None, help="override model.dropout_rate (0 shows its cost)")
  p.add_argument("--dropout_prng", default=None, help="override train.dropout_prng (threefry | rbg | unsafe_rbg)")
  args = p.parse_args()

  config = cdt.get_config()
  config.train.batch_size = args.batch
  if args.dropout is not None:
    config.model.dropout_rate = args.dropout
  if args.dropout_prng is not None:
    config.train.dropout_prng = args.dropout_prng
  s, a, bins = 17, 6, config.num_bins
  trainer = train.GDTTrainer(config, s, a, bins)
  data = trainer.put_data(synthetic_data(100, 1000, s, a, bins))
  state = trainer.init(0)
  n_params = sum(x.size for x in jax.tree.leaves(state.params))

  t0 = time.perf_counter()
  trainer.compiled(state, data, args.steps)
  compile_s = time.perf_counter() - t0
  # XLA's cost analysis counts a while-loop body once, so the FLOPs come from one unscanned step.
  cost = jax.jit(trainer.train_step).lower(state, data).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops_per_step = float(cost.get("flops", float("nan")))

  state, _ = trainer.train_many(state, data, args.steps)  # warm-up call
  times = []
  for _ in range(args.calls):
    t0 = time.perf_counter()
    state, metrics = trainer.train_many(state, data, args.steps)
    times.append((time.perf_counter() - t0) / args.steps)
  step_s = float(np.median(times))
  peak = matmul_gflops()
  achieved = flops_per_step / step_s / 1e9

  print(f"devices: {jax.devices()}; dropout PRNG {config.train.dropout_prng}")
  print(f"config: batch {args.batch}, K {config.context_length}, {config.model.num_layers} layers, embed "
        f"{config.model.embed_dim}, {config.model.num_heads} head, {bins} bins, dropout {config.model.dropout_rate}; "
        f"{n_params:,} params")
  print(f"compile (scan of {args.steps} steps): {compile_s:.1f}s")
  print(f"steady state: {step_s * 1e3:.2f} ms/step = {1 / step_s:,.1f} steps/s "
        f"(median of {args.calls} calls of {args.steps} steps); loss {float(metrics['loss']):.4f}")
  print(f"XLA FLOPs/step: {flops_per_step / 1e9:.3f} GFLOP -> {achieved:.1f} GFLOP/s achieved")
  print(f"fp32 matmul roofline (2048^3): {peak:.1f} GFLOP/s -> {100 * achieved / peak:.1f}% of roofline")
  print(f"100k reference steps would take {format(1e5 * step_s / 60, '.1f')} min")


if __name__ == "__main__":
  main()
