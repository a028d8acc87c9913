"""The task protocol shared by reach, touch, push and the handsup twisters.

A task sees the simulation only through a `Frame` (root, end-effector tips and free objects in world
coordinates), so it is independent of the physics backend and testable with hand-made frames.
Goals that are not physical bodies (reach balls, height targets, the push target) are a `[G, 3]`
array kept in `state.info['goals']`; physical objects (touch ball, push box) are `FreeObject`s that
the env adds to the MJCF and places through `q` at reset.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp

from morphology.components.description import Geom
from morphology.components.mjcf import FreeObject

EPISODE_LENGTH = 1000
# Push target sector half-width: v1 samples theta offsets in U(-1/15, 1/15) turns, i.e. +-24 degrees.
SECTOR_HALF_ANGLE = 2.0 * math.pi / 15.0


class Frame(NamedTuple):
  """What a task observes of one simulation state (no batch axis)."""

  root_pos: jax.Array  # [3] world position of the root body frame
  root_vel: jax.Array  # [3] world linear velocity of the root body frame
  tips: jax.Array  # [E, 3] end-effector points (`EnvConfig.end_effector_point`), by `Body.end_effector_order`
  obj_pos: jax.Array  # [O, 3] free objects, in `Task.objects` order
  obj_vel: jax.Array  # [O, 3]


class Term(NamedTuple):
  """One reward term: its reward and, for goal terms, whether its condition holds (None: shaping)."""

  reward: jax.Array
  done: jax.Array | None


class Outcome(NamedTuple):
  reward: jax.Array  # sum of the term rewards
  success: jax.Array  # OR (or AND for `all_conditions`) of the term conditions, float 0/1
  distance: jax.Array  # the task's explicit distance metric (`Task.distance`)
  terms: dict  # name -> term reward


class Task(Protocol):
  """What the env needs from a task. Implementations are frozen dataclasses (hashable, static)."""

  name: str
  all_conditions: bool  # success needs every condition (twisters) rather than any
  episode_length: int

  @property
  def objects(self) -> tuple[FreeObject, ...]:
    """Free bodies added to the scene (touch ball, push box)."""

  @property
  def num_goals(self) -> int:
    """G, the number of non-physical goal points in `info['goals']`."""

  def min_tips(self) -> int:
    """The fewest end effectors the task can use."""

  def sample(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reset sampling: (object positions [O, 3], goals [G, 3])."""

  def terms(self, frame: Frame, goals: jax.Array, dt: float) -> dict[str, Term]:
    """Named reward terms for one state."""

  def distance(self, frame: Frame, goals: jax.Array) -> jax.Array:
    """The scalar distance metric reported as `distance` (documented per task)."""


def evaluate(task: Task, frame: Frame, goals: jax.Array, dt: float) -> Outcome:
  """Sums the terms and combines their conditions (v1 `CustomComponentEnv.step`)."""
  terms = task.terms(frame, goals, dt)
  conditions = [t.done for t in terms.values() if t.done is not None]
  combine = jnp.all if task.all_conditions else jnp.any
  success = combine(jnp.stack(conditions)).astype(jnp.float32)
  reward = sum(t.reward for t in terms.values())
  return Outcome(reward, success, task.distance(frame, goals), {k: t.reward for k, t in terms.items()})


# ---- samplers (v1 misc/random_init_functions.py) ----


def annulus_radius(rng: jax.Array, r_min: float, r_max: float) -> jax.Array:
  """r with r^2 ~ U(r_min^2, r_max^2): uniform over the annulus area."""
  return jnp.sqrt(jax.random.uniform(rng, (), minval=r_min**2, maxval=r_max**2))


def annulus_xy(rng: jax.Array, r_range: tuple[float, float], z: float = 0.0) -> jax.Array:
  """[3] point uniform over the annulus r in r_range (theta ~ U(0, 2 pi)) at height z."""
  r_rng, t_rng = jax.random.split(rng)
  r = annulus_radius(r_rng, *r_range)
  theta = jax.random.uniform(t_rng, (), minval=0.0, maxval=2.0 * jnp.pi)
  return jnp.array([r * jnp.cos(theta), r * jnp.sin(theta), z])


def sector_xy(rng: jax.Array, toward_xy: jax.Array, r_range: tuple[float, float], z: float = 0.0) -> jax.Array:
  """[3] point at annulus radius within +-24 degrees of the direction of `toward_xy` [2] from the origin."""
  r_rng, t_rng = jax.random.split(rng)
  r = annulus_radius(r_rng, *r_range)
  theta = jnp.arctan2(toward_xy[1], toward_xy[0]) + jax.random.uniform(
      t_rng, (), minval=-SECTOR_HALF_ANGLE, maxval=SECTOR_HALF_ANGLE)
  return jnp.array([r * jnp.cos(theta), r * jnp.sin(theta), z])


def no_points() -> jax.Array:
  """[0, 3]: a task without free objects or without goal points."""
  return jnp.zeros((0, 3))


def height_target(rng: jax.Array, z_range: tuple[float, float]) -> jax.Array:
  """[3] point (0, 0, z), z ~ U(z_range) (v1 `uniform_z_sampler`; only z is ever read)."""
  return jnp.array([0.0, 0.0, jax.random.uniform(rng, (), minval=z_range[0], maxval=z_range[1])])


# ---- reward terms (v1 misc/reward_functions.py) ----


def xy_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """||a_xy - b_xy|| over the last axis (safe at 0)."""
  d = a[..., :2] - b[..., :2]
  return jnp.sqrt(jnp.sum(d * d, axis=-1) + 1e-12)


def nearest_xy_distance(points: jax.Array, target: jax.Array) -> jax.Array:
  """min_k ||points_k,xy - target_xy|| for points [K, 3], target [3]."""
  return jnp.min(xy_distance(points, target[None]))


def moving_toward(vel: jax.Array, pos_from: jax.Array, pos_to: jax.Array) -> jax.Array:
  """vel . unit(pos_to - pos_from), 3-D (v1 `moving_reward`)."""
  d = pos_to - pos_from
  return jnp.dot(vel, d / jnp.sqrt(jnp.sum(d * d) + 1e-12))


@dataclasses.dataclass(frozen=True)
class ReachTerm:
  """-min over some tips of the xy distance to a goal; condition: that distance < radius."""

  radius: float = 0.1

  def __call__(self, tips: jax.Array, goal: jax.Array) -> Term:
    d = nearest_xy_distance(tips, goal)
    return Term(-d, d < self.radius)


@dataclasses.dataclass(frozen=True)
class HeightTerm:
  """-|z_goal - z_tip|; condition: that error < tolerance (v1 `leg_height`)."""

  tolerance: float = 0.1

  def __call__(self, tip: jax.Array, goal: jax.Array) -> Term:
    err = jnp.abs(goal[2] - tip[2])
    return Term(-err, err < self.tolerance)


def ball(radius: float) -> Geom:
  return Geom("sphere", (radius,))


def other_tips(tips: jax.Array, excluded: tuple[int, ...]) -> jax.Array:
  """tips [E, 3] without the rows reserved for height goals: [E - len(excluded), 3]."""
  keep = [i for i in range(tips.shape[0]) if i not in excluded]
  return tips[jnp.array(keep, dtype=jnp.int32)]
