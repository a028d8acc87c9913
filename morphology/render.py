"""Headless rendering of morphologies and qpos sequences (e.g. env rollouts) to PNG frames and GIFs.

Uses `mujoco.Renderer` with an offscreen OpenGL context: EGL first, then OSMesa (`MUJOCO_GL`, if set
to one of them, is tried first). If neither can create a context, `RenderingUnavailable` says which
backends were tried and why.

    python -m morphology.render --family=ant --num_legs=4 --out=workdirs/ant4.png
    python -m morphology.render --family=unimal --unimal_id=unimal_gen_0 --out=workdirs/u0.gif --steps=200
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import os
import pathlib
from typing import Sequence, Union

# Only effective when nothing imported mujoco before us (the CLI); otherwise the probe below decides.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco.rendering.classic import gl_context  # noqa: E402

from morphology.components import make  # noqa: E402
from morphology.components.description import Morphology  # noqa: E402
from morphology.components.mjcf import FreeObject, init_qpos, to_mjcf  # noqa: E402

HEADLESS_BACKENDS = ("egl", "osmesa")
_context_cls = None


class RenderingUnavailable(RuntimeError):
  """No offscreen OpenGL context could be created on this machine."""


def gl_backend():
  """(name, GLContext class) of the first headless backend that can create a context; cached."""
  global _context_cls
  if _context_cls is not None:
    return _context_cls
  preferred = os.environ.get("MUJOCO_GL", "").lower()
  order = sorted(HEADLESS_BACKENDS, key=lambda b: b != preferred)
  errors = []
  for name in order:
    try:
      cls = importlib.import_module(f"mujoco.{name}").GLContext
      probe = cls(16, 16)
      probe.make_current()
      probe.free()
    except Exception as e:  # each backend fails differently (ImportError, OSError, RuntimeError, ...)
      errors.append(f"{name}: {type(e).__name__}: {e}")
      continue
    _context_cls = (name, cls)
    return _context_cls
  raise RenderingUnavailable("no headless OpenGL context could be created; tried " + "; ".join(errors)
                             + " (EGL needs libEGL from the GPU driver or Mesa; OSMesa needs libOSMesa)")


@contextlib.contextmanager
def _renderer(model: mujoco.MjModel, width: int, height: int):
  _, cls = gl_backend()
  # mujoco.Renderer builds its context from this module attribute, fixed at mujoco's import from
  # MUJOCO_GL; point it at the backend that works for the renderer's lifetime.
  previous = getattr(gl_context, "GLContext", None)
  gl_context.GLContext = cls
  renderer = None
  try:
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    renderer = mujoco.Renderer(model, height=height, width=width)
    yield renderer
  finally:
    if renderer is not None:
      renderer.close()
    gl_context.GLContext = previous


def render_qpos(model: Union[mujoco.MjModel, str], qpos: np.ndarray, width: int = 480, height: int = 360,
                camera: str = "track") -> np.ndarray:
  """Frames [T, height, width, 3] uint8 for qpos [T, nq] (or [nq]); model is an MjModel or MJCF string."""
  if isinstance(model, str):
    model = mujoco.MjModel.from_xml_string(model)
  qpos = np.atleast_2d(np.asarray(qpos, dtype=np.float64))
  if qpos.shape[1] != model.nq:
    raise ValueError(f"qpos has {qpos.shape[1]} entries per frame, the model has nq={model.nq}")
  cam = camera if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) >= 0 else -1
  data = mujoco.MjData(model)
  frames = np.empty((len(qpos), height, width, 3), np.uint8)
  with _renderer(model, width, height) as renderer:
    for t, q in enumerate(qpos):
      data.qpos[:] = q
      mujoco.mj_forward(model, data)
      renderer.update_scene(data, camera=cam)
      frames[t] = renderer.render()
  return frames


def render_morphology(morph: Morphology, objects: Sequence[FreeObject] = (), width: int = 480,
                      height: int = 360) -> np.ndarray:
  """One frame [height, width, 3] uint8 of the morphology at its reset pose (mid-limits, on the floor)."""
  xml = to_mjcf(morph, objects)
  return render_qpos(xml, np.asarray(init_qpos(morph, objects)), width, height)[0]


def random_rollout_qpos(morph: Morphology, steps: int, seed: int = 0, frame_skip: int = 10) -> tuple[str, np.ndarray]:
  """(MJCF, qpos [steps // frame_skip + 1, nq]) of a MuJoCo rollout under uniform random controls."""
  xml = to_mjcf(morph)
  model = mujoco.MjModel.from_xml_string(xml)
  data = mujoco.MjData(model)
  mujoco.mj_resetDataKeyframe(model, data, 0)
  rng = np.random.default_rng(seed)
  out = [data.qpos.copy()]
  for t in range(1, steps + 1):
    if t % frame_skip == 1 or frame_skip == 1:
      data.ctrl[:] = rng.uniform(-1.0, 1.0, model.nu)
    mujoco.mj_step(model, data)
    if t % frame_skip == 0:
      out.append(data.qpos.copy())
  return xml, np.stack(out)


def save_png(path: Union[str, pathlib.Path], frame: np.ndarray) -> pathlib.Path:
  from PIL import Image
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(frame).save(path)
  return path


def save_gif(path: Union[str, pathlib.Path], frames: np.ndarray, fps: float = 20.0) -> pathlib.Path:
  from PIL import Image
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  images = [Image.fromarray(f) for f in frames]
  images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
  return path


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   epilog="Other --key=value flags are the family's parameters.")
  parser.add_argument("--family", required=True)
  parser.add_argument("--out", required=True, help=".png: the reset pose; .gif: a random-control rollout")
  parser.add_argument("--steps", type=int, default=200, help="physics steps of the .gif rollout")
  parser.add_argument("--width", type=int, default=480)
  parser.add_argument("--height", type=int, default=360)
  parser.add_argument("--seed", type=int, default=0)
  args, extra = parser.parse_known_args(argv)
  params = {}
  for item in extra:
    key, sep, value = item.lstrip("-").partition("=")
    if not sep:
      parser.error(f"family parameters must be --key=value, got {item!r}")
    try:
      params[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      params[key] = value  # plain strings such as unimal ids
  morph = make(args.family, **params)
  if args.out.endswith(".gif"):
    xml, qpos = random_rollout_qpos(morph, args.steps, args.seed)
    path = save_gif(args.out, render_qpos(xml, qpos, args.width, args.height))
  else:
    path = save_png(args.out, render_morphology(morph, width=args.width, height=args.height))
  print(f"{morph.name}: wrote {path} (GL backend {gl_backend()[0]})")


if __name__ == "__main__":
  main()
