"""MxT expert data as raw state (morphology.data): T+1 states are exact env steps, the reset keys are the documented
ones, save/load round trips and refuses partial or stale files, render_dataset equals per-state render, and a dataset
rendered under one observation config cannot feed a model built for another."""

import dataclasses
import os

import jax
import numpy as np
import pytest

from morphology import data, distill, envs, graph

ENV = "ant_reach_2"  # 5 bodies, 4 hinges: the smallest registered env
T = 12
EPISODES = 3
SEED = 7
# The same policy object and sizes as tests/test_distill.py, so the compiled collection is shared via the cache.
POLICY = data.random_policy(4)


@pytest.fixture(scope="module")
def collected():
  ds = data.collect(ENV, POLICY, episodes=EPISODES, seed=SEED, episode_length=T, chunk_steps=6,
                    metadata={"source": "random"})
  return ds, envs.make(ENV)


def test_shapes_metadata_and_mask(collected):
  ds, env = collected
  assert ds.raw.pos.shape == (EPISODES, T + 1, 5, 3) and ds.raw.rot.shape == (EPISODES, T + 1, 5, 4)
  assert ds.raw.q.shape == (EPISODES, T + 1, env.sys.q_size()) and ds.raw.goals.shape == (EPISODES, T + 1, 1, 3)
  assert ds.actions.shape == (EPISODES, T, 4) and ds.valid.shape == (EPISODES, T)
  assert np.abs(ds.actions).max() <= 1.0 and np.abs(ds.actions).max() > 0.5  # random actions, clipped range
  # No random episode reaches the ball in 12 steps, so every step counts.
  assert ds.valid.all() and ds.num_transitions == EPISODES * T and not ds.done.any()
  m = ds.metadata
  assert m["env"] == ENV and m["seed"] == SEED and m["episodes"] == EPISODES and m["source"] == "random"
  assert m["mjcf_sha256"] == data.mjcf_hash(env) and m["env_config"]["backend"] == env.backend
  ds.check_env(env)
  with pytest.raises(data.DatasetError, match="ant_reach_3"):
    ds.check_env(envs.make("ant_reach_3"))


def test_stored_states_are_the_reset_and_exact_env_steps(collected):
  ds, env = collected
  # Episode e was reset with split(reset_rng, E)[e], reset_rng = split(PRNGKey(seed))[0] (the documented keys).
  reset_rng = jax.random.split(jax.random.PRNGKey(SEED))[0]
  reset = jax.jit(env.reset)(jax.random.split(reset_rng, EPISODES)[1])
  first = graph.raw_state_from_env_state(reset)
  step = jax.jit(lambda raw, action: env.step(data.restore_env_state(env, raw, reset), action))
  for field in graph.RawState._fields:
    np.testing.assert_allclose(getattr(ds.raw, field)[1, 0], np.asarray(getattr(first, field)), atol=1e-6)
  # Stepping the env from stored state t with stored action t gives stored state t+1, up to the last (t = T-1 -> T),
  # up to float rounding (the scanned, vmapped collection and this single jit'd step are different XLA programs).
  for e, t in ((0, 0), (1, 5), (2, T - 1)):
    nxt = step(ds.state(e, t), ds.actions[e, t])
    got = graph.raw_state_from_env_state(nxt)
    for field in graph.RawState._fields:
      np.testing.assert_allclose(np.asarray(getattr(got, field)), getattr(ds.raw, field)[e, t + 1], rtol=1e-4, atol=1e-4,
                                 err_msg=f"{field} at episode {e}, step {t}")
    np.testing.assert_allclose(float(nxt.reward), ds.rewards[e, t], rtol=1e-5, atol=1e-5)
  # And the states are not all the same (a frozen or mis-indexed record would pass the above only by accident).
  assert np.abs(ds.raw.pos[0, 1:] - ds.raw.pos[0, :-1]).max() > 1e-3


def test_save_load_round_trip_and_refusals(collected, tmp_path):
  ds, _ = collected
  path = data.dataset_path(str(tmp_path), ENV)
  ds.save(path)
  back = data.MxtDataset.load(path)
  for field in graph.RawState._fields:
    np.testing.assert_array_equal(getattr(back.raw, field), getattr(ds.raw, field))
  for field in data.STEP_FIELDS:
    np.testing.assert_array_equal(getattr(back, field), getattr(ds, field))
  assert back.metadata == ds.metadata and back.source["path"] == os.path.abspath(path)
  assert back.episodes(2).num_episodes == 2 and back.episodes(2).raw.pos.shape[0] == 2
  # A truncated npz (a partial write, or a copy cut short) does not hash to its record.
  blob = open(path, "rb").read()
  open(path, "wb").write(blob[:len(blob) // 2])
  with pytest.raises(data.DatasetError, match="sha256"):
    data.MxtDataset.load(path)
  open(path, "wb").write(blob)
  os.remove(os.path.splitext(path)[0] + ".json")
  with pytest.raises(data.DatasetError, match="no such file"):
    data.MxtDataset.load(path)


def test_render_dataset_equals_per_state_render(collected):
  ds, _ = collected
  for config in ("mtg_v2_base_m", "mtg_v1_base_jv_rp_rr", "flat"):
    layout = graph.layout_for_name(ENV, config)
    r = data.render_dataset(ds, layout)
    render = jax.jit(graph.render)
    assert r.config == config and r.tokens.shape == (EPISODES, T) + layout.obs_shape
    for e, t in ((0, 0), (2, 7), (1, T - 1)):
      tokens, mask = render(layout, ds.state(e, t))
      np.testing.assert_allclose(r.tokens[e, t], np.asarray(tokens), atol=1e-6)
      np.testing.assert_array_equal(r.mask[e, t], np.asarray(mask))
      np.testing.assert_array_equal(r.actions[e, t, layout.action_token_index], ds.actions[e, t])
    off = ~layout.action_mask
    assert np.all(r.actions[..., off] == 0) and r.action_mask.sum() == 4
  with pytest.raises(data.DatasetError, match="ant_reach_3"):
    data.render_dataset(ds, graph.layout_for_name("ant_reach_3"))


def test_a_dataset_rendered_under_another_config_is_refused_naming_both(collected):
  ds, _ = collected
  # mtg_v1_base_m and mtg_v2_base_m have the same token size (32), so only the check tells them apart.
  r = data.render_dataset(ds, graph.layout_for_name(ENV, "mtg_v1_base_m"))
  assert r.tokens.shape[-1] == graph.OBS_CONFIGS.get("mtg_v2_base_m").token_size
  with pytest.raises(ValueError, match="mtg_v1_base_m.*mtg_v2_base_m"):
    distill.multitask_data([r], "mtg_v2_base_m")
  distill.multitask_data([r], "mtg_v1_base_m")  # the matching model config is accepted


def test_successful_episodes_are_selected_whole_and_in_order(collected):
  ds, _ = collected
  with pytest.raises(ValueError, match=f"{ENV}: none of the {EPISODES} episodes succeeded"):
    ds.successful()
  marked = dataclasses.replace(ds, success=ds.success.copy())
  marked.success[2, 5] = marked.success[0, 7] = 1.0  # episodes 0 and 2 reach the goal
  kept = marked.successful()
  assert kept.num_episodes == 2 and kept.metadata["episodes"] == 2
  np.testing.assert_array_equal(kept.actions, ds.actions[[0, 2]])
  np.testing.assert_array_equal(kept.raw.pos, ds.raw.pos[[0, 2]])
  np.testing.assert_array_equal(kept.valid, ds.valid[[0, 2]])
  np.testing.assert_array_equal(kept.episodes(1).actions, ds.actions[:1])
