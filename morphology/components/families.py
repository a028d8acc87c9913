"""Procedural MxT-Bench families (mxt_reference 1.2) with the exact brax-v1 geometry.

Every generator returns a validated `Morphology`; `FAMILIES` maps a family name to its generator and to
the parameter combinations the v1 task registrations use (`param_grid`), which the tests compile.
Names follow v1 (`torso`, `Aux 1_i`, `$ Body 4_i`; centipede/worm `torso_k`); joints are `<parent>_<child>`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable, Iterable, Optional

from gdt.core.registry import Registry
from morphology.components.description import Body, Geom, Morphology, v1_capsule, v1_child

# v1 constants (components/ant.py, claw.py, centipede.py, worm.py).
TORSO_RADIUS = 0.25      # v1 torso capsule r .25 len .5 == a sphere
TORSO_MASS = 10.0
LEG_RADIUS = 0.08
ANT_THIGH_LENGTH = 0.4428427219390869
ANT_SHIN_LENGTH = 0.7256854176521301
ANT_STRENGTH = 350.0
CLAW_SEGMENT_LENGTH = 0.4
CLAW_HIP_PAD = 0.08      # v1 size_rand_claw keeps this unscaled
CLAW_STRENGTH = 500.0
SPINE_OFFSET = 0.25      # centipede / worm torso-to-torso joint offsets
CENTIPEDE_SPINE_STRENGTH = 300.0
WORM_STRENGTH = 3000.0
HIP_RANGE = (-30.0, 30.0)
KNEE_RANGE = (30.0, 70.0)
SPINE_RANGE = (-60.0, 60.0)
CLAW_RANGES = ((-30.0, 30.0), (-30.0, 30.0), (10.0, 80.0), (30.0, 60.0))
YAW = (0.0, -90.0, 0.0)   # v1 `rotation {y: -90}`: the hinge axis becomes the vertical z
PITCH = (0.0, 0.0, 90.0)  # v1 `rotation {z: 90}`: the hinge axis becomes the limb's local y

# Value sets of the v1 task registrations (tasks/*/ *.py loops).
MASS_SETS = ((0.5, 1.0, 3.0), (0.5, 1.0, 1.0), (1.0, 3.0, 3.0))
SIZE_SETS = ((0.9, 1.0, 1.1), (0.9, 1.0, 1.0), (1.0, 1.1, 1.1))
ANT_SIZE_SETS = SIZE_SETS + ((0.8, 1.0, 1.5),)  # ant reach-hard adds this one


@dataclasses.dataclass(frozen=True)
class Family:
  build: Callable[..., Morphology]
  param_grid: Callable[[], Iterable[dict]]


FAMILIES: Registry[Family] = Registry("morphology family")


def _torso(name: str, parent: Optional[str] = None, **joint) -> Body:
  geom = Geom("sphere", (TORSO_RADIUS,))
  if parent is None:
    return Body(name=name, parent=None, pos=(0.0, 0.0, 0.0), quat=(1.0, 0.0, 0.0, 0.0), geom=geom,
                mass=TORSO_MASS, limb_type="torso")
  return v1_child(name, parent, geom=geom, mass=TORSO_MASS, joint_name=f"{parent}_{name}",
                  parent_offset=(SPINE_OFFSET, 0.0, 0.0), child_offset=(-SPINE_OFFSET, 0.0, 0.0),
                  rotation=YAW, limits=(SPINE_RANGE,), limb_type="torso", **joint)


def _ant_leg(parent: str, thigh: str, shin: Optional[str], theta: float, *, scale: float = 1.0,
             mass: float = 1.0, ee: Optional[int] = None) -> list[Body]:
  """v1 ant leg at angle theta (radians): hip yaw [-30,30] then knee [30,70], strength 350.

  `shin=None` is the v1 broken leg (thigh and hip actuator kept). size_rand scales radius and both
  lengths, and the hip offset (L1/2 + r) with them.
  """
  r, l1, l2 = LEG_RADIUS * scale, ANT_THIGH_LENGTH * scale, ANT_SHIN_LENGTH * scale
  hip = l1 / 2 + r
  bodies = [v1_child(thigh, parent, geom=v1_capsule(r, l1), mass=mass, joint_name=f"{parent}_{thigh}",
                     parent_offset=(hip * math.cos(theta), hip * math.sin(theta), 0.0), rotation=YAW,
                     reference_rotation=(0.0, 0.0, math.degrees(theta)), limits=(HIP_RANGE,),
                     strength=ANT_STRENGTH, limb_type="thigh")]
  if shin is not None:
    # v1 `end: -1`: only the foot cap (our +x end, the tip) touches the ground.
    bodies.append(v1_child(shin, thigh, geom=v1_capsule(r, l2, collide_end=1), mass=mass, joint_name=f"{thigh}_{shin}",
                           parent_offset=(l1 / 2 - r, 0.0, 0.0), child_offset=(-l2 / 2 + r, 0.0, 0.0),
                           rotation=PITCH, limits=(KNEE_RANGE,), strength=ANT_STRENGTH, limb_type="shin",
                           tip=(l2 / 2, 0.0, 0.0), end_effector_order=ee))
  return bodies


def _claw_leg(i: int, theta: float, *, scale: float = 1.0, broken: bool = False, ee: Optional[int] = None) -> list[Body]:
  """v1 claw leg: 2-DOF hip (yaw, pitch) [-30,30]^2, then [10,80] and [30,60]; 3 x len .4, strength 500."""
  r, seg = LEG_RADIUS * scale, CLAW_SEGMENT_LENGTH * scale
  hip = seg / 2 + CLAW_HIP_PAD
  names = [f"Aux 1_{i}", f"Aux 2_{i}", f"$ Body 4_{i}"][:2 if broken else 3]
  types = ["thigh", "shin", "foot"]
  bodies = [v1_child(names[0], "torso", geom=v1_capsule(r, seg), mass=1.0, joint_name=f"torso_{names[0]}",
                     parent_offset=(hip * math.cos(theta), hip * math.sin(theta), 0.0), rotation=YAW,
                     reference_rotation=(0.0, 0.0, math.degrees(theta)), limits=CLAW_RANGES[:2],
                     strength=CLAW_STRENGTH, limb_type=types[0])]
  for k in range(1, len(names)):
    last = k == 2
    bodies.append(v1_child(names[k], names[k - 1], geom=v1_capsule(r, seg), mass=1.0,
                           joint_name=f"{names[k - 1]}_{names[k]}", parent_offset=(seg / 2 - r, 0.0, 0.0),
                           child_offset=(-seg / 2 + r, 0.0, 0.0), rotation=PITCH, limits=(CLAW_RANGES[k + 1],),
                           strength=CLAW_STRENGTH, limb_type=types[k],
                           tip=(seg / 2, 0.0, 0.0) if last else None, end_effector_order=ee if last else None))
  return bodies


def _theta(i: int, n: int) -> float:
  return 2 * math.pi * i / n


def _check_legs(n: int, family: str) -> None:
  if n < 1:
    raise ValueError(f"{family}: needs at least 1 leg, got {n}")


def _finish(name: str, family: str, bodies: list[Body], **params) -> Morphology:
  return Morphology(name=name, family=family, bodies=tuple(bodies), params=params).validate()


def _values_tag(values) -> str:
  return "_".join(str(float(v)) for v in values)


# ---- ant family ----

def ant(num_legs: int, masses: Optional[tuple] = None, scales: Optional[tuple] = None,
        broken_id: Optional[int] = None) -> list[Body]:
  _check_legs(num_legs, "ant")
  masses_it = itertools.cycle(masses or (1.0,))
  scales_it = itertools.cycle(scales or (1.0,))
  bodies = [_torso("torso")]
  ee = 0
  for i in range(num_legs):
    broken = i == broken_id
    bodies += _ant_leg("torso", f"Aux 1_{i}", None if broken else f"$ Body 4_{i}", _theta(i, num_legs),
                       mass=next(masses_it), scale=next(scales_it), ee=None if broken else ee)
    ee += not broken
  return bodies


def make_ant(num_legs: int = 4) -> Morphology:
  return _finish(f"ant_{num_legs}", "ant", ant(num_legs), num_legs=num_legs)


def make_broken_ant(num_legs: int = 4, broken_id: int = 0) -> Morphology:
  if not 0 <= broken_id < num_legs:
    raise ValueError(f"broken_ant: broken_id={broken_id} must be in [0, {num_legs})")
  return _finish(f"ant_{num_legs}_b_{broken_id}", "broken_ant", ant(num_legs, broken_id=broken_id),
                 num_legs=num_legs, broken_id=broken_id)


def make_mass_rand_ant(num_legs: int = 4, masses: tuple = MASS_SETS[0]) -> Morphology:
  return _finish(f"ant_{num_legs}_mass_{_values_tag(masses)}", "mass_rand_ant", ant(num_legs, masses=masses),
                 num_legs=num_legs, masses=tuple(masses))


def make_size_rand_ant(num_legs: int = 4, scales: tuple = SIZE_SETS[0]) -> Morphology:
  return _finish(f"ant_{num_legs}_size_{_values_tag(scales)}", "size_rand_ant", ant(num_legs, scales=scales),
                 num_legs=num_legs, scales=tuple(scales))


# ---- centipede / worm ----

def centipede(num_torsos: int, masses: Optional[tuple] = None, scales: Optional[tuple] = None,
              missing: frozenset = frozenset()) -> list[Body]:
  """Torsos chained along x by yaw joints; each torso has a left (+90 deg, `Aux 1`/`$ Body 4`) and a
  right (-90 deg, `Aux 2`/`$ Body 5`) ant leg. `missing` holds body names to drop (broken variants)."""
  masses_it = itertools.cycle(masses or (1.0,))
  scales_it = itertools.cycle(scales or (1.0,))
  bodies: list[Body] = []
  ee = 0
  for k in range(num_torsos):
    if k == 0:
      bodies.append(_torso("torso_0"))
    else:
      bodies.append(_torso(f"torso_{k}", f"torso_{k - 1}", strength=CENTIPEDE_SPINE_STRENGTH))
    # v1 draws the left leg's value, then the right leg's, from one cycled iterator.
    for aux, shin, theta in ((f"Aux 1_{k}", f"$ Body 4_{k}", math.pi / 2),
                             (f"Aux 2_{k}", f"$ Body 5_{k}", -math.pi / 2)):
      mass, scale = next(masses_it), next(scales_it)
      if aux in missing:
        continue
      keep_shin = shin not in missing
      bodies += _ant_leg(f"torso_{k}", aux, shin if keep_shin else None, theta, mass=mass, scale=scale,
                         ee=ee if keep_shin else None)
      ee += keep_shin
  return bodies


def _check_torsos(n: int, family: str) -> None:
  if n < 2:
    raise ValueError(f"{family}: needs at least 2 torsos, got {n}")


def make_centipede(num_torsos: int = 3) -> Morphology:
  _check_torsos(num_torsos, "centipede")
  return _finish(f"centipede_{num_torsos}", "centipede", centipede(num_torsos), num_torsos=num_torsos)


def make_broken_centipede(num_torsos: int = 3, side: int = 4, torso: int = 0,
                          whole_leg: bool = False) -> Morphology:
  """v1 `broken_ids=(side, torso)` drops that side's shin; `(side, torso, -1)` (whole_leg) the whole leg."""
  _check_torsos(num_torsos, "broken_centipede")
  if side not in (4, 5) or not 0 <= torso < num_torsos:
    raise ValueError(f"broken_centipede: side must be 4 or 5 and torso in [0, {num_torsos}); got {side}, {torso}")
  missing = {f"$ Body {side}_{torso}"}
  if whole_leg:
    missing.add(f"Aux {side - 3}_{torso}")
  tag = f"{num_torsos}_b_{side}_{torso}" + ("_all" if whole_leg else "")
  return _finish(f"centipede_{tag}", "broken_centipede", centipede(num_torsos, missing=frozenset(missing)),
                 num_torsos=num_torsos, side=side, torso=torso, whole_leg=whole_leg)


