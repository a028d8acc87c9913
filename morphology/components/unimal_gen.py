"""A small seeded generator of unimal descriptions (the JSON format of `unimal.py`).

MetaMorph-like: a sphere torso with 2-3 mirrored limb pairs, each limb with an optional lower segment;
hips have 1 or 2 hinges (universal joint), knees 1. Writes `unimals/unimal_gen_<seed>.json`:
`python -m morphology.components.unimal_gen --seeds=0-5`.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import random

from morphology.components.description import quat_mul
from morphology.components.unimal import UNIMAL_DIR, from_dict

TORSO_RADIUS = 0.1
LIMB_RADIUS = 0.05
TORSO_MASS = 3.0      # heavier than any limb, so the torso stays the base of the tree dynamically too
LIMB_DENSITY = 500.0  # kg/m^3: limb masses of 1.0-1.6 kg, like the v1 ant's 1 kg segments
AZIMUTHS = ((20.0, 80.0), (100.0, 160.0), (60.0, 120.0))  # front pair, back pair, optional middle pair (deg)
GEARS = (150.0, 200.0, 250.0, 300.0)
HIP_RANGES = ((-30.0, 30.0), (-45.0, 45.0), (-30.0, 60.0), (-60.0, 30.0))
KNEE_RANGES = ((0.0, 60.0), (-30.0, 60.0), (30.0, 90.0))


def _capsule_mass(length: float, r: float) -> float:
  return round(LIMB_DENSITY * (math.pi * r * r * length + 4 / 3 * math.pi * r ** 3), 4)


def generate(seed: int) -> dict:
  """A JSON-ready unimal description: 2-3 mirrored limb pairs on the torso, each limb with an optional
  lower segment; hips have 1 or 2 hinges (universal), knees 1."""
  rng = random.Random(seed)
  bodies = [{"name": "torso_0", "parent": None, "pos": [0, 0, 0], "geom": {"type": "sphere", "radius": TORSO_RADIUS},
             "mass": TORSO_MASS, "limb_type": "torso"}]
  k = 0
  for pair in range(rng.randint(2, 3)):
    azimuth = rng.uniform(*AZIMUTHS[pair])
    elevation = rng.choice((0.0, 20.0, 35.0, 50.0))  # downward pitch of the upper limb
    upper = rng.choice((0.2, 0.25, 0.3))
    lower = rng.choice((0.0, 0.25, 0.3, 0.35))
    knee_pitch = rng.choice((30.0, 45.0, 60.0))
    hip_dofs = rng.choice((1, 2))
    hip_range, knee_range, gear = rng.choice(HIP_RANGES), rng.choice(KNEE_RANGES), rng.choice(GEARS)
    for side in (1.0, -1.0):
      az = math.radians(side * azimuth)
      # Yaw to the azimuth, then pitch down about the new y (z-then-y; v1 Euler order is x-y-z, so a quat).
      yaw = (math.cos(az / 2), 0.0, 0.0, math.sin(az / 2))
      pitch = (math.cos(math.radians(elevation) / 2), 0.0, math.sin(math.radians(elevation) / 2), 0.0)
      up = f"limb_{k}"
      hip_axes = (("z", [0, 0, 1]), ("y", [0, 1, 0]))[:hip_dofs]
      bodies.append({
          "name": up, "parent": "torso_0",
          "pos": [round(TORSO_RADIUS * math.cos(az), 9), round(TORSO_RADIUS * math.sin(az), 9), 0.0],
          "quat": [round(x, 9) for x in quat_mul(yaw, pitch)],
          "geom": {"type": "capsule", "from": [0, 0, 0], "to": [upper, 0, 0], "radius": LIMB_RADIUS},
          "mass": _capsule_mass(upper, LIMB_RADIUS),
          "joints": [{"name": f"limb{axis_name}_{k}", "axis": axis, "range": list(hip_range), "gear": gear}
                     for axis_name, axis in hip_axes],
          "limb_type": "thigh", "end_effector": lower == 0.0})
      k += 1
      if lower:
        bodies.append({
            "name": f"limb_{k}", "parent": up, "pos": [upper, 0, 0], "euler": [0.0, knee_pitch, 0.0],
            "geom": {"type": "capsule", "from": [0, 0, 0], "to": [lower, 0, 0], "radius": LIMB_RADIUS},
            "mass": _capsule_mass(lower, LIMB_RADIUS),
            "joints": [{"name": f"limby_{k}", "axis": [0, 1, 0], "range": list(knee_range), "gear": gear}],
            "limb_type": "shin", "end_effector": True})
        k += 1
  return {"bodies": bodies}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description="Write seeded unimal descriptions to morphology/components/unimals/.")
  parser.add_argument("--seeds", default="0-5", help="inclusive range a-b or a comma list")
  parser.add_argument("--out", default=str(UNIMAL_DIR))
  args = parser.parse_args(argv)
  if "-" in args.seeds:
    lo, hi = map(int, args.seeds.split("-"))
    seeds = range(lo, hi + 1)
  else:
    seeds = [int(s) for s in args.seeds.split(",")]
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  for seed in seeds:
    desc = generate(seed)
    name = f"unimal_gen_{seed}"
    morph = from_dict(desc, name)
    rows = ",\n".join("  " + json.dumps(b) for b in desc["bodies"])
    (out / f"{name}.json").write_text('{"bodies": [\n' + rows + "\n]}\n")
    print(f"{name}: {len(morph.bodies)} bodies, {morph.num_dofs} DOF")


if __name__ == "__main__":
  main()
