"""A seeded generator of unimal descriptions (the JSON format of `unimal.py`), MetaMorph-like.

A sphere torso (r .1) with 1-3 mirrored limb pairs and at most one unpaired head/tail limb; each limb is a chain
of 1-3 capsule segments (r .05). A segment has 1 or 2 hinges (2 = a universal joint, like the reference's
2-DOF joints and its children with two joints), about its local y (pitch) and/or z (swing) axis; gears are
150-300, ranges are MetaMorph-style (e.g. [-90, 0], [-30, 60]). Draws are redrawn until they fall in the
reference's ranges (mxt_reference 1.2: 5-11 bodies, 8-18 DOF, at least 3 end effectors) and are sane:
every body's frame is set so that at the mid-limit reset pose each segment points where it was drawn (legs
end pointing down at the floor), and no two bodies other than a parent and its child overlap at that pose.
A universal joint's second hinge keeps within +-60 degrees (`SECOND_HINGE_RANGES`).
Empty (locked) ranges are not generated: the description format rejects them (a locked DOF has no actuator
that could move it).

    python -m morphology.components.unimal_gen --seeds=0-71     # writes unimals/unimal_gen_<seed>.json

The same seed always gives the same file bytes.
"""

from __future__ import annotations

import argparse
import itertools
import math
import pathlib
import random

import numpy as np

from morphology.components.description import quat_mul, rotate
from morphology.components.kinematics import forward_positions
from morphology.components.unimal import UNIMAL_DIR, dumps, from_dict

TORSO_RADIUS = 0.1
LIMB_RADIUS = 0.05
TORSO_MASS = 3.0      # heavier than any limb, so the torso stays the base of the tree dynamically too
LIMB_DENSITY = 500.0  # kg/m^3: limb masses of 0.6-1.9 kg, like the v1 ant's 1 kg segments
NUM_BODIES = (5, 11)  # inclusive ranges of the reference's 72 unimals
NUM_DOFS = (8, 18)
MIN_END_EFFECTORS = 3
SEGMENT_LENGTHS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
GEARS = (150.0, 200.0, 250.0, 300.0)
RANGES = ((-30.0, 30.0), (-45.0, 45.0), (-60.0, 60.0), (-30.0, 60.0), (-60.0, 30.0), (-90.0, 0.0), (0.0, 90.0),
          (-30.0, 0.0), (0.0, 30.0))
# The second hinge of a universal joint stays within +-60 degrees: brax's positional backend (the default) reads
# a multi-DOF joint as x-y'-z'' Euler angles, which lock at a middle angle of 90 degrees, and unimals whose
# second hinge could reach it gained energy at rest there (popping 0.4-1.7 m up under zero action).
SECOND_HINGE_RANGES = tuple(r for r in RANGES if max(map(abs, r)) < 90.0)
# World pitch (degrees below the horizontal) of each segment of a leg at the reset pose, by chain length: the
# last segment points at the floor, so the unimal stands on its leg ends.
LEG_PITCH = {1: ((40, 75),), 2: ((-10, 35), (55, 90)), 3: ((-15, 20), (30, 60), (65, 95))}
ARM_PITCH = (-45, -10)  # an unpaired limb may be an arm that points up
PAIR_AZIMUTHS = ((25.0, 70.0), (110.0, 155.0), (75.0, 105.0))  # front, back, middle pair (degrees from +x)
CLEARANCE = 0.005  # minimum gap between bodies that are not parent and child, at the reset pose
MAX_DRAWS = 1000


def _capsule_mass(length: float, r: float) -> float:
  return round(LIMB_DENSITY * (math.pi * r * r * length + 4 / 3 * math.pi * r ** 3), 4)


def _axis_angle(axis, deg: float) -> tuple:
  half = math.radians(deg) / 2
  return (math.cos(half), *(math.sin(half) * a for a in axis))


def _inverse(q) -> tuple:
  return (q[0], -q[1], -q[2], -q[3])


