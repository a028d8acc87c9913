"""touch: bring the root within reach of a heavy free ball (v1 `*_touch.py`)."""

from __future__ import annotations

import dataclasses

import jax

from morphology.components.mjcf import FreeObject
from morphology.tasks import base


@dataclasses.dataclass(frozen=True)
class Touch:
  """A free ball (radius .25, mass 100) resting on the floor at annulus r in `r_range` ([2, 5]; centipede [9, 12]).

  Reward -||root - ball||_xy; success when it is < `threshold` (2 * radius; unimal radius + .1);
  `distance` is that distance.
  """

  r_range: tuple[float, float] = (2.0, 5.0)
  ball_radius: float = 0.25
  ball_mass: float = 100.0
  threshold: float = 0.5
  name: str = "touch"
  all_conditions: bool = False
  episode_length: int = base.EPISODE_LENGTH

  @property
  def objects(self):
    return (FreeObject("ball", base.ball(self.ball_radius), self.ball_mass, (0.0, 0.0, self.ball_radius)),)

  @property
  def num_goals(self) -> int:
    return 0

  def min_tips(self) -> int:
    return 0

  def sample(self, rng: jax.Array):
    return base.annulus_xy(rng, self.r_range, self.ball_radius)[None], base.no_points()

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    d = self.distance(frame, goals)
    return {"touch": base.Term(-d, d < self.threshold)}

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    return base.xy_distance(frame.root_pos, frame.obj_pos[0])
