"""Morphology description -> MJCF string that both MuJoCo and `brax.io.mjcf.loads` accept.

What brax 0.14 needs and we therefore emit: the Euler integrator, pyramidal cones, impratio 1, no
joint `ref`, hinges of one body at one position, and the initial pose in `<custom><numeric
name="init_qpos">` (brax's `System.init_q`); a `home` keyframe carries the same qpos for MuJoCo.
The root gets a free joint and spawns with its lowest geom on the floor at the mid-limit pose.
Contact bits (mxt_reference 7.3): floor=1, agent=2, objects=4; the agent collides with the floor and
objects but not itself (v1 had no self-collision) unless `self_collision`. `floor_contact` picks which
agent bodies collide at all (`FLOOR_CONTACT`). `collide_scale` (`<numeric name="collide_scale">`) keeps
boxes stable on brax's positional backend.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from gdt.core.registry import unknown_name_message
from morphology.components.description import Geom, Morphology, quat_mul
from morphology.components.kinematics import forward_positions, spawn_height

FLOOR_BIT, AGENT_BIT, OBJECT_BIT = 1, 2, 4
_CAPSULE_ALONG_X = (math.sqrt(0.5), 0.0, math.sqrt(0.5), 0.0)  # MuJoCo capsules lie along z; v1 limbs along x


@dataclasses.dataclass(frozen=True)
class FreeObject:
  """A free-joint body next to the agent (touch ball, push box), placed at `pos` at reset."""
  name: str
  geom: Geom
  mass: float
  pos: tuple[float, float, float]
  collides: bool = True


# floor_contact -> the agent bodies whose geoms collide (with the floor and objects); the others collide
# with nothing.
# - 'all': every body (v1-faithful).
# - 'end_effectors': the root and the end-effector bodies only, like brax's ant (its 4 foot spheres).
#   A speed option that changes the dynamics: fewer contact points per step (ant_4: 5 instead of 9
#   geoms), but thighs and knees pass through the floor and pushed objects.
FLOOR_CONTACT: dict[str, Callable[[Morphology], set[str]]] = {
    "all": lambda morph: {b.name for b in morph.bodies},
    "end_effectors": lambda morph: {morph.root.name} | {b.name for b in morph.end_effectors()},
}


@dataclasses.dataclass(frozen=True)
class MjcfOptions:
  timestep: float = 0.005
  friction: float = 1.0          # v1 default; unimals used 0.6
  joint_damping: float = 35.0    # stands in for v1 joint `angular_damping: 35` (positional/spring ignore it)
  self_collision: bool = False   # v1 had none
  floor_size: float = 50.0
  solver_iterations: int = 4     # small: brax/MJX cost grows with it
  ls_iterations: int = 8
  gear_scale: float = 1.0        # multiplies every motor gear (v1 strength); see FAMILY_OPTIONS
  floor_contact: str = "all"     # a FLOOR_CONTACT key; 'end_effectors' is faster but not v1 dynamics
  # brax `collide_scale` (positional backend only): the fraction of each contact's position correction applied
  # per step. Positional sums a face's 2-4 contact corrections and applies their rotation at twice the
  # quaternion rate, so at 1 a box's tilt is over-corrected ~2x and grows (the push box popped 0.19 m at
  # rest and flew 37 m up under random actions); 0.5 makes that correction dead-beat.
  collide_scale: float = 0.5

  def __post_init__(self):
    if self.floor_contact not in FLOOR_CONTACT:
      raise ValueError(unknown_name_message("floor_contact", self.floor_contact, FLOOR_CONTACT))


# Per-family departures from the v1-faithful defaults, needed or specified for MuJoCo dynamics:
# - worm: v1 strength 3000 on unit-inertia torsos diverges under MuJoCo Euler at dt 0.005 (qvel ~1e5-1e6
#   within 15 s of random control); 0.1 (= 300, the centipede spine strength) keeps |qvel| < 10.
# - unimal: v1 used friction 0.6 for unimals (mxt_reference 7.3).
FAMILY_OPTIONS = {"worm": dict(gear_scale=0.1), "unimal": dict(friction=0.6)}


def options_for(morph: Morphology, **overrides) -> MjcfOptions:
  """MjcfOptions with the family's FAMILY_OPTIONS applied, then `overrides`."""
  return MjcfOptions(**{**FAMILY_OPTIONS.get(morph.family, {}), **overrides})


def _f(x: float) -> str:
  return f"{x:.10g}"


def _vec(v: Sequence[float]) -> str:
  return " ".join(_f(x) for x in v)


def geom_xml(g: Geom, name: str, contype: int, conaffinity: int, material: str) -> str:
  if g.type == "capsule":
    quat = quat_mul(g.quat, _CAPSULE_ALONG_X)
  else:
    quat = g.quat
  return (f'<geom name={quoteattr(name)} type="{g.type}" size="{_vec(g.size)}" pos="{_vec(g.pos)}" '
          f'quat="{_vec(quat)}" contype="{contype}" conaffinity="{conaffinity}" material="{material}"/>')


def _camera_distance(morph: Morphology) -> float:
  # Frame the whole agent: a few times its horizontal reach from the root at the reset pose.
  reach = max(float(np.linalg.norm(p[:2])) for p, _ in forward_positions(morph).values())
  return max(1.5, 2.5 * (reach + 0.5))