def _round(v, ndigits: int = 9) -> list:
  return [0.0 if abs(x) < 1e-12 else round(x, ndigits) for x in v]


def _draw_limb(rng: random.Random, segments: int, arm: bool) -> dict:
  """One limb's parameters (shared by both sides of a pair)."""
  pitches = [rng.uniform(*ARM_PITCH)] * segments if arm else [rng.uniform(*p) for p in LEG_PITCH[segments]]
  hinges = []
  for k in range(segments):
    n = rng.choice((1, 2)) if k == 0 else rng.choice((1, 1, 1, 2))
    axes = rng.sample(("y", "z"), n) if n == 2 else [rng.choice(("y", "z") if k == 0 else ("y", "y", "z"))]
    hinges.append([(a, rng.choice(RANGES if i == 0 else SECOND_HINGE_RANGES), rng.choice(GEARS))
                   for i, a in enumerate(axes)])
  return {"pitches": [round(p, 1) for p in pitches],
          "lengths": [rng.choice(SEGMENT_LENGTHS) for _ in range(segments)], "hinges": hinges}


def _limb_bodies(limb: dict, azimuth: float, mirror: bool, first_index: int) -> list[dict]:
  """The limb's bodies. Each body's frame is chosen so that at mid-limits its segment has the drawn world pitch:
  quat = D M^-1, with D the wanted rotation in the parent's frame and M the hinges' mid-limit rotation."""
  bodies = []
  parent, prev_pitch = "torso_0", 0.0
  for k, (pitch, length, hinges) in enumerate(zip(limb["pitches"], limb["lengths"], limb["hinges"], strict=True)):
    index = first_index + k
    if k == 0:
      yaw = _axis_angle((0.0, 0.0, 1.0), azimuth)
      want = quat_mul(yaw, _axis_angle((0.0, 1.0, 0.0), pitch))
      pos = rotate((TORSO_RADIUS, 0.0, 0.0), want)  # on the torso surface, along the limb
    else:
      want = _axis_angle((0.0, 1.0, 0.0), pitch - prev_pitch)
      pos = (limb["lengths"][k - 1], 0.0, 0.0)  # the end of the parent segment
    joints, mid = [], (1.0, 0.0, 0.0, 0.0)
    for axis_name, rng_deg, gear in hinges:
      # A mirrored swing axis flips, so a pair's swings mirror each other too.
      axis = {"y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, -1.0 if mirror else 1.0]}[axis_name]
      joints.append({"name": f"limb{axis_name}_{index}", "axis": axis, "range": list(rng_deg), "gear": gear})
      mid = quat_mul(mid, _axis_angle(axis, 0.5 * (rng_deg[0] + rng_deg[1])))
    leaf = k == len(limb["pitches"]) - 1
    bodies.append({
        "name": f"limb_{index}", "parent": parent, "pos": _round(pos), "quat": _round(quat_mul(want, _inverse(mid))),
        "geom": {"type": "capsule", "from": [0, 0, 0], "to": [length, 0, 0], "radius": LIMB_RADIUS},
        "mass": _capsule_mass(length, LIMB_RADIUS), "joints": joints,
        "limb_type": ("thigh", "shin", "foot")[k], "end_effector": leaf})
    parent, prev_pitch = f"limb_{index}", pitch
  return bodies


def _draw(rng: random.Random) -> dict:
  groups = []  # (limb, azimuth, paired)
  for pair in range(rng.choice((1, 2, 2, 3))):
    groups.append((_draw_limb(rng, rng.choice((1, 1, 2, 2, 3)), arm=False), rng.uniform(*PAIR_AZIMUTHS[pair]), True))
  if rng.random() < 0.5:
    arm = rng.random() < 0.3
    groups.append((_draw_limb(rng, 1 if arm else rng.choice((1, 2)), arm), rng.choice((0.0, 180.0)), False))
  bodies = [{"name": "torso_0", "parent": None, "pos": [0, 0, 0], "geom": {"type": "sphere", "radius": TORSO_RADIUS},
             "mass": TORSO_MASS, "limb_type": "torso"}]
  for limb, azimuth, paired in groups:
    for side in ((1.0, -1.0) if paired else (1.0,)):
      bodies += _limb_bodies(limb, round(side * azimuth, 1), side < 0, first_index=len(bodies) - 1)
  return {"bodies": bodies}


def _segments(morph) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
  """{body: (a, b, radius)}: each geom as a world segment (a sphere is a point) at the reset pose."""
  poses = forward_positions(morph)
  out = {}
  for b in morph.bodies:
    pos, quat = poses[b.name]
    centre = pos + np.asarray(rotate(b.geom.pos, quat))
    if b.geom.type == "capsule":
      half = np.asarray(rotate(rotate((b.geom.size[1], 0.0, 0.0), b.geom.quat), quat))
      out[b.name] = (centre - half, centre + half, b.geom.size[0])
    else:
      out[b.name] = (centre, centre, b.geom.size[0])
  return out


def segment_distance(a0, a1, b0, b1) -> float:
  """Minimum distance between the segments [a0, a1] and [b0, b1] (3-vectors), by sampling one and projecting."""
  t = np.linspace(0.0, 1.0, 65)[:, None]
  pts = a0 + t * (a1 - a0)
  d = b1 - b0
  s = np.clip(((pts - b0) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)[:, None]
  return float(np.min(np.linalg.norm(pts - (b0 + s * d), axis=1)))


def overlapping_pairs(morph, clearance: float = CLEARANCE) -> list[tuple[str, str]]:
  """Pairs of bodies, other than a parent and its child, whose geoms come closer than `clearance` at reset."""
  segs = _segments(morph)
  related = {frozenset((b.name, b.parent)) for b in morph.bodies if b.parent is not None}
  out = []
  for x, y in itertools.combinations(morph.bodies, 2):
    if frozenset((x.name, y.name)) in related:
      continue
    (a0, a1, ra), (b0, b1, rb) = segs[x.name], segs[y.name]
    if segment_distance(a0, a1, b0, b1) < ra + rb + clearance:
      out.append((x.name, y.name))
  return out


def generate(seed: int) -> dict:
  """A JSON-ready unimal description, the first draw of `random.Random(seed)` that is in range and sane."""
  rng = random.Random(seed)
  for _ in range(MAX_DRAWS):
    desc = _draw(rng)
    morph = from_dict(desc, f"unimal_gen_{seed}")
    if (NUM_BODIES[0] <= len(morph.bodies) <= NUM_BODIES[1] and NUM_DOFS[0] <= morph.num_dofs <= NUM_DOFS[1]
        and len(morph.end_effectors()) >= MIN_END_EFFECTORS and not overlapping_pairs(morph)):
      return desc
  raise RuntimeError(f"seed {seed}: no sane unimal in {MAX_DRAWS} draws")


def parse_seeds(text: str) -> list[int]:
  """'0-71' -> [0, ..., 71] (inclusive); '3,5' -> [3, 5]."""
  if "-" in text:
    lo, hi = map(int, text.split("-"))
    return list(range(lo, hi + 1))
  return [int(s) for s in text.split(",")]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description="Write seeded unimal descriptions to morphology/components/unimals/.")
  parser.add_argument("--seeds", default="0-71", help="inclusive range a-b or a comma list")
  parser.add_argument("--out", default=str(UNIMAL_DIR))
  args = parser.parse_args(argv)
  seeds = parse_seeds(args.seeds)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  for seed in seeds:
    desc = generate(seed)
    name = f"unimal_gen_{seed}"
    morph = from_dict(desc, name)
    (out / f"{name}.json").write_text(dumps(desc))
    print(f"{name}: {len(morph.bodies)} bodies, {morph.num_dofs} DOF, "
          f"{max(len(b.joints) for b in morph.bodies)} max hinges per body")


if __name__ == "__main__":
  main()
