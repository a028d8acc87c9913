"""reach_handsup2 (a twister): tips 0 and 2 hold heights while the other tips reach a floor ball
(v1 `ant_reach_handsup2.py`)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from morphology.tasks import base

HEIGHT_TIPS = (0, 2)


@dataclasses.dataclass(frozen=True)
class ReachHandsup2:
  """Goals [ball, z-target 1, z-target 2]: ball at annulus r in [1.25, 1.75], each z ~ U(.5, .6).

  Terms: reach over the tips other than 0 and 2, -|z1 - z(tip 0)|, -|z2 - z(tip 2)|; success needs all.
  `distance` is the ball's reach distance.
  """

  r_range: tuple[float, float] = (1.25, 1.75)
  z_range: tuple[float, float] = (0.5, 0.6)
  radius: float = 0.1
  z_tolerance: float = 0.1
  name: str = "reach_handsup2"
  all_conditions: bool = True
  episode_length: int = base.EPISODE_LENGTH

  @property
  def objects(self):
    return ()

  @property
  def num_goals(self) -> int:
    return 3

  def min_tips(self) -> int:
    return 3

  def sample(self, rng: jax.Array):
    b, z1, z2 = jax.random.split(rng, 3)
    goals = jnp.stack([base.annulus_xy(b, self.r_range), base.height_target(z1, self.z_range),
                       base.height_target(z2, self.z_range)])
    return base.no_points(), goals

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    height = base.HeightTerm(self.z_tolerance)
    return {
        "reach": base.ReachTerm(self.radius)(base.other_tips(frame.tips, HEIGHT_TIPS), goals[0]),
        "height_1": height(frame.tips[HEIGHT_TIPS[0]], goals[1]),
        "height_2": height(frame.tips[HEIGHT_TIPS[1]], goals[2]),
    }

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    return base.nearest_xy_distance(base.other_tips(frame.tips, HEIGHT_TIPS), goals[0])
