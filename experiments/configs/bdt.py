"""Bi-directional DT: z_t from an anti-causal transformer encoder over states t..t+encoder_horizon-1 (z_dim 16, flipped back; gdt_reference.md §3).

Command:
  python -m experiments.train_gdt --config=experiments/configs/bdt.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/bdt

Runtime: as cdt.py plus the encoder (a second trunk over K + encoder_horizon - 1 states); the CPU-sized model of
gdt_base.py trained at 19 steps/s on 2 cores loaded 3-4 (2026-12-02).
Expected result (one-shot imitation: conditioned on the held-out target's own states), quick halfcheetah
medium-expert, the CPU-sized model of gdt_base.py, 3000 steps, seed 0 (workdirs/headline_v2/bdt_s0, 4 min on 2
loaded cores, measured 2026-12-02): W1 on x-velocity 0.208 over the 10 targets (best 0.209, middle 0.208), W1 on
reward 0.151. Same launch.seeds command as in gdt_base.py with --configs=bdt --seeds=0 (no --vmap_seeds needed).
The measured numbers above date from before commit f8128f5 (XLA's CPU emitters): on the same machine they are
reproduced with `SEQRL_NO_XLA_DEFAULTS=1` in front of the command (BUILD.md, "XLA flags and numerics").
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="anticausal")
