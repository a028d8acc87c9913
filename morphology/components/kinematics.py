"""Forward kinematics of a morphology description in numpy: a port of brax-v1 `System.default_qp`.

v1 places a child from its joint: local_rot = ref * Rot(a_0, q_0) * Rot(a_1, q_1) ... (intrinsic),
child_pos = parent_pos + R_parent (parent_offset - local_rot child_offset). In the description the
joint anchor is the hinge `pos` (= v1 child_offset) and parent_offset = body.pos + R(body.quat) anchor.
This is written independently of MuJoCo so the golden tests can compare the two.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from morphology.components import description
from morphology.components.description import Geom, Morphology

Pose = tuple[np.ndarray, np.ndarray]  # pos [3], quat [4] wxyz


def quat_mul(a, b) -> np.ndarray:
  return np.asarray(description.quat_mul(a, b))


def rotate(v, q) -> np.ndarray:
  """v [3] rotated by unit quaternion q [4] wxyz."""
  return np.asarray(description.rotate(v, q))


def axis_angle(axis: np.ndarray, angle_rad: float) -> np.ndarray:
  axis = axis / np.linalg.norm(axis)
  return np.concatenate([[np.cos(angle_rad / 2)], np.sin(angle_rad / 2) * axis])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
  return np.stack([rotate(e, q) for e in np.eye(3)], axis=1)


def forward_positions(morph: Morphology, angles: Optional[Sequence[float]] = None,
                      root_pos: Sequence[float] = (0.0, 0.0, 0.0),
                      root_quat: Sequence[float] = (1.0, 0.0, 0.0, 0.0)) -> dict[str, Pose]:
  """Body frame poses {name: (pos [3], quat [4])} at joint `angles` (degrees, `morph.joints` order;
  default: mid-limits, v1 `default_angle`). The root sits at root_pos (v1: the origin)."""
  angles = morph.init_angles() if angles is None else tuple(angles)
  if len(angles) != morph.num_dofs:
    raise ValueError(f"{morph.name}: got {len(angles)} angles for {morph.num_dofs} DOFs")
  poses: dict[str, Pose] = {}
  k = 0
  for b in morph.bodies:
    if b.parent is None:
      poses[b.name] = (np.asarray(root_pos, float), np.asarray(root_quat, float))
      continue
    parent_pos, parent_rot = poses[b.parent]
    ref = np.asarray(b.quat, float)
    anchor = np.asarray(b.joints[0].pos if b.joints else (0.0, 0.0, 0.0), float)
    parent_offset = np.asarray(b.pos, float) + rotate(anchor, ref)
    local_rot = ref
    for h in b.joints:
      local_rot = quat_mul(local_rot, axis_angle(np.asarray(h.axis, float), np.radians(angles[k])))
      k += 1
    local_pos = parent_offset - rotate(anchor, local_rot)
    poses[b.name] = (parent_pos + rotate(local_pos, parent_rot), quat_mul(parent_rot, local_rot))
  return poses


def geom_lowest_z(geom: Geom, body_pos: np.ndarray, body_quat: np.ndarray) -> float:
  """Lowest world z of a geom on a body at pose (body_pos, body_quat)."""
  rot = quat_mul(body_quat, np.asarray(geom.quat, float))
  center = body_pos + rotate(np.asarray(geom.pos, float), body_quat)
  if geom.type == "sphere":
    return float(center[2] - geom.size[0])
  if geom.type == "capsule":
    axis_z = rotate(np.array([1.0, 0.0, 0.0]), rot)[2]
    return float(center[2] - abs(axis_z) * geom.size[1] - geom.size[0])
  if geom.type == "box":
    mat = quat_to_mat(rot)
    return float(center[2] - np.sum(np.abs(mat[2]) * np.asarray(geom.size, float)))
  raise ValueError(f"unknown geom type {geom.type!r}")


def spawn_height(morph: Morphology, angles: Optional[Sequence[float]] = None) -> float:
  """Root z that puts the lowest geom exactly on the floor (z=0) at `angles` (default mid-limits)."""
  poses = forward_positions(morph, angles)
  return -min(geom_lowest_z(b.geom, *poses[b.name]) for b in morph.bodies)


def tip_positions(morph: Morphology, poses: dict[str, Pose]) -> np.ndarray:
  """World positions [E, 3] of the end effectors' `tip` points (ordered by end_effector_order)."""
  return np.array([poses[b.name][0] + rotate(np.asarray(b.tip, float), poses[b.name][1])
                   for b in morph.end_effectors()]).reshape(-1, 3)
