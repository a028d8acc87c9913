"""The morphology description: a small frozen dataclass tree that every family generator returns.

Conventions (MJCF-ready; brax-v1 geometry is converted once, in `v1_child`):
- A body's `pos`/`quat` place its frame in the parent's frame at zero joint angles (quat is wxyz).
- Capsules lie along the body's local x axis (the v1 limb convention), `size=(radius, half_length)`
  where half_length excludes the caps; spheres are `(radius,)`; boxes are half sizes `(hx, hy, hz)`.
- Hinge axes and positions are in the body frame; ranges and all angles are in degrees.
- Several hinges on one body share one position (brax.io.mjcf accepts only that) and compose
  intrinsically, like v1 multi-DOF joints: R = quat * Rot(axis_0, a_0) * Rot(axis_1, a_1).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]

GEOM_SIZE_LEN = {"capsule": 2, "sphere": 1, "box": 3}


class MorphologyError(ValueError):
  """An invalid morphology description; the message names the offending body."""


@dataclasses.dataclass(frozen=True)
class Geom:
  """A body's one geom. `collide_end` is v1's capsule `end`: 0 = the whole capsule collides; +1 / -1 = only the
  spherical cap at the +x / -x end of the local-x capsule (v1 ant and centipede shins collide at the foot only)."""
  type: str
  size: tuple
  pos: Vec3 = (0.0, 0.0, 0.0)
  quat: Quat = (1.0, 0.0, 0.0, 0.0)
  collide_end: int = 0

  def __post_init__(self):
    if self.collide_end not in (-1, 0, 1) or (self.collide_end and self.type != "capsule"):
      raise ValueError(f"Geom.collide_end must be 0, or +-1 on a capsule; got {self.collide_end} on a {self.type}")

  def end_cap(self) -> "Geom":
    """The colliding cap of a one-ended capsule: a sphere of the capsule's radius at that end."""
    offset = rotate((self.collide_end * self.size[1], 0.0, 0.0), self.quat)
    return Geom("sphere", (self.size[0],), pos=tuple(p + o for p, o in zip(self.pos, offset, strict=True)))


@dataclasses.dataclass(frozen=True)
class Hinge:
  name: str
  axis: Vec3
  range: tuple[float, float]
  gear: float
  pos: Vec3 = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Body:
  name: str
  parent: Optional[str]
  pos: Vec3
  quat: Quat
  geom: Geom
  mass: float
  inertia: Vec3 = (1.0, 1.0, 1.0)
  joints: tuple[Hinge, ...] = ()
  limb_type: str = "limb"
  tip: Optional[Vec3] = None
  end_effector_order: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Morphology:
  name: str
  family: str
  bodies: tuple[Body, ...]
  params: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)

  def validate(self) -> "Morphology":
    """Raises MorphologyError naming the body; returns self so generators can chain it."""
    if not self.bodies:
      raise MorphologyError(f"morphology {self.name!r} has no bodies")
    seen: set[str] = set()
    hinge_names: set[str] = set()
    for i, b in enumerate(self.bodies):
      if b.name in seen:
        raise MorphologyError(f"body {b.name!r}: duplicate name")
      if i == 0 and b.parent is not None:
        raise MorphologyError(f"body {b.name!r}: the root (first body) must have parent None")
      if i > 0 and b.parent is None:
        raise MorphologyError(f"body {b.name!r}: only the first body may be a root")
      if i > 0 and b.parent not in seen:
        names = {x.name for x in self.bodies}
        if b.parent not in names:
          raise MorphologyError(f"body {b.name!r}: missing parent {b.parent!r}")
        if _has_cycle(self.bodies, b.name):
          raise MorphologyError(f"body {b.name!r}: parent chain forms a cycle")
        raise MorphologyError(f"body {b.name!r}: parent {b.parent!r} must come before its children")
      _validate_body(b)
      for h in b.joints:
        if h.name in hinge_names:
          raise MorphologyError(f"body {b.name!r}: duplicate joint name {h.name!r}")
        hinge_names.add(h.name)
      seen.add(b.name)
    # MuJoCo numbers bodies (and so qpos/actuators) depth-first; keeping `bodies` in that order makes
    # tuple index + 1 the MuJoCo body id and `joints` the actuator order.
    order = self.depth_first()
    for b, expected in zip(self.bodies, order, strict=True):
      if b.name != expected:
        raise MorphologyError(f"body {b.name!r}: bodies must be listed depth-first (expected {expected!r} here)")
    return self

  def depth_first(self) -> list[str]:
    """Body names in pre-order, children in listing order (MuJoCo's body numbering)."""
    out: list[str] = []
    stack = [self.bodies[0].name]
    while stack:
      name = stack.pop()
      out.append(name)
      stack.extend(reversed([c.name for c in self.children(name)]))
    return out

  def body(self, name: str) -> Body:
    for b in self.bodies:
      if b.name == name:
        return b
    raise KeyError(f"no body {name!r} in morphology {self.name!r}")

  @property
  def root(self) -> Body:
    return self.bodies[0]

  @property
  def joints(self) -> list[Hinge]:
    """Every hinge in body order: the actuator / qpos order of the MJCF."""
    return [h for b in self.bodies for h in b.joints]

  @property
  def num_dofs(self) -> int:
    return sum(len(b.joints) for b in self.bodies)

  def end_effectors(self) -> list[Body]:
    return sorted((b for b in self.bodies if b.end_effector_order is not None),
                  key=lambda b: b.end_effector_order)

  def children(self, name: str) -> list[Body]:
    return [b for b in self.bodies if b.parent == name]

  def init_angles(self) -> tuple[float, ...]:
    """Every DOF at the mid-point of its range (v1 `default_angle`), degrees, in `joints` order."""
    return tuple(0.5 * (h.range[0] + h.range[1]) for h in self.joints)


