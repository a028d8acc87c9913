"""Gymnasium MuJoCo evaluation: the batched vector-env rollout against a single-env loop, D4RL reference returns,
backend dispatch, and a Minari dataset written by Minari's own DataCollector trained and evaluated end to end."""

import json
import os

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import cdt, gdt_base
from gdt import evaluate, gym_eval, hindsight, train
from gdt import targets as gdt_targets
from gdt.checkpoint import LoadedPolicy
from gdt.conditioning import Labels
from gdt.data import GYM_OBSERVATION_LAYOUTS, Trajectories, dataset_path, default_metadata, load_minari
from gdt.data.loaders import MINARI_BACKEND
from gdt.models import GDTPolicy

ENV, GYM_ID = "hopper", "Hopper-v5"
S, A, K, NUM_BINS, EPISODES = 11, 3, 4, 6, 3
XVEL = GYM_OBSERVATION_LAYOUTS[ENV]["x_velocity"]


def hopper_like_trajs(n=8, t=60, seed=1) -> Trajectories:
  rs = np.random.RandomState(seed)
  lengths = rs.randint(20, t + 1, n).astype(np.int32)  # seed 1: trajectories 0 and 1 last 57 and 32 steps
  mask = np.arange(t)[None] < lengths[:, None]
  obs = (rs.randn(n, t, S) * mask[..., None]).astype(np.float32)
  return Trajectories(obs, (rs.uniform(-1, 1, (n, t, A)) * mask[..., None]).astype(np.float32),
                      (rs.randn(n, t) * mask).astype(np.float32), np.zeros((n, t), bool), np.zeros((n, t), bool),
                      lengths, default_metadata(ENV, "random", "minari", MINARI_BACKEND, n, GYM_OBSERVATION_LAYOUTS[ENV]))


def random_policy(edges, seed=1) -> LoadedPolicy:
  model = GDTPolicy(state_dim=S, act_dim=A, conditioning="histogram", cond_dim=NUM_BINS, embed_dim=16, num_layers=1,
                    num_heads=1, dropout_rate=0.0, max_timestep=64, z_dim=4, encoder_horizon=3,
                    bdt_unflipped_like_reference=False)
  init = jax.jit(lambda rng, *x: model.init(rng, *x, deterministic=True))  # one compile, not one per op
  params = init(jax.random.PRNGKey(seed), jnp.zeros((1, K, NUM_BINS)), jnp.zeros((1, K, S)), jnp.zeros((1, K, A)),
                jnp.zeros((1, K), jnp.int32), jnp.ones((1, K), bool))["params"]
  rs = np.random.RandomState(seed)
  return LoadedPolicy(model=model, params=params, state_mean=rs.randn(S).astype(np.float32) * 0.1,
                      state_std=rs.uniform(0.5, 2.0, S).astype(np.float32), context_length=K,
                      labels=Labels("histogram", "x_velocity", edges, 1000.0, 1.0), env=ENV, backend=MINARI_BACKEND)


def eval_config(**overrides) -> dict:
  c = gdt_base.get_config(conditioning="histogram").eval.to_dict()
  c.update(overrides)
  return c


@pytest.fixture(scope="module")
def gym_run():
  trajs = hopper_like_trajs()
  edges = np.asarray(hindsight.bin_edges(hindsight.feature_values(trajs, "x_velocity"), trajs.mask(), NUM_BINS))
  policy = random_policy(edges)
  targets = gdt_targets.trajectory_targets(trajs, [0, 1], ["best_traj_0", "middle_traj_0"], policy.labels,
                                         {"reward": gdt_targets.feature_edges(trajs, "reward", NUM_BINS)})
  rng = jax.random.PRNGKey(5)
  result = gym_eval.evaluate_gym(policy, targets, eval_config(episodes_per_target=EPISODES, plots=False), rng)
  return policy, targets, result, rng


