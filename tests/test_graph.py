"""MTG token layouts and `render`: reference token sizes, padding that fits every registered env, the token set
does not depend on body declaration order, every action lands on its DOF's token in built envs of every family,
hand-computed golden tokens for ant_reach_4 at reset, and every config renders finite tokens in jit + vmap."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from morphology import components, envs, graph
from morphology.components.kinematics import forward_positions
from morphology.tasks import make_task

L1, L2, R = 0.4428427219390869, 0.7256854176521301, 0.08  # v1 ant thigh/shin lengths, leg radius
# mxt_reference 3.2 `obs_size_dict` (per-token sizes).
REFERENCE_TOKEN_SIZES = {
    "amorpheus": 19, "base_m": 26, "mtg_v2_base_m": 32,
    **{f"mtg_{v}_base{s}": n for v in ("v1", "v2") for s, n in
       (("", 21), ("_id", 25), ("_rp", 24), ("_rr", 24), ("_rp_rr", 27), ("_jv_rp_rr", 28), ("_jv_rp_rr_m", 39),
        ("_m", 32))},
}
ROOT_QUAT = np.array([0.9, 0.1, -0.2, 0.3]) / np.linalg.norm([0.9, 0.1, -0.2, 0.3])
# Generated unimals with several two-hinge bodies, mixing 1- and 2-hinge bodies (checked in the action-token test).
UNIMAL_IDS = ("unimal_gen_0", "unimal_gen_7", "unimal_gen_30", "unimal_gen_71")
# One env per morphology family (smallest sizes), with a variety of tasks, and a few unimals.
FAMILY_ENVS = ("ant_reach_2", "ant_reach_3_b_1", "ant_touch_2_mass_0.5_1.0_3.0", "ant_push_2_size_0.9_1.0_1.1",
               "centipede_touch_2", "centipede_push_2_b_4_1_all", "centipede_reach_2_mass_0.5_1.0_1.0",
               "centipede_reach_2_size_0.9_1.0_1.0", "claw_reach_handsup_2", "worm_push_2",
               f"unimal_reach_handsup_{components.unimal_ids()[0]}", *(f"unimal_reach_{u}" for u in UNIMAL_IDS[1:3]),
               f"unimal_touch_{UNIMAL_IDS[3]}")


# ---- configs and layouts (no JAX compile) ----


def test_every_reference_config_is_registered_with_the_reference_token_size():
  for name, size in REFERENCE_TOKEN_SIZES.items():
    assert graph.OBS_CONFIGS.get(name).token_size == size, name
  assert set(graph.OBS_CONFIGS.names()) == set(REFERENCE_TOKEN_SIZES) | {"flat", "flat_amorpheus"}
  assert graph.DEFAULT_CONFIG == "mtg_v2_base_m"
  with pytest.raises(KeyError, match="mtg_v2_base_m"):
    graph.OBS_CONFIGS.get("mtg_v2_base_mm")


def test_every_registered_env_fits_the_padding_and_maps_each_hinge_to_its_token():
  worst = 0
  for name in envs.registered_names():
    layout = graph.layout_for_name(name)  # mtg_v2 keeps goal tokens: the largest token set
    morph = envs.parse(name).morphology()
    worst = max(worst, layout.num_tokens)
    assert layout.max_tokens == graph.MAX_TOKENS and layout.mask.sum() == layout.num_tokens, name
    dofs = [layout.dofs[t] for t in layout.action_token_index]
    assert dofs == [h.name for h in morph.joints], name
    np.testing.assert_array_equal(layout.token_action_index[layout.action_token_index], np.arange(morph.num_dofs))
    assert layout.action_mask.sum() == morph.num_dofs, name
  assert worst == 37  # centipede_push_7: 35 bodies, box, target


def test_mtg_v1_drops_goal_nodes_and_keeps_physical_members():
  v1, v2 = (graph.layout_for_name("ant_push_3", c) for c in ("mtg_v1_base", "mtg_v2_base"))
  assert v2.names[-2:] == ("box", "Target") and v1.names[-1] == "box"
  assert v1.slots == (("Target", "box"),) and v1.num_tokens == v2.num_tokens - 1
  touch = graph.layout_for_name("ant_touch_3", "mtg_v1_base")
  assert "ball" not in touch.names and touch.edge[0, :2].tolist() == [1.0, 1.0]  # the root gets the ball's xy


# ---- token set vs declaration order ----


def reversed_siblings(morph):
  """The same morphology with every body's children declared in reverse (still depth-first) order."""
  order = []

  def visit(name):
    order.append(morph.body(name))
    for kid in reversed(morph.children(name)):
      visit(kid.name)

  visit(morph.root.name)
  return dataclasses.replace(morph, bodies=tuple(order)).validate()


