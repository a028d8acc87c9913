"""Morphology descriptions -> MJCF: v1 counts, v1 placement vs MuJoCo kinematics, floor spawn, validation."""

import dataclasses
import math

import mujoco
import numpy as np
import pytest

from morphology.components import FAMILIES, MorphologyError, make, unimal_ids
from morphology.components.description import Geom, Hinge, Morphology
from morphology.components.kinematics import forward_positions, spawn_height, tip_positions
from morphology.components.mjcf import FreeObject, MjcfOptions, init_qpos, options_for, to_mjcf
from morphology.components.unimal import from_dict

L1, L2, R = 0.4428427219390869, 0.7256854176521301, 0.08  # v1 ant thigh/shin lengths, leg radius


def compile_at_reset(morph, objects=()):
  model = mujoco.MjModel.from_xml_string(to_mjcf(morph, objects))
  data = mujoco.MjData(model)
  mujoco.mj_resetDataKeyframe(model, data, 0)
  mujoco.mj_forward(model, data)
  return model, data


# (family, params, bodies, dofs) from mxt_reference 1.2.
COUNTS = [
    *[("ant", dict(num_legs=n), 1 + 2 * n, 2 * n) for n in (2, 4, 6)],
    *[("broken_ant", dict(num_legs=n, broken_id=n - 1), 2 * n, 2 * n - 1) for n in (3, 5)],
    *[("mass_rand_ant", dict(num_legs=5, masses=(0.5, 1.0, 3.0)), 11, 10)],
    *[("size_rand_ant", dict(num_legs=3, scales=(0.8, 1.0, 1.5)), 7, 6)],
    *[("centipede", dict(num_torsos=n), 5 * n, 5 * n - 1) for n in (2, 7)],
    ("broken_centipede", dict(num_torsos=3, side=4, torso=1), 14, 13),
    ("broken_centipede", dict(num_torsos=3, side=5, torso=2, whole_leg=True), 13, 12),
    ("mass_rand_centipede", dict(num_torsos=4, masses=(1.0, 3.0, 3.0)), 20, 19),
    ("size_rand_centipede", dict(num_torsos=2, scales=(0.9, 1.0, 1.0)), 10, 9),
    *[("claw", dict(num_legs=n), 1 + 3 * n, 4 * n) for n in (2, 5)],
    ("broken_claw", dict(num_legs=4, broken_id=2), 12, 15),
    ("size_rand_claw", dict(num_legs=3, scales=(1.0, 1.1, 1.1)), 10, 12),
    *[("worm", dict(num_torsos=n), n, n - 1) for n in (2, 7)],
]


@pytest.mark.parametrize("family,params,bodies,dofs", COUNTS)
def test_v1_counts_in_description_and_mujoco(family, params, bodies, dofs):
  morph = make(family, **params)
  assert (len(morph.bodies), morph.num_dofs) == (bodies, dofs)
  model = mujoco.MjModel.from_xml_string(to_mjcf(morph))
  assert model.nbody == bodies + 1  # + world
  assert model.nu == dofs and model.nq == 7 + dofs
  assert [model.body(i + 1).name for i in range(bodies)] == [b.name for b in morph.bodies]
  scale = options_for(morph).gear_scale
  np.testing.assert_allclose(model.actuator_gear[:, 0], [h.gear * scale for h in morph.joints])


def test_ant_geometry_matches_v1_by_hand():
  morph = make("ant", num_legs=4)
  poses = forward_positions(morph)
  # Leg 0 points along +x; the knee at its mid-limit (50 deg) bends the shin down about the thigh's y.
  knee = math.radians(50)
  expected = np.array([(L1 / 2 + R) + (L1 / 2 - R) + (L2 / 2 - R) * math.cos(knee), 0.0,
                       -(L2 / 2 - R) * math.sin(knee)])
  np.testing.assert_allclose(poses["$ Body 4_0"][0], expected, atol=1e-9)
  # Leg 1 is the same leg rotated by theta = 2*pi/4 about z.
  np.testing.assert_allclose(poses["$ Body 4_1"][0], [-expected[1], expected[0], expected[2]], atol=1e-9)
  shin = morph.body("$ Body 4_0")
  assert shin.geom.size == pytest.approx((R, (L2 - 2 * R) / 2))
  assert shin.joints[0].range == (30.0, 70.0) and shin.joints[0].gear == 350.0
  hip = morph.body("Aux 1_2").joints[0]
  assert hip.axis == (0.0, 0.0, 1.0) and hip.range == (-30.0, 30.0)  # v1 `rotation {y: -90}`: a vertical hip
  assert morph.root.mass == 10.0 and shin.mass == 1.0 and shin.inertia == (1.0, 1.0, 1.0)


