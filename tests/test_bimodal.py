"""Synthetic bimodal targets from configs, and the gdt_bimodal paper experiment's plans (its demo scale is `make demo`) and report."""

import json
import os

import numpy as np
import pytest

from experiments.configs import cdt as cdt_config
from experiments.configs import dt as dt_config
from experiments.paper import EXPERIMENTS, Result, load_all
from experiments.paper import gdt_bimodal
from gdt import envs, evaluate, hindsight, metrics, plots, train
from gdt import targets as gdt_targets
from gdt.conditioning import Labels
from gdt.data import Trajectories, dataset_path, default_metadata, generation, scripted
from gdt.data.trajectories import task_label
from launch import paper as driver

S, A, NUM_BINS = 17, 6, 6
LAYOUT = envs.observation_layout("halfcheetah")
XVEL = LAYOUT["x_velocity"]


def make_trajs(env: str, n: int, shift: float, seed: int) -> Trajectories:
  rs = np.random.RandomState(seed)
  t = 12
  obs = rs.randn(n, t, S).astype(np.float32) * 0.3
  obs[..., XVEL] += shift
  meta = default_metadata(env, "expert", "brax", "spring", n, LAYOUT)
  out = Trajectories(obs, rs.uniform(-1, 1, (n, t, A)).astype(np.float32), rs.randn(n, t).astype(np.float32),
                     np.zeros((n, t), bool), np.zeros((n, t), bool), np.full(n, t, np.int32), meta)
  out.refresh_level_returns()
  return out


@pytest.fixture(scope="module")
def mixed():
  """Forward cheetahs at x-velocity ~3, backflipping ones at ~-1."""
  return Trajectories.concatenate([make_trajs("halfcheetah", 8, 3.0, 0), make_trajs("cheetah_backflip", 8, -1.0, 1)])


def held_out(mixed, conditioning: str):
  edges = gdt_targets.feature_edges(mixed, "x_velocity", NUM_BINS)
  labels = Labels(conditioning, "x_velocity", edges, 1000.0, 1.0)
  _, idx, names = gdt_targets.split_targets(mixed, 1, 1)
  return gdt_targets.trajectory_targets(mixed, idx, names, labels), labels


def eval_block(**overrides):
  c = cdt_config.get_config().eval
  c.update(synthetic="mixture", score_features=(), **overrides)
  return c


