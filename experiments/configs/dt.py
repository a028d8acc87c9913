"""Decision Transformer baseline (gdt_reference.md §1 'deterministic' mode): z_t = the future SUM of the feature, divided by rtg_scale=1000, evaluated with the same open-loop protocol as CDT (the target trajectory's own scaled future sum at step t).

Command:
  python -m experiments.train_gdt --config=experiments/configs/dt.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/dt

Runtime and measured results (CDT vs DT vs BC, same runs): see experiments/configs/gdt_base.py.
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="rtg")
