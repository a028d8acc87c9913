"""reach_handsup (a twister): one tip reaches a floor ball while tip 0 holds a height (v1 `*_reach_handsup.py`)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from morphology.tasks import base


HEIGHT_TIP = 0


@dataclasses.dataclass(frozen=True)
class ReachHandsup:
  """Goals [ball, z-target]: ball at annulus r in `r_range`, height z ~ U(`z_range`).

  Terms: reach over tips 1.. (tip 0 excluded) and -|z - z(tip 0)|; success needs both (< .1).
  `distance` is the ball's reach distance (the height error is logged as its term).
  Ranges: ant r [3.5, 5.5] z [.5, .6]; claw [1.25, 1.75] [.55, .7] (claw hard [3.5, 5.5] [.5, .6]);
  unimal [1.25, 1.75] [.5, .6].
  """

  r_range: tuple[float, float] = (3.5, 5.5)
  z_range: tuple[float, float] = (0.5, 0.6)
  radius: float = 0.1
  z_tolerance: float = 0.1
  name: str = "reach_handsup"
  all_conditions: bool = True
  episode_length: int = base.EPISODE_LENGTH

  @property
  def objects(self):
    return ()

  @property
  def num_goals(self) -> int:
    return 2

  def min_tips(self) -> int:
    return 2

  def sample(self, rng: jax.Array):
    ball_rng, z_rng = jax.random.split(rng)
    goals = jnp.stack([base.annulus_xy(ball_rng, self.r_range), base.height_target(z_rng, self.z_range)])
    return base.no_points(), goals

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    return {
        "reach": base.ReachTerm(self.radius)(base.other_tips(frame.tips, (HEIGHT_TIP,)), goals[0]),
        "height": base.HeightTerm(self.z_tolerance)(frame.tips[HEIGHT_TIP], goals[1]),
    }

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    return base.nearest_xy_distance(base.other_tips(frame.tips, (HEIGHT_TIP,)), goals[0])
