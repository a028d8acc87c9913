"""MxT-Bench distillation of the token transformer (`MxtTransformer` on `mtg_v2_base_m`); see mxt_base.py for the
arguments, presets and commands.

  python -m experiments.train_mxt --config=experiments/configs/mxt_transformer.py:envs=ant_reach_2+ant_reach_3 --workdir=workdirs/mxt_tf
"""

from experiments.configs import mxt_base


def get_config(arg: str | None = None):
  return mxt_base.get_config(arg, model="mxt_transformer")
