"""Unimals: the 72 shipped files are exactly the seeded generator's output and cover the reference's variety, they
spawn on the floor with no overlapping bodies and settle under zero action (a few in MuJoCo here; every one on the
default brax backend in the slow test); the importer converts hand-written MetaMorph-style MJCF and brax-v1
text protos (bodies, hinge axes and ranges, gears, end effectors, the world pose of every body), and a user
directory joins the env registry."""

import json

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from morphology import components, envs
from morphology.components import unimal, unimal_gen, unimal_import
from morphology.components.description import MorphologyError, rotate
from morphology.components.kinematics import forward_positions, geom_lowest_z, spawn_height
from morphology.components.mjcf import to_mjcf

IDS = components.unimal_ids()
FEW = ("unimal_gen_0", "unimal_gen_8", "unimal_gen_10", "unimal_gen_71")  # incl. two that end rocking on the torso


@pytest.fixture(scope="module")
def morphs():
  return {u: components.make("unimal", unimal_id=u) for u in IDS}


# ---- the shipped generated unimals ----


def test_shipped_files_are_the_generator_output_byte_for_byte():
  assert IDS == sorted(f"unimal_gen_{s}" for s in range(72))
  for seed in range(72):
    text = unimal_gen.dumps(unimal_gen.generate(seed))
    assert text == (unimal.UNIMAL_DIR / f"unimal_gen_{seed}.json").read_text(), seed
  assert unimal_gen.dumps(unimal_gen.generate(5)) != unimal_gen.dumps(unimal_gen.generate(6))
  assert unimal_gen.parse_seeds("0-71") == list(range(72)) and unimal_gen.parse_seeds("3,5") == [3, 5]


def test_shipped_unimals_cover_the_reference_variety(morphs):
  """mxt_reference 1.2: 5-11 bodies, 8-18 DOF, 1- and 2-DOF joints (17/72 with a two-joint child), gears 150-300."""
  bodies = [len(m.bodies) for m in morphs.values()]
  dofs = [m.num_dofs for m in morphs.values()]
  assert 5 <= min(bodies) and max(bodies) <= 11 and len(set(bodies)) >= 5, sorted(bodies)
  assert 8 <= min(dofs) and max(dofs) <= 18 and len(set(dofs)) >= 6, sorted(dofs)
  with_two = sum(any(len(b.joints) == 2 for b in m.bodies) for m in morphs.values())
  assert 17 <= with_two < 72  # some unimals have only 1-hinge bodies
  gears = {h.gear for m in morphs.values() for h in m.joints}
  assert gears == {150.0, 200.0, 250.0, 300.0}
  for u, m in morphs.items():
    assert m.root.name == "torso_0" and m.root.geom.type == "sphere", u
    assert all(b.geom.type == "capsule" and len(b.joints) in (1, 2) for b in m.bodies[1:]), u
    leaves = [b.name for b in m.bodies if not m.children(b.name)]
    assert [b.name for b in m.end_effectors()] == leaves and len(leaves) >= 3, u
    assert all(b.tip is not None for b in m.end_effectors()), u


def test_shipped_unimals_spawn_on_the_floor_without_overlapping_bodies(morphs):
  for u, m in morphs.items():
    height = spawn_height(m)
    poses = forward_positions(m, root_pos=(0.0, 0.0, height))
    lowest = min(geom_lowest_z(b.geom, *poses[b.name]) for b in m.bodies)
    assert height > m.root.geom.size[0] and lowest == pytest.approx(0.0, abs=1e-9), u
    assert unimal_gen.overlapping_pairs(m) == [], u
    # Legs end pointing down: some end effector touches the floor at reset.
    tips = [geom_lowest_z(b.geom, *poses[b.name]) for b in m.end_effectors()]
    assert min(tips) == pytest.approx(0.0, abs=1e-9), u


