"""Train a GDT-family policy (DT, CDT, BDT, BC) and evaluate it on held-out targets.

  python -m experiments.train_gdt --config=experiments/configs/cdt.py:env=halfcheetah,feature=x_velocity \
      --workdir=workdirs/cdt [--config.train.num_steps=20000]

Rerunning the same command on the same workdir resumes from the last checkpoint (refused if the config or the
dataset file changed). A refused input prints one `error: ...` line and exits 1; --debug shows the traceback.
"""

from absl import flags
from ml_collections import config_flags

from gdt import evaluate, train
from gdt.core import cli, runtime

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/configs/<name>.py[:args]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (config.json, metrics, checkpoints, evaluation)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  config = _CONFIG.value
  result = train.train_and_evaluate(config, _WORKDIR.value)
  print(evaluate.markdown_table({config.conditioning: result}))


if __name__ == "__main__":
  cli.run(main)  # the project's errors as one `error: ...` line; --debug for the traceback