def init_qpos(morph: Morphology, objects: Sequence[FreeObject] = ()) -> list[float]:
  """qpos [7 + num_dofs + 7 * num_objects]: root at the spawn height, joints at mid-limits (radians)."""
  q = [0.0, 0.0, spawn_height(morph), 1.0, 0.0, 0.0, 0.0]
  q += [math.radians(a) for a in morph.init_angles()]
  for o in objects:
    q += [*o.pos, 1.0, 0.0, 0.0, 0.0]
  return q


def to_mjcf(morph: Morphology, objects: Sequence[FreeObject] = (), options: MjcfOptions | None = None) -> str:
  """The MJCF string; body names are `Body.name`, one motor per hinge (gear = v1 strength, ctrl in [-1, 1]).

  options=None means `options_for(morph)` (the v1 defaults plus the family's FAMILY_OPTIONS).
  """
  morph.validate()
  options = options_for(morph) if options is None else options
  agent_aff = FLOOR_BIT | OBJECT_BIT | (AGENT_BIT if options.self_collision else 0)
  colliding = FLOOR_CONTACT[options.floor_contact](morph)
  lines: list[str] = []

  def body(name: str, depth: int) -> None:
    b = morph.body(name)
    pad = "  " * depth
    pos = (0.0, 0.0, 0.0) if b.parent is None else b.pos
    lines.append(f'{pad}<body name={quoteattr(b.name)} pos="{_vec(pos)}" quat="{_vec(b.quat)}">')
    if b.parent is None:
      lines.append(f'{pad}  <freejoint name={quoteattr(b.name + "_root")}/>')
      d = _camera_distance(morph)
      lines.append(f'{pad}  <camera name="track" mode="trackcom" pos="0 {_f(-d)} {_f(0.66 * d)}" '
                   'xyaxes="1 0 0 0 0.55 0.83"/>')
    lines.append(f'{pad}  <inertial pos="0 0 0" mass="{_f(b.mass)}" diaginertia="{_vec(b.inertia)}"/>')
    for h in b.joints:
      lines.append(f'{pad}  <joint name={quoteattr(h.name)} type="hinge" pos="{_vec(h.pos)}" axis="{_vec(h.axis)}" '
                   f'range="{_vec(h.range)}"/>')
    contype, conaff = (AGENT_BIT, agent_aff) if b.name in colliding else (0, 0)
    if b.geom.collide_end:  # the capsule is drawn; only its end cap collides
      lines.append(pad + "  " + geom_xml(b.geom, b.name, 0, 0, "agent"))
      lines.append(pad + "  " + geom_xml(b.geom.end_cap(), b.name + "_end", contype, conaff, "agent"))
    else:
      lines.append(pad + "  " + geom_xml(b.geom, b.name, contype, conaff, "agent"))
    for c in morph.children(name):
      body(c.name, depth + 1)
    lines.append(f"{pad}</body>")

  body(morph.root.name, 2)
  for o in objects:
    contype, conaff = (OBJECT_BIT, FLOOR_BIT | AGENT_BIT | OBJECT_BIT) if o.collides else (0, 0)
    lines.append(f'    <body name={quoteattr(o.name)} pos="{_vec(o.pos)}">')
    lines.append(f'      <freejoint name={quoteattr(o.name + "_root")}/>')
    # v1's unit inertia; a solid 1 kg push box's (0.52, 0.52, 0.67) would rock harder on positional.
    lines.append(f'      <inertial pos="0 0 0" mass="{_f(o.mass)}" diaginertia="1 1 1"/>')
    lines.append("      " + geom_xml(o.geom, o.name, contype, conaff, "object"))
    lines.append("    </body>")
  motors = [f'    <motor name={quoteattr(h.name)} joint={quoteattr(h.name)} gear="{_f(h.gear * options.gear_scale)}" '
            f'ctrllimited="true" ctrlrange="-1 1"/>' for h in morph.joints]
  qpos = _vec(init_qpos(morph, objects))
  fr = options.friction
  return f"""<mujoco model={quoteattr(morph.name)}>
  <compiler angle="degree" autolimits="true"/>
  <option timestep="{_f(options.timestep)}" integrator="Euler" cone="pyramidal" impratio="1"
          iterations="{options.solver_iterations}" ls_iterations="{options.ls_iterations}"/>
  <custom>
    <numeric name="init_qpos" data="{qpos}"/>
    <numeric name="collide_scale" data="{_f(options.collide_scale)}"/>
  </custom>
  <default>
    <joint limited="true" damping="{_f(options.joint_damping)}"/>
    <geom friction="{_f(fr)} 0.5 0.5"/>
    <motor ctrllimited="true" ctrlrange="-1 1"/>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".15 .2 .25" rgb2=".25 .3 .35" width="256" height="256"/>
    <material name="floor" texture="grid" texrepeat="40 40" reflectance="0.1"/>
    <material name="agent" rgba="0.85 0.6 0.3 1"/>
    <material name="object" rgba="0.3 0.6 0.9 1"/>
  </asset>
  <worldbody>
    <light name="sun" pos="0 0 20" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" size="{_f(options.floor_size)} {_f(options.floor_size)} 0.1" material="floor"
          contype="{FLOOR_BIT}" conaffinity="0"/>
{chr(10).join(lines)}
  </worldbody>
  <actuator>
{chr(10).join(motors)}
  </actuator>
  <keyframe>
    <key name="home" qpos="{qpos}"/>
  </keyframe>
</mujoco>
"""
