"""Behaviour cloning baseline: the same trunk with a constant (learned) z, i.e. no conditioning.

Command:
  python -m experiments.train_gdt --config=experiments/configs/bc.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/bc

Runtime and measured results (CDT vs DT vs BC, same runs): see experiments/configs/gdt_base.py.
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="none")
