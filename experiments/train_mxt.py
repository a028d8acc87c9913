"""Train an MxT-Bench distillation policy (token transformer or MLP) on expert data and evaluate it per env.

  python -m experiments.train_mxt --config=experiments/configs/mxt_base.py:envs=ant_reach_2+ant_reach_3,experts_root=workdirs/mxt_experts \
      --workdir=workdirs/mxt_bc [--config.train.num_steps=20000]

Modes (config argument mode=): train, zero_shot (split=...), few_shot (split=..., source_workdir=..., num_demos=...);
see experiments/configs/mxt_base.py. Missing datasets are collected once from the experts under experts_root into
data.dataset_dir. Rerunning the same command on the same workdir resumes from the last checkpoint (refused if the
config or the datasets changed). The evaluation tables go to <workdir>/eval_<mode>.{md,csv,json}. A refused input
prints one `error: ...` line and exits 1; --debug shows the traceback.
"""

from absl import flags
from ml_collections import config_flags

from gdt.core import cli, runtime
from morphology import distill

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/configs/mxt_*.py[:args]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (config.json, metrics, checkpoints, evaluation)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  distill.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
