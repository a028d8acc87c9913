"""launch.seeds: the sweep table covers every finished run in the sweep directory, --set overrides are typed, and a
bad sweep is refused in one line before any work."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from launch import seeds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _finished(root, name, seed, conditioning, w1):
  run = root / f"{name}_s{seed}"
  run.mkdir()
  (run / f"eval_{conditioning}.json").write_text(json.dumps({"aggregates": {"w1_all": w1}}))


def test_summary_keeps_earlier_configs_and_orders_seeds(tmp_path):
  _finished(tmp_path, "cdt", 1, "histogram", 0.3)
  _finished(tmp_path, "cdt", 0, "histogram", 0.1)
  _finished(tmp_path, "bdt", 0, "anticausal", 0.5)  # from an earlier invocation
  _finished(tmp_path, "dt", 0, "rtg", 0.4)
  (tmp_path / "bc_s0").mkdir()  # unfinished: no eval json
  rows = seeds.collect(str(tmp_path), ["dt", "cdt"])
  assert list(rows) == ["dt", "cdt", "bdt"]
  assert [a["w1_all"] for a in rows["cdt"]] == [0.1, 0.3]
  table = seeds.summary(rows)
  assert "| cdt | 2 | - | - | 0.200 ± 0.100 | - |" in table


def test_overrides_convert_to_the_field_type():
  config = ml_collections.ConfigDict({"train": {"num_steps": 10, "lr": 0.1, "uniform": False}})
  seeds.apply_overrides(config, ["train.num_steps=20", "train.lr=3e-4", "train.uniform=true"])
  assert (config.train.num_steps, config.train.lr, config.train.uniform) == (20, 3e-4, True)
  with pytest.raises(ValueError, match="no field 'train.steps'"):
    seeds.apply_overrides(config, ["train.steps=5"])


def test_a_finished_run_is_reused_only_for_the_same_config(tmp_path):
  config = ml_collections.ConfigDict({"conditioning": "histogram", "train": {"num_steps": 10}})
  run = tmp_path / "cdt_s0"
  assert not seeds.finished(str(run), config)  # nothing there yet
  run.mkdir()
  (run / "config.json").write_text(json.dumps(config.to_dict()))
  (run / "eval_histogram.json").write_text("{}")
  assert seeds.finished(str(run), config)
  config.train.num_steps = 20
  with pytest.raises(ValueError, match="train.num_steps"):
    seeds.finished(str(run), config)


@pytest.mark.parametrize("args,message", [
    (["--configs=nosuch", "--workdir=W"], "--configs: no config 'nosuch' under experiments/configs (there: bc, bdt"),
    (["--configs=cdt", "--set=train.learning_rate=-1", "--workdir=W"], "config field 'train.learning_rate'"),
    (["--configs=cdt"], "Flag --workdir must have a value"),
])
def test_bad_sweeps_are_refused_in_one_line_before_any_work(tmp_path, args, message):
  args = [a.replace("=W", f"={tmp_path / 'sweep'}") for a in args]
  proc = subprocess.run([sys.executable, "-m", "launch.seeds", *args], cwd=ROOT, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
  assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "sweep").exists()  # nothing written
