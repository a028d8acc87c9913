"""Converts unimal files a user has (MetaMorph MJCF, or the reference's brax-v1 text protos) into our JSON format.

Neither set is ours to ship, so this reads them from a local path and writes `<id>.json` files (the ID is the
source file's stem) to a user directory, which `unimal.register_unimal_dir` (or `MXT_UNIMAL_DIRS`) adds to the
registry:

    python -m morphology.components.unimal_import --src=~/metamorph/unimals_100/train/xml --dst=workdirs/unimals
    python -m morphology.components.unimal_import --src=~/mxt_bench/.../unimal_configs --dst=workdirs/unimals

    from morphology.components.unimal import register_unimal_dir
    register_unimal_dir("workdirs/unimals")      # then envs.make("unimal_reach_<id>") works

Sources, by file suffix (a directory is converted file by file, in sorted order, all checked before any write):
- `.xml`, MetaMorph MJCF: compiled with MuJoCo, so default classes, `fromto`, Euler or axis-angle frames and
  degree/radian settings resolve exactly as MetaMorph's simulator read them. The agent is the worldbody child
  `torso_0` (`torso/0`; or the only child); `/` in names becomes `_`. Hinge axes, anchors and ranges, motor gears,
  geoms, and masses (MuJoCo's, from geom densities) are kept. A hinge without a motor is an error.
- `.txt` / `.pbtxt`, brax-v1 `Config` text protos (mxt_reference 1.1): bodies with one sphere or capsule
  collider, joints (a DOF per `angle_limit`; an omitted min or max is 0), torque actuators (`strength` = gear).
  Two joints on one child (17 of the reference's 72 files) become one body with both joints' hinges; they
  must share the parent, the offsets and the reference rotation.
Both: end effectors are the leaves, in depth-first order (the reference took `list(set(...))`, quirk 4); every
body gets v1's unit inertia. Departures from the source, on purpose:
- empty ranges (v1 `angle_limit {}`, [0, 0]; quirk 19) are locked DOFs: they get no hinge and no action, so the
  action count can be lower than v1's (which fed them actions that v1 then zeroed);
- per-joint damping and stiffness are not kept: every env uses `mjcf.MjcfOptions.joint_damping`;
- actuators follow the hinges' depth-first order (MuJoCo's), not the source's listing order.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import re
from typing import Iterable

import numpy as np

from morphology.components.description import MorphologyError, euler_to_quat, rotate, v1_child
from morphology.components.unimal import ID_PATTERN, dumps, from_dict

MJCF_SUFFIXES = (".xml",)
PROTO_SUFFIXES = (".txt", ".pbtxt")
UNIT_INERTIA = [1.0, 1.0, 1.0]  # v1 put inertia {1,1,1} on every body (mxt_reference 1.1)
ROOT_NAMES = ("torso_0", "torso/0")


def _r(v: Iterable[float]) -> list[float]:
  # Round away float noise (MuJoCo's normalised quaternions, 1e-17 residues) so files are readable and stable.
  return [0.0 if abs(x) < 1e-12 else round(float(x), 9) for x in v]


def _capsule(a: np.ndarray, b: np.ndarray, radius: float, anchor: np.ndarray) -> dict:
  """A capsule geom entry whose `to` end (the tip of an end effector) is the end farther from the joint anchor."""
  if np.linalg.norm(a - anchor) > np.linalg.norm(b - anchor):
    a, b = b, a
  return {"type": "capsule", "from": _r(a), "to": _r(b), "radius": float(radius)}


def _depth_first(root: str, children: dict[str, list[str]]) -> list[str]:
  out, stack = [], [root]
  while stack:
    name = stack.pop()
    out.append(name)
    stack.extend(reversed(children.get(name, [])))
  return out


def _with_end_effectors(bodies: list[dict]) -> dict:
  parents = {b["parent"] for b in bodies}
  for b in bodies:
    b["end_effector"] = b["parent"] is not None and b["name"] not in parents
  return {"bodies": bodies}


# ---- brax-v1 text protos ----

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n\s*)*("(?:[^"\\]|\\.)*"|[{}:]|[^\s{}:"#]+)')


def parse_text_proto(text: str) -> dict[str, list]:
  """Protobuf text format -> {field: [values]} (every field repeated; messages are nested dicts, numbers floats,
  enums/identifiers strings). Only what brax-v1 configs use: no lists `[..]`, no extensions."""
  tokens = _TOKEN.findall(text)
  pos = 0

  def message(end: str | None) -> dict[str, list]:
    nonlocal pos
    out: dict[str, list] = {}
    while pos < len(tokens) and tokens[pos] != end:
      name = tokens[pos]
      pos += 1
      if pos < len(tokens) and tokens[pos] == ":":
        pos += 1
      if pos >= len(tokens):
        raise ValueError(f"text proto: field {name!r} has no value")
      if tokens[pos] == "{":
        pos += 1
        value = message("}")
        pos += 1
      else:
        value = _scalar(tokens[pos])
        pos += 1
      out.setdefault(name, []).append(value)
    if end is not None and pos >= len(tokens):
      raise ValueError("text proto: unbalanced '{'")
    return out

  return message(None)


def _scalar(token: str):
  if token.startswith('"'):
    return token[1:-1].encode().decode("unicode_escape")
  try:
    return float(token)
  except ValueError:
    return token  # an enum or bool identifier


def _one(msg: dict, field: str, default=None):
  values = msg.get(field)
  return values[0] if values else default


def _vec3(msg: dict | None) -> tuple[float, float, float]:
  msg = msg or {}
  return tuple(float(_one(msg, k, 0.0)) for k in "xyz")


def _v1_geom(body: dict, anchor: np.ndarray) -> dict:
  name = _one(body, "name")
  colliders = body.get("colliders", [])
  if len(colliders) != 1:
    raise MorphologyError(f"body {name!r}: needs exactly one collider, has {len(colliders)}")
  c = colliders[0]
  pos = np.asarray(_vec3(_one(c, "position")))
  if "sphere" in c:
    return {"type": "sphere", "radius": float(_one(_one(c, "sphere"), "radius")), "pos": _r(pos)}
  if "capsule" in c:
    cap = _one(c, "capsule")
    radius, length = float(_one(cap, "radius")), float(_one(cap, "length"))
    # A v1 capsule lies along its collider's local z; `length` includes both caps.
    axis = np.asarray(rotate((0.0, 0.0, 1.0), euler_to_quat(_vec3(_one(c, "rotation")))))
    half = (length / 2 - radius) * axis
    return _capsule(pos - half, pos + half, radius, anchor)
  raise MorphologyError(f"body {name!r}: only sphere and capsule colliders convert, got {sorted(c)}")


def from_v1_proto(text: str) -> dict:
  """A brax-v1 `Config` text proto (the reference's `unimal_configs/*.txt`) -> our JSON description (a dict)."""
  config = parse_text_proto(text)
  bodies = {_one(b, "name"): b for b in config.get("bodies", [])}
  strength = {_one(a, "joint"): float(_one(a, "strength", 0.0)) for a in config.get("actuators", [])}
  joints_of: dict[str, list[dict]] = {}
  children: dict[str, list[str]] = {}
  for j in config.get("joints", []):
    child, parent = _one(j, "child"), _one(j, "parent")
    for end in (child, parent):
      if end not in bodies:
        raise MorphologyError(f"joint {_one(j, 'name')!r}: no body {end!r}")
    if child not in joints_of:
      children.setdefault(parent, []).append(child)
    joints_of.setdefault(child, []).append(j)
  roots = [n for n in bodies if n not in joints_of]
  if len(roots) != 1:
    raise MorphologyError(f"v1 config: expected one root body (no joint's child), found {roots}")
  listing = list(bodies)
  for kids in children.values():
    kids.sort(key=listing.index)
  out = []
  for name in _depth_first(roots[0], children):
    body = bodies[name]
    entry = {"name": name, "parent": None, "pos": [0.0, 0.0, 0.0]}
    anchor = np.zeros(3)
    if name in joints_of:
      entry.update(_v1_joints(name, joints_of[name], strength))
      anchor = np.asarray(entry["joint_pos"])
    entry.update(geom=_v1_geom(body, anchor), mass=float(_one(body, "mass")),
                 inertia=list(_vec3(_one(body, "inertia"))) if "inertia" in body else UNIT_INERTIA,
                 limb_type="torso" if entry["parent"] is None else "limb")
    out.append(entry)
  return _with_end_effectors(out)


def _v1_joints(child: str, joints: list[dict], strength: dict[str, float]) -> dict:
  """Placement and hinges of `child` from its v1 joints (one, or two that share the attachment)."""
  placements = set()
  hinges = []
  for j in joints:
    name = _one(j, "name")
    limits = [(float(_one(a, "min", 0.0)), float(_one(a, "max", 0.0))) for a in j.get("angle_limit", [])]
    body = v1_child(child, _one(j, "parent"), geom=None, mass=1.0, joint_name=name,
                    parent_offset=_vec3(_one(j, "parent_offset")), child_offset=_vec3(_one(j, "child_offset")),
                    rotation=_vec3(_one(j, "rotation")), reference_rotation=_vec3(_one(j, "reference_rotation")),
                    limits=tuple(limits), strength=strength.get(name, 0.0))
    placements.add((body.parent, body.pos, body.quat, _vec3(_one(j, "child_offset"))))
    live = [h for h in body.joints if h.range[0] != h.range[1]]  # [0, 0] is a locked DOF (quirk 19)
    if live and name not in strength:
      raise MorphologyError(f"body {child!r}: joint {name!r} has no actuator")
    hinges += [{"name": h.name if len(live) > 1 else name, "axis": _r(h.axis), "range": list(h.range),
                "gear": h.gear} for h in live]
  if len(placements) != 1:
    raise MorphologyError(f"body {child!r}: its joints {[_one(j, 'name') for j in joints]} disagree on the parent, "
                          "offsets or reference rotation")
  parent, pos, quat, anchor = placements.pop()
  return {"parent": parent, "pos": _r(pos), "quat": _r(quat), "joint_pos": _r(anchor), "joints": hinges}


# ---- MetaMorph MJCF ----


def from_mjcf(xml: str | None = None, path: str | pathlib.Path | None = None) -> dict:
  """A MetaMorph unimal MJCF (a string, or a file so relative includes resolve) -> our JSON description."""
  import mujoco  # only the MJCF importer needs it

  if (xml is None) == (path is None):
    raise ValueError("from_mjcf: pass exactly one of xml and path")
  model = mujoco.MjModel.from_xml_path(str(path)) if path is not None else mujoco.MjModel.from_xml_string(xml)
  name = lambda kind, i: mujoco.mj_id2name(model, kind, i) or f"{kind.name.lower()}_{i}"
  body_name = lambda i: name(mujoco.mjtObj.mjOBJ_BODY, i).replace("/", "_")
  top = [i for i in range(1, model.nbody) if model.body_parentid[i] == 0]
  named = [i for i in top if mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) in ROOT_NAMES]
  if len(named) != 1 and len(top) != 1:
    raise MorphologyError(f"MJCF: cannot tell the agent's root among the worldbody's bodies "
                          f"{[body_name(i) for i in top]}; name it torso_0")
  root = (named or top)[0]
  gear = {int(model.actuator_trnid[a, 0]): float(model.actuator_gear[a, 0]) for a in range(model.nu)
          if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT}
  subtree, out = {root}, []
  for i in range(root, model.nbody):  # MuJoCo numbers bodies depth-first
    if i != root and model.body_parentid[i] not in subtree:
      continue
    subtree.add(i)
    bname = body_name(i)
    hinges, anchors = [], set()
    for j in range(model.body_jntadr[i], model.body_jntadr[i] + model.body_jntnum[i]):
      jname = name(mujoco.mjtObj.mjOBJ_JOINT, j).replace("/", "_")
      if i == root:  # the root's free joint is ours to add; any other root joint has no place in the format
        if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE:
          raise MorphologyError(f"body {bname!r}: the root may only have a free joint, not {jname!r}")
        continue
      if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
        raise MorphologyError(f"body {bname!r}: joint {jname!r} is not a hinge")
      if j not in gear:
        raise MorphologyError(f"body {bname!r}: joint {jname!r} has no motor")
      lo, hi = (math.degrees(x) for x in model.jnt_range[j]) if model.jnt_limited[j] else (-180.0, 180.0)
      hinges.append({"name": jname, "axis": _r(model.jnt_axis[j]), "range": _r((lo, hi)), "gear": gear[j]})
      anchors.add(tuple(_r(model.jnt_pos[j])))
    if len(anchors) > 1:
      raise MorphologyError(f"body {bname!r}: its hinges sit at different points {sorted(anchors)}")
    anchor = np.asarray(anchors.pop() if anchors else (0.0, 0.0, 0.0))
    entry = {"name": bname, "parent": None if i == root else body_name(model.body_parentid[i]),
             "pos": [0.0, 0.0, 0.0] if i == root else _r(model.body_pos[i]), "quat": _r(model.body_quat[i]),
             "geom": _mjcf_geom(model, i, bname, anchor), "mass": float(model.body_mass[i]), "inertia": UNIT_INERTIA,
             "limb_type": "torso" if i == root else "limb"}
    if hinges:
      entry.update(joint_pos=_r(anchor), joints=hinges)
    if i == root:
      entry["quat"] = [1.0, 0.0, 0.0, 0.0]  # the free root spawns upright, like every family's root
    out.append(entry)
  return _with_end_effectors(out)