def make_mass_rand_centipede(num_torsos: int = 3, masses: tuple = MASS_SETS[0]) -> Morphology:
  _check_torsos(num_torsos, "mass_rand_centipede")
  return _finish(f"centipede_{num_torsos}_mass_{_values_tag(masses)}", "mass_rand_centipede",
                 centipede(num_torsos, masses=masses), num_torsos=num_torsos, masses=tuple(masses))


def make_size_rand_centipede(num_torsos: int = 3, scales: tuple = SIZE_SETS[0]) -> Morphology:
  _check_torsos(num_torsos, "size_rand_centipede")
  return _finish(f"centipede_{num_torsos}_size_{_values_tag(scales)}", "size_rand_centipede",
                 centipede(num_torsos, scales=scales), num_torsos=num_torsos, scales=tuple(scales))


def make_worm(num_torsos: int = 3) -> Morphology:
  """A chain of torso spheres with yaw joints [-60,60], strength 3000; the last torso is the end effector."""
  _check_torsos(num_torsos, "worm")
  bodies = [_torso("torso_0")]
  for k in range(1, num_torsos):
    bodies.append(_torso(f"torso_{k}", f"torso_{k - 1}", strength=WORM_STRENGTH))
  last = bodies[-1]
  bodies[-1] = dataclasses.replace(last, tip=(TORSO_RADIUS, 0.0, 0.0), end_effector_order=0)
  return _finish(f"worm_{num_torsos}", "worm", bodies, num_torsos=num_torsos)