def test_claw_has_2dof_hips_and_worm_strength():
  claw = make("claw", num_legs=3)
  hips = claw.body("Aux 1_0").joints
  assert len(hips) == 2 and hips[0].pos == hips[1].pos
  assert [h.range for h in claw.joints[:4]] == [(-30.0, 30.0), (-30.0, 30.0), (10.0, 80.0), (30.0, 60.0)]
  assert {h.gear for h in claw.joints} == {500.0}
  worm = make("worm", num_torsos=4)
  assert {h.gear for h in worm.joints} == {3000.0} and {h.range for h in worm.joints} == {(-60.0, 60.0)}
  spine = make("centipede", num_torsos=3)
  assert spine.body("torso_1").joints[0].gear == 300.0 and spine.body("Aux 2_1").joints[0].gear == 350.0


def test_mass_and_size_values_cycle_per_leg():
  ant = make("mass_rand_ant", num_legs=5, masses=(0.5, 1.0, 3.0))
  assert [ant.body(f"$ Body 4_{i}").mass for i in range(5)] == [0.5, 1.0, 3.0, 0.5, 1.0]
  assert [ant.body(f"Aux 1_{i}").mass for i in range(5)] == [0.5, 1.0, 3.0, 0.5, 1.0]
  assert ant.root.mass == 10.0
  cent = make("mass_rand_centipede", num_torsos=2, masses=(0.5, 1.0, 3.0))
  # v1 draws left then right from one cycle: torso 0 (0.5, 1.0), torso 1 (3.0, 0.5).
  assert [cent.body(n).mass for n in ("Aux 1_0", "Aux 2_0", "Aux 1_1", "Aux 2_1")] == [0.5, 1.0, 3.0, 0.5]
  sized = make("size_rand_ant", num_legs=3, scales=(0.8, 1.0, 1.5))
  for i, s in enumerate((0.8, 1.0, 1.5)):
    thigh = sized.body(f"Aux 1_{i}")
    assert thigh.geom.size == pytest.approx((R * s, (L1 - 2 * R) * s / 2))
    assert np.linalg.norm(thigh.pos) == pytest.approx((L1 / 2 + R) * s)  # ant: the hip pad scales
  claw = make("size_rand_claw", num_legs=2, scales=(1.1,))
  assert np.linalg.norm(claw.body("Aux 1_0").pos) == pytest.approx(0.4 * 1.1 / 2 + 0.08)  # claw: it does not


def test_broken_variants_drop_the_right_bodies():
  ant = make("broken_ant", num_legs=4, broken_id=1)
  names = {b.name for b in ant.bodies}
  assert "Aux 1_1" in names and "$ Body 4_1" not in names
  assert [b.name for b in ant.end_effectors()] == ["$ Body 4_0", "$ Body 4_2", "$ Body 4_3"]
  shin = make("broken_centipede", num_torsos=3, side=5, torso=1)
  assert "$ Body 5_1" not in {b.name for b in shin.bodies} and "Aux 2_1" in {b.name for b in shin.bodies}
  whole = make("broken_centipede", num_torsos=3, side=4, torso=0, whole_leg=True)
  assert not {"Aux 1_0", "$ Body 4_0"} & {b.name for b in whole.bodies}
  # End effectors run torso by torso, left (4) before right (5).
  assert [b.name for b in whole.end_effectors()] == ["$ Body 5_0", "$ Body 4_1", "$ Body 5_1", "$ Body 4_2",
                                                     "$ Body 5_2"]


