"""Categorical DT: z_t = the normalised 30-bin histogram of the feature over the rest of the trajectory (gdt_reference.md §2).

Command:
  python -m experiments.train_gdt --config=experiments/configs/cdt.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/cdt

Runtime and measured results (CDT vs DT vs BC, same runs): see experiments/configs/gdt_base.py.
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="histogram")