# ---- claw ----

def claw(num_legs: int, scales: Optional[tuple] = None, broken_id: Optional[int] = None) -> list[Body]:
  _check_legs(num_legs, "claw")
  scales_it = itertools.cycle(scales or (1.0,))
  bodies = [_torso("torso")]
  for i in range(num_legs):
    broken = i == broken_id
    bodies += _claw_leg(i, _theta(i, num_legs), scale=next(scales_it), broken=broken,
                        ee=None if broken else i - (broken_id is not None and i > broken_id))
  return bodies


def make_claw(num_legs: int = 4) -> Morphology:
  return _finish(f"claw_{num_legs}", "claw", claw(num_legs), num_legs=num_legs)


def make_broken_claw(num_legs: int = 4, broken_id: int = 0) -> Morphology:
  if not 0 <= broken_id < num_legs:
    raise ValueError(f"broken_claw: broken_id={broken_id} must be in [0, {num_legs})")
  return _finish(f"claw_{num_legs}_b_{broken_id}", "broken_claw", claw(num_legs, broken_id=broken_id),
                 num_legs=num_legs, broken_id=broken_id)


def make_size_rand_claw(num_legs: int = 4, scales: tuple = SIZE_SETS[0]) -> Morphology:
  return _finish(f"claw_{num_legs}_size_{_values_tag(scales)}", "size_rand_claw", claw(num_legs, scales=scales),
                 num_legs=num_legs, scales=tuple(scales))


