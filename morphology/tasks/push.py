"""push: push a free box onto a target region beyond it (v1 `*_push.py`)."""

from __future__ import annotations

import dataclasses

import jax

from morphology.components.description import Geom
from morphology.components.mjcf import FreeObject
from morphology.tasks import base


@dataclasses.dataclass(frozen=True)
class Push:
  """Box (halfsize (1, 1, .75), mass 1) at annulus r in `box_r_range`; target at r in `target_r_range`
  within +-24 degrees of the box direction.

  Reward (v1): `success_bonus` on the step the box centre is within `target_radius` (xy) of the target
  (the distance term itself has scale 0), plus shaping
  0.1 dt v_root . unit(box - root) + 0.1 dt / (1e-6 + ||box - root||_xy) + `to_target_scale` dt v_box . unit(target - box)
  (unit vectors 3-D). `distance` is ||box - target||_xy.
  Worm: box [2.5, 3.5], target [6, 6.5], radius 1.5, bonus 25, scale 4; centipede target [7.5, 8].
  The box spawns resting on the floor (centre at its half height) with v1's unit inertia; it stays physical
  on the positional backend thanks to `MjcfOptions.collide_scale` (tests/test_push_physics.py).
  """

  box_r_range: tuple[float, float] = (3.5, 4.5)
  target_r_range: tuple[float, float] = (7.5, 8.5)
  box_halfsize: tuple[float, float, float] = (1.0, 1.0, 0.75)
  box_mass: float = 1.0
  target_radius: float = 1.0
  success_bonus: float = 20.0
  to_object_scale: float = 0.1
  to_target_scale: float = 3.0
  name: str = "push"
  all_conditions: bool = False
  episode_length: int = base.EPISODE_LENGTH

  @property
  def objects(self):
    hz = self.box_halfsize[2]
    return (FreeObject("box", Geom("box", self.box_halfsize), self.box_mass, (0.0, 0.0, hz)),)

  @property
  def num_goals(self) -> int:
    return 1

  def min_tips(self) -> int:
    return 0

  def sample(self, rng: jax.Array):
    box_rng, target_rng = jax.random.split(rng)
    box = base.annulus_xy(box_rng, self.box_r_range, self.box_halfsize[2])
    target = base.sector_xy(target_rng, box[:2], self.target_r_range)
    return box[None], target[None]

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    box, box_vel, target = frame.obj_pos[0], frame.obj_vel[0], goals[0]
    done = self.distance(frame, goals) < self.target_radius
    return {
        "box_on_target": base.Term(self.success_bonus * done, done),
        "root_toward_box": base.Term(
            self.to_object_scale * dt * base.moving_toward(frame.root_vel, frame.root_pos, box), None),
        "root_close_to_box": base.Term(
            self.to_object_scale * dt / (1e-6 + base.xy_distance(box, frame.root_pos)), None),
        "box_toward_target": base.Term(self.to_target_scale * dt * base.moving_toward(box_vel, box, target), None),
    }

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    return base.xy_distance(frame.obj_pos[0], goals[0])