def test_overlap_check_finds_crossing_limbs():
  desc = {"bodies": [
      {"name": "torso_0", "parent": None, "geom": {"type": "sphere", "radius": 0.1}, "mass": 3.0},
      {"name": "a", "parent": "torso_0", "pos": [0.1, 0, 0], "mass": 1.0, "end_effector": True,
       "geom": {"type": "capsule", "from": [0, 0, 0], "to": [0.3, 0, 0], "radius": 0.05}},
      {"name": "b", "parent": "torso_0", "pos": [0.1, 0.04, 0], "mass": 1.0, "end_effector": True,
       "geom": {"type": "capsule", "from": [0, 0, 0], "to": [0.3, 0, 0], "radius": 0.05}}]}
  assert unimal_gen.overlapping_pairs(unimal.from_dict(desc, "x")) == [("a", "b")]
  desc["bodies"][2]["pos"] = [0.0, 0.1, 0]
  desc["bodies"][2]["quat"] = [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]  # along +y: clear of `a`
  assert unimal_gen.overlapping_pairs(unimal.from_dict(desc, "x")) == []
  assert unimal_gen.segment_distance(*np.array([[0, 0, 0], [1, 0, 0], [0.5, 2, 0], [0.5, 1, 0]], float)) == 1.0


def _zero_action_mujoco(morph, steps):
  model = mujoco.MjModel.from_xml_string(to_mjcf(morph))
  data = mujoco.MjData(model)
  mujoco.mj_resetDataKeyframe(model, data, 0)
  root_z = []
  for _ in range(steps):
    mujoco.mj_step(model, data)
    root_z.append(data.qpos[2])
  return model, data, np.array(root_z)


@pytest.mark.parametrize("unimal_id", FEW)
def test_a_few_unimals_settle_under_zero_action_in_mujoco(unimal_id):
  """5 s without torques: no pop above the spawn height, the torso never sinks through the floor, and the root
  comes to rest (some end rocking on the torso; the reference's unimals do the same under this physics)."""
  morph = components.make("unimal", unimal_id=unimal_id)
  model, data, root_z = _zero_action_mujoco(morph, 1000)
  assert model.nu == morph.num_dofs
  assert np.isfinite(data.qpos).all()
  assert root_z.max() <= model.key_qpos[0, 2] + 1e-3
  assert root_z.min() > morph.root.geom.size[0] - 0.02
  assert np.linalg.norm(data.qvel[:3]) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("unimal_id", IDS)
def test_every_unimal_settles_under_zero_action_on_the_default_backend(unimal_id):
  env = envs.make(f"unimal_reach_{unimal_id}")
  assert env.config.backend == envs.DEFAULT_BACKEND

  def rollout(rng):
    state = env.reset(rng)

    def step(state, _):
      state = env.step(state, jnp.zeros(env.action_size))
      ps = state.pipeline_state
      return state, (ps.x.pos[:, 2], ps.xd.vel[0])

    return state.pipeline_state.x.pos[:, 2], jax.lax.scan(step, state, None, length=100)  # 5 s

  z0, (state, (z, root_vel)) = jax.jit(rollout)(jax.random.PRNGKey(0))
  z0, z, root_vel = np.asarray(z0), np.asarray(z), np.asarray(root_vel)
  agent = slice(0, len(env.morphology.bodies))
  assert np.isfinite(np.asarray(state.pipeline_state.q)).all()
  # Nothing pops up: the root never rises, and limbs flung up as the body folds stay within 0.2 m (unimals that
  # gained energy at rest rose 0.4-1.7 m).
  assert z[:, 0].max() <= z0[0] + 0.02 and z[:, agent].max() <= z0[agent].max() + 0.2
  assert z[:, 0].min() > env.morphology.root.geom.size[0] - 0.05  # the torso stays on the floor
  assert np.linalg.norm(root_vel[-1]) < 0.5  # and comes to rest


# ---- the importer ----

