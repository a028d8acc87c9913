"""gdt.envs: every registered env x offered backend steps with finite observations laid out as documented."""

import functools

import brax.math
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdt import envs

BATCH, STEPS = 4, 3


@functools.lru_cache(maxsize=None)
def short_rollout(name: str, backend: str):
  """-> (env, states): reset + STEPS steps of BATCH envs under random actions, stacked over time [STEPS+1, BATCH, ...]."""
  env = envs.make(name, backend)

  @jax.jit
  def run(rng):
    reset_rng, act_rng = jax.random.split(rng)
    state = jax.vmap(env.reset)(jax.random.split(reset_rng, BATCH))

    def body(state, key):
      action = jax.random.uniform(key, (BATCH, env.action_size), minval=-1.0, maxval=1.0)
      state = jax.vmap(env.step)(state, action)
      return state, state

    _, states = jax.lax.scan(body, state, jax.random.split(act_rng, STEPS))
    return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), state, states)

  return env, jax.device_get(run(jax.random.PRNGKey(0)))


def check_env(name: str, backend: str):
  env, states = short_rollout(name, backend)
  obs = states.obs
  assert obs.shape == (STEPS + 1, BATCH, env.observation_size)
  assert np.isfinite(obs).all(), f"{name} on {backend}: non-finite observations"
  layout = envs.observation_layout(name)
  assert all(0 <= i < env.observation_size for i in layout.values())
  qd, pos = states.pipeline_state.qd, states.pipeline_state.x.pos
  # The layout's x velocity is the root x slide/free joint velocity (hopper/walker2d clip qd to +-10).
  np.testing.assert_allclose(obs[..., layout["x_velocity"]], np.clip(qd[..., 0], -10, 10), rtol=1e-5, atol=1e-5)
  assert np.abs(qd[1:, :, 0]).max() > 1e-3  # the comparison above is not between zeros
  if "z_height" in layout:
    np.testing.assert_allclose(obs[..., layout["z_height"]], pos[..., 0, 2], rtol=1e-5, atol=1e-5)
  for axis, key in ((1, "y_velocity"), (2, "z_velocity")):
    if name == "ant" and key in layout:
      np.testing.assert_allclose(obs[..., layout[key]], qd[..., axis], rtol=1e-5, atol=1e-5)
  assert np.all((states.done == 0) | (states.done == 1))


# halfcheetah subclasses that replace only the reward (same system, same observation code): each costs a compile
# (~10 s) that adds no coverage to halfcheetah's run, so the default suite steps them only in their reward tests.
REWARD_VARIANTS = ("cheetah_backflip", "cheetah_vel")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in REWARD_VARIANTS else n
                                  for n in envs.registered_names()])
def test_default_backend_steps_with_documented_layout(name):
  check_env(name, envs.default_backend(name))


@pytest.mark.slow
@pytest.mark.parametrize("name,backend", [(n, b) for n in envs.registered_names() for b in envs.offered_backends(n)
                                          if b != envs.default_backend(n)])
def test_every_offered_backend_steps_with_documented_layout(name, backend):
  check_env(name, backend)


def test_registry_names_and_errors():
  assert set(envs.registered_names()) >= {"halfcheetah", "hopper", "walker2d", "ant", "cheetah_backflip",
                                          "cheetah_vel"}
  assert envs.EPISODE_LENGTH == 1000
  assert envs.observation_layout("halfcheetah")["x_velocity"] == 8
  assert envs.observation_layout("hopper")["x_velocity"] == 5
  assert envs.observation_layout("walker2d")["x_velocity"] == 8
  assert envs.observation_layout("ant")["x_velocity"] == 13
  halfcheetah = type(envs.make("halfcheetah"))
  for variant in REWARD_VARIANTS:  # datasets mix with halfcheetah's
    assert envs.observation_layout(variant) == envs.observation_layout("halfcheetah")
    env = envs.make(variant)
    assert isinstance(env, halfcheetah) and type(env)._get_obs is halfcheetah._get_obs
  for name in envs.registered_names():
    assert envs.default_backend(name) == envs.offered_backends(name)[0]
  with pytest.raises(ValueError, match=r"'ant'.*allowed backends: .*positional"):
    envs.make("ant", "generalized")  # NaN observations under random actions
  with pytest.raises(KeyError, match="halfcheetah"):
    envs.make("halfcheeta")


def one_step_from(env, rooty_velocity: float = 0.0, x_velocity: float = 0.0, action=None):
  """Steps `env` once from its initial pose with the root's x / pitch velocity set; -> (state0, state1)."""
  qd = jnp.zeros(env.sys.qd_size()).at[0].set(x_velocity).at[2].set(rooty_velocity)
  pipeline_state = env.pipeline_init(env.sys.init_q, qd)
  state0 = env.reset(jax.random.PRNGKey(0)).replace(pipeline_state=pipeline_state)
  action = jnp.zeros(env.action_size) if action is None else action
  return state0, env.step(state0, action)


def nose_height(pipeline_state) -> float:
  """z of the torso's forward (+x body) axis: rises when the nose pitches up."""
  return float(brax.math.rotate(jnp.array([1.0, 0.0, 0.0]), pipeline_state.x.rot[0])[2])


@pytest.fixture(scope="module")
def backflip_step():
  env = envs.make("cheetah_backflip")
  return env, jax.jit(functools.partial(one_step_from, env))


def test_backflip_reward_pays_for_rotating_backwards(backflip_step):
  env, step = backflip_step
  back0, back1 = step(rooty_velocity=-4.0)
  front0, front1 = step(rooty_velocity=4.0)
  # A negative rooty velocity really is a backflip: the nose goes up.
  assert nose_height(back1.pipeline_state) > nose_height(back0.pipeline_state)
  assert nose_height(front1.pipeline_state) < nose_height(front0.pipeline_state)
  assert float(back1.reward) > 1.0
  assert float(front1.reward) < -1.0
  assert back1.obs.shape == (17,)


@pytest.mark.slow
def test_backflip_reference_reward_does_not_tell_directions_apart():
  env = envs.make("cheetah_backflip", reference_reward=True)
  step = jax.jit(functools.partial(one_step_from, env))
  assert float(step(rooty_velocity=-4.0)[1].reward) > 0
  assert float(step(rooty_velocity=4.0)[1].reward) > 0


def test_cheetah_vel_reward_peaks_at_target():
  env = envs.make("cheetah_vel", target_velocity=2.0)
  step = jax.jit(functools.partial(one_step_from, env))
  action = jnp.full(env.action_size, 0.5)
  rewards = {}
  for v in (0.0, 2.0, 4.0):
    _, s1 = step(x_velocity=v, action=action)
    expected = -abs(float(s1.metrics["x_velocity"]) - 2.0) - 0.05 * float(jnp.sum(action ** 2))
    np.testing.assert_allclose(float(s1.reward), expected, rtol=1e-5, atol=1e-5)
    rewards[v] = float(s1.reward)
  assert rewards[2.0] > rewards[0.0] and rewards[2.0] > rewards[4.0]
