"""Bi-directional DT: z_t from an anti-causal transformer encoder over states t..t+encoder_horizon-1 (z_dim 16, flipped back; gdt_reference.md §3).

Command:
  python -m experiments.train_gdt --config=experiments/configs/bdt.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/bdt

Runtime: as cdt.py plus the encoder (a second trunk over K + encoder_horizon - 1 states); the CPU-sized model of
gdt_base.py trained at 25 steps/s (vs ~43 for CDT) on 2 shared cores.
Expected result (one-shot imitation: conditioned on the held-out target's own states), quick halfcheetah
medium-expert, the CPU-sized model of gdt_base.py, 3000 steps, seed 0 (workdirs/headline_quick2/bdt_s0): W1 on
x-velocity 0.172 over the 10 targets (best 0.253, middle 0.091), W1 on reward 0.167. Same launch.seeds command as
in gdt_base.py with --configs=bdt --seeds=0 --set=train.dropout_prng=threefry (the masks of that run).
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="anticausal")