def raw_state_by_name(morph, task, angles, body_vel, objects, goals):
  """A RawState in `morph`'s declaration order from per-name joint angles (deg) and body velocities."""
  poses = forward_positions(morph, [angles[h.name] for h in morph.joints], root_pos=(0.3, -0.2, 0.6),
                            root_quat=ROOT_QUAT)
  names = [b.name for b in morph.bodies] + [o.name for o in task.objects]
  pos = [poses[b.name][0] for b in morph.bodies] + [objects[o.name][0] for o in task.objects]
  rot = [poses[b.name][1] for b in morph.bodies] + [objects[o.name][1] for o in task.objects]
  q = [0.0] * 7 + [math.radians(angles[h.name]) for h in morph.joints] + [0.0] * 7 * len(task.objects)
  qd = [0.0] * 6 + [body_vel[h.name][0] for h in morph.joints] + [0.0] * 6 * len(task.objects)
  f = lambda x: jnp.asarray(np.array(x), jnp.float32)
  return graph.RawState(pos=f(pos), rot=f(rot), vel=f([body_vel[n][0:3] for n in names]),
                        ang=f([body_vel[n][3:6] for n in names]), q=f(q), qd=f(qd), goals=f(goals))


@pytest.mark.parametrize("family, params, task", [
    ("ant", dict(num_legs=4), "reach_handsup2"),  # height targets parented to tips
    ("unimal", dict(unimal_id=components.unimal_ids()[0]), "push"),  # 2-hinge bodies, an object and a goal
])
def test_token_set_is_invariant_to_body_declaration_order(family, params, task):
  morph = components.make(family, **params)
  permuted = reversed_siblings(morph)
  assert [b.name for b in permuted.bodies] != [b.name for b in morph.bodies]
  task = make_task(task)
  rng = np.random.default_rng(0)
  angles = {h.name: rng.uniform(*h.range) for h in morph.joints}
  names = [b.name for b in morph.bodies] + [o.name for o in task.objects] + [h.name for h in morph.joints]
  body_vel = {n: rng.normal(size=6) * 4 for n in names}  # some beyond the velocity clip
  objects = {o.name: (rng.normal(size=3), np.array([0.8, 0.0, 0.6, 0.0])) for o in task.objects}
  goals = rng.normal(size=(task.num_goals, 3))
  configs = ("mtg_v2_base_jv_rp_rr_m", "mtg_v1_base_jv_rp_rr_m", "amorpheus")  # every feature block
  layouts = [[graph.build_layout(m, task, c) for c in configs] for m in (morph, permuted)]
  raws = [raw_state_by_name(m, task, angles, body_vel, objects, goals) for m in (morph, permuted)]
  render_all = lambda raws: [[graph.render(lay, raw) for lay in lays] for lays, raw in zip(layouts, raws, strict=True)]
  rendered = jax.jit(render_all)(raws)
  for c, config in enumerate(configs):
    token_sets = []
    for lays, outs in zip(layouts, rendered, strict=True):
      layout, (tokens, mask) = lays[c], outs[c]
      tokens = np.asarray(tokens)[np.asarray(mask)]
      token_sets.append({(n, d): row for n, d, row in zip(layout.names, layout.dofs, tokens, strict=True)})
    assert layouts[0][c].names != layouts[1][c].names  # token positions moved with the bodies ...
    a, b = token_sets
    assert a.keys() == b.keys()  # ... but the token set is the same
    for key, row in a.items():
      np.testing.assert_allclose(b[key], row, atol=1e-5, err_msg=f"{config} {key}")
    sort = lambda rows: rows[np.lexsort(np.round(rows, 4).T[::-1])]
    np.testing.assert_allclose(sort(np.stack(list(a.values()))), sort(np.stack(list(b.values()))), atol=1e-5)


# ---- built envs ----


@pytest.mark.parametrize("name", FAMILY_ENVS)
def test_every_action_maps_to_its_dof_token(name):
  """Actuator k's joint, read from the env's MuJoCo model, is the DOF of token action_token_index[k], and that
  token reads the joint's q and qd entries."""
  env = envs.make(name)
  layout = graph.layout_for_env(env)  # raises if the brax System disagrees with the description
  mj = env.sys.mj_model
  assert env.action_size == layout.action_size == mj.nu
  if env.morphology.family == "unimal":  # the case v1 got wrong (quirk 3): bodies with two hinges
    assert {len(b.joints) for b in env.morphology.bodies[1:]} == {1, 2}, name
  for k, t in enumerate(layout.action_token_index):
    joint = mj.actuator_trnid[k, 0]
    assert layout.dofs[t] == mj.joint(joint).name, (name, k)
    assert (layout.qpos[t], layout.qvel[t]) == (mj.jnt_qposadr[joint], mj.jnt_dofadr[joint]), (name, k)
    assert layout.token_action_index[t] == k
  assert layout.action_mask.sum() == mj.nu