KINEMATICS_CASES = [("ant", dict(num_legs=5)), ("broken_ant", dict(num_legs=4, broken_id=0)),
                    ("centipede", dict(num_torsos=3)),
                    ("broken_centipede", dict(num_torsos=3, side=5, torso=1, whole_leg=True)),
                    ("claw", dict(num_legs=3)), ("worm", dict(num_torsos=4)),
                    ("size_rand_ant", dict(num_legs=3, scales=(0.8, 1.0, 1.5))),
                    ("unimal", dict(unimal_id="unimal_gen_0")), ("unimal", dict(unimal_id="unimal_gen_1"))]


def _same_rotation(q1, q2):
  return min(np.abs(q1 - q2).max(), np.abs(q1 + q2).max())


@pytest.mark.parametrize("family,params", KINEMATICS_CASES)
def test_v1_kinematics_match_mujoco_at_reset_and_random_angles(family, params):
  morph = make(family, **params)
  model, data = compile_at_reset(morph)
  height = spawn_height(morph)
  poses = forward_positions(morph, root_pos=(0.0, 0.0, height))
  for i, b in enumerate(morph.bodies):
    np.testing.assert_allclose(data.xpos[i + 1], poses[b.name][0], atol=1e-5, err_msg=b.name)
    assert _same_rotation(data.xquat[i + 1], poses[b.name][1]) < 1e-5, b.name
  # Away from mid-limits too, so multi-DOF composition order and axis signs are exercised.
  rng = np.random.default_rng(0)
  angles = [rng.uniform(*h.range) for h in morph.joints]
  data.qpos[7:] = np.radians(angles)
  mujoco.mj_kinematics(model, data)
  poses = forward_positions(morph, angles, root_pos=(0.0, 0.0, height))
  for i, b in enumerate(morph.bodies):
    np.testing.assert_allclose(data.xpos[i + 1], poses[b.name][0], atol=1e-5, err_msg=b.name)


def _lowest_geom_z(model, data, geom_ids):
  lows = []
  for g in geom_ids:
    size, mat, z = model.geom_size[g], data.geom_xmat[g].reshape(3, 3), data.geom_xpos[g][2]
    typ = model.geom_type[g]
    if typ == mujoco.mjtGeom.mjGEOM_SPHERE:
      lows.append(z - size[0])
    elif typ == mujoco.mjtGeom.mjGEOM_CAPSULE:
      lows.append(z - abs(mat[2, 2]) * size[1] - size[0])
    elif typ == mujoco.mjtGeom.mjGEOM_BOX:
      lows.append(z - np.abs(mat[2]) @ size)
  return min(lows)


@pytest.mark.parametrize("family,params", KINEMATICS_CASES)
def test_spawns_resting_on_the_floor(family, params):
  morph = make(family, **params)
  model, data = compile_at_reset(morph)
  agent_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] > 0]
  assert abs(_lowest_geom_z(model, data, agent_geoms)) < 1e-3
  mujoco.mj_collision(model, data)
  assert data.ncon == 0 or data.contact.dist.min() > -1e-3  # touching, not inside the floor


def test_ant_feet_touch_the_floor_at_reset():
  morph = make("ant", num_legs=4)
  poses = forward_positions(morph, root_pos=(0.0, 0.0, spawn_height(morph)))
  tips = tip_positions(morph, poses)
  assert tips.shape == (4, 3)
  # The four shin caps carry the body: the far axis end is one radius up, the tip r further along the
  # shin, which points 50 deg (the knee mid-limit) below horizontal.
  np.testing.assert_allclose(tips[:, 2], R * (1 - math.sin(math.radians(50))), atol=1e-9)


def test_every_registered_parameter_combination_compiles():
  total = 0
  for family in FAMILIES.names():
    for params in FAMILIES.get(family).param_grid():
      morph = make(family, **params)
      model = mujoco.MjModel.from_xml_string(to_mjcf(morph))
      assert model.nu == morph.num_dofs, (family, params)
      total += 1
  # v1 registrations (mxt_reference 1.3) + broken/size claw + our unimals.
  assert total >= 5 + 18 + 15 + 20 + 6 + 108 + 18 + 18 + 6 + 5 + len(unimal_ids())


