"""Evaluation: target selection, schedules, the batched scan rollout against a naive loop, saved W1."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from experiments.configs import gdt_base
from gdt import envs, evaluate, hindsight
from gdt import targets as gdt_targets
from gdt.checkpoint import LoadedPolicy
from gdt.conditioning import Labels, ScheduleStep, closed_loop_histogram, closed_loop_nearest_histogram, use_nearest_mass
from gdt.data import Trajectories, default_metadata
from gdt.models import GDTPolicy

ENV = "halfcheetah"
S, A = 17, 6
K = 4
NUM_BINS = 8
EPISODES = 3
XVEL = envs.observation_layout(ENV)["x_velocity"]


def make_trajs(n=12, t=24, seed=0) -> Trajectories:
  rs = np.random.RandomState(seed)
  lengths = rs.randint(16, t + 1, n).astype(np.int32)
  mask = np.arange(t)[None] < lengths[:, None]
  return Trajectories(
      (rs.randn(n, t, S) * mask[..., None]).astype(np.float32),
      (rs.uniform(-1, 1, (n, t, A)) * mask[..., None]).astype(np.float32),
      (rs.randn(n, t) * mask).astype(np.float32), np.zeros((n, t), bool), np.zeros((n, t), bool), lengths,
      default_metadata(ENV, "medium", "brax", envs.default_backend(ENV), n, envs.observation_layout(ENV)))


def labels(conditioning: str, edges, feature: str = "x_velocity", rtg_scale: float = 1000.0) -> Labels:
  return Labels(conditioning, feature, edges, rtg_scale, 1.0)


def eval_config(**overrides) -> dict:
  """The default eval block of the GDT configs with `overrides`."""
  c = gdt_base.get_config(conditioning="histogram").eval.to_dict()
  c.update(overrides)
  return c


def make_policy(conditioning: str, cond_dim: int, edges, seed=0) -> LoadedPolicy:
  model = GDTPolicy(state_dim=S, act_dim=A, conditioning=conditioning, cond_dim=cond_dim, embed_dim=16, num_layers=1,
                    num_heads=1, dropout_rate=0.1, max_timestep=64, z_dim=4, encoder_horizon=3,
                    bdt_unflipped_like_reference=False)
  window = K + model.encoder_horizon - 1
  cond = ({"states": jnp.zeros((1, window, S)), "timesteps": jnp.zeros((1, window), jnp.int32),
           "mask": jnp.ones((1, window), bool)} if conditioning == "anticausal" else jnp.zeros((1, K, cond_dim)))
  params = model.init(jax.random.PRNGKey(seed), cond, jnp.zeros((1, K, S)), jnp.zeros((1, K, A)),
                      jnp.zeros((1, K), jnp.int32), jnp.ones((1, K), bool), deterministic=True)["params"]
  rs = np.random.RandomState(seed)
  return LoadedPolicy(model=model, params=params, state_mean=rs.randn(S).astype(np.float32) * 0.1,
                      state_std=rs.uniform(0.5, 2.0, S).astype(np.float32), context_length=K,
                      labels=labels(conditioning, edges), env=ENV, backend=envs.default_backend(ENV))


@pytest.fixture(scope="module")
def trajs():
  return make_trajs()


@pytest.fixture(scope="module")
def edges(trajs):
  return np.asarray(hindsight.bin_edges(hindsight.feature_values(trajs, "x_velocity"), trajs.mask(), NUM_BINS))


@pytest.fixture(scope="module")
def cdt(trajs, edges):
  """An open-loop CDT evaluation on 2 best + 2 middle targets, 3 episodes each, in 10-step scan chunks."""
  _, idx, names = gdt_targets.split_targets(trajs, 2, 2)
  policy = make_policy("histogram", NUM_BINS, edges)
  targets = gdt_targets.trajectory_targets(trajs, idx, names, policy.labels,
                                         {"reward": gdt_targets.feature_edges(trajs, "reward", NUM_BINS)})
  rng = jax.random.PRNGKey(7)
  result = evaluate.evaluate_policy(policy, targets, eval_config(episodes_per_target=EPISODES, chunk_steps=10), rng)
  return policy, targets, result, rng


def naive_actions(policy, cond_fn, observations, actions, steps):
  """The action at each step t < steps from an explicitly built last-K window (one env, batch 1).

  observations [T, S] and actions [T, A] are the recorded ones; cond_fn(t) -> the conditioning of step t.
  """
  out = []
  for t in range(steps):
    pos = np.arange(t - K + 1, t + 1)
    real = pos >= 0
    states = np.where(real[:, None], (observations[np.maximum(pos, 0)] - policy.state_mean) / policy.state_std, 0)
    acts = np.where((real & (pos < t))[:, None], actions[np.maximum(pos, 0)], 0)
    cond = np.stack([cond_fn(p) if p >= 0 else np.zeros_like(cond_fn(0)) for p in pos])
    a = policy.apply(jnp.asarray(cond[None], jnp.float32), jnp.asarray(states[None], jnp.float32),
                     jnp.asarray(acts[None], jnp.float32), jnp.asarray(np.maximum(pos, 0)[None], jnp.int32),
                     jnp.asarray(real[None]))
    out.append(np.asarray(a[0, -1]))
  return np.stack(out)


# ---------------------------------------------------------------------------------------------------------------


def test_split_targets_picks_ranks_and_holds_them_out():
  trajs = make_trajs(n=15)
  returns = trajs.returns()
  order = np.argsort(returns)
  train, target, names = gdt_targets.split_targets(trajs, best_k=3, middle_k=3)
  assert names == ["best_traj_0", "best_traj_1", "best_traj_2", "middle_traj_0", "middle_traj_1", "middle_traj_2"]
  np.testing.assert_array_equal(target[:3], order[[-1, -2, -3]])  # highest return first
  np.testing.assert_array_equal(target[3:], order[[15 // 2 - 1, 15 // 2, 15 // 2 + 1]])
  assert not set(train) & set(target)
  assert sorted(set(train) | set(target)) == list(range(15))
  with pytest.raises(ValueError, match="too few"):
    gdt_targets.split_targets(make_trajs(n=6), best_k=3, middle_k=3)


def test_trajectory_targets_hold_the_targets_own_labels(trajs, edges):
  idx = np.array([3, 5])
  targets = gdt_targets.trajectory_targets(trajs, idx, ["a", "b"], labels("histogram", edges))
  sel = trajs.select(idx)
  np.testing.assert_array_equal(targets.lengths, sel.lengths)
  for i in range(2):
    n = sel.lengths[i]
    xv = sel.observations[i, :n, XVEL]
    want, _ = np.histogram(np.clip(xv, edges[0], edges[-1]), edges)
    np.testing.assert_allclose(targets.histograms[i], want / n, atol=1e-6)
    np.testing.assert_allclose(targets.cond[i, 0], targets.histograms[i], atol=1e-6)  # h_0 = whole trajectory
    hist_t, _ = np.histogram(np.clip(xv[5:], edges[0], edges[-1]), edges)
    np.testing.assert_allclose(targets.cond[i, 5], hist_t / (n - 5), atol=1e-6)
  reward_edges = hindsight.bin_edges(hindsight.feature_values(trajs, "reward"), trajs.mask(), NUM_BINS)
  dt = gdt_targets.trajectory_targets(trajs, idx, ["a", "b"], labels("rtg", reward_edges, "reward", rtg_scale=100.0))
  n = sel.lengths[0]
  np.testing.assert_allclose(dt.cond[0, 2, 0], sel.rewards[0, 2:n].sum() * 0.01, rtol=1e-5)
  np.testing.assert_allclose(dt.totals[0], sel.rewards[0, :n].sum(), rtol=1e-5)


def test_a_feature_named_only_in_the_observation_layout_is_recorded():
  """`z_velocity` is no registered feature, only an observation-layout name: training accepts it, so the rollout
  must record it too (it used to raise KeyError after training)."""
  obs = jnp.arange(2 * S, dtype=jnp.float32).reshape(2, S)
  phi = evaluate._feature_fn("z_velocity", ENV)(obs, jnp.zeros(2))
  np.testing.assert_array_equal(phi, obs[:, envs.observation_layout(ENV)["z_velocity"]])


def test_closed_loop_histogram_spends_the_remaining_mass():
  p = jnp.array([[0.5, 0.25, 0.25]])
  length = jnp.array([4.0])  # target counts T p* = [2, 1, 1]
  got = closed_loop_histogram(p, length, jnp.array([[1.0, 1.0, 0.0]]))
  np.testing.assert_allclose(got, [[0.5, 0.0, 0.5]])  # left [1, 0, 1]
  overspent = closed_loop_histogram(p, length, jnp.array([[3.0, 2.0, 1.0]]))
  np.testing.assert_allclose(overspent, p)  # nothing left: fall back to p*
  np.testing.assert_allclose(closed_loop_histogram(p, length, jnp.zeros((1, 3))), p)


def test_nearest_mass_spends_the_target_mode_a_step_lands_next_to():
  p = jnp.array([[0.5, 0.0, 0.0, 0.5]])  # stand in bin 0, run in bin 3; T = 4 -> mass [2, 0, 0, 2]
  left = use_nearest_mass(4.0 * p, jnp.array([1]), jnp.array([1.0]))  # a step in bin 1: one off standing
  np.testing.assert_allclose(left, [[1.0, 0.0, 0.0, 2.0]])
  left = use_nearest_mass(left, jnp.array([1]), jnp.array([1.0]))
  np.testing.assert_allclose(closed_loop_nearest_histogram(p, left), [[0.0, 0.0, 0.0, 1.0]])  # standing spent: run
  # the bin-exact rule never spends it: two steps in bin 1 leave the standing share at one half
  np.testing.assert_allclose(closed_loop_histogram(p, jnp.array([4.0]), jnp.array([[0.0, 2.0, 0.0, 0.0]])), p)
  # an emptied bin spills into the next nearest (ties: the lower bin), and a weight of 0 (a done env) spends nothing
  spill = use_nearest_mass(jnp.array([[0.5, 0.0, 3.0, 0.0], [1.0, 0.0, 1.0, 0.0]]), jnp.array([1, 1]),
                           jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(spill, [[0.0, 0.0, 2.5, 0.0], [1.0, 0.0, 1.0, 0.0]])
  np.testing.assert_allclose(closed_loop_nearest_histogram(p, jnp.zeros((1, 4))), p)  # all spent: p*


def test_schedules_registry():
  step = ScheduleStep(
      t=jnp.int32(3), precomputed=jnp.array([[0.1, 0.9]]), histogram=jnp.array([[0.5, 0.5]]), length=jnp.array([10.0]),
      total=jnp.array([200.0]), counts=jnp.array([[3.0, 0.0]]), achieved_sum=jnp.array([50.0]), rtg_scale=100.0)
  np.testing.assert_allclose(evaluate.SCHEDULES.get("open_loop")("histogram", step), [[0.1, 0.9]])
  np.testing.assert_allclose(evaluate.SCHEDULES.get("closed_loop")("histogram", step), [[2 / 7, 5 / 7]], rtol=1e-6)
  np.testing.assert_allclose(evaluate.SCHEDULES.get("closed_loop")("rtg", step), [[1.5]], rtol=1e-6)
  near = step._replace(left=jnp.array([[1.0, 3.0]]))
  np.testing.assert_allclose(evaluate.SCHEDULES.get("closed_loop_nearest")("histogram", near), [[0.25, 0.75]])
  np.testing.assert_allclose(evaluate.SCHEDULES.get("closed_loop_nearest")("rtg", near), [[1.5]], rtol=1e-6)
  with pytest.raises(KeyError, match="closed_loop"):
    evaluate.SCHEDULES.get("closed-loop")


def test_synthetic_targets_feed_p_star_or_the_expected_sum():
  edges = np.linspace(-1.0, 1.0, 5)  # centres -0.75 -0.25 0.25 0.75
  h1, h2 = np.array([1.0, 0, 0, 0]), np.array([0, 0, 0, 1.0])
  bimodal = gdt_targets.mixture_histogram(h1, h2, 0.25)
  np.testing.assert_allclose(bimodal, [0.25, 0, 0, 0.75])
  t = gdt_targets.synthetic_targets(np.stack([bimodal, h1]), ["bimodal", "left"], labels("histogram", edges), length=10)
  assert t.cond.shape == (2, 10, 4) and t.lengths.tolist() == [10, 10]
  np.testing.assert_allclose(t.cond[0, 7], bimodal)
  rtg = gdt_targets.synthetic_targets(np.stack([bimodal]), ["bimodal"], labels("rtg", edges, rtg_scale=10.0), length=10)
  mean = 0.25 * -0.75 + 0.75 * 0.75
  np.testing.assert_allclose(rtg.cond[0, :, 0], mean * (10 - np.arange(10)) * 0.1, rtol=1e-5)
  np.testing.assert_allclose(rtg.totals, [mean * 10], rtol=1e-5)
  with pytest.raises(ValueError, match="demonstration"):
    gdt_targets.synthetic_targets(np.stack([h1]), ["x"], labels("anticausal", edges), length=10)


def test_encoder_window_slices_and_masks_the_demo():
  demo = jnp.arange(2 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 1) + 1.0
  lengths = jnp.array([6, 4])
  w = evaluate.encoder_window(demo, lengths, jnp.int32(2), context_length=4, horizon=3, max_timestep=100)
  # positions -1 .. 4
  np.testing.assert_array_equal(w["mask"], [[0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]])
  np.testing.assert_array_equal(w["timesteps"], [[0, 0, 1, 2, 3, 4], [0, 0, 1, 2, 3, 0]])
  np.testing.assert_array_equal(w["states"][..., 0], [[0, 1, 2, 3, 4, 5], [0, 7, 8, 9, 10, 0]])
  ref = evaluate.encoder_window(demo, lengths, jnp.int32(2), 4, 3, 100, like_reference=True)  # positions 2 .. 7
  np.testing.assert_array_equal(ref["mask"], [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
  np.testing.assert_array_equal(ref["states"][..., 0], [[3, 4, 5, 6, 0, 0], [9, 10, 0, 0, 0, 0]])


def test_rollout_actions_match_a_naive_window_loop(cdt):
  policy, targets, result, rng = cdt
  env = envs.make(ENV, backend=policy.backend)
  keys = jax.random.split(rng, targets.num_targets * EPISODES)
  reset, step = jax.jit(env.reset), jax.jit(env.step)
  steps = K + 3
  for m, e in ((0, 0), (2, 1)):
    obs, acts = result.observations[m, e], result.actions[m, e]
    want = naive_actions(policy, lambda t, m=m: targets.cond[m, t], obs, acts, steps)
    np.testing.assert_allclose(acts[:steps], want, atol=1e-5)
    state = reset(keys[m * EPISODES + e])  # the env batch is target-major: env i plays target i // episodes
    for t in range(steps):
      # The reset state pins the target-major env order; later steps agree up to batched-vs-single float drift,
      # far below what a wrong action or a wrong env would give.
      np.testing.assert_allclose(obs[t], state.obs, atol=1e-5 if t == 0 else 2e-2)
      state = step(state, jnp.asarray(want[t]))


def test_rollout_records_the_acted_in_state_and_stops_at_target_length(cdt):
  _, targets, result, _ = cdt
  assert result.valid.shape == (targets.num_targets, EPISODES, targets.max_length)
  np.testing.assert_array_equal(result.valid.sum(-1), np.repeat(targets.lengths[:, None], EPISODES, 1))
  xv = result.features["x_velocity"]
  np.testing.assert_allclose(xv, np.where(result.valid, result.observations[..., XVEL], 0), atol=1e-6)
  assert np.all(result.rewards[~result.valid] == 0)
  row = result.rows[1]
  np.testing.assert_allclose(row["mean_return"], result.rewards[1].sum(-1).mean(), rtol=1e-5)
  np.testing.assert_allclose(result.aggregates["w1_best"], np.mean([r["w1"] for r in result.rows[:2]]), rtol=1e-6)
  np.testing.assert_allclose(result.aggregates["w1_middle"], np.mean([r["w1"] for r in result.rows[2:]]), rtol=1e-6)


def test_w1_recomputes_from_the_saved_npz_with_scipy(cdt, tmp_path):
  _, targets, result, _ = cdt
  paths = result.write(str(tmp_path), "cdt")
  data = np.load(paths["npz"])
  with open(paths["json"]) as f:
    summary = json.load(f)
  for feature, key in (("x_velocity", "w1"), ("reward", "w1_reward")):
    edges = data[f"edges_{feature}"]
    centres = 0.5 * (edges[1:] + edges[:-1])
    for m, row in enumerate(summary["targets"]):
      pooled = data[f"features_{feature}"][m][data["valid"][m]]
      achieved, _ = np.histogram(np.clip(pooled, edges[0], edges[-1]), edges)
      target = data[f"target_histograms_{feature}"][m]
      want = scipy.stats.wasserstein_distance(centres, centres, target, achieved)
      np.testing.assert_allclose(row[key], want, rtol=1e-4, atol=1e-6)
      # where the rollouts and the target sit: the achieved mean over valid steps, the target histogram's mean
      np.testing.assert_allclose(row[f"mean_{feature}"], pooled.mean(), rtol=1e-4, atol=1e-6)
      np.testing.assert_allclose(row[f"target_mean_{feature}"], target @ centres, rtol=1e-4, atol=1e-6)
  assert summary["aggregates"]["w1_all"] == pytest.approx(np.mean([r["w1"] for r in summary["targets"]]))
  assert summary["aggregates"]["mean_x_velocity_all"] == pytest.approx(
      np.mean([r["mean_x_velocity"] for r in summary["targets"]]))
  for key in ("png_x_velocity", "png_reward"):
    with open(paths[key], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_markdown_table(cdt):
  _, _, result, _ = cdt
  table = evaluate.markdown_table({"CDT": result, "DT": result})
  lines = table.strip().splitlines()
  assert lines[0] == "| target | CDT W1 | CDT return | DT W1 | DT return |"
  assert len(lines) == 2 + 4 + 3  # header, rule, 4 targets, mean best / middle / all
  row = next(line for line in lines if line.startswith("| best_traj_1 |"))
  assert f"| {result.rows[1]['w1']:.3f} | {result.rows[1]['mean_return']:.1f} |" in row
  assert lines[-1].startswith(f"| mean all | {result.aggregates['w1_all']:.3f} |")


@pytest.mark.parametrize("schedule", ["closed_loop", "closed_loop_nearest"])
def test_closed_loop_synthetic_rollout_with_the_reference_offset(edges, schedule):
  """Synthetic target, closed-loop histogram schedules, next-state features: the scan's actions equal a naive
  loop that recomputes h_t from the features achieved so far."""
  p = gdt_targets.mixture_histogram(np.eye(NUM_BINS)[1], np.eye(NUM_BINS)[6], 0.5)
  policy = make_policy("histogram", NUM_BINS, edges, seed=1)
  targets = gdt_targets.synthetic_targets(p[None], ["bimodal"], policy.labels, length=12)
  config = eval_config(episodes_per_target=2, schedule=schedule, xvel_offset_like_gdt=True, plots=False)
  result = evaluate.evaluate_policy(policy, targets, config, jax.random.PRNGKey(3))
  obs, acts, xv = result.observations[0, 1], result.actions[0, 1], result.features["x_velocity"][0, 1]
  np.testing.assert_allclose(xv[:-1], obs[1:, XVEL], atol=1e-6)  # the feature of the NEXT state

  def cond(t):
    if schedule == "closed_loop":
      counts = np.histogram(np.clip(xv[:t], edges[0], edges[-1]), edges)[0]
      return np.asarray(closed_loop_histogram(jnp.asarray(p[None]), jnp.array([12.0]), counts[None] * 1.0))[0]
    left = jnp.asarray(12.0 * p[None], jnp.float32)
    for b in np.minimum(np.digitize(np.clip(xv[:t], edges[0], edges[-1]), edges) - 1, NUM_BINS - 1):
      left = use_nearest_mass(left, jnp.array([b]), jnp.array([1.0]))
    return np.asarray(closed_loop_nearest_histogram(jnp.asarray(p[None]), left))[0]

  steps = 10
  np.testing.assert_allclose(acts[:steps], naive_actions(policy, cond, obs, acts, steps), atol=1e-5)
  assert result.valid.sum() == 2 * 12


@pytest.mark.slow
def test_bdt_rollout_feeds_the_demo_window(trajs, edges):
  _, idx, names = gdt_targets.split_targets(trajs, 1, 1)
  policy = make_policy("anticausal", 1, edges, seed=2)
  score_edges = {f: gdt_targets.feature_edges(trajs, f, NUM_BINS) for f in ("reward", "x_velocity")}
  targets = gdt_targets.trajectory_targets(trajs, idx, names, policy.labels, score_edges)
  assert [f for f, _, _ in targets.score_features] == ["x_velocity", "reward"]
  result = evaluate.evaluate_policy(policy, targets, eval_config(episodes_per_target=2, plots=False),
                                    jax.random.PRNGKey(4))
  h = policy.model.encoder_horizon
  demo = (targets.demo_states - policy.state_mean) / policy.state_std
  demo = demo * (np.arange(demo.shape[1])[None] < targets.lengths[:, None])[..., None]
  m, e = 1, 0
  obs, acts = result.observations[m, e], result.actions[m, e]
  for t in range(K + 2):
    pos = np.arange(t - K + 1, t + 1)
    real = pos >= 0
    states = np.where(real[:, None], (obs[np.maximum(pos, 0)] - policy.state_mean) / policy.state_std, 0)
    a_in = np.where((real & (pos < t))[:, None], acts[np.maximum(pos, 0)], 0)
    window = evaluate.encoder_window(jnp.asarray(demo), jnp.asarray(targets.lengths), jnp.int32(t), K, h,
                                     policy.model.max_timestep)
    cond = jax.tree.map(lambda x: x[m:m + 1], window)
    a = policy.apply(cond, jnp.asarray(states[None], jnp.float32), jnp.asarray(a_in[None], jnp.float32),
                     jnp.asarray(np.maximum(pos, 0)[None], jnp.int32), jnp.asarray(real[None]))
    np.testing.assert_allclose(acts[t], a[0, -1], atol=1e-5)
  assert {"w1", "w1_reward"} <= set(result.rows[0])


def test_evaluate_rejects_a_policy_target_mismatch(cdt, trajs, edges):
  policy, _, _, _ = cdt
  _, idx, names = gdt_targets.split_targets(trajs, 1, 1)
  dt_targets = gdt_targets.trajectory_targets(trajs, idx, names, labels("rtg", edges, "reward"))
  with pytest.raises(ValueError, match="conditioning"):
    evaluate.evaluate_policy(policy, dt_targets, eval_config(), jax.random.PRNGKey(0))
  rescaled = gdt_targets.trajectory_targets(trajs, idx, names, labels("histogram", edges, rtg_scale=1.0))
  with pytest.raises(ValueError, match="policy.labels"):  # same kind, another scale: still refused
    evaluate.evaluate_policy(policy, rescaled, eval_config(), jax.random.PRNGKey(0))