@pytest.mark.parametrize("name", ["claw_reach_handsup_2", f"unimal_reach_handsup_{components.unimal_ids()[0]}"])
def test_moving_one_joint_changes_only_its_actions_token(name):
  """Bodies with two hinges: bumping the q (qd) entry of actuator k's joint changes exactly token
  action_token_index[k]; actions round-trip through per-token outputs."""
  env = envs.make(name)
  layout = graph.layout_for_env(env, "mtg_v2_base_jv_rp_rr_m")
  mj = env.sys.mj_model
  assert max(layout.dofs.count(d) for d in set(layout.dofs) - {""}) == 1 and len(set(layout.names)) < len(layout.names)
  nb, rng = len(env.sys.link_names), np.random.default_rng(0)
  base = graph.RawState(pos=jnp.asarray(rng.normal(size=(nb, 3))), rot=jnp.tile(jnp.array([1.0, 0, 0, 0]), (nb, 1)),
                        vel=jnp.zeros((nb, 3)), ang=jnp.zeros((nb, 3)), q=jnp.asarray(env.sys.init_q),
                        qd=jnp.zeros(env.sys.qd_size()), goals=jnp.asarray(rng.normal(size=(env.task.num_goals, 3))))
  joints = mj.actuator_trnid[:, 0]
  action = jnp.asarray(rng.uniform(-1, 1, env.action_size), jnp.float32)

  @jax.jit
  def run(action):
    bump = lambda x, adr: x.at[adr].add(0.1)
    q = jax.vmap(lambda adr: graph.render(layout, base._replace(q=bump(base.q, adr)))[0])(mj.jnt_qposadr[joints])
    qd = jax.vmap(lambda adr: graph.render(layout, base._replace(qd=bump(base.qd, adr)))[0])(mj.jnt_dofadr[joints])
    per_token = graph.tokens_from_actions(layout, action)
    return graph.render(layout, base)[0], {"q": q, "qd": qd}, per_token, graph.actions_from_tokens(layout, per_token)

  ref, bumped, per_token, round_trip = run(action)
  for kind, tokens in bumped.items():
    changed = np.abs(np.asarray(tokens) - np.asarray(ref)).max(axis=-1) > 1e-6  # [A, L]
    expected = np.zeros_like(changed)
    expected[np.arange(len(joints)), layout.action_token_index] = True
    np.testing.assert_array_equal(changed, expected, err_msg=f"{name}: {kind}")
  np.testing.assert_array_equal(round_trip, action)
  assert np.all(np.asarray(per_token)[~layout.action_mask] == 0)


@pytest.fixture(scope="module")
def ant_reach_4():
  """ant_reach_4 at reset and every config rendered in one jit, vmapped over [reset state, 4 states far from rest]
  (random orientations, fast bodies, joints anywhere)."""
  env = envs.make("ant_reach_4")
  state = jax.jit(env.reset)(jax.random.PRNGKey(3))
  layouts = {c: graph.layout_for_env(env, c) for c in graph.OBS_CONFIGS}
  raw = graph.raw_state_from_env_state(state)
  batch, keys = 5, jax.random.split(jax.random.PRNGKey(0), 6)
  noise = lambda key, x, scale=1.0: jnp.concatenate(
      [x[None], x + scale * jax.random.normal(key, (batch - 1,) + x.shape)])
  rot = noise(keys[0], raw.rot)
  raws = graph.RawState(pos=noise(keys[1], raw.pos), rot=rot / jnp.linalg.norm(rot, axis=-1, keepdims=True),
                        vel=noise(keys[2], raw.vel, 20.0), ang=noise(keys[3], raw.ang, 20.0), q=noise(keys[4], raw.q),
                        qd=noise(keys[5], raw.qd), goals=jnp.broadcast_to(raw.goals, (batch,) + raw.goals.shape))
  out = jax.jit(jax.vmap(lambda r: {c: graph.render(lay, r) for c, lay in layouts.items()}))(raws)
  return env, state, layouts, jax.tree.map(np.asarray, out)


def same_rotation(actual, expected):
  """Rotation vectors agree; at angle pi, r and -r are the same rotation."""
  return np.allclose(actual, expected, atol=1e-5) or (
      np.isclose(np.linalg.norm(expected), np.pi, atol=1e-5) and np.allclose(actual, -expected, atol=1e-5))


