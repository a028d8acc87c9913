"""`launch.mxt`, the MxT pipeline driver, with the experts and the distillation runs replaced by recorders (their
own tests train them): the plan's few-shot runs start from the zero-shot run of the same model and seed, every
run's config validates, a rerun runs nothing, a changed distillation setting reruns every run, and the report's mean
± std and share of the expert data's success are numpy's over the runs' rows."""

import json
import os

import numpy as np
import pytest

from experiments.configs import mxt_pipeline
from launch import mxt
from morphology import distill, experts


@pytest.fixture
def recorders(monkeypatch):
  calls = {"experts": 0, "runs": []}
  success = {}  # (run name, env) -> the success a fake run reports

  def fake_experts(config, root):
    calls["experts"] += 1
    for env in config.envs:
      wd = experts.expert_workdir(root, env)
      os.makedirs(wd, exist_ok=True)
      with open(os.path.join(wd, experts.EXPERT_FILE), "w") as f:
        json.dump(dict(env=env, success=0.5, episodes=32, seed=experts.expert_seed(config, env)), f)
    return []

  def fake_run(config, workdir, log=print):
    distill.validate_config(config)
    train, evaluated = distill.run_envs(config)
    name = os.path.basename(workdir)
    calls["runs"].append((name, config.mode, tuple(train), config.few_shot.source_workdir))
    calls.setdefault("steps", {})[name] = config.train.num_steps
    calls.setdefault("evaluated", {})[name] = tuple(evaluated)
    calls.setdefault("demos", {})[name] = config.few_shot.num_demos or config.data.episodes_per_env
    rows = [dict(env=e, success_rate=success.setdefault((name, e), float(np.random.default_rng(len(success)).uniform())),
                 final_over_initial=1.0, episodes=config.eval.episodes) for e in evaluated]
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(mxt.config_to_dict(config), f)
    with open(mxt.eval_path(workdir, config.mode), "w") as f:
      json.dump(rows, f)
    return rows

  monkeypatch.setattr(experts, "train_experts", fake_experts)
  monkeypatch.setattr(distill, "train_and_evaluate", fake_run)
  monkeypatch.setattr(mxt, "data_success_of", lambda workdir, env: (0.4, 64) if env == "ant_touch_2" else None)
  return calls, success


def test_pipeline_plan_resume_and_report(recorders, tmp_path):
  calls, success = recorders
  c = mxt_pipeline.get_config("preset=quick,seeds=0+1")
  c.transfer_models = ("mxt_transformer",)  # both models in distribution, only the transformer transferred
  wd = str(tmp_path / "mxt")
  out = mxt.run_pipeline(c, wd, log=lambda s: None)
  runs = {name: (mode, train, source) for name, mode, train, source in calls["runs"]}
  assert runs["scratch_mxt_transformer_s0"] == ("train", ("ant_touch_3",), "")
  assert calls["demos"]["scratch_mxt_transformer_s0"] == calls["demos"]["fs_mxt_transformer_s0"] == c.num_demos
  # The quick envs are the split's training envs: the transformer's zero-shot run is its in-distribution run too.
  assert len(runs) == (1 + 3) * 2 and calls["experts"] == 1
  assert "indist_mxt_mlp_s1" in runs and not any(n.startswith(("zs_mxt_mlp", "fs_mxt_mlp", "scratch_mxt_mlp"))
                                                   for n in runs)
  assert "indist_mxt_transformer_s1" not in runs and runs["indist_mxt_mlp_s1"][1] == ("ant_touch_2", "ant_touch_4")
  assert runs["zs_mxt_transformer_s0"][1] == ("ant_touch_2", "ant_touch_4")
  assert calls["evaluated"]["zs_mxt_transformer_s0"] == ("ant_touch_3", "ant_touch_2", "ant_touch_4")
  fs_mode, fs_train, fs_source = runs["fs_mxt_transformer_s1"]
  assert (fs_mode, fs_train) == ("few_shot", ("ant_touch_3",))
  assert fs_source == os.path.join(wd, "runs", "zs_mxt_transformer_s1")
  assert calls["steps"]["fs_mxt_transformer_s1"] == calls["steps"]["scratch_mxt_transformer_s1"] == 2000 and calls["steps"]["zs_mxt_transformer_s1"] == 24000
  order = [name for name, *_ in calls["runs"]]
  assert order.index("zs_mxt_transformer_s1") < order.index("fs_mxt_transformer_s1")

  # The report: ant_touch_2 in distribution, each model's two seeds (the transformer's from its zero-shot runs).
  md = open(out["report"]["md"]).read()
  for model, kind in (("mxt_transformer", "zs"), ("mxt_mlp", "indist")):
    s = [success[(f"{kind}_{model}_s{k}", "ant_touch_2")] for k in (0, 1)]
    row = [line for line in md.splitlines() if line.startswith("| ant_touch_2 |") and model in line][0]
    assert f"{np.mean(s):.3f} ± {np.std(s):.3f}" in row and f"| {np.mean(s) / 0.4:.2f} |" in row
    assert "0.400 (64 ep.)" in row and "0.500 (32 ep., seed 0)" in row
  # the held-out env's expert is the quick preset's seed-1 one (mxt_experts env_seeds)
  held_out_rows = [line for line in md.splitlines() if line.startswith("| ant_touch_3 |")]
  assert held_out_rows and all("(32 ep., seed 1)" in line for line in held_out_rows)
  assert os.path.exists(out["report"]["png"]) and os.path.exists(out["report"]["csv"])

  # A rerun runs nothing and keeps the working invocation's wall time; a changed setting reruns every run.
  timings = json.load(open(os.path.join(wd, mxt.TIMINGS_FILE)))
  assert mxt.run_pipeline(c, wd, log=lambda s: None)["ran"] == []
  again = json.load(open(os.path.join(wd, mxt.TIMINGS_FILE)))
  assert again["pipeline (last invocation)"] == timings["pipeline (last invocation)"]
  c.distill = tuple(c.distill) + ("train.learning_rate=1e-4",)
  assert len(mxt.run_pipeline(c, wd, log=lambda s: None)["ran"]) == len(runs)


