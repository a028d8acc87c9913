"""Task logic on hand-made frames: samplers, reward terms, OR/AND success, the distance metric."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from morphology.tasks import TASKS, Frame, evaluate, make_task
from morphology.tasks import base

DT = 0.05


def frame(tips=((0.0, 0.0, 0.0),), root=(0.0, 0.0, 0.5), root_vel=(0.0, 0.0, 0.0), obj=(), obj_vel=()):
  arr = lambda x: jnp.asarray(x, jnp.float32).reshape(-1, 3)
  return Frame(jnp.asarray(root, jnp.float32), jnp.asarray(root_vel, jnp.float32), arr(tips), arr(obj),
               arr(obj_vel) if len(obj_vel) else jnp.zeros_like(arr(obj)))


def test_registry_lists_every_task_and_rejects_unknown():
  assert TASKS.names() == sorted(["reach", "touch", "push", "reach_handsup", "reach2_handsup", "reach_handsup2"])
  with pytest.raises(KeyError, match="reach_handsup"):
    make_task("reach_handsup3")


@pytest.mark.parametrize("r_range", [(7.5, 10.0), (5.0, 6.0)])
def test_annulus_sampler_is_uniform_over_the_area(r_range):
  pts = jax.vmap(lambda k: base.annulus_xy(k, r_range, 0.25))(jax.random.split(jax.random.PRNGKey(0), 4000))
  r2 = np.asarray(jnp.sum(pts[:, :2] ** 2, axis=1))
  lo, hi = r_range[0] ** 2, r_range[1] ** 2
  assert r2.min() >= lo - 1e-3 and r2.max() <= hi + 1e-3
  # r^2 ~ U(lo, hi): mean and variance of a uniform (a radius-uniform sampler has a smaller mean).
  assert abs(r2.mean() - (lo + hi) / 2) < 0.03 * (hi - lo)
  assert abs(r2.var() - (hi - lo) ** 2 / 12) < 0.1 * (hi - lo) ** 2 / 12
  theta = np.arctan2(pts[:, 1], pts[:, 0])
  assert np.histogram(theta, bins=8, range=(-np.pi, np.pi))[0].min() > 400
  np.testing.assert_allclose(pts[:, 2], 0.25)


def test_push_target_lies_in_the_24_degree_sector_beyond_the_box():
  task = make_task("push")
  objs, goals = jax.vmap(task.sample)(jax.random.split(jax.random.PRNGKey(1), 2000))
  box, target = np.asarray(objs[:, 0]), np.asarray(goals[:, 0])
  box_r, target_r = np.linalg.norm(box[:, :2], axis=1), np.linalg.norm(target[:, :2], axis=1)
  assert box_r.min() >= 3.5 - 1e-4 and box_r.max() <= 4.5 + 1e-4
  assert target_r.min() >= 7.5 - 1e-4 and target_r.max() <= 8.5 + 1e-4
  np.testing.assert_allclose(box[:, 2], 0.75)
  dtheta = np.angle(np.exp(1j * (np.arctan2(target[:, 1], target[:, 0]) - np.arctan2(box[:, 1], box[:, 0]))))
  assert np.abs(dtheta).max() <= np.deg2rad(24) + 1e-4
  assert np.abs(dtheta).max() > np.deg2rad(20)  # the sector is used, not a single ray


def test_handsup_samplers_put_height_targets_on_the_axis():
  objs, goals = make_task("reach_handsup2").sample(jax.random.PRNGKey(2))
  assert objs.shape == (0, 3) and goals.shape == (3, 3)
  np.testing.assert_allclose(goals[1:, :2], 0.0)
  assert np.all((goals[1:, 2] >= 0.5) & (goals[1:, 2] <= 0.6))
  _, goals = make_task("reach2_handsup").sample(jax.random.PRNGKey(3))
  r = np.linalg.norm(goals[:2, :2], axis=1)
  assert np.all((r >= 1.25 - 1e-5) & (r <= 1.55 + 1e-5)) and 0.55 <= goals[2, 2] <= 0.7


def test_reach_uses_the_nearest_tip_in_xy():
  task = make_task("reach")
  goals = jnp.array([[3.0, 0.0, 0.0]])
  far = evaluate(task, frame(tips=[(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)]), goals, DT)
  near = evaluate(task, frame(tips=[(0.0, 0.0, 0.0), (2.95, 0.0, 0.9)]), goals, DT)  # z is ignored
  assert float(far.distance) == pytest.approx(2.0) and float(far.reward) == pytest.approx(-2.0)
  assert float(far.success) == 0.0
  assert float(near.reward) > float(far.reward) and float(near.success) == 1.0
  assert float(near.distance) == pytest.approx(0.05, abs=1e-5)


def test_touch_measures_root_to_ball_and_unimal_threshold_is_tighter():
  ball = [(0.4, 0.0, 0.25)]
  out = evaluate(make_task("touch"), frame(root=(0.0, 0.0, 0.5), obj=ball), jnp.zeros((0, 3)), DT)
  assert float(out.distance) == pytest.approx(0.4) and float(out.success) == 1.0
  tight = evaluate(make_task("touch", threshold=0.35), frame(obj=ball), jnp.zeros((0, 3)), DT)
  assert float(tight.success) == 0.0


def test_push_pays_the_bonus_on_target_and_shapes_toward_the_box():
  task = make_task("push")
  target = jnp.array([[8.0, 0.0, 0.0]])
  still = evaluate(task, frame(root=(0.0, 0, 0.5), obj=[(4.0, 0, 0.75)]), target, DT)
  toward = evaluate(task, frame(root=(0.0, 0, 0.5), root_vel=(1.0, 0, 0), obj=[(4.0, 0, 0.75)],
                                obj_vel=[(1.0, 0, 0)]), target, DT)
  done = evaluate(task, frame(root=(6.0, 0, 0.5), obj=[(7.5, 0, 0.75)]), target, DT)
  assert float(still.success) == 0.0 and float(still.distance) == pytest.approx(4.0)
  assert float(still.terms["box_on_target"]) == 0.0
  assert float(still.reward) == pytest.approx(0.1 * DT / 4.0, rel=1e-4)  # only the closeness term
  assert float(toward.reward) > float(still.reward) and float(toward.terms["box_toward_target"]) > 0
  assert float(done.success) == 1.0 and float(done.terms["box_on_target"]) == 20.0
  worm = evaluate(make_task("push", target_radius=1.5, success_bonus=25.0), frame(obj=[(6.7, 0, 0.75)]), target, DT)
  assert float(worm.success) == 1.0 and float(worm.terms["box_on_target"]) == 25.0


def test_reach_handsup_needs_both_conditions():
  task = make_task("reach_handsup")
  goals = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.55]])
  # Tip 0 holds the height; only tips 1.. may reach the ball.
  only_reach = frame(tips=[(2.0, 0.0, 0.1), (5.0, 0.0, 0.1)])
  both = frame(tips=[(0.3, 0.0, 0.57), (2.05, 0.0, 0.1)])
  only_height = frame(tips=[(0.3, 0.0, 0.57), (5.0, 0.0, 0.1)])
  assert float(evaluate(task, only_reach, goals, DT).success) == 0.0
  assert float(evaluate(task, only_height, goals, DT).success) == 0.0
  out = evaluate(task, both, goals, DT)
  assert float(out.success) == 1.0 and float(out.distance) == pytest.approx(0.05, abs=1e-5)
  assert float(out.terms["height"]) == pytest.approx(-0.02, abs=1e-5)


def test_reach2_handsup_distance_is_the_max_over_balls():
  task = make_task("reach2_handsup")
  goals = jnp.array([[1.3, 0.0, 0.0], [0.0, 1.4, 0.0], [0.0, 0.0, 0.6]])
  tips = [(0.0, 0.0, 0.6), (1.3, 0.0, 0.1), (0.0, 1.0, 0.1)]
  out = evaluate(task, frame(tips=tips), goals, DT)
  assert float(out.distance) == pytest.approx(0.4, abs=1e-5) and float(out.success) == 0.0
  tips[2] = (0.0, 1.45, 0.1)
  assert float(evaluate(task, frame(tips=tips), goals, DT).success) == 1.0


def test_reach_handsup2_reserves_tips_0_and_2_for_heights():
  task = make_task("reach_handsup2")
  goals = jnp.array([[1.5, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 0.6]])
  tips = [(0.0, 0.0, 0.5), (0.0, 0.0, 0.1), (1.5, 0.0, 0.6), (0.0, -1.0, 0.1)]
  out = evaluate(task, frame(tips=tips), goals, DT)
  # Tip 2 sits on the ball but it is a height tip, so the reach distance comes from tips 1 and 3.
  assert float(out.distance) == pytest.approx(1.5, abs=1e-5) and float(out.success) == 0.0
  tips = [(0.0, 0.0, 0.5), (1.5, 0.0, 0.1), (0.3, 0.0, 0.6), (0.0, -1.0, 0.1)]
  assert float(evaluate(task, frame(tips=tips), goals, DT).success) == 1.0