def _has_cycle(bodies, name: str) -> bool:
  parent = {b.name: b.parent for b in bodies}
  visited = set()
  while name is not None and name in parent:
    if name in visited:
      return True
    visited.add(name)
    name = parent[name]
  return False


def _validate_body(b: Body) -> None:
  g = b.geom
  if g.type not in GEOM_SIZE_LEN:
    raise MorphologyError(f"body {b.name!r}: unknown geom type {g.type!r}")
  if len(g.size) != GEOM_SIZE_LEN[g.type]:
    raise MorphologyError(f"body {b.name!r}: {g.type} size needs {GEOM_SIZE_LEN[g.type]} values, got {g.size}")
  if g.type == "capsule":
    if g.size[0] <= 0 or g.size[1] <= 0:
      raise MorphologyError(f"body {b.name!r}: zero-length limb or non-positive radius (capsule size {g.size})")
  elif any(s <= 0 for s in g.size):
    raise MorphologyError(f"body {b.name!r}: non-positive {g.type} size {g.size}")
  if b.mass <= 0 or any(i <= 0 for i in b.inertia):
    raise MorphologyError(f"body {b.name!r}: non-positive mass {b.mass} or inertia {b.inertia}")
  if b.joints and any(h.pos != b.joints[0].pos for h in b.joints):
    raise MorphologyError(f"body {b.name!r}: all hinges of a body must share one position")
  for h in b.joints:
    lo, hi = h.range
    if not lo < hi:
      raise MorphologyError(f"body {b.name!r}: joint {h.name!r} has an empty range {h.range}")
    if not -180.0 <= lo and hi <= 180.0:
      raise MorphologyError(f"body {b.name!r}: joint {h.name!r} range {h.range} is outside [-180, 180]")
    if h.gear <= 0:
      raise MorphologyError(f"body {b.name!r}: joint {h.name!r} has non-positive gear {h.gear}")
    if math.isclose(sum(a * a for a in h.axis), 0.0):
      raise MorphologyError(f"body {b.name!r}: joint {h.name!r} has a zero axis")


# ---- rotations (numpy-free so descriptions stay plain tuples) ----

def euler_to_quat(v: Vec3) -> Quat:
  """v1 `math.euler_to_quat`: degrees, Tait-Bryan intrinsic x-y'-z'', wxyz."""
  c1, c2, c3 = (math.cos(a * math.pi / 360) for a in v)
  s1, s2, s3 = (math.sin(a * math.pi / 360) for a in v)
  return (c1 * c2 * c3 - s1 * s2 * s3,
          s1 * c2 * c3 + c1 * s2 * s3,
          c1 * s2 * c3 - s1 * c2 * s3,
          c1 * c2 * s3 + s1 * s2 * c3)


def quat_mul(a: Quat, b: Quat) -> Quat:
  aw, ax, ay, az = a
  bw, bx, by, bz = b
  return (aw * bw - ax * bx - ay * by - az * bz,
          aw * bx + ax * bw + ay * bz - az * by,
          aw * by - ax * bz + ay * bw + az * bx,
          aw * bz + ax * by - ay * bx + az * bw)


def rotate(v: Vec3, q: Quat) -> Vec3:
  """Rotates vector v by unit quaternion q (wxyz)."""
  p = quat_mul(quat_mul(q, (0.0, *v)), (q[0], -q[1], -q[2], -q[3]))
  return (p[1], p[2], p[3])


def _clean(v, ndigits: int = 12) -> tuple:
  # Round away float noise such as 6e-17 so generated MJCF is readable and stable across runs.
  return tuple(0.0 if abs(x) < 10 ** -ndigits else round(x, ndigits) for x in v)


def v1_child(name: str, parent: str, *, geom: Geom, mass: float, joint_name: str,
             parent_offset: Vec3, child_offset: Vec3 = (0.0, 0.0, 0.0),
             rotation: Vec3 = (0.0, 0.0, 0.0), reference_rotation: Vec3 = (0.0, 0.0, 0.0),
             limits: tuple[tuple[float, float], ...] = (), strength: float = 0.0,
             limb_type: str = "limb", tip: Optional[Vec3] = None,
             end_effector_order: Optional[int] = None) -> Body:
  """A child body attached by a brax-v1 joint, converted to the MJCF convention (mxt_reference 7.3).

  pos = parent_offset - R(ref) child_offset; quat = euler(ref); hinge k: axis R(rotation) e_k at child_offset.
  One hinge per v1 `angle_limit` entry; a multi-DOF joint gets suffixes `_0`, `_1`, ...
  """
  ref = euler_to_quat(reference_rotation)
  rot = euler_to_quat(rotation)
  rc = rotate(child_offset, ref)
  pos = tuple(p - c for p, c in zip(parent_offset, rc, strict=True))
  basis = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
  hinges = tuple(
      Hinge(name=joint_name if len(limits) == 1 else f"{joint_name}_{k}",
            axis=_clean(rotate(basis[k], rot)), range=tuple(limits[k]), gear=strength,
            pos=_clean(child_offset))
      for k in range(len(limits)))
  return Body(name=name, parent=parent, pos=_clean(pos), quat=_clean(ref), geom=geom, mass=mass,
              joints=hinges, limb_type=limb_type, tip=tip, end_effector_order=end_effector_order)


def v1_capsule(radius: float, length: float, collide_end: int = 0) -> Geom:
  """A v1 limb capsule (`rotation {x:90 y:-90}`, full length incl. caps) -> local-x capsule."""
  return Geom("capsule", (radius, (length - 2 * radius) / 2), collide_end=collide_end)