def test_other_envs_than_the_split_train_their_own_in_distribution_runs(recorders, tmp_path):
  calls, _ = recorders
  c = mxt_pipeline.get_config("preset=quick,seeds=0")
  c.envs = ("ant_touch_2", "ant_touch_3", "ant_touch_4")
  mxt.run_pipeline(c, str(tmp_path / "mxt"), log=lambda s: None)
  runs = {name: train for name, _, train, _ in calls["runs"]}
  assert runs["indist_mxt_transformer_s0"] == c.envs and runs["zs_mxt_transformer_s0"] == ("ant_touch_2", "ant_touch_4")
  assert calls["evaluated"]["zs_mxt_transformer_s0"] == ("ant_touch_3",)


def test_bad_pipeline_configs_are_refused_before_any_work(recorders, tmp_path):
  calls, _ = recorders
  c = mxt_pipeline.get_config("preset=quick")
  c.split = "ant_touch_tiny_zs_3"
  with pytest.raises(ValueError, match="split"):
    mxt.run_pipeline(c, str(tmp_path / "a"), log=lambda s: None)
  c = mxt_pipeline.get_config("preset=quick")
  c.distill = ("train.batch_size=0",)
  with pytest.raises(ValueError, match="train.batch_size"):
    mxt.run_pipeline(c, str(tmp_path / "b"), log=lambda s: None)
  with pytest.raises(ValueError, match="preset"):
    mxt_pipeline.get_config("preset=huge")
  assert calls["experts"] == 0 and calls["runs"] == [] and not os.path.exists(tmp_path / "b")


def test_the_printed_command_reruns_each_run_with_its_config(recorders, tmp_path, monkeypatch):
  """Every run's printed `experiments.train_mxt` command, parsed by the entry point's own flags, gives that run's
  config (the zero-shot runs override a tuple, eval.envs, and the few-shot runs a field twice)."""
  import shlex

  from absl import flags as absl_flags
  from ml_collections import config_flags

  logged = []
  c = mxt_pipeline.get_config("preset=quick,seeds=0")
  mxt.run_pipeline(c, str(tmp_path / "mxt"), log=logged.append)
  commands = {line.split(": ", 1)[0].split()[-1]: line.split(": ", 1)[1] for line in logged
              if "python -m experiments.train_mxt" in line}
  assert set(commands) == {run.name for run in mxt.plan(c)}
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(mxt.__file__))))
  for run in mxt.plan(c):
    argv = shlex.split(commands[run.name])
    assert argv[:3] == ["python", "-m", "experiments.train_mxt"]
    fv = absl_flags.FlagValues()
    parsed = config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=["train_mxt"] + argv[3:])
    absl_flags.DEFINE_string("workdir", None, "", flag_values=fv)
    fv(["train_mxt"] + argv[3:])
    spec, overrides = mxt.distill_spec(c, run, str(tmp_path / "mxt"), str(tmp_path / "mxt" / "experts"))
    assert mxt.config_to_dict(parsed.value) == mxt.config_to_dict(mxt.load_config(spec, overrides)), run.name
    assert fv["workdir"].value == mxt.run_workdir(str(tmp_path / "mxt"), run)