@pytest.fixture(scope="module")
def brax_mjcf():
  from brax.io import mjcf
  return mjcf


@pytest.mark.parametrize("family,params", [("ant", dict(num_legs=3)), ("claw", dict(num_legs=2)),
                                           ("unimal", dict(unimal_id="unimal_gen_0"))])
def test_brax_loads_with_init_pose(brax_mjcf, family, params):
  morph = make(family, **params)
  ball = FreeObject("ball", Geom("sphere", (0.25,)), mass=100.0, pos=(3.0, 0.0, 0.25))
  sys = brax_mjcf.loads(to_mjcf(morph, objects=(ball,)))
  assert sys.act_size() == morph.num_dofs
  np.testing.assert_allclose(np.asarray(sys.init_q), init_qpos(morph, (ball,)), atol=1e-6)


def test_contact_bits_and_free_objects():
  morph = make("ant", num_legs=2)
  box = FreeObject("box", Geom("box", (0.5, 0.5, 0.5)), mass=1.0, pos=(2.0, 0.0, 0.5))
  marker = FreeObject("goal", Geom("sphere", (0.1,)), mass=1.0, pos=(0.0, 3.0, 1.0), collides=False)
  model, data = compile_at_reset(morph, (box, marker))
  assert model.nq == 7 + morph.num_dofs + 14
  np.testing.assert_allclose(data.xpos[model.body("box").id], box.pos)
  geom = {model.geom(g).name: g for g in range(model.ngeom)}
  assert (model.geom_contype[geom["torso"]], model.geom_conaffinity[geom["torso"]]) == (2, 5)
  assert (model.geom_contype[geom["box"]], model.geom_conaffinity[geom["goal"]]) == (4, 0)
  assert model.geom_contype[geom["goal"]] == 0


def _contact_bits(model, body):
  """(contype, conaffinity) of the named body's colliding geom (its `_end` cap for a one-ended capsule)."""
  names = {model.geom(g).name for g in range(model.ngeom) if model.geom_bodyid[g] == model.body(body).id}
  g = model.geom(body + "_end" if body + "_end" in names else body).id
  return int(model.geom_contype[g]), int(model.geom_conaffinity[g])


def _colliding_geoms(model, data):
  """Names of the bodies whose geoms are in contact after mj_collision (the floor is 'world')."""
  mujoco.mj_collision(model, data)
  return {model.body(int(model.geom_bodyid[g])).name for c in data.contact[:data.ncon] for g in (c.geom1, c.geom2)}


@pytest.mark.parametrize("family,params", [("ant", dict(num_legs=4)),
                                           ("broken_centipede", dict(num_torsos=2, side=4, torso=0)),
                                           ("unimal", dict(unimal_id="unimal_gen_0"))])
def test_end_effector_floor_contact(brax_mjcf, family, params):
  """'end_effectors': only the root and the end-effector geoms collide; MuJoCo and brax both load it."""
  morph = make(family, **params)
  ball = FreeObject("ball", Geom("sphere", (0.25,)), mass=1.0, pos=(3.0, 0.0, 0.25))
  xml = to_mjcf(morph, (ball,), options_for(morph, floor_contact="end_effectors"))
  model = mujoco.MjModel.from_xml_string(xml)
  colliding = {morph.root.name} | {b.name for b in morph.end_effectors()}
  assert len(colliding) < len(morph.bodies)
  for b in morph.bodies:
    assert _contact_bits(model, b.name) == ((2, 5) if b.name in colliding else (0, 0)), b.name
  assert brax_mjcf.loads(xml).act_size() == morph.num_dofs
  # With the root centre on the floor, limbs level with or below it are in the floor: under 'all' they all
  # make contacts, under 'end_effectors' only the colliding ones.
  full = mujoco.MjModel.from_xml_string(to_mjcf(morph, (ball,)))
  touching = []
  for m in (full, model):
    data = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, data, 0)
    data.qpos[2] = 0.0
    mujoco.mj_kinematics(m, data)
    touching.append(_colliding_geoms(m, data) - {"world", "ball"})
  assert touching[1] == colliding & touching[0] and touching[1] < touching[0]