# A MetaMorph-style unimal (written for this test): torso with a two-hinge leg and a one-hinge arm, defaults in a
# class, a `fromto` capsule, an Euler-rotated body, geom densities instead of masses, and motors with gears.
MJCF = """
<mujoco model="unimal">
  <compiler angle="degree"/>
  <default>
    <default class="normal_joint"><joint type="hinge" limited="true" damping="1" armature="1"/></default>
  </default>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 .1"/>
    <body name="torso/0" pos="0 0 1.2">
      <freejoint name="root"/>
      <geom name="torso/0" type="sphere" size="0.1" density="500"/>
      <body name="limb/0" pos="0 0 -0.1">
        <joint name="limbx/0" class="normal_joint" axis="1 0 0" range="-30 0" pos="0 0 0"/>
        <joint name="limby/0" class="normal_joint" axis="0 1 0" range="-45 60" pos="0 0 0"/>
        <geom name="limb/0" type="capsule" fromto="0 0 0 0 0 -0.3" size="0.05" density="800"/>
      </body>
      <body name="limb/1" pos="0.1 0 0" euler="0 -30 0">
        <joint name="limbz/1" class="normal_joint" axis="0 0 1" range="0 90" pos="0 0 0"/>
        <geom name="limb/1" type="capsule" fromto="0 0 0 0.25 0 0" size="0.05" density="800"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="limby/0" joint="limby/0" gear="250"/>
    <motor name="limbx/0" joint="limbx/0" gear="150"/>
    <motor name="limbz/1" joint="limbz/1" gear="200"/>
  </actuator>
</mujoco>
"""

# A brax-v1 unimal config (written for this test): torso, a 2-DOF hip on `d1_limb_0` (v1 `rotation y:-90` turns
# the x axis vertical), and `limb_end_0` with two joints, one of them with an empty (locked) first DOF and
# one-sided limits (an omitted min or max is 0).
V1_PROTO = """
bodies { name: "torso_0" colliders { position { } sphere { radius: 0.1 } } inertia { x: 1.0 y: 1.0 z: 1.0 }
         mass: 3.35 }
bodies { name: "d1_limb_0"
         colliders { position { x: 0.2 } rotation { y: 90.0 } capsule { radius: 0.05 length: 0.5 } }
         inertia { x: 1.0 y: 1.0 z: 1.0 } mass: 2.5 }
bodies { name: "limb_end_0"
         colliders { position { z: -0.15 } capsule { radius: 0.05 length: 0.4 } }
         inertia { x: 1.0 y: 1.0 z: 1.0 } mass: 2.0 }
joints { name: "limbx_0" stiffness: 5000.0 parent: "torso_0" child: "d1_limb_0"
         parent_offset { x: 0.05 } child_offset { x: -0.05 } rotation { y: -90.0 } angular_damping: 20.0
         angle_limit { min: -30.0 max: 30.0 } angle_limit { min: -45.0 max: 45.0 } reference_rotation { } }
joints { name: "limbx_1" parent: "d1_limb_0" child: "limb_end_0"
         parent_offset { x: 0.45 } child_offset { z: 0.05 } rotation { } angle_limit { min: -60.0 } }
joints { name: "limby_1" parent: "d1_limb_0" child: "limb_end_0"
         parent_offset { x: 0.45 } child_offset { z: 0.05 } rotation { z: 90.0 }
         angle_limit { } angle_limit { max: 30.0 } }
actuators { name: "limbx_0" joint: "limbx_0" strength: 150.0 torque { } }
actuators { name: "limbx_1" joint: "limbx_1" strength: 300.0 torque { } }
actuators { name: "limby_1" joint: "limby_1" strength: 250.0 torque { } }
"""


def _hinges(morph):
  return {h.name: (tuple(np.round(h.axis, 9)), h.range, h.gear) for h in morph.joints}


