"""reach and its handsup "twisters": tips reach balls on the floor while reserved tips hold heights
(v1 `*_reach.py`, `*_reach_handsup.py`, `ant_reach_handsup2.py`, `ant_reach2_handsup.py`).

One parametrised task: `num_balls` floor balls, each reached by the nearest tip outside `height_tips`, and one
height target per tip in `height_tips`. The named tasks differ only in those counts and the sampling ranges.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from morphology.tasks import base


def _names(prefix: str, n: int) -> list[str]:
  return [prefix] if n == 1 else [f"{prefix}_{i + 1}" for i in range(n)]


@dataclasses.dataclass(frozen=True)
class Reach:
  """reach: goals [ball] at annulus r in `r_range` (ant [7.5, 10], hard [10.5, 11.5], centipede [5, 6]).

  Goals are [balls..., z-targets...]: balls on the annulus r in `r_range`, one height z ~ U(`z_range`) per
  entry of `height_tips`. Terms: `reach` (or reach_1, reach_2) = -min over the non-height tips of the xy
  distance to the ball, success < `radius`; `height` (or height_1, ...) = -|z - z(tip)|, success < `z_tolerance`.
  Success is any condition for plain reach and all of them for twisters. `distance` is the largest ball's
  reach distance (the one that still blocks success; v1 reported the last ball's through a substring match).
  """

  r_range: tuple[float, float] = (7.5, 10.0)
  z_range: tuple[float, float] = (0.5, 0.6)
  num_balls: int = 1
  height_tips: tuple[int, ...] = ()
  radius: float = 0.1
  z_tolerance: float = 0.1
  name: str = "reach"
  episode_length: int = base.EPISODE_LENGTH

  @property
  def all_conditions(self) -> bool:
    return bool(self.height_tips)

  @property
  def objects(self):
    return ()

  @property
  def num_goals(self) -> int:
    return self.num_balls + len(self.height_tips)

  def min_tips(self) -> int:
    return len(self.height_tips) + 1

  def sample(self, rng: jax.Array):
    keys = jax.random.split(rng, self.num_goals)
    balls = [base.annulus_xy(k, self.r_range) for k in keys[:self.num_balls]]
    heights = [base.height_target(k, self.z_range) for k in keys[self.num_balls:]]
    return base.no_points(), jnp.stack(balls + heights)

  def terms(self, frame: base.Frame, goals: jax.Array, dt: float):
    reach_tips = base.other_tips(frame.tips, self.height_tips)
    reach, height = base.ReachTerm(self.radius), base.HeightTerm(self.z_tolerance)
    out = {n: reach(reach_tips, goals[i]) for i, n in enumerate(_names("reach", self.num_balls))}
    for j, n in enumerate(_names("height", len(self.height_tips))):
      out[n] = height(frame.tips[self.height_tips[j]], goals[self.num_balls + j])
    return out

  def distance(self, frame: base.Frame, goals: jax.Array) -> jax.Array:
    reach_tips = base.other_tips(frame.tips, self.height_tips)
    return jnp.max(jnp.stack([base.nearest_xy_distance(reach_tips, goals[i]) for i in range(self.num_balls)]))


@dataclasses.dataclass(frozen=True)
class ReachHandsup(Reach):
  """One ball reached by tips 1.. while tip 0 holds a height. Ranges: ant r [3.5, 5.5] z [.5, .6];
  claw [1.25, 1.75] [.55, .7] (claw hard [3.5, 5.5] [.5, .6]); unimal [1.25, 1.75] [.5, .6]."""

  r_range: tuple[float, float] = (3.5, 5.5)
  height_tips: tuple[int, ...] = (0,)
  name: str = "reach_handsup"


@dataclasses.dataclass(frozen=True)
class ReachHandsup2(Reach):
  """One ball reached by the tips other than 0 and 2, which hold two heights; r [1.25, 1.75], z [.5, .6]."""

  r_range: tuple[float, float] = (1.25, 1.75)
  height_tips: tuple[int, ...] = (0, 2)
  name: str = "reach_handsup2"


@dataclasses.dataclass(frozen=True)
class Reach2Handsup(Reach):
  """Two balls reached by tips 1.. while tip 0 holds a height; r [1.25, 1.55], z [.55, .7]."""

  r_range: tuple[float, float] = (1.25, 1.55)
  z_range: tuple[float, float] = (0.55, 0.7)
  num_balls: int = 2
  height_tips: tuple[int, ...] = (0,)
  name: str = "reach2_handsup"
