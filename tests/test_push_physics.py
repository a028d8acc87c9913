"""Push box and spawn physics on the default backend, and the end-effector point option.

- At reset with zero actions the push box rests on the floor and the agent does not pop up.
- Under seeded uniform random actions the 1 kg box stays below `MAX_BOX_RISE` above its resting height.
- `EnvConfig.end_effector_point` moves the measured reach point from the lower-leg centre (v1's rule, the
  default) to the foot tip, by the documented offset.
Before `MjcfOptions.collide_scale` = 0.5 the box popped 0.19 m with zero actions (the rest test caught it),
and over 1000 steps x 16 envs random actions flung it up to 37 m (claw) / 7 m (ant); in this test's 200
steps its rise then stayed below 0.22 m, so the random-action bound guards against gross failure only.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from morphology import envs
from morphology.components.families import ANT_SHIN_LENGTH
from morphology.tasks import evaluate, make_task

NAMES = ("claw_push_4", "ant_push_4")
BATCH, STEPS = 8, 200  # half of the batch at zero actions, half random; 200 env steps = 10 s
# Under random actions the box starts face-on in front of leg 0 (the reset samples it 3.5-4.5 m away, out of
# reach of random legs): its near face 1.05 m from the root, clear of both agents at reset (< 1 m) but
# within their legs' sweep.
NEAR_BOX = (2.05, 0.0, 0.75)
# Resting box: its centre is at the half height (0.75 m); the contact solver may leave millimetres of slack.
REST_TOL = 0.01
# Bound on the box centre's rise under random actions: 0.5 m is its rise when tipped up onto a bottom edge
# (sqrt(1^2 + 0.75^2) - 0.75); higher takes balancing it on a corner or throwing it.
MAX_BOX_RISE = 0.5
# Compile time dominates: with XLA's legacy CPU emitters (gdt.core.runtime.XLA_DEFAULT_FLAGS) ant_push_4 took
# 16.9 s in all at level 0 (compile 6.2 s) vs 19.4 s at level 1 (compile 11.0 s).
COMPILE_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def simulate(env: envs.MorphologyTaskEnv) -> dict:
  """One compile: box and root positions [BATCH // 2, 1 + STEPS, 3] at zero actions with the reset's box
  ('rest_box', 'rest_root') and under seeded uniform random actions with the box at NEAR_BOX ('random_box');
  'reset_state': the first env's pipeline state at reset."""
  mj = env.sys.mj_model
  adr = int(mj.jnt_qposadr[mj.joint("box_root").id])

  def run(rng, scale):
    state = env.reset(rng)
    q = state.pipeline_state.q
    q = jnp.where(scale > 0, q.at[adr:adr + 3].set(jnp.array(NEAR_BOX)), q)
    state = state.replace(pipeline_state=env.pipeline_init(q, state.pipeline_state.qd))
    frame = env.frame(state.pipeline_state)

    def body(state, key):
      action = scale * jax.random.uniform(key, (env.action_size,), minval=-1.0, maxval=1.0)
      state = env.step(state, action)
      frame = env.frame(state.pipeline_state)
      return state, (frame.obj_pos[0], frame.root_pos)

    _, (box, root) = jax.lax.scan(body, state, jax.random.split(jax.random.fold_in(rng, 1), STEPS))
    return jnp.concatenate([frame.obj_pos[:1], box]), jnp.concatenate([frame.root_pos[None], root]), state

  args = (jax.random.split(jax.random.PRNGKey(0), BATCH), jnp.repeat(jnp.array([0.0, 1.0]), BATCH // 2))
  fn = jax.jit(jax.vmap(run)).lower(*args).compile(compiler_options=COMPILE_OPTIONS)
  box, root, reset = fn(*args)
  box, root = np.asarray(box), np.asarray(root)
  assert np.isfinite(box).all() and np.isfinite(root).all(), env.name
  n = BATCH // 2
  return {"rest_box": box[:n], "rest_root": root[:n], "random_box": box[n:],
          "reset_state": jax.tree.map(lambda x: x[0], reset.pipeline_state)}


@functools.lru_cache(maxsize=None)
def _rollout(name: str) -> dict:
  return simulate(envs.make(name))


@pytest.mark.parametrize("name", NAMES)
def test_box_and_agent_rest_at_reset(name):
  r = _rollout(name)
  box, root = r["rest_box"], r["rest_root"]
  np.testing.assert_allclose(box[:, 0, 2], 0.75)  # spawned exactly on the floor
  rise = np.abs(box[:, :, 2] - 0.75).max()
  slide = np.linalg.norm(box[:, :, :2] - box[:, :1, :2], axis=-1).max()
  print(f"{name}: zero actions, box |dz| max {rise:.4f} m, slide {slide:.4f} m; "
        f"root z {root[:, 0, 2].mean():.3f} -> max {root[:, :, 2].max():.3f}")
  assert rise < REST_TOL and slide < REST_TOL, (rise, slide)
  # The agent spawns with its lowest geom on the floor: it may settle, but not jump.
  assert (root[:, :, 2] - root[:, :1, 2]).max() < REST_TOL


@pytest.mark.parametrize("name", NAMES)
def test_box_stays_low_under_random_actions(name):
  box = _rollout(name)["random_box"]
  rise = box[:, :, 2].max() - 0.75
  moved = np.linalg.norm(box[:, :, :2] - box[:, :1, :2], axis=-1).max()
  print(f"{name}: random actions, box rise max {rise:.3f} m, displacement max {moved:.2f} m")
  assert moved > 0.05, "the legs never pushed the box: the test would not exercise agent-box contacts"
  assert rise < MAX_BOX_RISE, rise


def test_end_effector_point_option_moves_the_reach_point():
  """Default: the lower-leg (`$ Body 4_i`) centre, v1's success rule; 'tip': half a shin further along it."""
  assert envs.EnvConfig().end_effector_point == "centre"
  centre = envs.make("ant_push_4")
  tip = envs.make("ant_push_4", config=envs.EnvConfig(end_effector_point="tip"))
  ps = _rollout("ant_push_4")["reset_state"]  # the ant at its mid-limit pose
  at_centre, at_tip = centre.frame(ps).tips, tip.frame(ps).tips
  np.testing.assert_allclose(at_centre[0], ps.x.pos[centre.sys.link_names.index("$ Body 4_0")], atol=1e-6)
  half_shin = ANT_SHIN_LENGTH / 2  # from the capsule centre to the far cap's end
  np.testing.assert_allclose(np.linalg.norm(at_tip - at_centre, axis=-1), half_shin, atol=1e-5)
  # A reach goal at foot 0's centre is met with the default point; measured at the tips it is the xy length
  # of half a shin away (the shin points 50 degrees down at the mid-limit knee).
  reach, goal = make_task("reach"), at_centre[:1]
  by_centre = evaluate(reach, centre.frame(ps), goal, 0.05)
  by_tip = evaluate(reach, tip.frame(ps), goal, 0.05)
  assert float(by_centre.success) == 1.0 and float(by_centre.distance) < 1e-5
  assert float(by_tip.success) == 0.0
  np.testing.assert_allclose(float(by_tip.distance), half_shin * np.cos(np.radians(50.0)), atol=1e-4)
  with pytest.raises(ValueError, match="end_effector_point"):
    envs.EnvConfig(end_effector_point="foot")
