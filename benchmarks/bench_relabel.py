"""Hindsight relabelling time: vectorised `gdt.hindsight` vs the reference's per-step numpy loop.

Relabels N padded trajectories of T steps (default 200 x 1000, a quarter of them shorter) with the
scaled RTG and the 30-bin future histogram, for gamma 1 and 0.99. Jit compile time is reported apart
from steady-state time (median of --repeats calls; the persistent compile cache is left off so the
compile time is a cold one). The reference's loop (train_cdt.py: walk each trajectory backwards, one
np.histogram per step, renormalise) is re-implemented here and timed on --ref-trajectories
trajectories, then scaled to N.

  python benchmarks/bench_relabel.py [--trajectories=200] [--steps=1000] [--bins=30] [--ref-trajectories=10]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gdt import hindsight  # noqa: E402

RTG_SCALE = 1000.0  # the GDT configs' rtg_scale (experiments/configs/gdt_base.py)


def reference_histograms(values: np.ndarray, length: int, edges: np.ndarray, gamma: float) -> np.ndarray:
  """The reference's backward recursion: per step one np.histogram of a scalar, then renormalise."""
  rows = []
  dist = np.zeros(len(edges) - 1)
  mass = 0.0
  for v in values[:length][::-1]:
    one_hot = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0]
    mass *= gamma
    dist = one_hot + dist * mass
    dist = dist / dist.sum()
    mass += 1
    rows.append(dist)
  return np.stack(rows[::-1])


def reference_rtg(values: np.ndarray, length: int, gamma: float, scale: float) -> np.ndarray:
  """The reference's backward recursion for the scaled discounted sum."""
  out = np.zeros(length)
  acc = 0.0
  for t in range(length - 1, -1, -1):
    acc = values[t] + gamma * acc
    out[t] = acc
  return out * scale


def time_jit(fn, *args, repeats: int) -> tuple[float, float]:
  """(compile seconds, median steady-state seconds) of jit(fn)(*args)."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
  return compile_s, statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--trajectories", type=int, default=200)
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--bins", type=int, default=30)
  parser.add_argument("--ref-trajectories", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  n, t = args.trajectories, args.steps
  lengths = np.full(n, t)
  lengths[: n // 4] = rng.integers(t // 10, t, n // 4)  # hopper/walker-like early terminations
  mask = np.arange(t)[None, :] < lengths[:, None]
  values = (rng.normal(size=(n, t)) * mask).astype(np.float32)
  edges = np.asarray(hindsight.bin_edges(values, mask, args.bins))
  print(f"{jax.default_backend()} ({jax.device_count()} device), {n} trajectories x {t} steps "
        f"({int(mask.sum())} real), {args.bins} bins")
  print(f"{'aggregator':<10} {'gamma':>5} {'compile s':>10} {'jax s':>9} {'ref loop s (scaled)':>20} {'speed-up':>9}")

  ref_idx = np.arange(n // 4, n // 4 + args.ref_trajectories)  # full-length trajectories
  ref_scale = mask.sum() / mask[ref_idx].sum()
  for name, gamma in (("rtg", 1.0), ("rtg", 0.99), ("histogram", 1.0), ("histogram", 0.99)):
    if name == "rtg":
      fn = functools.partial(hindsight.returns_to_go, gamma=gamma)
      ref = lambda i, g=gamma: reference_rtg(values[i], lengths[i], g, RTG_SCALE)
    else:
      fn = functools.partial(hindsight.future_histogram, edges=edges, gamma=gamma)
      ref = lambda i, g=gamma: reference_histograms(values[i], lengths[i], edges, g)
    compile_s, run_s = time_jit(lambda v, m, fn=fn: fn(v, mask=m), values, mask, repeats=args.repeats)
    t0 = time.perf_counter()
    for i in ref_idx:
      ref(i)
    ref_s = (time.perf_counter() - t0) * ref_scale
    print(f"{name:<10} {gamma:>5} {compile_s:>10.3f} {run_s:>9.4f} {ref_s:>20.3f} {ref_s / run_s:>8.0f}x")


if __name__ == "__main__":
  main()