def test_d4rl_reference_returns_are_pinned():
  # d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE of '<env>-random-v0', reused by every v2 dataset.
  assert gym_eval.D4RL_REFERENCE_RETURNS == {
      "halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3),
      "ant": (-325.6, 3879.7)}
  ref = gym_eval.GYM_ENVS.get("walker2d").reference
  np.testing.assert_allclose(evaluate.normalized_return([1.629008, 4592.3, 0.5 * (1.629008 + 4592.3)], ref),
                             [0.0, 100.0, 50.0], atol=1e-9)


def test_evaluation_backends_dispatch_brax_and_gymnasium():
  assert evaluate.EVALUATORS.get("gymnasium-mujoco") is gym_eval.evaluate_gym
  assert evaluate.EVALUATORS.get("gym-mujoco") is gym_eval.evaluate_gym
  assert evaluate.EVALUATORS.get("spring") is evaluate.evaluate_policy
  with pytest.raises(KeyError, match="evaluation backend"):
    evaluate.EVALUATORS.get("gymnasium")


def test_gym_env_variants_follow_the_observation_size():
  assert gym_eval.GYM_ENVS.get("ant").make_kwargs(27) == {"include_cfrc_ext_in_observation": False}
  with pytest.raises(ValueError, match="111"):
    gym_eval.GYM_ENVS.get("ant").make_kwargs(111)  # D4RL's mujoco-py contact forces
  vec = gym_eval.make_vector_env("ant", 27, 2, 5)
  assert vec.observation_space.shape == (2, 27)
  vec.close()


def test_batched_gym_rollout_matches_a_single_env_loop(gym_run):
  """Each (target, episode) of the vector env replays in its own Hopper-v5 from its own seed: same observations,
  rewards and end step; each action equals the policy applied to an explicitly built last-K window."""
  policy, targets, result, rng = gym_run
  seeds = gym_eval.episode_seeds(rng, targets.num_targets * EPISODES)
  ends = []
  for m in range(targets.num_targets):
    for e in range(EPISODES):
      valid, obs, acts = result.valid[m, e], result.observations[m, e], result.actions[m, e]
      n = int(valid.sum())
      assert valid[:n].all() and not valid[n:].any()
      env = gym.make(GYM_ID, max_episode_steps=targets.max_length)
      o, _ = env.reset(seed=seeds[m * EPISODES + e])  # target-major: env i plays target i // episodes
      done = False
      for t in range(n):
        assert not done
        np.testing.assert_allclose(obs[t], o, rtol=1e-6, atol=1e-6)
        pos = np.arange(t - K + 1, t + 1)
        real = pos >= 0
        states = np.where(real[:, None], (obs[np.maximum(pos, 0)] - policy.state_mean) / policy.state_std, 0)
        a_in = np.where((real & (pos < t))[:, None], acts[np.maximum(pos, 0)], 0)
        cond = np.where(real[:, None], targets.cond[m, np.maximum(pos, 0)], 0)
        want = policy.apply(jnp.asarray(cond[None], jnp.float32), jnp.asarray(states[None], jnp.float32),
                            jnp.asarray(a_in[None], jnp.float32), jnp.asarray(np.maximum(pos, 0)[None], jnp.int32),
                            jnp.asarray(real[None]))[0, -1]
        np.testing.assert_allclose(acts[t], want, atol=1e-5)
        o, r, term, trunc, _ = env.step(acts[t])
        np.testing.assert_allclose(result.rewards[m, e, t], r, rtol=1e-5, atol=1e-5)
        done = term or trunc
      assert done or n == targets.lengths[m]  # ended by the env or at the target's length, not before
      ends.append((n, bool(done)))
      env.close()
  # Hoppers fell at different steps and one episode ran to its target's length (seeds chosen for it): episodes
  # freeze one by one while the others go on.
  assert len({n for n, _ in ends}) > 2 and any(done for _, done in ends) and not all(done for _, done in ends)
  np.testing.assert_allclose(result.features["x_velocity"], np.where(result.valid, result.observations[..., XVEL], 0),
                             atol=1e-6)  # the feature of the observation acted in
  assert np.all(result.rewards[~result.valid] == 0)  # frozen episodes add nothing


