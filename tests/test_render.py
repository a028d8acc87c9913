"""Headless rendering: frames show the agent, rollouts move, PNG/GIF files round-trip, the CLI works."""

import numpy as np
import pytest
from PIL import Image

from morphology import render
from morphology.components import make
from morphology.components.mjcf import init_qpos, to_mjcf


@pytest.fixture(scope="module", autouse=True)
def gl():
  try:
    return render.gl_backend()
  except render.RenderingUnavailable as e:
    pytest.skip(str(e))


def _agent_pixels(frame):
  # The agent material is orange (R > G > B); the floor checker and sky are grey-blue.
  r, g, b = (frame[..., i].astype(int) for i in range(3))
  return int(((r - b > 80) & (r > g)).sum())


def test_reset_frame_shows_the_agent():
  frame = render.render_morphology(make("ant", num_legs=4), width=160, height=120)
  assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
  assert _agent_pixels(frame) > 200


def test_qpos_sequence_renders_each_state():
  morph = make("claw", num_legs=2)
  xml, qpos = render.random_rollout_qpos(morph, steps=40, frame_skip=20)
  assert qpos.shape == (3, 7 + morph.num_dofs)
  np.testing.assert_allclose(qpos[0], init_qpos(morph))
  frames = render.render_qpos(xml, qpos, width=96, height=72)
  assert frames.shape == (3, 72, 96, 3)
  # Far away the agent leaves the tracked camera's view only if the camera did not follow it.
  moved = qpos.copy()
  moved[:, 0] += 50.0
  far = render.render_qpos(xml, moved[:1], width=96, height=72, camera="no_such_camera")
  assert _agent_pixels(frames[0]) > 0 and _agent_pixels(far[0]) == 0


def test_bad_qpos_width_is_rejected():
  morph = make("ant", num_legs=2)
  with pytest.raises(ValueError, match="nq"):
    render.render_qpos(to_mjcf(morph), np.zeros((1, 3)))


def test_png_gif_files_and_cli(tmp_path):
  frames = np.zeros((4, 8, 8, 3), np.uint8)
  frames[:, :, :, 0] = np.arange(4)[:, None, None] * 60
  gif = render.save_gif(tmp_path / "a.gif", frames)
  with Image.open(gif) as im:
    assert im.n_frames == 4
  out = tmp_path / "worm.png"
  render.main(["--family=worm", "--num_torsos=3", f"--out={out}", "--width=64", "--height=48"])
  with Image.open(out) as im:
    assert im.size == (64, 48)
    assert _agent_pixels(np.asarray(im.convert("RGB"))) > 0


def test_missing_backends_raise_a_clear_error(monkeypatch):
  monkeypatch.setattr(render, "_context_cls", None)
  monkeypatch.setattr(render, "HEADLESS_BACKENDS", ("no_such_gl",))
  with pytest.raises(render.RenderingUnavailable, match="tried no_such_gl: ModuleNotFoundError"):
    render.gl_backend()
