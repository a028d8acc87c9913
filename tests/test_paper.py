"""`launch.paper`: the registry of paper experiments and the driver on a tiny fake scale (a synthetic data job, two
tiny runs of two seeds, one extra evaluation): report files, a rerun that runs nothing, a changed config refused,
the table's mean ± std equal to numpy's over the eval files."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

import experiments.paper as paper
from experiments.paper import common
from gdt import train
from launch import paper as driver
from tests.test_train import synthetic_trajectories

CALLS = {"data": 0}


@paper.DATA_GENERATORS.register("test_synthetic")
def _synthetic(config, workdir):
  """Writes a small synthetic halfcheetah medium-expert dataset (no PPO); counts its calls."""
  CALLS["data"] += 1
  for seed, level in enumerate(LEVELS):
    synthetic_trajectories(n=8, t_max=30, seed=seed, min_length=30).save(
        os.path.join(workdir, "datasets", f"{config.env}-{level}.npz"))


# Two CDT runs on two synthetic datasets of equal shapes: one training and one rollout compilation serve every run
# (the persistent compilation cache and gdt.evaluate's cached rollout), which keeps this file fast.
LEVELS = ("medium-expert", "medium")


TINY = ("model.embed_dim=16", "model.num_layers=1", "model.num_heads=1", "context_length=5", "num_bins=8",
        "train.batch_size=16", "train.steps_per_call=25", "train.checkpoint_every=25", "train.warmup_steps=1",
        "eval.best_k=1", "eval.middle_k=1", "eval.episodes_per_target=2", "eval.chunk_steps=10", "eval.plots=false")


def tiny_experiment(learning_rate: str = "0.001") -> paper.Experiment:
  def plan():
    data = paper.DataJob("tiny", "experiments/configs/data.py:env=halfcheetah,preset=demo", generator="test_synthetic")
    runs = tuple(paper.RunJob(
        name=level, config=f"experiments/configs/cdt.py:env=halfcheetah,dataset={level},feature=x_velocity,steps=50",
        overrides=TINY + (f"train.learning_rate={learning_rate}",), seeds=(0, 1), data="tiny", eval_name="open_loop",
        # the same rollouts again, with plots: exercises an extra evaluation without another compilation
        evaluations=(paper.Evaluation("plotted", ("eval.plots=true",)),) if level == LEVELS[0] else (),
        tags=common.run_tags(env="halfcheetah", dataset=level, method="CDT")) for level in LEVELS)
    return paper.Plan(data=(data,), runs=runs, protocol=(("seeds", "0, 1"), ("episodes per target", "2")))

  def report(plan_, results, report_dir, scale):
    return common.standard_report(plan_, results, report_dir, scale, title="tiny", rows=("env", "dataset"),
                                  columns=("method", "evaluation"),
                                  metrics=(common.conditioned_w1("all"), common.return_metric("all")))

  return paper.Experiment("tiny", "a tiny test experiment", {"tiny": plan}, report)


def test_registry_lists_the_three_experiments_and_their_plans_schedule(tmp_path):
  names = paper.load_all()
  assert {"gdt_smm", "gdt_imitation", "gdt_bimodal"} <= set(names)
  for name in ("gdt_smm", "gdt_imitation"):
    experiment = paper.get(name)
    for scale in ("quick", "full"):
      jobs = driver.schedule(experiment.plan(scale), str(tmp_path / name), str(tmp_path / "data"))
      assert {j.kind for j in jobs} == {"data", "run"} | ({"eval"} if name == "gdt_smm" else set())
      assert all(j.state == "new" for j in jobs)
  smm = paper.get("gdt_smm").plan("quick")
  assert {r.tag["env"] for r in smm.runs} == {"halfcheetah", "hopper", "walker2d", "ant"}
  assert {(r.tag["feature"], r.tag["method"]) for r in smm.runs} == {
      (f, m) for f in ("x_velocity", "reward") for m in ("CDT", "DT", "BC")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """The tiny experiment run to the end once (vmapped seeds): (workdir, data_root, its run_experiment output)."""
  root = tmp_path_factory.mktemp("paper")
  workdir, data_root = str(root / "exp"), str(root / "data")
  out = driver.run_experiment(tiny_experiment(), "tiny", workdir, data_root, vmap_seeds=True)
  return workdir, data_root, out


def test_driver_runs_every_job_and_writes_the_report(finished):
  workdir, _, out = finished
  assert CALLS["data"] == 1
  assert len(out["ran"]) == 1 + 4 + 2  # the data job, 2 runs x 2 seeds, the extra evaluation x 2 seeds
  report = os.path.join(workdir, paper.REPORT_DIR)
  for name in ("report.md", "results.csv", "per_seed.csv", "w1_bars.png", "histograms_medium-expert_open_loop.png",
               "histograms_medium-expert_plotted.png", "histograms_medium_open_loop.png"):
    assert os.path.getsize(os.path.join(report, name)) > 0, name
  text = open(os.path.join(report, "report.md")).read()
  assert "- scale: tiny" in text and "- seeds: 0, 1" in text and "- episodes per target: 2" in text
  assert "| env | dataset | CDT open_loop | CDT plotted |" in text
  # The extra evaluation ran in its own directory with its own config (plots on: the eval's own PNG is there).
  extra = os.path.join(workdir, paper.RUNS_DIR, "medium-expert_s0", paper.EVALS_DIR, "plotted")
  assert json.load(open(os.path.join(extra, "config.json")))["eval"]["plots"] is True
  assert os.path.exists(os.path.join(extra, "eval_histogram_x_velocity.png"))


def test_table_mean_and_std_are_numpys_over_the_eval_files(finished):
  workdir, _, _ = finished
  with open(os.path.join(workdir, paper.REPORT_DIR, "results.csv")) as f:
    rows = {(r["run"], r["evaluation"]): r for r in csv.DictReader(f)}
  text = open(os.path.join(workdir, paper.REPORT_DIR, "report.md")).read()
  for run, evaluation, sub in (("medium-expert", "open_loop", ""), ("medium-expert", "plotted", "evals/plotted"),
                               ("medium", "open_loop", "")):
    files = [os.path.join(workdir, paper.RUNS_DIR, f"{run}_s{s}", sub, "eval_histogram.json") for s in (0, 1)]
    w1 = np.array([json.load(open(p))["aggregates"]["w1_all"] for p in files])
    returns = np.array([json.load(open(p))["aggregates"]["mean_return_all"] for p in files])
    row = rows[(run, evaluation)]
    assert row["seeds"] == "0 1" and w1[0] != w1[1]
    np.testing.assert_allclose([float(row["w1_all_mean"]), float(row["w1_all_std"])], [w1.mean(), w1.std()],
                               rtol=1e-6)
    np.testing.assert_allclose([float(row["return_all_mean"]), float(row["return_all_std"])],
                               [returns.mean(), returns.std()], rtol=1e-6)
    assert f"{w1.mean():.3f} ± {w1.std():.3f}" in text


def test_rerun_runs_nothing(finished, monkeypatch):
  workdir, data_root, _ = finished
  calls = []
  for name in ("train_and_evaluate", "train_and_evaluate_seeds"):
    monkeypatch.setattr(train, name, lambda *a, _n=name, **k: calls.append(_n))
  monkeypatch.setattr(driver, "run_evaluation", lambda *a, **k: calls.append("eval"))
  evals = [os.path.join(d, f) for d, _, fs in os.walk(workdir) for f in fs if f.startswith("eval_")
           and f.endswith((".json", ".npz"))]
  mtimes = {p: os.path.getmtime(p) for p in evals}
  out = driver.run_experiment(tiny_experiment(), "tiny", workdir, data_root, vmap_seeds=True)
  assert out["ran"] == [] and calls == [] and CALLS["data"] == 1
  assert all(j.state == "finished" for j in out["jobs"])
  assert {p: os.path.getmtime(p) for p in evals} == mtimes and len(evals) == 6 * 2  # json + npz each


def test_changed_config_on_a_finished_run_is_refused_before_anything_runs(finished):
  workdir, data_root, _ = finished
  with pytest.raises(driver.ChangedConfig, match=r"run medium-expert seed 0 .*finished with another config \(keys: "
                                                 r"train\.learning_rate\)"):
    driver.run_experiment(tiny_experiment(learning_rate="0.002"), "tiny", workdir, data_root, dry_run=True)
  changed_data = tiny_experiment()
  plan = changed_data.plan("tiny")
  job = plan.data[0]
  bad = paper.Plan(data=(paper.DataJob(job.name, job.config, ("seed=1",), job.generator),), runs=plan.runs)
  with pytest.raises(driver.ChangedConfig, match=r"data job 'tiny' .*keys: config\.seed"):
    driver.schedule(bad, workdir, data_root)


def test_a_run_recorded_before_a_config_field_existed_reads_as_its_old_value(finished, tmp_path):
  """config.json written before model.histogram_input existed is the run with 'probability' (gdt_base.ADDED_FIELDS):
  finished for that config, refused (naming the field) for 'density'."""
  workdir, data_root, _ = finished
  run = tiny_experiment().plan("tiny").runs[0]
  src = os.path.join(workdir, paper.RUNS_DIR, f"{run.name}_s0")
  old = str(tmp_path / "old_run")
  os.makedirs(old)
  recorded = json.load(open(os.path.join(src, "config.json")))
  del recorded["model"]["histogram_input"]
  json.dump(recorded, open(os.path.join(old, "config.json"), "w"))
  config = driver.run_config(run, 0, data_root)
  shutil.copy(driver.eval_file(src, config), driver.eval_file(old, config))
  assert config.model.histogram_input == "probability"
  assert driver.run_state(config, old, "old run") == "finished"
  config.model.histogram_input = "density"
  with pytest.raises(driver.ChangedConfig, match=r"keys: model\.histogram_input"):
    driver.run_state(config, old, "old run")


def test_set_overrides_every_run_and_a_finished_run_of_another_config_is_refused(finished, tmp_path):
  workdir, data_root, _ = finished
  variant = ("context_length=4",)
  with pytest.raises(driver.ChangedConfig, match=r"run medium-expert seed 0 .*keys: context_length\)"):
    driver.run_experiment(tiny_experiment(), "tiny", workdir, data_root, dry_run=True, overrides=variant)
  out = driver.run_experiment(tiny_experiment(), "tiny", str(tmp_path / "variant"), data_root, dry_run=True,
                              overrides=variant)
  runs = [j for j in out["jobs"] if j.kind != "data"]
  assert len(runs) == 6 and all(j.config.context_length == 4 and j.state == "new" for j in runs)
  assert all(j.state == "finished" for j in out["jobs"] if j.kind == "data")  # the data is shared, not redone
  plan = driver.with_overrides(tiny_experiment().plan("tiny"), variant)
  assert plan.protocol[-1] == ("overrides (--set)", "context_length=4")
  lines = []
  driver.run_experiment(tiny_experiment(), "tiny", str(tmp_path / "variant"), data_root, report_only=True,
                        overrides=variant, log=lines.append)
  assert "ran 0 of 7 jobs (1 already finished), 0 evaluations in the report" in lines[-1]  # only the data is done
  for bad, message in ((("train.nosuch=1",), "train.nosuch"), (("seed=3",), "may not set seed"),
                       (("context_length",), "dotted.key=value")):
    with pytest.raises(ValueError, match=message):
      driver.run_experiment(tiny_experiment(), "tiny", str(tmp_path / "bad"), data_root, dry_run=True, overrides=bad)
  assert not os.path.exists(tmp_path / "bad")


def test_the_protocols_checkpoint_step_is_the_one_the_runs_train_to(tmp_path):
  data_root = str(tmp_path)
  plan = paper.get("gdt_bimodal").plan("demo")
  assert ("checkpoint", "the last one, step 3000") in driver.with_checkpoint_steps(plan, data_root).protocol
  shorter = driver.with_checkpoint_steps(driver.with_overrides(plan, ("train.num_steps=2000",)), data_root)
  assert [v for k, v in shorter.protocol if k == "checkpoint"] == ["the last one, step 2000"]
  tiny = driver.with_checkpoint_steps(tiny_experiment().plan("tiny"), data_root)  # no such line: appended
  assert tiny.protocol[-1] == ("checkpoint", "the last one, step 50")


def test_data_seed_generates_every_data_job_with_it_and_a_finished_job_of_another_seed_is_refused(tmp_path):
  plan = paper.get("gdt_bimodal").plan("demo")
  seeded = driver.with_data_seed(plan, 3)
  assert [driver.data_config(d).seed for d in plan.data] == [0] * 4
  # the PPO expert, the scripted episodes' resets and the switching draws
  assert [driver.data_config(d).seed for d in seeded.data] == [3] * 4
  assert dict(seeded.protocol)["data"].endswith("every data job with seed 3 (--data_seed)")
  assert driver.with_data_seed(plan, None) is plan
  with pytest.raises(ValueError, match="--data_seed must lie in"):
    driver.with_data_seed(plan, -1)
  # data finished with seed 0 in a data root: the same jobs with seed 3 are refused there, not mixed in
  job = plan.data[0]
  wd = driver.data_workdir(str(tmp_path), job.name)
  os.makedirs(wd)
  with open(os.path.join(wd, driver.DATA_RECORD), "w") as f:
    json.dump({"generator": job.generator, "config": driver.config_to_dict(driver.data_config(job))}, f)
  assert driver.data_state(job, driver.data_config(job), wd) == "finished"
  with pytest.raises(driver.ChangedConfig, match=r"keys: config.seed\)"):
    driver.data_state(seeded.data[0], driver.data_config(seeded.data[0]), wd)


def test_behaviour_metrics_read_speed_and_episode_length_per_target_group():
  rows = [{"name": "best_traj_0", "mean_length": 1000.0}, {"name": "best_traj_1", "mean_length": 200.0},
          {"name": "middle_traj_0", "mean_length": 300.0}]
  summary = {"targets": rows, "aggregates": {"mean_x_velocity_best": 0.5, "target_mean_x_velocity_best": 0.1},
             "feature": "x_velocity", "conditioning": "histogram"}
  result = paper.Result(tiny_experiment().plan("tiny").runs[0], 0, "open_loop", "", summary)
  speed, target, length = common.behaviour_metrics("best")
  assert (speed.name, target.name, length.name) == ("x_velocity_best", "target_x_velocity_best", "length_best")
  assert (speed.fn(result), target.fn(result), length.fn(result)) == (0.5, 0.1, 600.0)
  assert common.mean_length(result, "middle") == 300.0 and common.mean_length(result) == 500.0
  assert np.isnan(common.behaviour_metrics("middle")[0].fn(result))  # not in this evaluation's aggregates


def test_runs_keeps_every_data_job_a_kept_run_reads_and_the_plan_refuses_a_missing_one(tmp_path):
  paper.load_all()
  plan = paper.get("gdt_bimodal").plan("quick")
  cdt = driver.only_runs(plan, "cdt")
  assert [r.name for r in cdt.runs] == ["bimodal_cdt"]
  # CDT reads the standing cheetahs' and the switching episodes' datasets besides the forward one, and the switching
  # job reads the two experts' data: none may be dropped, or a fresh data root would train on missing files.
  assert [d.name for d in cdt.data] == [d.name for d in plan.data] == [
      "halfcheetah_quick", "cheetah_vel_stand_quick_expert", "halfcheetah_stand_switch_quick"]
  switch = plan.data[-1]
  alone = paper.Plan(data=(switch,), runs=())
  with pytest.raises(ValueError, match=r"data job 'halfcheetah_stand_switch_quick' reads data jobs "
                                       r"\['halfcheetah_quick', 'cheetah_vel_stand_quick_expert'\]"):
    driver.schedule(alone, str(tmp_path / "w"), str(tmp_path / "data"))
  without = paper.Plan(data=plan.data[:1], runs=cdt.runs)
  with pytest.raises(ValueError, match=r"run 'bimodal_cdt' reads data jobs \['cheetah_vel_stand_quick_expert', "
                                       r"'halfcheetah_stand_switch_quick'\], which the plan does not have"):
    driver.schedule(without, str(tmp_path / "w"), str(tmp_path / "data"))