def test_gym_rows_hold_d4rl_normalised_returns(gym_run, tmp_path):
  _, targets, result, _ = gym_run
  lo, hi = gym_eval.D4RL_REFERENCE_RETURNS[ENV]
  for m, row in enumerate(result.rows):
    np.testing.assert_allclose(row["mean_return"], result.rewards[m].sum(-1).mean(), rtol=1e-5)
    np.testing.assert_allclose(row["normalized_return"], 100 * (row["mean_return"] - lo) / (hi - lo), rtol=1e-5)
    np.testing.assert_allclose(row["target_normalized_return"], 100 * (targets.returns[m] - lo) / (hi - lo), rtol=1e-5)
  np.testing.assert_allclose(result.aggregates["normalized_return_all"],
                             np.mean([r["normalized_return"] for r in result.rows]), rtol=1e-6)
  assert result.protocol["gym_env_id"] == GYM_ID and result.protocol["backend"] == MINARI_BACKEND
  with open(result.write(str(tmp_path), "cdt")["json"]) as f:
    assert "normalized_return_best" in json.load(f)["aggregates"]


def test_minari_datacollector_dataset_trains_and_evaluates_end_to_end(tmp_path, monkeypatch):
  """A Hopper-v5 dataset written by Minari's DataCollector (random actions) -> load_minari -> the project's npz ->
  train_and_evaluate of a tiny CDT -> evaluation on Hopper-v5 with W1 and D4RL-normalised returns."""
  import minari

  monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # never ~/.minari; nothing downloads
  env = minari.DataCollector(gym.make(GYM_ID, max_episode_steps=25))
  env.action_space.seed(0)
  for episode in range(8):
    env.reset(seed=episode)
    done = False
    while not done:
      _, _, term, trunc, _ = env.step(env.action_space.sample())
      done = term or trunc
  env.create_dataset("mujoco/hopper/random-v0", algorithm_name="random", author="tests", author_email="-",
                     code_permalink="-", description="test data")
  env.close()

  trajs = load_minari(str(tmp_path / "minari" / "mujoco" / "hopper" / "random-v0"))
  assert trajs.metadata["env"] == ENV and trajs.metadata["backend"] == MINARI_BACKEND
  assert trajs.num_trajectories == 8 and trajs.obs_dim == S and trajs.lengths.max() <= 25
  data_dir = str(tmp_path / "data")
  trajs.save(dataset_path(data_dir, ENV, "random"))  # what the trainer reads (config data_dir/env/dataset)

  c = cdt.get_config(f"env={ENV},dataset=random,data_dir={data_dir},steps=10")
  c.model.update(embed_dim=16, num_layers=1, num_heads=1, dropout_rate=0.0)
  c.context_length, c.num_bins = 5, 6
  c.train.update(batch_size=8, steps_per_call=10, warmup_steps=1, checkpoint_every=10)
  c.eval.update(best_k=1, middle_k=1, episodes_per_target=2, plots=False)
  workdir = str(tmp_path / "run")
  result = train.train_and_evaluate(c, workdir, log=lambda _: None)

  assert result.protocol["backend"] == MINARI_BACKEND and result.protocol["gym_env_id"] == GYM_ID
  assert np.isfinite([r["w1"] for r in result.rows]).all() and np.isfinite(result.aggregates["w1_all"])
  assert np.isfinite([r["normalized_return"] for r in result.rows]).all()
  assert np.isfinite(result.aggregates["normalized_return_all"])
  assert result.valid.any(axis=-1).all()  # every episode took steps
  for suffix in (".npz", ".json"):
    assert os.path.exists(os.path.join(workdir, f"eval_histogram{suffix}"))