def _mjcf_geom(model, body: int, bname: str, anchor: np.ndarray) -> dict:
  import mujoco

  if model.body_geomnum[body] != 1:
    raise MorphologyError(f"body {bname!r}: needs exactly one geom, has {model.body_geomnum[body]}")
  g = model.body_geomadr[body]
  pos, size, kind = model.geom_pos[g], model.geom_size[g], model.geom_type[g]
  if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
    return {"type": "sphere", "radius": float(size[0]), "pos": _r(pos)}
  if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:  # along the geom's z, size = (radius, half length)
    half = size[1] * np.asarray(rotate((0.0, 0.0, 1.0), tuple(model.geom_quat[g])))
    return _capsule(pos - half, pos + half, size[0], anchor)
  if kind == mujoco.mjtGeom.mjGEOM_BOX and np.allclose(np.abs(model.geom_quat[g]), (1.0, 0.0, 0.0, 0.0)):
    return {"type": "box", "half_size": _r(size), "pos": _r(pos)}
  raise MorphologyError(f"body {bname!r}: geom type {mujoco.mjtGeom(kind).name} (or a rotated box) does not convert")


# ---- files ----

READERS = {**{s: lambda p: from_mjcf(path=p) for s in MJCF_SUFFIXES},
           **{s: lambda p: from_v1_proto(p.read_text()) for s in PROTO_SUFFIXES}}


