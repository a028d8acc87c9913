"""reach2_handsup (a twister): two floor balls reached by tips 1.. while tip 0 holds a height
(v1 `ant_reach2_handsup.py`)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from morphology.tasks import base

HEIGHT_TIP = 0


@dataclasses.dataclass(frozen=True)
class Reach2Handsup:
  """Goals [ball 1, ball 2, z-target]: both balls at annulus r in [1.25, 1.55], z ~ U(.55, .7).

  Terms: reach ball 1 and reach ball 2 (each over tips 1..), -|z - z(tip 0)|; success needs all three.
  `distance` is the MAX of the two balls' reach distances (the one that still blocks success;
  v1 reported ball 2's alone through a substring match).
  """

  r_range: tuple[float, float] = (1.25, 1.55)
  z_range: tuple[float, float] = (0.55, 0.7)
  radius: float = 0.1
  z_tolerance: float = 0.1
  name: str = "reach2_handsup"
  all_conditions: bool = True
  episode_length: int = base.EPISODE_LENGTH

  @property
  def objects(self):
    return ()

  @property
  def num_goals(self) -> int:
    return 3

  def min_tips(self) -> int:
    return 2

  def sample(self, rng: jax.Array):
    b1, b2, z = jax.random.split(rng, 3)
    goals = jnp.stack([base.annulus_xy(b1, self.r_range), base.annulus_xy(b2, self.r_range),
                       base.height_target(z, self.z_range)])
    return base.no_points(), goals

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    reach_tips = base.other_tips(frame.tips, (HEIGHT_TIP,))
    reach = base.ReachTerm(self.radius)
    return {
        "reach_1": reach(reach_tips, goals[0]),
        "reach_2": reach(reach_tips, goals[1]),
        "height": base.HeightTerm(self.z_tolerance)(frame.tips[HEIGHT_TIP], goals[2]),
    }

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    reach_tips = base.other_tips(frame.tips, (HEIGHT_TIP,))
    return jnp.maximum(base.nearest_xy_distance(reach_tips, goals[0]), base.nearest_xy_distance(reach_tips, goals[1]))