def test_mjcf_import_keeps_bodies_hinges_gears_and_the_pose():
  desc = unimal_import.from_mjcf(MJCF)
  morph = unimal.from_dict(desc, "mjcf_fixture")
  assert [(b.name, b.parent) for b in morph.bodies] == [("torso_0", None), ("limb_0", "torso_0"),
                                                         ("limb_1", "torso_0")]
  assert _hinges(morph) == {"limbx_0": ((1.0, 0.0, 0.0), (-30.0, 0.0), 150.0),
                            "limby_0": ((0.0, 1.0, 0.0), (-45.0, 60.0), 250.0),
                            "limbz_1": ((0.0, 0.0, 1.0), (0.0, 90.0), 200.0)}
  assert [b.name for b in morph.end_effectors()] == ["limb_0", "limb_1"]
  np.testing.assert_allclose(morph.body("limb_0").tip, (0.0, 0.0, -0.35), atol=1e-9)  # fromto end + cap
  np.testing.assert_allclose(morph.body("limb_1").tip, (0.3, 0.0, 0.0), atol=1e-9)
  # MuJoCo's masses from the densities: sphere 500 * 4/3 pi r^3; capsule 800 * (pi r^2 l + 4/3 pi r^3).
  np.testing.assert_allclose([b.mass for b in morph.bodies],
                             [500 * 4 / 3 * np.pi * 0.1 ** 3, 800 * np.pi * 0.05 ** 2 * (0.3 + 4 / 3 * 0.05),
                              800 * np.pi * 0.05 ** 2 * (0.25 + 4 / 3 * 0.05)], rtol=1e-6)
  # Every body's world pose at zero joint angles equals the source model's (root placed at the origin).
  model = mujoco.MjModel.from_xml_string(MJCF)
  data = mujoco.MjData(model)
  data.qpos[:3] = 0.0
  mujoco.mj_kinematics(model, data)
  ours = forward_positions(morph, angles=[0.0] * morph.num_dofs)
  for name in ("torso/0", "limb/0", "limb/1"):
    pos, quat = ours[name.replace("/", "_")]
    np.testing.assert_allclose(pos, data.body(name).xpos, atol=1e-9)
    assert min(np.abs(quat - data.body(name).xquat).max(), np.abs(quat + data.body(name).xquat).max()) < 1e-9
  # ... and at random joint angles (hinge order and axes compose like MuJoCo's).
  rng = np.random.default_rng(0)
  angles = {h.name: rng.uniform(*h.range) for h in morph.joints}
  for h in morph.joints:
    data.qpos[model.joint(h.name.replace("_", "/")).qposadr[0]] = np.radians(angles[h.name])
  mujoco.mj_kinematics(model, data)
  ours = forward_positions(morph, angles=[angles[h.name] for h in morph.joints])
  for name in ("limb/0", "limb/1"):
    np.testing.assert_allclose(ours[name.replace("/", "_")][0], data.body(name).xpos, atol=1e-9)
    pos, quat = ours[name.replace("/", "_")]
    np.testing.assert_allclose(pos + rotate(morph.body(name.replace("/", "_")).geom.pos, quat), data.geom(name).xpos,
                               atol=1e-9)
  assert mujoco.MjModel.from_xml_string(to_mjcf(morph)).nu == 3


def test_v1_proto_import_handles_two_joints_on_one_child_and_empty_limits():
  desc = unimal_import.from_v1_proto(V1_PROTO)
  morph = unimal.from_dict(desc, "v1_fixture")
  assert [(b.name, b.parent) for b in morph.bodies] == [("torso_0", None), ("d1_limb_0", "torso_0"),
                                                         ("limb_end_0", "d1_limb_0")]
  # rotation y:-90 maps the DOF axes x, y to z, y; z:90 maps y to -x; limby_1's empty first DOF is dropped.
  assert _hinges(morph) == {"limbx_0_0": ((0.0, 0.0, 1.0), (-30.0, 30.0), 150.0),
                            "limbx_0_1": ((0.0, 1.0, 0.0), (-45.0, 45.0), 150.0),
                            "limbx_1": ((1.0, 0.0, 0.0), (-60.0, 0.0), 300.0),
                            "limby_1": ((-1.0, 0.0, 0.0), (0.0, 30.0), 250.0)}
  assert [len(b.joints) for b in morph.bodies] == [0, 2, 2]
  assert [b.name for b in morph.end_effectors()] == ["limb_end_0"]
  assert [b.mass for b in morph.bodies] == [3.35, 2.5, 2.0]
  # v1 placement: child = parent + parent_offset - child_offset (no reference rotation) at zero angles.
  poses = forward_positions(morph, angles=[0.0] * 4)
  np.testing.assert_allclose(poses["d1_limb_0"][0], (0.1, 0.0, 0.0), atol=1e-12)
  np.testing.assert_allclose(poses["limb_end_0"][0], (0.55, 0.0, -0.05), atol=1e-12)
  # The capsules: v1 colliders lie along their local z, `length` includes the caps; `to` is the far end.
  np.testing.assert_allclose(morph.body("limb_end_0").tip, (0.0, 0.0, -0.35), atol=1e-12)
  geom = morph.body("d1_limb_0").geom
  np.testing.assert_allclose([*geom.pos, *geom.size], [0.2, 0.0, 0.0, 0.05, 0.2], atol=1e-12)
  # The joints turn the child about the shared anchor (v1 child_offset).
  moved = forward_positions(morph, angles=[0.0, 0.0, 0.0, 30.0])
  anchor = np.array([0.55, 0.0, 0.0])
  for p in (poses, moved):
    np.testing.assert_allclose(p["limb_end_0"][0] + rotate((0, 0, 0.05), p["limb_end_0"][1]),
                               anchor, atol=1e-12)