def test_mixture_targets_mix_paired_held_out_histograms_with_each_weight(mixed):
  tgts, labels = held_out(mixed, "histogram")
  mix = gdt_targets.SYNTHETIC.get("mixture")(eval_block(mixture_weights=(0.25, 0.75)), tgts, labels)
  assert mix.names == ("mix0.25_0", "mix0.25_1", "mix0.75_0", "mix0.75_1")
  np.testing.assert_allclose(mix.mixture_weights, [0.25, 0.25, 0.75, 0.75])
  # pair i = forward target i with backflip target i (best with best, middle with middle)
  np.testing.assert_allclose(mix.histograms[3], 0.75 * tgts.histograms[1] + 0.25 * tgts.histograms[3], atol=1e-6)
  h = mix.histograms[0]
  assert h[:NUM_BINS // 2].sum() == pytest.approx(0.75, abs=1e-5) and h[NUM_BINS // 2:].sum() == pytest.approx(0.25)
  assert set(mix.tasks) == {"halfcheetah"} and mix.task_specs["halfcheetah"]["env"] == "halfcheetah"
  np.testing.assert_allclose(mix.cond[:, 5], mix.histograms)  # CDT, open loop: p* at every step
  both = gdt_targets.concatenate([tgts, mix])
  assert both.num_targets == 8 and np.isnan(both.mixture_weights[:4]).all()


def test_dt_gets_the_mixtures_expected_future_sum(mixed):
  tgts, labels = held_out(mixed, "rtg")
  mix = gdt_targets.SYNTHETIC.get("mixture")(eval_block(mixture_weights=(0.5,)), tgts, labels)
  centers = np.asarray(hindsight.bin_centers(labels.edges))
  mean = mix.histograms[0] @ centers
  length = mix.lengths[0]
  np.testing.assert_allclose(mix.cond[0, :, 0], mean * (length - np.arange(length)) / 1000.0, rtol=1e-5)


def test_mixture_tasks_and_rollout_task_come_from_the_config(mixed):
  tgts, labels = held_out(mixed, "histogram")
  flipped = gdt_targets.SYNTHETIC.get("mixture")(
      eval_block(mixture_weights=(1.0,), mixture_tasks=("cheetah_backflip", "halfcheetah"),
                 synthetic_task="cheetah_backflip"), tgts, labels)
  np.testing.assert_allclose(flipped.histograms[0], tgts.histograms[2], atol=1e-6)  # w=1: all backflip
  assert flipped.tasks == ("cheetah_backflip",) * 2
  with pytest.raises(ValueError, match="eval.mixture_tasks: a mixture needs two distinct tasks"):
    gdt_targets.SYNTHETIC.get("mixture")(eval_block(mixture_tasks=("halfcheetah", "hopper")), tgts, labels)
  with pytest.raises(ValueError, match="eval.synthetic_task: 'hopper' is not a task"):
    gdt_targets.SYNTHETIC.get("mixture")(eval_block(synthetic_task="hopper"), tgts, labels)


def test_synthetic_config_conflicts_are_refused_before_any_work():
  c = cdt_config.get_config()
  c.eval.synthetic = "mixture"
  with pytest.raises(ValueError, match="'eval.score_features': synthetic targets"):
    train.validate_config(c)
  c.eval.score_features = ()
  with pytest.raises(ValueError, match="name the second task's data in extra_datasets"):
    train.validate_config(c)
  c.extra_datasets = ("cheetah_backflip:expert",)
  train.validate_config(c)
  c.eval.mixture_weights = (0.5, 1.5)
  with pytest.raises(ValueError, match="'eval.mixture_weights': weights must lie in \\[0, 1\\]"):
    train.validate_config(c)
  c.eval.mixture_weights = (0.5,)
  c.eval.synthetic = "trimodal"
  with pytest.raises(ValueError, match="'eval.synthetic'"):
    train.validate_config(c)


def test_dataset_without_a_second_task_is_refused_for_mixtures(tmp_path):
  make_trajs("halfcheetah", 8, 3.0, 0).save(dataset_path(str(tmp_path), "halfcheetah", "expert"))
  make_trajs("halfcheetah", 8, 1.0, 1).save(dataset_path(str(tmp_path), "halfcheetah", "medium"))
  c = dt_config.get_config(f"env=halfcheetah,dataset=expert,data_dir={tmp_path}")
  c.extra_datasets = ("halfcheetah:medium",)  # the same task twice: nothing to mix
  c.eval.update(synthetic="mixture", score_features=(), best_k=1, middle_k=1)
  with pytest.raises(ValueError, match="eval.mixture_tasks: a mixture needs two distinct tasks"):
    train.load_dataset(c)



@pytest.fixture(scope="module")
def leveled():
  """Forward cheetahs of two levels (x-velocity ~3 and ~1.5, one task) and standing ones (~0)."""
  fast, slow = make_trajs("halfcheetah", 8, 3.0, 0), make_trajs("halfcheetah", 8, 1.5, 2)
  slow.rewards[:] -= 10.0  # ranked below every fast one
  return Trajectories.concatenate([fast, slow, make_trajs("cheetah_backflip", 8, 0.0, 1)])


def test_middle_quantile_picks_the_middle_targets_at_that_rank_of_the_returns(leveled):
  forward = leveled.select(np.arange(16))
  order = np.argsort(forward.returns(), kind="stable")
  _, idx, names = gdt_targets.split_targets(forward, 1, 2)
  assert names == ["best_traj_0", "middle_traj_0", "middle_traj_1"]
  np.testing.assert_array_equal(idx[1:], order[7:9])  # the median: floor(16 / 2) - 1
  _, idx, _ = gdt_targets.split_targets(forward, 1, 2, middle_quantile=0.25)
  np.testing.assert_array_equal(idx[1:], order[3:5])  # floor(16 / 4) - 1: the slow level
  assert (idx[1:] >= 8).all()


def twins(leveled, conditioning: str):
  edges = gdt_targets.feature_edges(leveled, "x_velocity", 12)
  labels = Labels(conditioning, "x_velocity", edges, 1000.0, 1.0)
  _, idx, names = gdt_targets.split_targets(leveled, 2, 1, middle_quantile=0.25)
  tgts = gdt_targets.trajectory_targets(leveled, idx, names, labels)
  return tgts, gdt_targets.SYNTHETIC.get("twin")(eval_block(), tgts, labels), labels


def test_a_twin_is_a_bimodal_mixture_with_its_reference_targets_mean_and_dts_conditioning(leveled):
  tgts, twin, labels = twins(leveled, "rtg")
  names = list(tgts.names)
  ref = names.index("middle_traj_0_halfcheetah")
  assert twin.names == ("twin_0_middle_traj_0_halfcheetah", "twin_1_middle_traj_0_halfcheetah")
  centers = np.asarray(hindsight.bin_centers(labels.edges))
  for i in range(2):
    a, b = names.index(f"best_traj_{i}_halfcheetah"), names.index(f"best_traj_{i}_cheetah_backflip")
    # a mixture of the pair's two histograms, with the reference's mean
    w = (tgts.histograms[ref] @ centers - tgts.histograms[b] @ centers) / (
        tgts.histograms[a] @ centers - tgts.histograms[b] @ centers)
    assert 0.2 < w < 0.8
    np.testing.assert_allclose(twin.histograms[i], w * tgts.histograms[a] + (1 - w) * tgts.histograms[b], atol=1e-6)
    assert twin.histograms[i] @ centers == pytest.approx(tgts.histograms[ref] @ centers, abs=1e-5)
    # DT: the reference's exact sum, so the first step's z (and the closed loop's every z) is the reference's
    assert twin.totals[i] == pytest.approx(tgts.totals[ref], rel=1e-6)
    assert twin.cond[i, 0, 0] == pytest.approx(tgts.cond[ref, 0, 0], rel=1e-6)
    assert twin.lengths[i] == tgts.lengths[ref]
  assert twin.tasks == ("halfcheetah",) * 2 and np.isnan(twin.returns).all()
  # the W1 between the reference and its twin, which bounds a return-conditioned policy's mean W1 over the pair
  sep = metrics.wasserstein_1d(tgts.histograms[ref], twin.histograms[0], centers)
  assert float(sep) > 0.5


def test_twins_need_a_middle_target_between_the_pairs_means(leveled):
  edges = gdt_targets.feature_edges(leveled, "x_velocity", 12)
  labels = Labels("histogram", "x_velocity", edges, 1000.0, 1.0)
  _, idx, names = gdt_targets.split_targets(leveled, 1, 1)  # the median of the forward task: a fast one
  tgts = gdt_targets.trajectory_targets(leveled, idx, names, labels)
  with pytest.raises(ValueError, match="'twin' found no middle target of task 'halfcheetah'"):
    gdt_targets.SYNTHETIC.get("twin")(eval_block(), tgts, labels)


def test_twin_task_takes_the_references_from_a_third_task():
  """Forward (~3), standing (~0) and a third task (~1.5) whose middle targets get the twins."""
  data = Trajectories.concatenate([make_trajs("halfcheetah", 8, 3.0, 0), make_trajs("cheetah_vel", 8, 0.0, 1),
                                   make_trajs("cheetah_backflip", 8, 1.5, 2)])
  edges = gdt_targets.feature_edges(data, "x_velocity", 12)
  labels = Labels("rtg", "x_velocity", edges, 1000.0, 1.0)
  _, idx, names = gdt_targets.split_targets(data, 2, 1)
  tgts = gdt_targets.trajectory_targets(data, idx, names, labels)
  twin = gdt_targets.SYNTHETIC.get("twin")(eval_block(twin_task="cheetah_backflip"), tgts, labels)
  assert twin.names == ("twin_0_middle_traj_0_cheetah_backflip", "twin_1_middle_traj_0_cheetah_backflip")
  ref = list(tgts.names).index("middle_traj_0_cheetah_backflip")
  centers = np.asarray(hindsight.bin_centers(labels.edges))
  for i in range(2):
    assert twin.histograms[i] @ centers == pytest.approx(tgts.histograms[ref] @ centers, abs=1e-5)
    assert twin.totals[i] == pytest.approx(tgts.totals[ref], rel=1e-6)  # DT's conditioning: the reference's
  assert twin.tasks == ("halfcheetah",) * 2  # rolled out in the first mixture task
  with pytest.raises(ValueError, match="eval.twin_task: 'hopper' is not a task of the data"):
    gdt_targets.SYNTHETIC.get("twin")(eval_block(twin_task="hopper"), tgts, labels)


def test_an_unknown_twin_task_is_refused_when_the_data_load(tmp_path):
  make_trajs("halfcheetah", 8, 3.0, 0).save(dataset_path(str(tmp_path), "halfcheetah", "expert"))
  make_trajs("cheetah_vel", 8, 0.0, 1).save(dataset_path(str(tmp_path), "cheetah_vel", "expert"))
  c = dt_config.get_config(f"env=halfcheetah,dataset=expert,data_dir={tmp_path}")
  c.extra_datasets = ("cheetah_vel:expert",)
  c.eval.update(synthetic="twin", score_features=(), best_k=1, middle_k=1, twin_task="hopper")
  with pytest.raises(ValueError, match="config field eval.twin_task: 'hopper' is not a task"):
    train.load_dataset(c)
  c.eval.twin_task = "cheetah_vel"
  train.load_dataset(c)


def test_task_aggregates_hold_trajectory_targets_only_and_twins_their_own(leveled):
  tgts, twin, _ = twins(leveled, "histogram")
  both = gdt_targets.concatenate([tgts, twin])
  rows = [{"name": n, "w1": float(k), "target_return": float(r), "task": t}
          for k, (n, r, t) in enumerate(zip(both.names, both.returns, both.tasks, strict=True))]
  agg = evaluate._aggregate(rows)
  forward = [k for k, n in enumerate(both.names) if n.endswith("_halfcheetah") and not n.startswith("twin")]
  assert agg["w1_task=halfcheetah"] == pytest.approx(np.mean(forward))
  assert agg["w1_twin"] == pytest.approx(np.mean([len(tgts.names), len(tgts.names) + 1]))


# ----------------------------------------------------------------------------------------------------------------
# The paper experiment


def test_gdt_bimodal_is_registered_and_its_run_configs_validate(tmp_path):
  assert "gdt_bimodal" in load_all()
  for scale, second, preset in (("demo_ppo_stand", "cheetah_vel_stand", "demo"), ("quick", "cheetah_vel_stand", "quick"),
                                ("quick_density", "cheetah_vel_stand", "quick"),
                                ("quick_start", "cheetah_vel_stand", "quick"),
                                ("quick_no_switch", "cheetah_vel_stand", "quick"),
                                ("quick_backflip", "cheetah_backflip", "quick"), ("full", "cheetah_backflip", "full")):
    plan = EXPERIMENTS.get("gdt_bimodal").plan(scale)
    env = second.removesuffix("_stand")
    switching = scale in ("quick", "quick_density", "quick_start", "demo_ppo_stand")
    assert [d.name for d in plan.data] == [f"halfcheetah_{preset}", f"{second}_{preset}_expert"] + (
        [f"halfcheetah_stand_switch_{preset}"] if switching else [])
    for run in plan.runs:
      config = driver.run_config(run, 0, str(tmp_path / "data"))
      train.validate_config(config)
      # the second task's data come first among the extras: the mixtures mix the data's first two tasks
      paths = train.dataset_paths(config)[1:]
      assert paths[0] == (env, dataset_path(str(tmp_path / "data" / f"{second}_{preset}_expert"), env, "expert"))
      if switching:
        assert paths[1:] == [("halfcheetah", dataset_path(str(tmp_path / "data" / f"halfcheetah_{preset}"),
                                                          "halfcheetah", "medium")),
                             ("halfcheetah", dataset_path(str(tmp_path / "data" / f"halfcheetah_stand_switch_{preset}"),
                                                          "halfcheetah", "switch"))]
      else:
        assert len(paths) == 1
      assert config.eval.synthetic == "mixture" and tuple(config.eval.mixture_weights) == gdt_bimodal.WEIGHTS
      assert config.eval.middle_quantile == 0.5
      # quick, quick_start and the demo start a quarter of the windows at step 0, for both methods; quick and the
      # demo feed CDT its histogram's cumulative sum, quick_density and quick_start the densities
      assert config.train.episode_start_fraction == (
          gdt_bimodal.START if scale in ("quick", "quick_start", "demo_ppo_stand") else 0.0)
      if run.tag["method"] == "CDT" and scale in ("demo_ppo_stand", "quick", "quick_density", "quick_start"):
        assert config.model.histogram_input == ("cdf" if scale in ("demo_ppo_stand", "quick") else "density")
      # the demo evaluates the nearest-mass closed loop only, as its own evaluation; the others open loop, then
      # both closed loops as extra evaluations of the same checkpoint
      schedules = (["closed_loop_nearest"] if scale == "demo_ppo_stand" else
                   ["open_loop", "closed_loop", "closed_loop_nearest"])
      assert (run.eval_name, config.eval.schedule) == (schedules[0], schedules[0])
      assert run.evaluation_names() == schedules
      for extra in run.evaluations:
        assert driver.eval_config(config, extra).eval.schedule == extra.name
    data = driver.data_config(plan.data[1])
    assert tuple(data.levels) == ("expert",) and data.env == env
    if switching:  # the switch job reads the two runs it hands over between, as sibling data workdirs
      switch = driver.data_config(plan.data[2])
      assert plan.data[2].generator == "behaviour_switch"
      assert (switch.first, switch.second) == (f"halfcheetah@../halfcheetah_{preset}",
                                               f"cheetah_vel@../cheetah_vel_stand_{preset}_expert")
      # the demo's switching episodes are as many as a level of its data preset
      assert switch.transitions_per_level == (gdt_bimodal.DEMO_SWITCH_TRANSITIONS if preset == "demo" else 100_000)
      generation.validate_config(driver.data_config(plan.data[0]))
  for preset in ("quick", "demo"):
    stand = driver.data_config(gdt_bimodal.stand_job(preset))
    assert stand.env_kwargs.target_velocity == 0.0 and stand.ppo.num_timesteps == (
        gdt_bimodal.STAND_QUICK_TIMESTEPS if preset == "quick" else gdt_bimodal.STAND_DEMO_TIMESTEPS)
    assert stand.policy == "deterministic" and tuple(stand.levels) == ("expert",)
    generation.validate_config(stand)
  # demo_twin: demo_ppo_stand asking for twins of the forward task's medium level (middle targets at the lower
  # quarter of its returns) instead of mixtures
  demo, twin = (EXPERIMENTS.get("gdt_bimodal").plan(s) for s in ("demo_ppo_stand", "demo_twin"))
  for a, b in zip(demo.runs, twin.runs, strict=True):
    ca, cb = (driver.run_config(r, 0, str(tmp_path / "data")) for r in (a, b))
    train.validate_config(cb)
    assert (cb.eval.synthetic, cb.eval.middle_quantile, cb.eval.middle_k) == ("twin", 0.25, 2)
    cb.eval.update(synthetic="mixture", middle_quantile=0.5, middle_k=1, mixture_weights=gdt_bimodal.WEIGHTS)
    assert cb.to_dict() == ca.to_dict()


def fake_result(tmp_path, plan, method: str, seed: int, evaluation: str, mix_w1: dict, achieved_shift: int):
  """A finished evaluation's files with the given per-weight mixture W1 aggregates."""
  run = next(r for r in plan.runs if r.tag["method"] == method)
  where = tmp_path / f"{method}_{seed}_{evaluation}"
  os.makedirs(where)
  names = [f"mix{w:g}_0" for w in gdt_bimodal.WEIGHTS]
  target = np.tile(np.array([0.5, 0, 0, 0, 0, 0.5]), (3, 1))
  achieved = np.roll(target, achieved_shift, axis=1)
  # Per mixture target 2 episodes of 4 steps; bands below 0.67 m/s, 0.67-1.83, above (target means -0.5 and 3.0):
  # CDT spends one episode in each mode (the first's fast last step is past its end), DT's have both modes.
  slow, fast = -1.0, 3.0
  episodes = {"CDT": ([slow, slow, slow, fast], [fast] * 4), "DT": ([slow, fast, 1.0, fast], [fast, slow, 1.0, 1.0])}
  features = np.tile(np.array(episodes[method], np.float32), (3, 1, 1))
  valid = np.ones((3, 2, 4), bool)
  valid[:, 0, 3] = method != "CDT"
  np.savez(where / "eval_histogram.npz", names=np.array(names), edges_x_velocity=np.linspace(-2, 4, 7),
           target_histograms_x_velocity=target, achieved_histograms_x_velocity=achieved,
           features_x_velocity=features, valid=valid)
  aggregates = {f"w1_mix{w:g}": v for w, v in mix_w1.items()}
  aggregates.update({"w1_mix": float(np.mean(list(mix_w1.values()))), "w1_task=halfcheetah": 0.1,
                     "w1_task=cheetah_backflip(reference_reward=False,rotation_reward_weight=1.0)": 0.2,
                     "w1_all": 0.3, "mean_return_all": 1.0, "w1_best": 0.1, "w1_middle": 0.1,
                     "mean_x_velocity_task=halfcheetah": 2.0 + seed, "target_mean_x_velocity_task=halfcheetah": 3.0,
                     "mean_x_velocity_task=cheetah_backflip(reference_reward=False,rotation_reward_weight=1.0)": -1.0,
                     "target_mean_x_velocity_task=cheetah_backflip(reference_reward=False,rotation_reward_weight=1.0)":
                         -0.5})
  summary = {"targets": [], "aggregates": aggregates, "protocol": {}, "feature": "x_velocity",
             "conditioning": "histogram"}
  return Result(run, seed, evaluation, str(where), summary)


def test_report_tables_w1_per_weight_and_says_where_cdt_wins_by_more_than_the_seed_std(tmp_path):
  plan = gdt_bimodal.quick()
  results = []
  for seed, jitter in ((0, 0.0), (1, 0.02), (2, -0.02)):
    results.append(fake_result(tmp_path, plan, "CDT", seed, "open_loop", {0.25: 0.2 + jitter, 0.5: 0.3 + jitter,
                                                                           0.75: 0.5 + jitter}, 0))
    results.append(fake_result(tmp_path, plan, "DT", seed, "open_loop", {0.25: 0.6 + jitter, 0.5: 0.8 + jitter,
                                                                          0.75: 0.51 + jitter}, 1))
  paths = gdt_bimodal.report(plan, results, str(tmp_path / "report"), "quick")
  text = open(paths["report_md"]).read()
  assert "| 0.25 | 0.200 ± 0.016 | 0.600 ± 0.016 | +0.400 | 0.016 | yes |" in text
  assert "| 0.75 | 0.500 ± 0.016 | 0.510 ± 0.016 | +0.010 | 0.016 | no |" in text  # within the seed std
  assert "at 3 of 4 rows" in text
  assert os.path.getsize(paths["bimodal_open_loop_png"]) > 1000
  with open(paths["results_csv"]) as f:
    assert "w1_mix0.5_mean" in f.readline()
  # summary.md (what `make demo` prints): the protocol, the same verdicts, and whether the models follow targets
  summary = open(paths["summary_md"]).read()
  assert summary.startswith("# GDT bimodal x-velocity targets (quick): CDT vs DT") and "- seeds: 0, 1, 2" in summary
  assert "| 0.25 | 0.200 ± 0.016 | 0.600 ± 0.016 | +0.400 | 0.016 | yes |" in summary and "at 3 of 4 rows" in summary
  assert "| CDT | 3.00 ± 0.82 m/s (3.00) | -1.00 ± 0.00 m/s (-0.50) |" in summary  # seeds reach 2, 3, 4 m/s
  # one mode per episode or both: the share of steps below the cut and the episodes committed to a side
  assert "second mode below 0.67 m/s, between, forward mode above 1.83 m/s" in summary
  assert "| CDT | 0.5 | 0.50 / 0.00 / 0.50 | 0.43 / 0.00 / 0.57 | 3 of 6 | 0 of 6 | 3 of 6 |" in summary  # 3 of 7 steps
  assert "| DT | 0.5 | 0.50 / 0.00 / 0.50 | 0.25 / 0.38 / 0.38 | 0 of 6 | 6 of 6 | 0 of 6 |" in summary


def test_demo_reverse_asks_for_forward_backward_twins_of_the_standing_targets(tmp_path):
  """Forward and backward runners, their switching episodes and standing cheetahs; the twins' references are the
  standing cheetah's middle targets; otherwise demo_ppo_stand's recipe."""
  plan, demo = (EXPERIMENTS.get("gdt_bimodal").plan(s) for s in ("demo_reverse", "demo_ppo_stand"))
  assert [d.name for d in plan.data] == ["halfcheetah_demo", "cheetah_vel_back_demo_expert",
                                         "cheetah_vel_stand_demo_expert", "halfcheetah_back_switch_demo"]
  back = driver.data_config(plan.data[1])
  assert (back.env, back.env_kwargs.target_velocity, back.policy, tuple(back.levels)) == (
      "cheetah_vel", gdt_bimodal.BACK_DEMO_VELOCITY, "deterministic", ("expert",))
  generation.validate_config(back)
  stand_task = task_label("cheetah_vel", driver.data_config(plan.data[2]).env_kwargs.to_dict())
  data = str(tmp_path / "data")
  for run, old in zip(plan.runs, demo.runs, strict=True):
    config = driver.run_config(run, 0, data)
    train.validate_config(config)
    assert (config.eval.synthetic, config.eval.twin_task, config.eval.middle_k) == ("twin", stand_task, 2)
    # the backward runner first among the extras: the twins mix the data's first two tasks
    assert train.dataset_paths(config)[1] == (
        "cheetah_vel", dataset_path(str(tmp_path / "data" / "cheetah_vel_back_demo_expert"), "cheetah_vel", "expert"))
    reference = driver.run_config(old, 0, data)
    config.eval.update(synthetic="mixture", twin_task="", middle_k=1, mixture_weights=gdt_bimodal.WEIGHTS)
    config.extra_datasets = reference.extra_datasets
    assert config.to_dict() == reference.to_dict()


def twin_features(method: str) -> np.ndarray:
  """[targets 3, episodes 1, steps 4] x-velocities: CDT stays at 0.5 m/s on the reference and spends half of each twin
  episode at -1.5 and half at 2.5 m/s; DT stays at 0.5 m/s on all three."""
  twin = [-1.5, -1.5, 2.5, 2.5] if method == "CDT" else [0.5] * 4
  return np.array([[[0.5] * 4], [twin], [twin]], np.float32)


def fake_twin_result(tmp_path, plan, method: str, seed: int):
  """A finished demo evaluation with a middle forward target (all of it at 0.5 m/s) and two twins (half at -1.5, half
  at 2.5 m/s: the same mean): CDT's rollouts match each target, DT's (seed 1: shifted a bin) sit at 0.5 on both."""
  run = next(r for r in plan.runs if r.tag["method"] == method)
  where = tmp_path / f"{method}_{seed}"
  os.makedirs(where)
  names = ["middle_traj_0_halfcheetah", "twin_0_middle_traj_0_halfcheetah", "twin_1_middle_traj_0_halfcheetah"]
  ref, twin = np.eye(6)[2], 0.5 * (np.eye(6)[0] + np.eye(6)[4])
  target = np.stack([ref, twin, twin])
  achieved = target if method == "CDT" else np.tile(np.eye(6)[2 + (seed == 1)], (3, 1))
  np.savez(where / "eval_histogram.npz", names=np.array(names), edges_x_velocity=np.linspace(-2, 4, 7),
           target_histograms_x_velocity=target, achieved_histograms_x_velocity=achieved,
           features_x_velocity=twin_features(method), valid=np.ones((3, 1, 4), bool))
  aggregates = {"w1_twin": 1.0, "w1_task=halfcheetah": 0.1, "mean_x_velocity_task=halfcheetah": 2.0,
                "target_mean_x_velocity_task=halfcheetah": 3.0, "mean_x_velocity_task=cheetah_vel": -1.4,
                "target_mean_x_velocity_task=cheetah_vel": -1.5}
  return Result(run, seed, "closed_loop_nearest", str(where), {"targets": [], "aggregates": aggregates,
                                                                "protocol": {}, "feature": "x_velocity",
                                                                "conditioning": "histogram"})


def test_the_demos_report_tables_twins_against_the_bound_a_return_conditioned_policy_cannot_beat(tmp_path):
  plan = gdt_bimodal.demo_ppo_stand(twin=True)
  results = [fake_twin_result(tmp_path, plan, m, seed) for m in ("CDT", "DT") for seed in (0, 1, 2)]
  paths = gdt_bimodal.report(plan, results, str(tmp_path / "report"), "demo")
  summary = open(paths["summary_md"]).read()
  # targets 2.0 apart in W1, so the bound is 1.0; DT's rollouts are the same on both (gap 0) and score the bound
  # (seed 1: a bin off, 1.0 on the reference and the twins alike)
  assert ("| CDT | 0.000 ± 0.000 | 0.000 ± 0.000 | 0.000 ± 0.000 | 1.000 ± 0.000 | 2.000 ± 0.000 (2.000) | "
          "0.50 ± 0.00 m/s (0.50) |") in summary
  assert ("| DT | 0.333 ± 0.471 | 2.000 ± 0.000 | 1.167 ± 0.236 | 1.000 ± 0.000 | 0.000 ± 0.000 (2.000) | "
          "0.83 ± 0.47 m/s (0.50) |") in summary
  assert "below DT's by more than the larger seed std: yes; below the bound: yes" in summary
  assert "## Mixture targets" not in summary
  # the mode bands (second task -1.5, forward 3.0 m/s: cuts at 0 and 1.5) for twins and their references: CDT's
  # twin episodes hold both modes, DT's sit between them as on the reference
  assert "| CDT | twins | 0.50 / 0.00 / 0.50 | 0.50 / 0.00 / 0.50 | 0 of 6 | 6 of 6 | 0 of 6 |" in summary
  assert "| DT | twins | 0.50 / 0.00 / 0.50 | 0.00 / 1.00 / 0.00 | 0 of 6 | 0 of 6 | 6 of 6 |" in summary
  assert "| DT | their references | 0.00 / 1.00 / 0.00 | 0.00 / 1.00 / 0.00 | 0 of 3 | 0 of 3 | 3 of 3 |" in summary
  with open(paths["per_seed_csv"]) as f:
    assert "w1_twin_pairs" in f.readline()
  assert os.path.getsize(paths["bimodal_closed_loop_nearest_png"]) > 1000


def test_method_histograms_plot_writes_a_png(tmp_path):
  path = str(tmp_path / "h.png")
  edges = np.linspace(0, 1, 5)
  plots.method_histograms(path, edges, [("a", np.full(4, 0.25), {"CDT": np.eye(4)[0], "DT": np.eye(4)[3]})] * 2)
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"



@pytest.mark.slow
def test_train_and_evaluate_two_tasks_with_mixture_targets_end_to_end(tmp_path):
  """Two seeds of CDT trained (vmapped) on forward + standing data from two data workdirs, evaluated on held-out
  targets in their own envs and on mixture targets; the eval file records tasks, weights and per-weight W1."""
  make_trajs("halfcheetah", 8, 3.0, 0).save(dataset_path(str(tmp_path / "fwd"), "halfcheetah", "expert"))
  stand = make_trajs("cheetah_vel", 8, 0.0, 1)
  stand.metadata["env_kwargs"] = {"target_velocity": 0.0, "ctrl_cost_weight": 0.05}
  stand.save(dataset_path(str(tmp_path / "stand"), "cheetah_vel", "expert"))
  c = cdt_config.get_config(f"env=halfcheetah,dataset=expert,data_dir={tmp_path / 'fwd'},steps=4")
  c.extra_datasets = ("cheetah_vel:expert@../stand",)
  c.model.update(embed_dim=16, num_layers=1, max_timestep=32)
  c.context_length = 4
  c.num_bins = NUM_BINS
  c.train.update(batch_size=4, steps_per_call=2, warmup_steps=1, checkpoint_every=4)
  c.eval.update(best_k=1, middle_k=1, episodes_per_target=2, chunk_steps=6, score_features=(), synthetic="mixture",
                mixture_weights=(0.5,), plots=False)
  workdirs = [str(tmp_path / f"s{s}") for s in (0, 1)]
  results = train.train_and_evaluate_seeds(c, [0, 1], workdirs)
  for result, workdir in zip(results, workdirs, strict=True):
    with open(os.path.join(workdir, "eval_histogram.json")) as f:
      saved = json.load(f)
    rows = saved["targets"]
    assert [r["name"] for r in rows] == ["best_traj_0_halfcheetah", "middle_traj_0_halfcheetah",
                                         "best_traj_0_cheetah_vel(ctrl_cost_weight=0.05,target_velocity=0.0)",
                                         "middle_traj_0_cheetah_vel(ctrl_cost_weight=0.05,target_velocity=0.0)",
                                         "mix0.5_0", "mix0.5_1"]
    assert [r.get("mixture_weight") for r in rows] == [None] * 4 + [0.5, 0.5]
    assert saved["aggregates"]["w1_mix0.5"] == pytest.approx(np.mean([r["w1"] for r in rows[4:]]))
    assert result.valid[:, :, :].sum(-1)[4:].tolist() == [[12, 12]] * 2  # mixtures: the pairs' shortest length


def test_make_demo_is_the_bimodal_demo_scale_with_its_data_in_its_workdir(tmp_path):
  from experiments import demo  # noqa: PLC0415
  out = demo.run_demo(str(tmp_path / "demo"), dry_run=True, log=lambda s: None)
  jobs = out["jobs"]
  assert {j.state for j in jobs} == {"new"} and out["ran"] == []
  data = [j for j in jobs if j.kind == "data"]
  assert [j.data for j in data] == list(gdt_bimodal.demo().data)
  assert all(os.path.dirname(j.workdir) == str(tmp_path / "demo" / "data") for j in data)
  runs = [j for j in jobs if j.kind == "run"]
  assert sorted((j.run.tag["method"], j.seed) for j in runs) == [(m, s) for m in ("CDT", "DT") for s in (0, 1, 2)]
  assert all(j.config.eval.schedule == "closed_loop_nearest" for j in runs)
  assert not [j for j in jobs if j.kind == "eval"]  # one evaluation per run: its own


def test_demo_is_the_forward_runner_with_scripted_standing_and_rocking_cheetahs(tmp_path):
  """`make demo`'s plan: the demo preset's forward runner, the scripted standing and rocking cheetahs and switching
  episodes between the runner and the standing one; demo_ppo_stand's recipe otherwise."""
  plan, old = (EXPERIMENTS.get("gdt_bimodal").plan(s) for s in ("demo", "demo_ppo_stand"))
  assert [d.name for d in plan.data] == ["halfcheetah_demo", "halfcheetah_stand_scripted", "halfcheetah_rock_scripted",
                                         "halfcheetah_stand_scripted_switch_demo"]
  for job, behaviour in zip(plan.data[1:3], ("stand", "rock"), strict=True):
    config = driver.data_config(job)
    assert (job.generator, config.env, config.behaviour, config.transitions) == (
        "scripted", "halfcheetah", behaviour, 50_000)
    scripted.validate_config(config)
  switch = plan.data[3]
  config = driver.data_config(switch)
  assert (switch.generator, switch.needs) == ("behaviour_switch", ("halfcheetah_demo",))  # it plays the script itself
  assert (config.first, config.second, config.transitions_per_level) == (
      "halfcheetah@../halfcheetah_demo", "scripted:stand", gdt_bimodal.DEMO_SWITCH_TRANSITIONS)
  data = str(tmp_path / "data")
  for run, reference in zip(plan.runs, old.runs, strict=True):
    config = driver.run_config(run, 0, data)
    train.validate_config(config)
    # the standing cheetah first among the extras: the mixtures mix the forward and the standing task
    assert train.dataset_paths(config)[1:] == [
        ("halfcheetah", dataset_path(f"{data}/halfcheetah_stand_scripted", "halfcheetah", "stand")),
        ("halfcheetah", dataset_path(f"{data}/halfcheetah_rock_scripted", "halfcheetah", "rock")),
        ("halfcheetah", dataset_path(f"{data}/halfcheetah_stand_scripted_switch_demo", "halfcheetah", "switch"))]
    config.extra_datasets = driver.run_config(reference, 0, data).extra_datasets
    assert config.to_dict() == driver.run_config(reference, 0, data).to_dict()
  assert "stand of halfcheetah (job halfcheetah_stand_scripted) + rock of halfcheetah" in dict(plan.protocol)["data"]


def fake_stand_rock_result(tmp_path, plan, method: str, seed: int):
  """A finished demo evaluation with a standing and a rocking held-out target of the same rank: all of the standing
  one at 0.5 m/s, the rocking one half at -1.5 and half at 2.5 (the same mean); CDT's rollouts match each target,
  DT's (seed 1: shifted a bin) sit at the standing one on both."""
  run = next(r for r in plan.runs if r.tag["method"] == method)
  where = tmp_path / f"{method}_{seed}"
  os.makedirs(where)
  names = ["best_traj_0_halfcheetah", "best_traj_0_stand(halfcheetah)", "best_traj_0_rock(halfcheetah)"]
  stand, rock = np.eye(6)[2], 0.5 * (np.eye(6)[0] + np.eye(6)[4])
  target = np.stack([np.eye(6)[5], stand, rock])
  achieved = target.copy() if method == "CDT" else np.stack([np.eye(6)[5]] + [np.eye(6)[2 + (seed == 1)]] * 2)
  np.savez(where / "eval_histogram.npz", names=np.array(names), edges_x_velocity=np.linspace(-2, 4, 7),
           target_histograms_x_velocity=target, achieved_histograms_x_velocity=achieved,
           features_x_velocity=np.zeros((3, 1, 4), np.float32), valid=np.ones((3, 1, 4), bool))
  aggregates = {"w1_mix": 0.3, "w1_task=halfcheetah": 0.1, "w1_task=stand(halfcheetah)": 0.0,
                "w1_task=rock(halfcheetah)": 1.0, "mean_x_velocity_task=halfcheetah": 3.5,
                "target_mean_x_velocity_task=halfcheetah": 3.5, "mean_x_velocity_task=stand(halfcheetah)": 0.5,
                "target_mean_x_velocity_task=stand(halfcheetah)": 0.5}
  return Result(run, seed, "closed_loop_nearest", str(where), {"targets": [], "aggregates": aggregates,
                                                                "protocol": {}, "feature": "x_velocity",
                                                                "conditioning": "histogram"})


def test_the_demos_report_tables_standing_vs_rocking_targets_against_the_bound(tmp_path):
  plan = gdt_bimodal.demo()
  results = [fake_stand_rock_result(tmp_path, plan, m, seed) for m in ("CDT", "DT") for seed in (0, 1, 2)]
  paths = gdt_bimodal.report(plan, results, str(tmp_path / "report"), "demo")
  summary = open(paths["summary_md"]).read()
  assert "## Mixture targets, closed_loop_nearest" in summary  # the mixtures' section stays
  assert "## Standing vs rocking targets, closed_loop_nearest" in summary and "differ by 0.000 m/s" in summary
  # the targets 2.0 apart in W1: the bound is 1.0; DT acts alike on both and cannot beat it
  assert ("| CDT | 0.000 ± 0.000 | 0.000 ± 0.000 | 0.000 ± 0.000 | 1.000 ± 0.000 | 2.000 ± 0.000 (2.000) | "
          "0.50 ± 0.00 m/s (0.50) |") in summary
  assert ("| DT | 0.333 ± 0.471 | 2.000 ± 0.000 | 1.167 ± 0.236 | 1.000 ± 0.000 | 0.000 ± 0.000 (2.000) | "
          "0.83 ± 0.47 m/s (0.50) |") in summary
  assert "below DT's by more than the larger seed std: yes; below the bound: yes" in summary
  with open(paths["per_seed_csv"]) as f:
    assert "w1_stand_rock_pairs" in f.readline()
  assert os.path.getsize(paths["bimodal_closed_loop_nearest_png"]) > 1000
