"""Unimal-style morphologies from our own JSON description format, and where their files live.

The reference's 72 MetaMorph/v1 unimal files are not ours to ship, so `unimals/*.json` holds 72 of our own
(`unimal_gen_<seed>`, written by `python -m morphology.components.unimal_gen --seeds=0-71`). Files converted
from MetaMorph MJCF or the reference's v1 protos (`python -m morphology.components.unimal_import`) go in a
user directory, which joins the registry through `register_unimal_dir(path)` or the environment variable
`MXT_UNIMAL_DIRS` (directories separated by `os.pathsep`, read when `unimal_ids()` first runs); the default
registry is the shipped directory alone. The unimal ID is the file stem, unique over all directories.

    register_unimal_dir("workdirs/metamorph_unimals")   # before envs are made: adds unimal_reach_<id>, ...
    morph = make_unimal("5506-0-13-17-12-26-41")

Format (lengths in metres, angles in degrees, all vectors in the body frame):

    {"bodies": [                                   # depth-first: the root first, each parent before
      {"name": "torso_0", "parent": null,          #   its children, a child's subtree contiguous
       "pos": [0, 0, 0],                           # body origin in the parent frame (root: ignored)
       "quat": [1, 0, 0, 0],                       # optional, wxyz, body orientation in the parent frame
       "euler": [0, 0, 0],                         # optional instead of quat: v1 x-y'-z'' intrinsic degrees
       "geom": {"type": "sphere", "radius": 0.1},  # or {"type": "capsule", "from": [..], "to": [..],
                                                   #     "radius": r}  (a segment; caps extend past it)
                                                   # or {"type": "box", "half_size": [hx, hy, hz], "pos": [..]}
       "mass": 3.0, "inertia": [1, 1, 1],          # inertia optional (v1: unit diagonal)
       "joint_pos": [0, 0, 0],                     # optional: the one anchor all this body's hinges share
       "joints": [{"name": "limbx_1", "axis": [0, 1, 0], "range": [-30, 60], "gear": 200}],
                                                   # 0, 1 or 2+ hinges (2 = a universal joint)
       "limb_type": "limb",                        # optional tag
       "end_effector": true}                       # optional; end effectors are ordered by listing
    ]}

A capsule's `tip` (the end-effector point) is its `to` end plus the cap radius. Everything else
(motors, free root, spawn height, contacts) is the same as for the procedural families.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import sys

from gdt.core.registry import unknown_name_message
from morphology.components.description import (Body, Geom, Hinge, Morphology, MorphologyError,
                                               euler_to_quat)
from morphology.components.families import FAMILIES, Family

UNIMAL_DIR = pathlib.Path(__file__).parent / "unimals"
DIRS_ENV_VAR = "MXT_UNIMAL_DIRS"
# IDs end env names (`unimal_reach_<id>`), so they must be what the env-name grammar reads as one token.
ID_PATTERN = re.compile(r"\w[\w.-]*")
_user_dirs: list[pathlib.Path] | None = None  # None until the environment variable has been read


def _dirs() -> list[pathlib.Path]:
  global _user_dirs
  if _user_dirs is None:
    _user_dirs = []
    for d in filter(None, os.environ.get(DIRS_ENV_VAR, "").split(os.pathsep)):
      _add_dir(pathlib.Path(d))
  return [UNIMAL_DIR, *_user_dirs]


def _files() -> dict[str, pathlib.Path]:
  """{unimal id: its JSON file} over every registered directory."""
  out: dict[str, pathlib.Path] = {}
  for d in [UNIMAL_DIR, *(_user_dirs or [])]:
    for p in sorted(d.glob("*.json")):
      out[p.stem] = p
  return out


def _add_dir(path: pathlib.Path) -> None:
  path = path.resolve()
  if not path.is_dir():
    raise FileNotFoundError(f"unimal directory {str(path)!r} does not exist")
  if path in [UNIMAL_DIR.resolve(), *_user_dirs]:
    return
  known = _files()
  for p in sorted(path.glob("*.json")):
    if not ID_PATTERN.fullmatch(p.stem):
      raise ValueError(f"{p}: unimal id {p.stem!r} must match {ID_PATTERN.pattern} (it ends env names)")
    if p.stem in known:
      raise ValueError(f"{p}: unimal id {p.stem!r} is already registered from {known[p.stem]}")
  _user_dirs.append(path)


def register_unimal_dir(path: str | os.PathLike) -> list[str]:
  """Adds a directory of unimal JSON files (e.g. `unimal_import`'s output) to the registry; returns its IDs.

  Raises on a missing directory, an ID clash with an already registered file, or an ID the env-name grammar
  cannot read. The env-name registry (`morphology.envs.registered_names`) sees the new IDs at once.
  """
  _dirs()
  _add_dir(pathlib.Path(path))
  envs = sys.modules.get("morphology.envs")
  if envs is not None:  # its name set is cached; drop it so the new env names are registered
    envs._registered.cache_clear()
  return sorted(p.stem for p in pathlib.Path(path).resolve().glob("*.json"))


def unimal_ids() -> list[str]:
  """Every registered unimal ID, sorted (by default the 72 shipped `unimal_gen_<seed>`)."""
  _dirs()
  return sorted(_files())


def _capsule_geom(spec: dict, body: str) -> tuple[Geom, tuple]:
  a, b = spec["from"], spec["to"]
  d = [bi - ai for ai, bi in zip(a, b, strict=True)]
  length = math.sqrt(sum(x * x for x in d))
  if length == 0:
    raise MorphologyError(f"body {body!r}: zero-length limb (capsule from == to)")
  u = [x / length for x in d]
  # Shortest rotation taking +x onto u (geoms are capsules along local x).
  w, axis = 1.0 + u[0], (0.0, -u[2], u[1])
  if w < 1e-9:  # u == -x: any half-turn about an axis perpendicular to x
    quat = (0.0, 0.0, 0.0, 1.0)
  else:
    n = math.sqrt(w * w + sum(x * x for x in axis))
    quat = (w / n, *(x / n for x in axis))
  r = spec["radius"]
  geom = Geom("capsule", (r, length / 2), pos=tuple((ai + bi) / 2 for ai, bi in zip(a, b, strict=True)), quat=quat)
  tip = tuple(bi + r * ui for bi, ui in zip(b, u, strict=True))
  return geom, tip


def _geom(spec: dict, body: str) -> tuple[Geom, tuple | None]:
  kind = spec.get("type")
  if kind == "capsule":
    return _capsule_geom(spec, body)
  if kind == "sphere":
    return Geom("sphere", (spec["radius"],), pos=tuple(spec.get("pos", (0.0, 0.0, 0.0)))), None
  if kind == "box":
    return Geom("box", tuple(spec["half_size"]), pos=tuple(spec.get("pos", (0.0, 0.0, 0.0)))), None
  raise MorphologyError(f"body {body!r}: unknown geom type {kind!r}")


def from_dict(desc: dict, name: str) -> Morphology:
  """A validated `Morphology` (family "unimal") from the JSON structure in the module docstring."""
  bodies = []
  for i, spec in enumerate(desc["bodies"]):
    bname = spec.get("name", f"#{i}")
    try:
      bodies.append(_body(spec, bname, end_effector_order=sum(b.end_effector_order is not None for b in bodies)))
    except KeyError as e:
      raise MorphologyError(f"body {bname!r}: missing field {e}") from None
  return Morphology(name=name, family="unimal", bodies=tuple(bodies), params={"unimal_id": name}).validate()


def _body(spec: dict, name: str, end_effector_order: int) -> Body:
  geom, tip = _geom(spec["geom"], name)
  quat = tuple(spec["quat"]) if "quat" in spec else euler_to_quat(tuple(spec.get("euler", (0.0, 0.0, 0.0))))
  anchor = tuple(spec.get("joint_pos", (0.0, 0.0, 0.0)))
  joints = tuple(Hinge(name=j["name"], axis=tuple(j["axis"]), range=tuple(j["range"]), gear=float(j["gear"]),
                       pos=anchor) for j in spec.get("joints", ()))
  is_ee = bool(spec.get("end_effector", False))
  return Body(name=spec["name"], parent=spec["parent"], pos=tuple(spec.get("pos", (0.0, 0.0, 0.0))), quat=quat,
              geom=geom, mass=float(spec["mass"]), inertia=tuple(spec.get("inertia", (1.0, 1.0, 1.0))),
              joints=joints, limb_type=spec.get("limb_type", "torso" if spec["parent"] is None else "limb"),
              tip=tip if is_ee else None, end_effector_order=end_effector_order if is_ee else None)


def dumps(desc: dict) -> str:
  """A description's file text: one body per line, so diffs between versions of a file stay readable."""
  rows = ",\n".join("  " + json.dumps(b) for b in desc["bodies"])
  return '{"bodies": [\n' + rows + "\n]}\n"


def make_unimal(unimal_id: str) -> Morphology:
  _dirs()
  path = _files().get(unimal_id)
  if path is None:
    raise KeyError(unknown_name_message("unimal", unimal_id, unimal_ids()))
  return from_dict(json.loads(path.read_text()), unimal_id)


FAMILIES.register("unimal", Family(make_unimal, lambda: [{"unimal_id": i} for i in unimal_ids()]))