def _grid(**axes) -> Callable[[], list[dict]]:
  """All combinations of the given axes; a callable axis gets the combination so far (e.g. broken_id < n)."""
  def grid() -> list[dict]:
    combos = [{}]
    for key, values in axes.items():
      combos = [dict(c, **{key: v}) for c in combos for v in (values(c) if callable(values) else values)]
    return combos
  return grid


LEGS = range(2, 7)
TORSOS = range(2, 8)
FAMILIES.register("ant", Family(make_ant, _grid(num_legs=LEGS)))
FAMILIES.register("broken_ant", Family(make_broken_ant, _grid(num_legs=range(3, 7),
                                                             broken_id=lambda c: range(c["num_legs"]))))
FAMILIES.register("mass_rand_ant", Family(make_mass_rand_ant, _grid(num_legs=LEGS, masses=MASS_SETS)))
FAMILIES.register("size_rand_ant", Family(make_size_rand_ant, _grid(num_legs=LEGS, scales=ANT_SIZE_SETS)))
FAMILIES.register("centipede", Family(make_centipede, _grid(num_torsos=TORSOS)))
FAMILIES.register("broken_centipede", Family(make_broken_centipede, _grid(
    num_torsos=TORSOS, side=(4, 5), torso=lambda c: range(c["num_torsos"]), whole_leg=(False, True))))
FAMILIES.register("mass_rand_centipede", Family(make_mass_rand_centipede, _grid(num_torsos=TORSOS, masses=MASS_SETS)))
FAMILIES.register("size_rand_centipede", Family(make_size_rand_centipede, _grid(num_torsos=TORSOS, scales=SIZE_SETS)))
FAMILIES.register("worm", Family(make_worm, _grid(num_torsos=TORSOS)))
FAMILIES.register("claw", Family(make_claw, _grid(num_legs=LEGS)))
FAMILIES.register("broken_claw", Family(make_broken_claw, _grid(num_legs=LEGS, broken_id=lambda c: range(c["num_legs"]))))
FAMILIES.register("size_rand_claw", Family(make_size_rand_claw, _grid(num_legs=LEGS, scales=SIZE_SETS)))