def source_files(src: str | pathlib.Path) -> list[pathlib.Path]:
  """The convertible files at `src` (a file, or a directory's files in sorted order)."""
  src = pathlib.Path(src).expanduser()
  if not src.exists():
    raise FileNotFoundError(f"unimal source {str(src)!r} does not exist")
  files = sorted(p for p in src.iterdir() if p.suffix in READERS) if src.is_dir() else [src]
  if not files or any(p.suffix not in READERS for p in files):
    raise ValueError(f"{src}: no unimal files to convert (suffixes {sorted(READERS)})")
  return files


def convert(src: str | pathlib.Path, dst: str | pathlib.Path) -> dict[str, dict]:
  """Converts every unimal at `src` and writes `dst/<id>.json`; returns {id: description}. Everything is read and
  validated first, so a bad file leaves `dst` untouched."""
  descs = {}
  for path in source_files(src):
    if not ID_PATTERN.fullmatch(path.stem):
      raise ValueError(f"{path}: unimal id {path.stem!r} must match {ID_PATTERN.pattern} (it ends env names)")
    try:
      desc = READERS[path.suffix](path)
      from_dict(desc, path.stem)
    except (MorphologyError, ValueError, KeyError) as e:
      raise MorphologyError(f"{path}: {e}") from None
    descs[path.stem] = desc
  dst = pathlib.Path(dst).expanduser()
  dst.mkdir(parents=True, exist_ok=True)
  for uid, desc in descs.items():
    (dst / f"{uid}.json").write_text(dumps(desc))
  return descs


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description="Convert MetaMorph unimal MJCF / brax-v1 unimal protos to our JSON.")
  parser.add_argument("--src", required=True, help="a file or a directory of .xml / .txt / .pbtxt unimal files")
  parser.add_argument("--dst", required=True, help="the output directory (register it with register_unimal_dir)")
  args = parser.parse_args(argv)
  for uid, desc in convert(args.src, args.dst).items():
    morph = from_dict(desc, uid)
    print(f"{uid}: {len(morph.bodies)} bodies, {morph.num_dofs} DOF, {len(morph.end_effectors())} end effectors")
  print(f"wrote {args.dst}; use it with morphology.components.unimal.register_unimal_dir({args.dst!r})")


if __name__ == "__main__":
  main()
