"""Checkpoints: an interrupted-and-resumed run equals a straight one bit for bit; load_policy needs only the workdir."""

import numpy as np
import pytest

import flax.linen as nn
import jax
import jax.numpy as jnp

from experiments import conditioning_sensitivity as sensitivity
from experiments.configs import bc, cdt
from gdt import checkpoint as ckpt
from gdt import train
from gdt.core import checkpoint as core_ckpt
from gdt.core.trainer import TrainState
from gdt.core.workdir import config_to_dict
from tests.test_train import S, A, synthetic_trajectories, tiny

N = 20  # steps per call


@pytest.fixture(scope="module")
def setup():
  return make_setup(tiny(cdt))


def make_setup(config):
  config.model.dropout_rate = 0.1  # the dropout RNG stream must resume too
  config.train.steps_per_call = N
  trajs = synthetic_trajectories()
  prep = train.prepare_data(trajs, config, np.arange(2, trajs.num_trajectories))
  trainer = train.GDTTrainer(config, S, A, prep.labels.cond_dim)
  meta = ckpt.policy_meta(config_to_dict(config), S, A, prep.state_mean, prep.state_std, prep.labels,
                          "halfcheetah", "positional")
  return config, prep, trainer, trainer.put_data(prep.data), meta


def test_resume_is_bit_identical(setup, tmp_path):
  config, prep, trainer, data, meta = setup
  straight = trainer.init(3)
  for _ in range(2):
    straight, _ = trainer.train_many(straight, data, N)

  first = trainer.init(3)
  first, _ = trainer.train_many(first, data, N)
  mngr = core_ckpt.manager(str(tmp_path))
  core_ckpt.save(mngr, N, first.params, first.extras(), meta)
  mngr.close()

  template = trainer.init(99)  # a different init: everything must come from the checkpoint
  mngr = core_ckpt.manager(str(tmp_path))
  assert mngr.latest_step() == N
  params, extras = core_ckpt.restore(mngr, N, template.params, template.extras())
  resumed = TrainState.from_extras(params, extras)
  resumed, _ = trainer.train_many(resumed, data, N)

  assert int(resumed.step) == int(straight.step) == 2 * N
  for a, b in zip(jax.tree.leaves((straight.params, straight.opt_state, straight.rng)),
                  jax.tree.leaves((resumed.params, resumed.opt_state, resumed.rng)), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_policy_rebuilds_the_policy_from_the_workdir(setup, tmp_path):
  config, prep, trainer, data, meta = setup
  state = trainer.init(0)
  mngr = core_ckpt.manager(str(tmp_path))
  core_ckpt.save(mngr, 7, state.params, state.extras(), meta)
  mngr.close()

  policy = ckpt.load_policy(str(tmp_path))
  assert policy.context_length == config.context_length and policy.conditioning == "histogram"
  assert policy.feature == "x_velocity" and policy.env == "halfcheetah" and policy.backend == "positional"
  assert policy.rtg_scale == config.rtg_scale and policy.gamma == config.gamma
  np.testing.assert_array_equal(policy.state_mean, prep.state_mean)
  np.testing.assert_array_equal(policy.state_std, prep.state_std)
  np.testing.assert_array_equal(policy.bin_edges, prep.labels.edges)
  batch = train.sample_batch(data, jax.random.PRNGKey(0), 4, config.context_length, 1000)
  args = (batch.cond, batch.states, batch.actions, batch.timesteps, batch.mask)
  expected = trainer.model.apply({"params": state.params}, *args, deterministic=True)
  np.testing.assert_allclose(np.asarray(policy.apply(*args)), np.asarray(expected), rtol=1e-5, atol=1e-6)
  with pytest.raises(FileNotFoundError, match="step 8"):
    ckpt.load_policy(str(tmp_path), step=8)


def test_load_policy_without_checkpoints_says_where_it_looked(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoints under"):
    ckpt.load_policy(str(tmp_path))


def test_load_model_rebuilds_the_gdt_policy_from_its_record(setup, tmp_path):
  config, prep, trainer, data, meta = setup
  state = trainer.init(1)
  mngr = core_ckpt.manager(str(tmp_path))
  core_ckpt.save(mngr, 3, state.params, state.extras(), meta)
  mngr.close()
  loaded = core_ckpt.load_model(str(tmp_path))
  assert loaded.step == 3 and loaded.model == trainer.model  # same class and fields
  for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(state.params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _saved_policy(setup, workdir):
  config, prep, trainer, data, meta = setup
  state = trainer.init(0)
  mngr = core_ckpt.manager(workdir)
  core_ckpt.save(mngr, 1, state.params, state.extras(), meta)
  mngr.close()
  return ckpt.load_policy(workdir)


def test_conditioning_sensitivity_swaps_z_only(setup, tmp_path):
  """experiments.conditioning_sensitivity: the other data's z_t moves CDT's action; the same data's z_t, or a policy
  without conditioning (BC), moves nothing; the error is the distance to the data's own action."""
  policy = _saved_policy(setup, str(tmp_path / "cdt"))
  trajs, other = synthetic_trajectories(min_length=20), synthetic_trajectories(seed=1, min_length=20)
  steps = (0, 3, 10)
  swapped = sensitivity.sensitivity(policy, trajs, other, steps, 4)
  assert all(swap > 0 for _, swap in swapped.values())  # small at init, exactly 0 below
  same = sensitivity.sensitivity(policy, trajs, trajs, steps, 4)
  assert [swap for _, swap in same.values()] == [0.0] * 3
  assert [err for err, _ in same.values()] == [err for err, _ in swapped.values()] and same[0][0] > 0
  bc_policy = _saved_policy(make_setup(tiny(bc)), str(tmp_path / "bc"))
  assert [swap for _, swap in sensitivity.sensitivity(bc_policy, trajs, other, steps, 4).values()] == [0.0] * 3
  shortest = min(trajs.lengths[:4].min(), other.lengths[:4].min())
  sensitivity.sensitivity(policy, trajs, other, (shortest - 1,), 4)
  with pytest.raises(ValueError, match=rf"--steps must lie in \[0, {shortest}\)"):
    sensitivity.sensitivity(policy, trajs, other, (0, shortest), 4)
  with pytest.raises(ValueError, match="--other has 5 trajectories, fewer than --trajectories=6"):
    sensitivity.sensitivity(policy, trajs, other.select(np.arange(5)), (0,), 6)


class _ToyModel(nn.Module):
  """A model only this test registers: the checkpoint layer must know nothing about it."""
  width: int
  scale: float

  @nn.compact
  def __call__(self, x):
    return self.scale * nn.Dense(self.width)(x)


def test_a_model_registered_in_a_test_round_trips(tmp_path):
  if "toy_model_for_test" not in core_ckpt.MODELS:
    core_ckpt.MODELS.register("toy_model_for_test", _ToyModel)
  model = _ToyModel(width=3, scale=2.5)
  params = model.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))["params"]
  meta = {"model": core_ckpt.model_spec("toy_model_for_test", width=3, scale=2.5), "note": "toy"}
  mngr = core_ckpt.manager(str(tmp_path))
  core_ckpt.save(mngr, 1, params, {"step": jnp.int32(1)}, meta)
  mngr.close()
  loaded = core_ckpt.load_model(str(tmp_path))
  assert isinstance(loaded.model, _ToyModel) and (loaded.model.width, loaded.model.scale) == (3, 2.5)
  assert loaded.meta["note"] == "toy"
  x = jnp.arange(8.0).reshape(2, 4)
  np.testing.assert_array_equal(np.asarray(loaded.model.apply({"params": loaded.params}, x)),
                                np.asarray(model.apply({"params": params}, x)))
  with pytest.raises(KeyError, match="toy_model_for_tes"):
    core_ckpt.model_spec("toy_model_for_tes", width=1)