def test_ant_thighs_do_not_collide_with_end_effector_contact():
  morph = make("ant", num_legs=4)
  model = mujoco.MjModel.from_xml_string(to_mjcf(morph, options=options_for(morph, floor_contact="end_effectors")))
  assert [_contact_bits(model, f"Aux 1_{i}") for i in range(4)] == [(0, 0)] * 4
  assert _contact_bits(model, "torso") == _contact_bits(model, "$ Body 4_0") == (2, 5)
  with pytest.raises(ValueError, match="floor_contact 'feet'.*end_effectors"):
    MjcfOptions(floor_contact="feet")


@pytest.mark.parametrize("family,params", [("ant", dict(num_legs=4)), ("centipede", dict(num_torsos=2))])
def test_shins_collide_at_the_foot_only_like_v1(family, params):
  """v1 shins are one-ended capsules (`end: -1`): a sphere cap at the tip collides, the drawn capsule does not."""
  morph = make(family, **params)
  model = mujoco.MjModel.from_xml_string(to_mjcf(morph))
  data = mujoco.MjData(model)
  mujoco.mj_resetDataKeyframe(model, data, 0)
  mujoco.mj_kinematics(model, data)
  poses = forward_positions(morph, root_pos=(0.0, 0.0, spawn_height(morph)))
  shins = [b for b in morph.bodies if b.limb_type == "shin"]
  assert shins and all(b.geom.collide_end == 1 for b in shins)
  for b, tip in zip(shins, tip_positions(morph, poses), strict=True):
    capsule, cap = model.geom(b.name), model.geom(b.name + "_end")
    assert (capsule.contype[0], capsule.conaffinity[0]) == (0, 0) and (cap.contype[0], cap.conaffinity[0]) == (2, 5)
    assert cap.type[0] == mujoco.mjtGeom.mjGEOM_SPHERE and cap.size[0] == pytest.approx(b.geom.size[0])
    # The cap's centre is one radius back from the tip along the shin.
    np.testing.assert_allclose(np.linalg.norm(data.geom_xpos[cap.id] - tip), b.geom.size[0], atol=1e-9)
  # Each foot gives one contact (a sphere), not a capsule's two.
  data.qpos[2] = spawn_height(morph) - 1e-3
  mujoco.mj_forward(model, data)
  feet = [c for c in data.contact[:data.ncon] if model.geom(int(c.geom2)).name.endswith("_end")]
  assert len(feet) == len(shins)
  with pytest.raises(ValueError, match="collide_end"):
    Geom("sphere", (0.1,), collide_end=1)


def _replace_body(morph, target, **changes):
  bodies = tuple(dataclasses.replace(b, **changes) if b.name == target else b for b in morph.bodies)
  return Morphology(morph.name, morph.family, bodies)


@pytest.mark.parametrize("name,changes,message", [
    ("$ Body 4_1", dict(parent="nowhere"), "missing parent"),
    ("$ Body 4_1", dict(geom=Geom("capsule", (0.08, 0.0))), "zero-length limb"),
    ("$ Body 4_1", dict(name="$ Body 4_0"), "duplicate name"),
    ("$ Body 4_1", dict(mass=0.0), "non-positive mass"),
    ("Aux 1_1", dict(joints=(Hinge("h", (0, 0, 1), (30.0, -30.0), 350.0),)), "empty range"),
])
def test_invalid_descriptions_name_the_body(name, changes, message):
  bad = _replace_body(make("ant", num_legs=3), name, **changes)
  with pytest.raises(MorphologyError, match=message) as err:
    bad.validate()
  assert repr(changes.get("name", name)) in str(err.value)


