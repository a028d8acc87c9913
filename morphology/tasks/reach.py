"""reach: bring any end-effector tip within 0.1 (xy) of a ball on the floor (v1 `*_reach.py`)."""

from __future__ import annotations

import dataclasses

import jax

from morphology.tasks import base


@dataclasses.dataclass(frozen=True)
class Reach:
  """Goal: one point on the annulus r in `r_range` (ant [7.5, 10], hard [10.5, 11.5], centipede [5, 6]).

  Reward -min_k ||tip_k - ball||_xy; success when it is < `radius`; `distance` is that distance.
  """

  r_range: tuple[float, float] = (7.5, 10.0)
  radius: float = 0.1
  name: str = "reach"
  all_conditions: bool = False
  episode_length: int = base.EPISODE_LENGTH

  @property
  def objects(self):
    return ()

  @property
  def num_goals(self) -> int:
    return 1

  def min_tips(self) -> int:
    return 1

  def sample(self, rng: jax.Array):
    return base.no_points(), base.annulus_xy(rng, self.r_range)[None]

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    return {"reach": base.ReachTerm(self.radius)(frame.tips, goals[0])}

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    return base.nearest_xy_distance(frame.tips, goals[0])
