"""Wasserstein-1 against scipy on random inputs; histograms."""

import numpy as np
import pytest
from scipy import stats

from gdt import metrics


@pytest.mark.parametrize("bins", [2, 5, 30])
def test_wasserstein_1d_matches_scipy(bins):
  rng = np.random.default_rng(bins)
  centers = np.sort(rng.normal(size=bins)) if bins == 5 else np.linspace(-3.0, 4.0, bins)
  p = rng.random((4, 3, bins))
  q = rng.random((4, 3, bins))
  p[0, 0, : bins // 2] = 0.0  # zero-mass bins
  q[1, 2, -1] = 0.0
  got = np.asarray(metrics.wasserstein_1d(p, q, centers))
  assert got.shape == (4, 3)
  for idx in np.ndindex(4, 3):
    want = stats.wasserstein_distance(centers, centers, p[idx], q[idx])
    np.testing.assert_allclose(got[idx], want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics.wasserstein_1d(p, p, centers), 0.0, atol=1e-6)


def test_wasserstein_1d_shape_error():
  with pytest.raises(ValueError, match="3 and 3 bins but there are 4 centres"):
    metrics.wasserstein_1d(np.ones(3), np.ones(3), np.arange(4.0))


@pytest.mark.parametrize("n,m", [(1, 1), (7, 19), (200, 33), (1000, 1000)])
def test_wasserstein_1d_samples_matches_scipy(n, m):
  rng = np.random.default_rng(n + m)
  x = rng.normal(size=n)
  y = rng.gamma(2.0, size=m) - 1.0
  if n > 1:
    x[: n // 2] = np.round(x[: n // 2])  # ties
  np.testing.assert_allclose(metrics.wasserstein_1d_samples(x, y), stats.wasserstein_distance(x, y), rtol=1e-5)


def test_binned_and_sample_w1_agree_on_bin_centres():
  centers = np.linspace(0.0, 1.0, 11)
  rng = np.random.default_rng(3)
  x = rng.choice(centers, 50)
  y = rng.choice(centers, 80)
  edges = np.concatenate([centers - 0.05, [1.05]])
  w = metrics.wasserstein_1d(metrics.histogram(x, edges), metrics.histogram(y, edges), centers)
  np.testing.assert_allclose(w, metrics.wasserstein_1d_samples(x, y), rtol=1e-5)


def test_histogram_clips_and_masks():
  edges = np.array([0.0, 1.0, 2.0])
  values = np.array([[-3.0, 0.5, 1.5], [2.0, 9.0, 0.2]])
  mask = np.array([[True, True, True], [True, False, False]])
  np.testing.assert_allclose(metrics.histogram(values, edges), [3 / 6, 3 / 6], rtol=1e-6)
  np.testing.assert_allclose(metrics.histogram(values, edges, mask), [2 / 4, 2 / 4], rtol=1e-6)
  np.testing.assert_allclose(metrics.histogram(values, edges, np.zeros_like(mask)), [0, 0])
