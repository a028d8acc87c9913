"""Bi-directional DT: z_t from an anti-causal transformer encoder over states t..t+encoder_horizon-1 (z_dim 16, flipped back; gdt_reference.md §3).

Command:
  python -m experiments.train_gdt --config=experiments/configs/bdt.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/bdt

Runtime: as cdt.py plus the encoder (a second trunk over K + encoder_horizon - 1 states), so roughly twice the
train-step cost. Expected result: not measured yet in this codebase (BDT was not run for the headline comparison).
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="anticausal")
