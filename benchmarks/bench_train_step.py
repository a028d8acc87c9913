"""Train-step time of the reference configuration: ours (JAX) vs the reference PyTorch step and the matmul roofline.

Reference configuration (gdt_reference.md §5.1): batch 64, K 20 (60 tokens), 3 layers, embed 128, 1 head, CDT with
30 bins, halfcheetah shapes (state 17, action 6), 731,270 parameters. Reports, for ours, compile time apart from the
steady state (a lax.scan of `--steps` steps per call; ms/step = median over `--calls` calls), XLA's FLOP count per
step (cost analysis of one step), the machine's fp32 matmul GFLOP/s measured in the same process, and the fraction of
that roofline the step reaches. Then the same model and update in eager PyTorch on CPU, as the reference code runs
it (benchmarks/torch_reference_step.py: its get_batch, forward, backward, clip, AdamW; same --steps/--calls/--batch/
--dropout, median of blocks), run in a SUBPROCESS so torch's and XLA's thread pools never share a process, and the
ratio ours/reference. torch is the optional extra `bench` (pip install -e .[bench]); without it the reference is
skipped with that hint and ours is still printed.

  python benchmarks/bench_train_step.py [--steps 100] [--calls 3] [--batch 64] [--dropout 0] [--dropout_prng threefry]
      [--threads N] [--torch_compile] [--skip_reference]

Threads: `--threads 0` (default) lets each library pick (XLA sizes its CPU pools from the CPUs the process may run
on; torch.set_num_threads defaults to the physical cores). `--threads N` restricts BOTH processes to the same first
N CPUs (os.sched_setaffinity, set before XLA starts and inherited by the subprocess; JAX has no thread-count API)
and calls torch.set_num_threads(N). Both counts are printed.

Data: ours samples K-step windows inside the jitted scan from on-device arrays (gdt.train.sample_batch); the
reference samples them per step with its per-window numpy loop on the host. Both use the same synthetic 100 x 1000
trajectories (same generator and seed); all lengths are equal, so our length-proportional trajectory sampling and
the reference's uniform one draw from the same distribution. The reference's get_batch time is printed apart.

Measured 2026-12-02, 2 CPU cores, nothing else running (load 1.5-1.9; this VM's 2048^3 matmul rate varied
157-195 GFLOP/s between runs, so the host is shared: quote ratios from one run), defaults, 3 runs, with the XLA
flags `import gdt` sets:
  ours 127.4 / 124.2 / 99.6 ms/step, the reference (torch 2.13 eager, same process tree) 205.9 / 168.7 / 161.1 ms:
  ours / reference 0.619 / 0.736 / 0.618 (median 0.619 = 1.62x its steps/s); 12.26 GFLOP/step (XLA count),
  53-66% of the fp32 matmul roofline. Earlier the same day, before those flags: 0.566 / 0.604 / 0.707 (median
  0.604; ours 104-129 ms vs 183-191).
What each change did (same machine, same day; A/B in one process where noted):
  --matmul_dtype float32 (everything else as default)   169 ms vs the reference's 166 in the same run (1.02)
  model.matmul_dtype bfloat16 (default) vs float32      107-122 vs 128-147 ms (A/B, one process): ~1.2x
  last trunk layer on the state tokens only (always)    15.27 -> 12.35 GFLOP/step (the policy reads 1 in 3 tokens)
  16-bit dropout uniforms (always) vs flax's Dropout    dropout's cost 28 -> ~13 ms/step (A/B: 120 -> 107 ms)
  --dropout 0 (bfloat16)                                97 ms/step (68.9% of roofline)
  XLA's legacy CPU emitters (import gdt) vs its default  121 vs 143 ms (medians, benchmarks/bench_xla_flags.py)
Before these (2026-11-21, quieter host): 161-163 ms/step with rbg masks, 187-192 with threefry, 143 without dropout.
Where the rest goes: the matmuls are small (3840 x 128 x 512 for the MLP, 60 x 60 x 128 per sequence for the
single-head attention), far below the 2048^3 rate on CPU; layer norms, softmax, ReLU and the AdamW update are
memory-bound elementwise passes; the backward pass costs ~2x the forward's FLOPs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.configs import cdt  # noqa: E402
from gdt import train  # noqa: E402

REFERENCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference_step.py")


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
  # torch_reference_step.synthetic_trajectories draws the same arrays (same generator, seed and order).
  rng = np.random.default_rng(0)
  cond = rng.random((num_traj, length, bins)).astype(np.float32)
  return train.DeviceData(
      states=rng.normal(size=(num_traj, length, s)).astype(np.float32),
      actions=rng.uniform(-1, 1, (num_traj, length, a)).astype(np.float32),
      cond=cond / cond.sum(-1, keepdims=True),
      lengths=np.full(num_traj, length, np.int32),
      sample_logits=np.zeros(num_traj, np.float32))


def restrict_cpus(threads: int) -> int:
  """Pins this process (and the reference subprocess, which inherits it) to the first `threads` CPUs; returns the
  number of CPUs it may use. Must run before XLA's CPU client starts: its pools are sized from this set."""
  if threads:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
  return len(os.sched_getaffinity(0))