def test_v1_proto_errors_name_the_problem():
  no_motor = V1_PROTO.replace('actuators { name: "limbx_1" joint: "limbx_1" strength: 300.0 torque { } }', "")
  with pytest.raises(MorphologyError, match="'limb_end_0'.*'limbx_1' has no actuator"):
    unimal_import.from_v1_proto(no_motor)
  split = V1_PROTO.replace("parent_offset { x: 0.45 } child_offset { z: 0.05 } rotation { z: 90.0 }",
                           "parent_offset { x: 0.4 } child_offset { z: 0.05 } rotation { z: 90.0 }")
  with pytest.raises(MorphologyError, match="'limb_end_0'.*disagree"):
    unimal_import.from_v1_proto(split)
  with pytest.raises(ValueError, match="unbalanced"):
    unimal_import.parse_text_proto("bodies { name: \"x\" ")


def test_convert_writes_json_and_a_registered_dir_joins_the_env_registry(tmp_path, monkeypatch):
  src = tmp_path / "src"
  src.mkdir()
  (src / "5506-0-0-01-00-00-00.xml").write_text(MJCF)
  (src / "5506-1-1-01-00-00-00.txt").write_text(V1_PROTO)
  (src / "agent_list.csv").write_text("ignored\n")
  dst = tmp_path / "dst"
  unimal_import.main([f"--src={src}", f"--dst={dst}"])
  assert sorted(p.name for p in dst.iterdir()) == ["5506-0-0-01-00-00-00.json", "5506-1-1-01-00-00-00.json"]
  loaded = json.loads((dst / "5506-1-1-01-00-00-00.json").read_text())
  assert loaded == unimal_import.from_v1_proto(V1_PROTO)

  # A bad file stops the conversion before anything is written.
  (src / "broken.txt").write_text(V1_PROTO.replace('child: "limb_end_0"', 'child: "nowhere"', 1))
  with pytest.raises(MorphologyError, match="broken.txt.*'nowhere'"):
    unimal_import.convert(src, tmp_path / "dst2")
  assert not (tmp_path / "dst2").exists()

  monkeypatch.setattr(unimal, "_user_dirs", [])
  try:
    assert unimal.register_unimal_dir(dst) == ["5506-0-0-01-00-00-00", "5506-1-1-01-00-00-00"]
    assert len(components.unimal_ids()) == 74
    names = envs.registered_names()
    assert len(names) == 789 + 3 * 2 and "unimal_reach_handsup_5506-0-0-01-00-00-00" in names
    spec = envs.parse("unimal_touch_5506-1-1-01-00-00-00")
    assert spec.morphology().num_dofs == 4
    with pytest.raises(ValueError, match="already registered"):
      clash = tmp_path / "clash"
      clash.mkdir()
      (clash / "unimal_gen_3.json").write_text((unimal.UNIMAL_DIR / "unimal_gen_3.json").read_text())
      unimal.register_unimal_dir(clash)
    with pytest.raises(FileNotFoundError):
      unimal.register_unimal_dir(tmp_path / "missing")
  finally:
    monkeypatch.undo()
    envs._registered.cache_clear()
  assert len(components.unimal_ids()) == 72 and len(envs.registered_names()) == 789


def test_env_var_adds_dirs(tmp_path, monkeypatch):
  (tmp_path / "my_unimal.json").write_text((unimal.UNIMAL_DIR / "unimal_gen_0.json").read_text())
  monkeypatch.setattr(unimal, "_user_dirs", None)
  monkeypatch.setenv(unimal.DIRS_ENV_VAR, str(tmp_path))
  assert "my_unimal" in components.unimal_ids()
  assert components.make("unimal", unimal_id="my_unimal").num_dofs == components.make(
      "unimal", unimal_id="unimal_gen_0").num_dofs
