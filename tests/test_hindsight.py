"""Hindsight relabelling against naive per-step loops (the reference's algorithm), features, aggregators."""

import jax
import numpy as np
import pytest

from gdt import hindsight


def _padded(rng, lengths, max_len):
  values = rng.normal(size=(len(lengths), max_len)).astype(np.float32)
  mask = np.arange(max_len)[None, :] < np.asarray(lengths)[:, None]
  return values * mask, mask


def _naive_rtg(values, length, gamma):
  out = np.zeros(values.shape[0])
  for t in range(length):
    out[t] = sum(gamma ** (k - t) * values[k] for k in range(t, length))
  return out


def _naive_future_histogram(values, length, edges, gamma):
  """The reference's per-step np.histogram over the suffix (gdt_reference.md §2.3), weighted by gamma."""
  out = np.zeros((values.shape[0], len(edges) - 1))
  clipped = np.clip(values, edges[0], edges[-1])
  for t in range(length):
    w = gamma ** np.arange(length - t)
    h, _ = np.histogram(clipped[t:length], bins=edges, weights=w)
    out[t] = h / w.sum()
  return out


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_returns_to_go_matches_loop(gamma):
  rng = np.random.default_rng(0)
  lengths = [1, 7, 13, 20]
  values, mask = _padded(rng, lengths, 20)
  got = np.asarray(jax.jit(hindsight.returns_to_go, static_argnums=1)(values, gamma, mask))
  for i, n in enumerate(lengths):
    np.testing.assert_allclose(got[i], _naive_rtg(values[i], n, gamma), rtol=1e-5, atol=1e-5)


def test_returns_to_go_skips_left_padding():
  """Windows are left-padded: padded steps neither add nor discount."""
  rewards = np.array([[0.0, 0.0, 1.0, 2.0, 3.0]], np.float32)
  mask = np.array([[False, False, True, True, True]])
  np.testing.assert_allclose(hindsight.returns_to_go(rewards, 0.5, mask), [[0, 0, 2.75, 3.5, 3.0]])


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_future_histogram_matches_loop_and_rows_sum_to_one(gamma):
  rng = np.random.default_rng(1)
  lengths = [1, 5, 30, 31]
  values, mask = _padded(rng, lengths, 31)
  edges = np.asarray(hindsight.bin_edges(values[:, :20], mask[:, :20], 8))  # later values fall outside: clipped
  got = np.asarray(jax.jit(hindsight.future_histogram, static_argnums=2)(values, edges, gamma, mask))
  assert got.shape == (4, 31, 8)
  for i, n in enumerate(lengths):
    np.testing.assert_allclose(got[i], _naive_future_histogram(values[i], n, edges, gamma), atol=1e-5)
  np.testing.assert_allclose(got.sum(-1)[mask], 1.0, atol=1e-5)
  assert np.all(got[~mask] == 0)


def test_bin_index_numpy_semantics_on_edges():
  edges = np.array([0.0, 1.0, 2.0, 3.0])
  values = np.array([-5.0, 0.0, 0.999, 1.0, 2.5, 3.0, 7.0])
  np.testing.assert_array_equal(hindsight.bin_index(values, edges), [0, 0, 0, 1, 2, 2, 2])
  np.testing.assert_array_equal(np.histogram(np.clip(values, 0, 3), edges)[0], np.bincount(hindsight.bin_index(values, edges), minlength=3))


def test_bin_edges_over_valid_steps_and_constant_guard():
  values = np.array([[1.0, 5.0, 100.0], [-2.0, 0.0, 0.0]], np.float32)
  mask = np.array([[True, True, False], [True, False, False]])
  np.testing.assert_allclose(hindsight.bin_edges(values, mask, 7), np.linspace(-2.0, 5.0, 8), rtol=1e-6)
  np.testing.assert_allclose(hindsight.bin_edges(np.full((2, 3), 4.0), None, 2), [4.0, 4.5, 5.0])
  np.testing.assert_allclose(hindsight.bin_centers(np.array([0.0, 1.0, 3.0])), [0.5, 2.0])


def _trajs():
  obs = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) + 1
  return {
      "observations": obs,
      "rewards": np.ones((2, 3), np.float32),
      "lengths": np.array([3, 2]),
      "metadata": {"env": "toy", "observation_layout": {"x_velocity": 2, "z_height": 0}},
  }


def test_features_read_layout_and_zero_padding():
  data = _trajs()
  np.testing.assert_array_equal(hindsight.feature_values(data, "reward"), [[1, 1, 1], [1, 1, 0]])
  np.testing.assert_array_equal(hindsight.feature_values(data, "x_velocity"), [[3, 7, 11], [15, 19, 0]])
  np.testing.assert_array_equal(hindsight.feature_values(data, "z_height"), [[1, 5, 9], [13, 17, 0]])
  with pytest.raises(KeyError, match="unknown feature 'y_vel'.*x_velocity.*z_height"):
    hindsight.feature_values(data, "y_vel")
  data["metadata"]["observation_layout"] = {}
  with pytest.raises(KeyError, match="'x_velocity'.*'toy'"):
    hindsight.feature_values(data, "x_velocity")


def test_features_of_a_trajectories_container():
  from gdt.data import Trajectories

  data = _trajs()
  n, t = data["rewards"].shape
  trajs = Trajectories(data["observations"], np.zeros((n, t, 1), np.float32), data["rewards"], np.zeros((n, t), bool),
                       np.zeros((n, t), bool), data["lengths"].astype(np.int32), data["metadata"])
  np.testing.assert_array_equal(hindsight.feature_values(trajs, "x_velocity"), [[3, 7, 11], [15, 19, 0]])
  fn = hindsight.get_feature("z_height", trajs.metadata)
  np.testing.assert_array_equal(fn({"observations": data["observations"]}, trajs.metadata), data["observations"][..., 0])


def test_aggregators():
  values = np.array([[1.0, 2.0, 3.0, 0.0]], np.float32)
  mask = np.array([[True, True, True, False]])
  rtg = hindsight.rtg_aggregator(values, mask, gamma=1.0, edges=None, rtg_scale=1000.0)
  np.testing.assert_allclose(rtg[..., 0], [[6e-3, 5e-3, 3e-3, 0]], rtol=1e-6)
  hist = hindsight.histogram_aggregator(values, mask, gamma=1.0, edges=np.array([0.0, 1.5, 3.0]), rtg_scale=1000.0)
  np.testing.assert_allclose(hist[0], [[1 / 3, 2 / 3], [0, 1], [0, 1], [0, 0]], atol=1e-6)
  with pytest.raises(ValueError, match="bin edges"):
    hindsight.histogram_aggregator(values, mask, gamma=1.0, edges=None, rtg_scale=1000.0)