def run_reference(args, dropout: float) -> dict | str:
  """The reference PyTorch step in a subprocess: its JSON result, or why there is none."""
  if importlib.util.find_spec("torch") is None:  # find_spec does not import torch into this process
    return "torch is not installed; the reference step needs the optional extra: pip install -e .[bench]"
  cmd = [sys.executable, REFERENCE_SCRIPT, "--steps", str(args.steps), "--calls", str(args.calls), "--batch",
         str(args.batch), "--dropout", str(dropout), "--threads", str(args.threads), "--json"]
  if args.torch_compile:
    cmd.append("--torch_compile")
  proc = subprocess.run(cmd, capture_output=True, text=True)
  lines = proc.stdout.strip().splitlines()
  if proc.returncode or not lines or not lines[-1].startswith("{"):
    return f"the reference subprocess failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
  return json.loads(lines[-1])


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=100, help="steps per scanned call (and per reference block)")
  p.add_argument("--calls", type=int, default=3)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--dropout", type=float, default=None, help="override model.dropout_rate (0 shows its cost)")
  p.add_argument("--dropout_prng", default=None, help="override train.dropout_prng (threefry | rbg | unsafe_rbg)")
  p.add_argument("--matmul_dtype", default=None, help="override model.matmul_dtype (float32 | bfloat16)")
  p.add_argument("--threads", type=int, default=0,
                 help="0: each library's default; N: both processes on the first N CPUs, torch.set_num_threads(N)")
  p.add_argument("--torch_compile", action="store_true", help="torch.compile the reference model (not the default)")
  p.add_argument("--skip_reference", action="store_true", help="only ours")
  args = p.parse_args()
  cpus = restrict_cpus(args.threads)

  config = cdt.get_config()
  config.train.batch_size = args.batch
  if args.dropout is not None:
    config.model.dropout_rate = args.dropout
  if args.dropout_prng is not None:
    config.train.dropout_prng = args.dropout_prng
  if args.matmul_dtype is not None:
    config.model.matmul_dtype = args.matmul_dtype
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

  print(f"devices: {jax.devices()}; dropout PRNG {config.train.dropout_prng}; matmuls "
        f"{config.model.matmul_dtype}; threads: XLA pools sized from "
        f"{cpus} CPUs ({'--threads ' + str(args.threads) if args.threads else 'its default'})")
  print(f"config: batch {args.batch}, K {config.context_length}, {config.model.num_layers} layers, embed "
        f"{config.model.embed_dim}, {config.model.num_heads} head, {bins} bins, dropout {config.model.dropout_rate}; "
        f"{n_params:,} params")
  print(f"compile (scan of {args.steps} steps): {compile_s:.1f}s")
  print(f"steady state: {step_s * 1e3:.2f} ms/step = {1 / step_s:,.1f} steps/s "
        f"(median of {args.calls} calls of {args.steps} steps); loss {float(metrics['loss']):.4f}")
  print(f"XLA FLOPs/step: {flops_per_step / 1e9:.3f} GFLOP -> {achieved:.1f} GFLOP/s achieved")
  print(f"fp32 matmul roofline (2048^3): {peak:.1f} GFLOP/s -> {100 * achieved / peak:.1f}% of roofline")
  print(f"100k reference steps would take {format(1e5 * step_s / 60, '.1f')} min")

  if args.skip_reference:
    return
  ref = run_reference(args, config.model.dropout_rate)
  if isinstance(ref, str):
    print(f"reference PyTorch step: skipped: {ref}")
    return
  ref_s = ref["ms_per_step"] / 1e3
  mode = "torch.compile" if ref["compiled"] else "torch eager"
  print(f"reference PyTorch {ref['torch']}, {mode} (subprocess): {ref['threads']} torch threads "
        f"(interop {ref['interop_threads']}) on {ref['cpus']} CPUs; {ref['params']:,} params"
        + ("" if ref["params"] == n_params else f" != ours {n_params:,}"))
  print(f"{'':28}{'ms/step':>10}{'steps/s':>10}{'% roofline':>12}   notes")
  print(f"{'ours (JAX, scanned)':28}{step_s * 1e3:10.2f}{1 / step_s:10.2f}{100 * achieved / peak:11.1f}%   "
        f"median of {args.calls} calls of {args.steps} steps")
  ref_pct = 100 * flops_per_step / ref_s / 1e9 / peak
  print(f"{'reference (' + mode + ')':28}{ref['ms_per_step']:10.2f}{1 / ref_s:10.2f}{ref_pct:11.1f}%   "
        f"median of {ref['calls']} blocks of {ref['steps']} steps; get_batch {ref['get_batch_ms']:.2f} ms of it")
  print("(the reference's % of roofline counts our step's XLA FLOPs: the same model and math)")
  print(f"ours / reference: {step_s / ref_s:.3f} of the reference's time per step (= {ref_s / step_s:.2f}x its "
        f"steps/s)")


if __name__ == "__main__":
  main()
