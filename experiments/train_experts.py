"""Train MxT-Bench PPO experts (one per env) and select each one's snapshot by deterministic success.

  python -m experiments.train_experts --config=experiments/configs/mxt_experts.py:preset=quick \
      --workdir=workdirs/experts_quick

Writes DIR/config.json, DIR/<env>/ (PPO snapshots, snapshot_eval.json, expert.json; `morphology.experts`) and the
table env | steps | success | return | accepted as DIR/experts.md and DIR/experts.csv. Rerunning resumes; finished
envs are skipped. A refused input prints one `error: ...` line and exits 1; --debug shows the traceback.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from gdt.core import cli, runtime
from morphology import experts

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/configs/mxt_experts.py[:args]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "root of the experts' workdirs (config.json, <env>/, experts.md)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  experts.train_experts(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)  # the project's errors as one `error: ...` line; --debug for the traceback
