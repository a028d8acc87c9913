"""MxT-Bench distillation of the MLP baseline (`MxtMLP`, the reference's mlp_1024_1024 in the full preset, on the
flat padded `mtg_v2_base_m` observation, config `flat`); see mxt_base.py for the arguments, presets and commands.

  python -m experiments.train_mxt --config=experiments/configs/mxt_mlp.py:envs=ant_reach_2+ant_reach_3 --workdir=workdirs/mxt_mlp
"""

from experiments.configs import mxt_base


def get_config(arg: str | None = None):
  return mxt_base.get_config(arg, model="mxt_mlp")
