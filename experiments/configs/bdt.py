"""Bi-directional DT: z_t from an anti-causal transformer encoder over states t..t+encoder_horizon-1 (z_dim 16, flipped back; gdt_reference.md §3).

Command:
  python -m experiments.train_gdt --config=experiments/configs/bdt.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/bdt

Runtime: as cdt.py plus the encoder (a second trunk over K + encoder_horizon - 1 states); the CPU-sized model of
gdt_base.py trains at ~27 steps/s (vs ~43 for CDT) on 2 cores.
Expected result (one-shot imitation: conditioned on the held-out target's own states), quick halfcheetah
medium-expert, the CPU-sized model of gdt_base.py, 3000 steps, seed 0 (workdirs/headline_quick3/bdt_s0, 2.4 min): W1 on
x-velocity 0.162 over the 10 targets (best 0.251, middle 0.073), W1 on reward 0.162. Same launch.seeds command as in
gdt_base.py with --configs=bdt --seeds=0 (threefry masks gave 0.172).
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="anticausal")