def test_cycle_is_reported():
  ant = make("ant", num_legs=2)
  bodies = list(ant.bodies)
  bodies[1] = dataclasses.replace(bodies[1], parent="$ Body 4_0")  # Aux 1_0 <-> $ Body 4_0
  with pytest.raises(MorphologyError, match="cycle") as err:
    Morphology("loop", "ant", tuple(bodies)).validate()
  assert "'Aux 1_0'" in str(err.value)


def test_unimal_format_and_errors():
  assert len(unimal_ids()) >= 6
  morphs = [make("unimal", unimal_id=u) for u in unimal_ids()]
  assert any(len(b.joints) == 2 for m in morphs for b in m.bodies)  # a universal joint exists
  assert all(m.end_effectors() for m in morphs)
  desc = {"bodies": [{"name": "t", "parent": None, "geom": {"type": "sphere", "radius": 0.1}, "mass": 1.0},
                     {"name": "leg", "parent": "t", "pos": [0.1, 0, 0], "mass": 1.0,
                      "geom": {"type": "capsule", "from": [0, 0, 0], "to": [0, 0, 0], "radius": 0.05}}]}
  with pytest.raises(MorphologyError, match="'leg'.*zero-length"):
    from_dict(desc, "bad")
  desc["bodies"][1]["geom"]["to"] = [0, 0, -0.3]
  morph = from_dict(desc, "ok")
  assert spawn_height(morph) == pytest.approx(0.3 + 0.05)  # a leg straight down carries it
  del desc["bodies"][1]["mass"]
  with pytest.raises(MorphologyError, match="'leg'.*missing field 'mass'"):
    from_dict(desc, "bad")
  with pytest.raises(KeyError, match="unimal_gen_0"):
    make("unimal", unimal_id="unimal_gen_00")


def test_unknown_family_suggests_close_names():
  with pytest.raises(KeyError, match="broken_ant"):
    make("brokn_ant", num_legs=3)


def test_init_angles_are_mid_limits():
  claw = make("claw", num_legs=2)
  assert claw.init_angles()[:4] == (0.0, 0.0, 45.0, 45.0)
  assert len(init_qpos(claw)) == 7 + claw.num_dofs


STABILITY_CASES = KINEMATICS_CASES + [("worm", dict(num_torsos=7)), ("mass_rand_centipede", dict(num_torsos=3)),
                                      *[("unimal", dict(unimal_id=u)) for u in unimal_ids()]]


@pytest.mark.parametrize("family,params", STABILITY_CASES)
def test_random_control_rollout_stays_bounded(family, params):
  # 7.5 s of MuJoCo physics under random controls with the family's default options.
  morph = make(family, **params)
  model, data = compile_at_reset(morph)
  rng = np.random.default_rng(0)
  max_qvel, max_z = 0.0, 0.0
  for t in range(1500):
    if t % 10 == 0:
      data.ctrl[:] = rng.uniform(-1.0, 1.0, model.nu)
    mujoco.mj_step(model, data)
    max_qvel, max_z = max(max_qvel, np.abs(data.qvel).max()), max(max_z, data.qpos[2])
  assert np.isfinite(data.qpos).all()
  assert max_qvel < 50.0 and max_z < 2.0, (max_qvel, max_z)


@pytest.mark.slow
def test_brax_generalized_pipeline_keeps_the_ant_up(brax_mjcf):
  import jax
  import jax.numpy as jnp
  from brax.generalized import pipeline

  morph = make("ant", num_legs=4)
  sys = brax_mjcf.loads(to_mjcf(morph))
  state = pipeline.init(sys, sys.init_q, jnp.zeros(sys.qd_size()))

  def step(state, key):
    state = pipeline.step(sys, state, jax.random.uniform(key, (sys.act_size(),), minval=-1.0, maxval=1.0))
    return state, state.x.pos[0]

  _, root = jax.jit(lambda s: jax.lax.scan(step, s, jax.random.split(jax.random.PRNGKey(0), 300)))(state)
  root = np.asarray(root)
  assert np.isfinite(root).all()
  assert 0.25 < root[:, 2].min() and root[:, 2].max() < 1.0  # neither sinks into nor flies off the floor