def test_golden_tokens_of_ant_reach_4_at_reset(ant_reach_4):
  env, state, layouts, out = ant_reach_4
  layout = layouts["mtg_v2_base_m"]
  tokens, mask = (x[0] for x in out["mtg_v2_base_m"])
  assert tokens.shape == (graph.MAX_TOKENS, 32) and mask.sum() == 10 and mask[:10].all()
  assert np.all(tokens[10:] == 0)

  # By hand (v1 geometry, mxt_reference 1.2): joints at mid-range (hip 0 deg, knee 50 deg), at rest.
  knee = math.radians(50.0)
  hip = L1 / 2 + R  # torso centre -> thigh centre
  shin_x = hip + (L1 / 2 - R) + (L2 / 2 - R) * math.cos(knee)
  shin_z = -(L2 / 2 - R) * math.sin(knee)
  height = 2 * (L2 / 2 - R) * math.sin(knee) + R  # spawn: the foot cap touches the floor
  goal = np.asarray(state.info["goals"][0])
  zeros3 = [0.0] * 3
  # pos 3 | vel 3 | ang 3 | rot 3 | angle 1 | range 2 | shape 3 | mass 1 | inertia 3 | strength 1 | dof 3 | edge 6
  expected = {"torso": zeros3 * 4 + zeros3 + [0.25] * 3 + [10.0] + [1.0] * 3 + [0.0] + zeros3 + [0.0] * 6}
  for i in range(4):
    theta = i * math.pi / 2
    c, s = math.cos(theta), math.sin(theta)
    thigh_rot = Rotation.from_euler("z", theta).as_rotvec().tolist()
    shin_rot = (Rotation.from_euler("z", theta) * Rotation.from_euler("y", knee)).as_rotvec().tolist()
    expected[f"Aux 1_{i}"] = ([hip * c, hip * s, 0.0] + zeros3 * 2 + thigh_rot + [0.5, 150 / 360, 210 / 360]
                              + [R, R, L1, 1.0, 1.0, 1.0, 1.0, 3.5, 1.0, 0.0, 0.0] + [0.0] * 6)
    expected[f"$ Body 4_{i}"] = ([shin_x * c, shin_x * s, shin_z] + zeros3 * 2 + shin_rot + [0.5, 210 / 360, 250 / 360]
                                 + [R, R, L2, 1.0, 1.0, 1.0, 1.0, 3.5, 1.0, 0.0, 0.0] + [1.0, 1.0] + [0.0] * 4)
  expected["Ball"] = ([goal[0], goal[1], goal[2] - height] + zeros3 * 3 + zeros3 + [0.1] * 3 + [1.0] * 4
                      + [0.0] * 4 + [1.0, 1.0] + [0.0] * 4)
  assert layout.names == ("torso", "Aux 1_0", "$ Body 4_0", "Aux 1_1", "$ Body 4_1", "Aux 1_2", "$ Body 4_2",
                          "Aux 1_3", "$ Body 4_3", "Ball")
  rot = slice(9, 12)
  for t, name in enumerate(layout.names):
    row, want = tokens[t], np.array(expected[name])
    assert same_rotation(row[rot], want[rot]), (name, row[rot], want[rot])
    np.testing.assert_allclose(np.delete(row, rot), np.delete(want, rot), atol=1e-5, err_msg=name)

  # mtg_v1: the ball's token is gone and each shin carries the ball's egocentric xy in slot 0.
  v1 = layouts["mtg_v1_base"]
  tokens_v1, mask_v1 = (x[0] for x in out["mtg_v1_base"])
  assert mask_v1.sum() == 9 and "Ball" not in v1.names
  for t, name in enumerate(v1.names):
    edge = [goal[0], goal[1]] if name.startswith("$ Body 4") else [0.0, 0.0]
    np.testing.assert_allclose(tokens_v1[t, -6:], edge + [0.0] * 4, atol=1e-5, err_msg=name)


def test_every_config_renders_finite_tokens_in_jit_and_vmap(ant_reach_4):
  _, _, layouts, out = ant_reach_4
  batch = 5
  assert out.keys() == set(graph.OBS_CONFIGS.names())
  for config, (tokens, mask) in out.items():
    layout, cfg = layouts[config], graph.OBS_CONFIGS.get(config)
    assert layout.config == config
    assert tokens.shape == (batch, *layout.obs_shape) and mask.shape == (batch, layout.obs_shape[0]), config
    assert np.isfinite(tokens).all(), config
    if cfg.flat:
      assert mask.all() and tokens.shape[-1] == graph.MAX_TOKENS * cfg.token_size
    else:
      assert tokens.shape[-1] == cfg.token_size and mask.sum(-1).tolist() == [layout.num_tokens] * batch, config
      assert np.all(tokens[:, layout.num_tokens:] == 0), config
  np.testing.assert_array_equal(out["flat"][0], out["mtg_v2_base_m"][0].reshape(batch, 1, -1))
  np.testing.assert_array_equal(out["flat_amorpheus"][0], out["amorpheus"][0].reshape(batch, 1, -1))
  vel = out["mtg_v2_base_m"][0][1:, :9, 3:6]  # agent tokens' linear velocity, states far from rest
  assert np.abs(vel).max() == graph.VEL_CLIP
