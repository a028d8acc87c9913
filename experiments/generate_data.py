"""Generate D4RL-style Brax datasets (PPO snapshots -> random/medium/medium-replay/expert/medium-expert).

  python -m experiments.generate_data --config=experiments/configs/data.py:env=halfcheetah,preset=quick \
      --workdir=workdirs/data_quick

Writes DIR/datasets/{env}-{level}.npz (where `train_gdt`'s data_dir looks), DIR/runs/{env}/ (config.json,
PPO snapshots, summary.md) and DIR/summary.md (every env's table). Several envs share one DIR; rerunning resumes.
A refused input prints one `error: ...` line and exits 1; --debug shows the traceback.
"""

from absl import flags
from ml_collections import config_flags

from gdt.core import cli, runtime
from gdt.data import generation

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/configs/data.py[:args]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (config.json, snapshots, datasets, summary.md)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  generation.generate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)  # the project's errors as one `error: ...` line; --debug for the traceback
