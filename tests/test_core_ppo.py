"""gdt.core.ppo: orbax snapshots round-trip exactly and drive the same policy."""

import types

import jax
import ml_collections
import numpy as np
import pytest
from brax.training.acme import running_statistics, specs

from gdt.core import ppo

OBS, ACT = 5, 2


@pytest.fixture(scope="module")
def ppo_config():
  return ml_collections.ConfigDict(dict(normalize_observations=True, policy_hidden_layer_sizes=(8,),
                                        value_hidden_layer_sizes=(8, 8), num_timesteps=10))


def snapshot(ppo_config, step, seed):
  """Trained-looking params: a non-default normaliser (EMA mode, updated statistics) and random network params."""
  network = ppo.network_factory(ppo_config)(OBS, ACT)
  k_norm, k_pol, k_val = jax.random.split(jax.random.PRNGKey(seed), 3)
  normaliser = running_statistics.init_state(specs.Array((OBS,), np.float32), std_eps=1e-3, mode="ema")
  normaliser = running_statistics.update(normaliser, jax.random.normal(k_norm, (16, OBS)) * 3 + 1)
  params = (normaliser, network.policy_network.init(k_pol), network.value_network.init(k_val))
  return ppo.Snapshot(step, 12.5 + step, jax.device_get(params))


def test_snapshots_round_trip_bitwise_and_act_the_same(tmp_path, ppo_config, monkeypatch):
  monkeypatch.chdir(tmp_path)
  workdir = "runs/env"  # relative, as on the command line (orbax itself needs absolute paths)
  saved = [snapshot(ppo_config, step, seed) for seed, step in enumerate([300, 20])]
  for s in saved:
    ppo.save_snapshot(workdir, s)
  loaded = ppo.load_snapshots(workdir)
  assert [s.step for s in loaded] == [20, 300]  # training order, whatever the write order
  for want, got in zip(saved[::-1], loaded, strict=True):
    assert (got.step, got.eval_return) == (want.step, want.eval_return)
    assert jax.tree.structure(got.params) == jax.tree.structure(want.params)  # the normaliser's mode included
    for a, b in zip(jax.tree.leaves(want.params), jax.tree.leaves(got.params), strict=True):
      a, b = np.asarray(a), np.asarray(b)
      assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

  make_policy = ppo.make_policy_factory(types.SimpleNamespace(observation_size=OBS, action_size=ACT), ppo_config)
  obs = jax.random.normal(jax.random.PRNGKey(7), (4, OBS))
  for deterministic in (False, True):
    act = [make_policy(s.params, deterministic)(obs, jax.random.PRNGKey(1))[0] for s in (saved[1], loaded[0])]
    np.testing.assert_array_equal(*act)

  stacked = ppo.stack_snapshots(loaded)
  assert stacked[0].mean.shape == (2, OBS) and stacked[0].count.lo.shape == (2,)
  with pytest.raises(ValueError, match="exists"):  # snapshots are never rewritten
    ppo.save_snapshot(workdir, saved[0])


def test_ppo_kwargs_leave_network_sizes_to_the_factory(ppo_config):
  assert ppo.ppo_kwargs(ppo_config) == dict(normalize_observations=True, num_timesteps=10)
