"""The morphology-task graph (MTG) observation: static per-env token layouts and a pure `render`.

Owns the observation configs of mxt_reference 3.2 (`OBS_CONFIGS`, default `mtg_v2_base_m`), `TokenLayout`
(index and feature tables built once from a morphology description and a task), `RawState` (what an env state or
a stored transition holds) and `render(layout, raw) -> (tokens [L, F], mask [L])`, pure jnp: usable inside jit'd
rollouts and vmapped over stored raw states, so a dataset can be re-rendered into any config.

    layout = layout_for_env(env, "mtg_v2_base_m")       # or layout_for_name("ant_reach_4", ...), no MJCF
    tokens, mask = render(layout, raw_state_from_env_state(state))
    action = actions_from_tokens(layout, per_token_output)   # [L] -> [A], the env's actuator order

Tokens (mxt_reference 3.1), in order:
- agent bodies in description order (= MuJoCo's depth-first order), the root first. The root (no DOF) gives one
  token; a body with d hinges gives d consecutive tokens that share every feature except the per-DOF joint
  angle, range and velocity and the DOF one-hot;
- then the task's objects (touch ball, push box) and goals (reach balls, height targets, push target), in the
  reference's component order (`TASK_GRAPHS`).
`mtg_v1_*` configs drop each task edge's goal node and write the goal's egocentric xy (height targets:
(z_goal - z_root, 0)) into the edge features of that edge's members instead. Tokens are zero-padded to
`max_tokens` (`MAX_TOKENS` by default, enough for every registered env) so positions transfer between envs, and
`mask` marks the real ones. Actions are one per hinge (the env's actuator order): `action_token_index[A]` is each
action's token and `token_action_index[L]` the inverse (-1 where a token has no actuator).

Departures from the reference (its quirks are mxt_reference 8):
- shape: our procedural torsos are spheres, so their shape is (r, r, r); v1 torsos were capsules r .25 len .5,
  i.e. (.25, .25, .5). Capsule length is the v1 full length, caps included.
- actuator strength is the gear the env simulates (v1 strength x the family's `gear_scale`): worm 300 -> 3.0
  where v1 gave 30.
- limb ids for unimals, which do not carry the v1 names: by tree position, like the v1 names (`d{k}_limb_*` at
  depth k = 1, 2, 3 -> thigh, leg, foot; leaves, v1 `limb_end_*`, and deeper bodies -> zeros).
- unimal task edges name the real end effectors and a body with two hinges gets both DOF tokens (v1 lost the
  edges and the first hinge; quirks 3, 4); the unimal handsup height target's parent is the height tip.
- joint angles: our ranges are never empty (the description rejects them), so v1's 0.5 for empty limits is moot.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from brax import math as brax_math

from gdt.core.registry import Registry
from morphology import envs
from morphology.components.description import Body, Geom, Morphology
from morphology.components.mjcf import options_for
from morphology.tasks import Task

DEFAULT_CONFIG = "mtg_v2_base_m"
# Padded token count. The largest registered env is centipede_push_7 (35 bodies + box + target = 37);
# tests/test_graph.py checks every registered name fits.
MAX_TOKENS = 40
NUM_GOAL_SLOTS = 3  # v1 `num_goal`: task-edge slots, 2 features each
MAX_DOFS_PER_BODY = 3  # the DOF one-hot has 3 entries (v1 spherical joints)
VEL_CLIP = 10.0
MASS_CLIP = 100.0
INERTIA_CLIP = 10.0
STRENGTH_SCALE = 0.01
GOAL_MASS = 1.0  # v1 goal balls keep the ball component's default mass


# ---- observation configs ----


@dataclasses.dataclass(frozen=True)
class ObsConfig:
  """Which per-token feature blocks a config has, in the reference's concatenation order:
  [limb id 4] [rel pos 3] pos 3, vel 3, ang 3, [rel rot 3] rot 3, joint angle 1, joint range 2, [joint vel 1]
  [shape 3, mass 1, inertia 3, strength 1, DOF one-hot 3] [goal edge 2 x NUM_GOAL_SLOTS]."""

  name: str
  limb_id: bool = False  # `_id` / amorpheus: torso/thigh/leg/foot one-hot
  rel_pos: bool = False  # `_rp`: p - p_parent
  rel_rot: bool = False  # `_rr`: expmap(q q_parent^-1)
  joint_vel: bool = False  # `_jv`
  morph: bool = False  # `_m`: shape, mass, inertia, actuator strength, DOF one-hot
  goal_edge: str = "none"  # 'one_hot' (mtg_v2, goals stay tokens) | 'direct' (mtg_v1, goals become edges) | 'none'
  flat: bool = False  # one token holding the L padded tokens concatenated (MLP input)

  def __post_init__(self):
    if self.goal_edge not in ("none", "one_hot", "direct"):
      raise ValueError(f"ObsConfig {self.name!r}: goal_edge must be none|one_hot|direct, got {self.goal_edge!r}")

  @property
  def token_size(self) -> int:
    """Features per (unflattened) token."""
    return (4 * self.limb_id + 3 * self.rel_pos + 12 + 3 * self.rel_rot + 3 + self.joint_vel + 11 * self.morph
            + 2 * NUM_GOAL_SLOTS * (self.goal_edge != "none"))

  @property
  def keeps_goal_tokens(self) -> bool:
    return self.goal_edge != "direct"


OBS_CONFIGS: Registry[ObsConfig] = Registry("observation config")
OBS_CONFIGS.register("amorpheus", ObsConfig("amorpheus", limb_id=True))
OBS_CONFIGS.register("base_m", ObsConfig("base_m", morph=True))
_SUFFIXES = {"": {}, "_id": dict(limb_id=True), "_rp": dict(rel_pos=True), "_rr": dict(rel_rot=True),
             "_rp_rr": dict(rel_pos=True, rel_rot=True), "_jv_rp_rr": dict(joint_vel=True, rel_pos=True, rel_rot=True),
             "_jv_rp_rr_m": dict(joint_vel=True, rel_pos=True, rel_rot=True, morph=True), "_m": dict(morph=True)}
for _version, _edge in (("v1", "direct"), ("v2", "one_hot")):
  for _suffix, _flags in _SUFFIXES.items():
    _name = f"mtg_{_version}_base{_suffix}"
    OBS_CONFIGS.register(_name, ObsConfig(_name, goal_edge=_edge, **_flags))
# The MLP baseline reads the default config flattened; PPO experts read flat amorpheus (mxt_reference 4, 5.1).
OBS_CONFIGS.register("flat", ObsConfig("flat", morph=True, goal_edge="one_hot", flat=True))
OBS_CONFIGS.register("flat_amorpheus", ObsConfig("flat_amorpheus", limb_id=True, flat=True))


# ---- task graphs: goal nodes and task edges per task ----


@dataclasses.dataclass(frozen=True)
class GoalNode:
  """A non-physical goal point (`state.info['goals']` row): a frozen v1 ball."""

  name: str
  geom: Geom
  mass: float = GOAL_MASS
  height: bool = False  # a height target: only its z matters (v1 `Z_Target`)


@dataclasses.dataclass(frozen=True)
class TaskGraph:
  """goals: in `info['goals']` order; edges: per slot, the goal node first, then its members (body, object or
  goal names); parents: goal -> the body its `_rp`/`_rr` features are relative to (default: the root)."""

  goals: tuple[GoalNode, ...]
  edges: tuple[tuple[str, ...], ...]
  parents: dict = dataclasses.field(default_factory=dict)


TASK_GRAPHS: Registry[Callable[[Task, Morphology], TaskGraph]] = Registry("task graph")


def _numbered(prefix: str, n: int) -> list[str]:
  return [prefix] if n == 1 else [f"{prefix}_{i + 1}" for i in range(n)]


def _sphere(radius: float) -> Geom:
  return Geom("sphere", (radius,))


def _reach_graph(task, morph: Morphology) -> TaskGraph:
  """reach and the handsup twisters: [Ball_i, reaching tips] per ball, then [Z_Target_j, its tip] (v1 `task_edge`)."""
  tips = [b.name for b in morph.end_effectors()]
  reach_tips = tuple(t for k, t in enumerate(tips) if k not in task.height_tips)
  balls = _numbered("Ball", task.num_balls)
  heights = _numbered("Z_Target", len(task.height_tips))
  goals = [GoalNode(b, _sphere(task.radius)) for b in balls]
  goals += [GoalNode(z, _sphere(task.z_tolerance), height=True) for z in heights]  # v1 radius = min_dist_z
  edges = [(b, *reach_tips) for b in balls] + [(z, tips[k]) for z, k in zip(heights, task.height_tips, strict=True)]
  parents = {z: tips[k] for z, k in zip(heights, task.height_tips, strict=True)}
  return TaskGraph(tuple(goals), tuple(edges), parents)


def _touch_graph(task, morph: Morphology) -> TaskGraph:
  """touch: [ball, root]; the ball is a physical object, not a goal point."""
  return TaskGraph((), ((task.objects[0].name, morph.root.name),))


def _push_graph(task, morph: Morphology) -> TaskGraph:
  """push: [Target, box]; v1 gave the target the box's `mass` parameter."""
  return TaskGraph((GoalNode("Target", _sphere(task.target_radius), task.box_mass),),
                   (("Target", task.objects[0].name),))


for _task in ("reach", "reach_handsup", "reach2_handsup", "reach_handsup2"):
  TASK_GRAPHS.register(_task, _reach_graph)
TASK_GRAPHS.register("touch", _touch_graph)
TASK_GRAPHS.register("push", _push_graph)


# ---- raw state ----


class RawState(NamedTuple):
  """One simulation state, enough to render any config (leading batch/time axes allowed).

  Bodies are the brax links: agent bodies in description order, then the task's objects.
  """

  pos: jax.Array  # [nbody, 3] world positions of the body frames
  rot: jax.Array  # [nbody, 4] world orientations, wxyz
  vel: jax.Array  # [nbody, 3] world linear velocities
  ang: jax.Array  # [nbody, 3] world angular velocities
  q: jax.Array  # [q_size] generalized positions (free root, hinges in radians, free objects)
  qd: jax.Array  # [qd_size]
  goals: jax.Array  # [G, 3] goal points (`state.info['goals']`)


def raw_state_from_env_state(state) -> RawState:
  """The RawState of a `morphology.envs` env state (a brax envs `State`, wrapped or not, batched or not)."""
  ps = state.pipeline_state
  return RawState(pos=ps.x.pos, rot=ps.x.rot, vel=ps.xd.vel, ang=ps.xd.ang, q=ps.q, qd=ps.qd,
                  goals=state.info["goals"])


# ---- layouts ----


@flax.struct.dataclass
class TokenLayout:
  """Static tables of one env under one config; arrays are padded to L = max_tokens.

  A pytree (arrays are leaves, the rest static), so it can be closed over or passed into jit, and layouts of
  envs with equal shapes can be stacked. "Entities" are the rows of concat(raw.pos (bodies), raw.goals).
  """

  source: np.ndarray  # [L] int32: entity of each token (padding: 0)
  parent: np.ndarray  # [L] int32: token index of the parent body's first token; -1 for the root and padding
  qpos: np.ndarray  # [L] int32: q index of the token's DOF, -1 if none
  qvel: np.ndarray  # [L] int32: qd index of the token's DOF, -1 if none
  joint_range: np.ndarray  # [L, 2] float32, degrees ([0, 0] without a DOF)
  limb_id: np.ndarray  # [L, 4] float32 one-hot torso/thigh/leg/foot (or zeros)
  shape: np.ndarray  # [L, 3] float32
  mass: np.ndarray  # [L] float32
  inertia: np.ndarray  # [L, 3] float32
  strength: np.ndarray  # [L] float32: motor gear of the token's DOF (0 without one)
  dof_onehot: np.ndarray  # [L, 3] float32
  edge: np.ndarray  # [L, 2 * NUM_GOAL_SLOTS] float32: task-edge membership (both dims of a slot)
  is_goal: np.ndarray  # [L] bool: a goal-point token (rendered at rest with identity rotation)
  mask: np.ndarray  # [L] bool: real tokens
  action_token_index: np.ndarray  # [A] int32: token of each action's DOF
  token_action_index: np.ndarray  # [L] int32: action of each token, -1 if none
  slot_source: np.ndarray  # [NUM_GOAL_SLOTS] int32: entity of each slot's goal, -1 for an empty slot
  slot_height: np.ndarray  # [NUM_GOAL_SLOTS] bool: the slot's goal is a height target
  config: str = flax.struct.field(pytree_node=False, default=DEFAULT_CONFIG)
  env_name: str = flax.struct.field(pytree_node=False, default="")
  names: tuple = flax.struct.field(pytree_node=False, default=())  # [n] node name of each real token
  dofs: tuple = flax.struct.field(pytree_node=False, default=())  # [n] hinge name of each real token ('' if none)
  slots: tuple = flax.struct.field(pytree_node=False, default=())  # per slot, the edge's node names
  num_bodies: int = flax.struct.field(pytree_node=False, default=0)  # raw-state body rows: agent + objects
  num_goals: int = flax.struct.field(pytree_node=False, default=0)
  q_size: int = flax.struct.field(pytree_node=False, default=0)
  qd_size: int = flax.struct.field(pytree_node=False, default=0)

  @property
  def max_tokens(self) -> int:
    return int(self.mask.shape[-1])

  @property
  def num_tokens(self) -> int:
    return len(self.names)

  @property
  def action_size(self) -> int:
    return int(self.action_token_index.shape[-1])

  @property
  def obs_config(self) -> ObsConfig:
    return OBS_CONFIGS.get(self.config)

  @property
  def obs_shape(self) -> tuple[int, int]:
    """The shape of `render`'s tokens: (L, F), or (1, L * F) for flat configs."""
    cfg = self.obs_config
    return (1, self.max_tokens * cfg.token_size) if cfg.flat else (self.max_tokens, cfg.token_size)

  @property
  def action_mask(self) -> np.ndarray:
    """[L] bool: tokens that carry an action (the BC loss mask)."""
    return self.token_action_index >= 0


_THIGH = re.compile(r"Aux [12]_\d+|torso_\d+")  # v1 one_hot_limb_id: non-root torsos count as thighs
_LEG = re.compile(r"\$ Body [45]_\d+")


def limb_type_index(morph: Morphology, body: Body) -> int | None:
  """The v1 amorpheus limb type (0 torso, 1 thigh, 2 leg, 3 foot; None = zeros) from the v1 name table, or, for
  names outside it (unimals), from the tree position the v1 unimal names encode."""
  if body.parent is None:
    return 0
  if _THIGH.fullmatch(body.name):
    return 1
  if _LEG.fullmatch(body.name):
    return 2
  if not morph.children(body.name):
    return None  # v1 `limb_end_*`
  depth, name = 0, body.name
  while morph.body(name).parent is not None:
    name, depth = morph.body(name).parent, depth + 1
  return {1: 1, 2: 2, 3: 3}.get(depth)


def geom_shape(geom: Geom) -> tuple[float, float, float]:
  """v1 shape feature: capsule (r, r, full length), sphere (r, r, r), box half sizes."""
  if geom.type == "capsule":
    r, half = geom.size
    return (r, r, 2 * half + 2 * r)
  if geom.type == "sphere":
    return (geom.size[0],) * 3
  return tuple(geom.size)


@dataclasses.dataclass
class _Node:
  name: str
  source: int
  parent: str | None
  shape: tuple
  mass: float
  inertia: tuple = (1.0, 1.0, 1.0)
  hinges: tuple = ()
  first_hinge: int = 0  # index of hinges[0] in morph.joints (= its action)
  limb: int | None = None
  goal: bool = False
  height: bool = False


def _nodes(morph: Morphology, task: Task, task_graph: TaskGraph) -> list[_Node]:
  nodes, k = [], 0
  for i, b in enumerate(morph.bodies):
    if b.parent is not None and not b.joints:
      raise ValueError(f"{morph.name}: body {b.name!r} has no joint; brax fuses such bodies into their parent, "
                       "so it has no state of its own to render")
    if len(b.joints) > MAX_DOFS_PER_BODY:
      raise ValueError(f"{morph.name}: body {b.name!r} has {len(b.joints)} hinges; tokens allow {MAX_DOFS_PER_BODY}")
    nodes.append(_Node(b.name, i, b.parent, geom_shape(b.geom), b.mass, tuple(b.inertia), tuple(b.joints), k,
                       limb_type_index(morph, b)))
    k += len(b.joints)
  root = morph.root.name
  nb = len(morph.bodies)
  for j, o in enumerate(task.objects):
    nodes.append(_Node(o.name, nb + j, root, geom_shape(o.geom), o.mass))  # MJCF objects: unit inertia
  nlinks = nb + len(task.objects)
  for g, goal in enumerate(task_graph.goals):
    nodes.append(_Node(goal.name, nlinks + g, task_graph.parents.get(goal.name, root), geom_shape(goal.geom), goal.mass,
                       goal=True, height=goal.height))
  return nodes


def build_layout(morph: Morphology, task: Task, config: str = DEFAULT_CONFIG, *, max_tokens: int | None = MAX_TOKENS,
                 gear_scale: float | None = None, env_name: str = "") -> TokenLayout:
  """The token layout of `morph` doing `task` under `config` (an `OBS_CONFIGS` name).

  max_tokens: the padded L (None: exactly the real token count). gear_scale: multiplies the hinge gears for the
  strength feature (None: the family's MJCF default, `mjcf.options_for`). Body i is raw-state row i, objects follow;
  hinge k is action k, q index 7 + k and qd index 6 + k (the MJCF `to_mjcf` writes; `layout_for_env` checks it).
  """
  cfg = OBS_CONFIGS.get(config)
  task_graph = TASK_GRAPHS.get(task.name)(task, morph)
  if len(task_graph.edges) > NUM_GOAL_SLOTS:
    raise ValueError(f"task {task.name}: {len(task_graph.edges)} task edges, the MTG has {NUM_GOAL_SLOTS} slots")
  if len(task_graph.goals) != task.num_goals:
    raise ValueError(f"task {task.name}: the task graph names {len(task_graph.goals)} goals, the task samples "
                     f"{task.num_goals}")
  gear_scale = options_for(morph).gear_scale if gear_scale is None else gear_scale
  nodes = _nodes(morph, task, task_graph)
  by_name = {n.name: n for n in nodes}
  for edge in task_graph.edges:
    missing = [m for m in edge if m not in by_name]
    if missing:
      raise ValueError(f"task {task.name} on {morph.name}: task edge names unknown nodes {missing}")
  dropped = set() if cfg.keeps_goal_tokens else {edge[0] for edge in task_graph.edges}
  free_root = 7  # the root's free joint: 7 q entries, 6 qd entries

  rows, first_token = [], {}
  for n in nodes:
    if n.name in dropped:
      continue
    first_token[n.name] = len(rows)
    for d in range(max(1, len(n.hinges))):
      rows.append((n, d if n.hinges else None))
  num_tokens = len(rows)
  L = num_tokens if max_tokens is None else max_tokens
  if num_tokens > L:
    raise ValueError(f"{env_name or morph.name}: {num_tokens} tokens exceed max_tokens={L}")

  i32 = lambda fill, *shape: np.full((L, *shape), fill, np.int32)
  f32 = lambda *shape: np.zeros((L, *shape), np.float32)
  source, parent, qpos, qvel, action = i32(0), i32(-1), i32(-1), i32(-1), i32(-1)
  joint_range, limb_id, shape, mass, inertia = f32(2), f32(4), f32(3), f32(), f32(3)
  strength, dof_onehot, edge = f32(), f32(3), f32(2 * NUM_GOAL_SLOTS)
  is_goal, mask = np.zeros(L, bool), np.zeros(L, bool)
  for t, (n, d) in enumerate(rows):
    mask[t] = True
    source[t] = n.source
    is_goal[t] = n.goal
    if n.parent is not None:
      parent[t] = first_token[n.parent]
    if n.limb is not None:
      limb_id[t, n.limb] = 1.0
    shape[t], mass[t], inertia[t] = n.shape, n.mass, n.inertia
    for s, members in enumerate(task_graph.edges):
      if n.name in members:
        edge[t, 2 * s:2 * s + 2] = 1.0
    if d is not None:
      h, k = n.hinges[d], n.first_hinge + d
      qpos[t], qvel[t], action[t] = free_root + k, free_root - 1 + k, k
      joint_range[t] = h.range
      strength[t] = h.gear * gear_scale
      dof_onehot[t, d] = 1.0

  slot_source = np.full(NUM_GOAL_SLOTS, -1, np.int32)
  slot_height = np.zeros(NUM_GOAL_SLOTS, bool)
  for s, members in enumerate(task_graph.edges):
    slot_source[s] = by_name[members[0]].source
    slot_height[s] = by_name[members[0]].height
  action_token_index = np.zeros(morph.num_dofs, np.int32)
  action_token_index[action[action >= 0]] = np.flatnonzero(action >= 0)  # every hinge made exactly one token
  nb = len(morph.bodies)
  return TokenLayout(
      source=source, parent=parent, qpos=qpos, qvel=qvel, joint_range=joint_range, limb_id=limb_id, shape=shape,
      mass=mass, inertia=inertia, strength=strength, dof_onehot=dof_onehot, edge=edge, is_goal=is_goal, mask=mask,
      action_token_index=action_token_index, token_action_index=action, slot_source=slot_source,
      slot_height=slot_height, config=config, env_name=env_name or f"{morph.name}_{task.name}",
      names=tuple(n.name for n, _ in rows), dofs=tuple("" if d is None else n.hinges[d].name for n, d in rows),
      slots=tuple(task_graph.edges), num_bodies=nb + len(task.objects), num_goals=len(task_graph.goals),
      q_size=free_root + morph.num_dofs + 7 * len(task.objects), qd_size=6 + morph.num_dofs + 6 * len(task.objects))


def layout_for_name(name: str, config: str = DEFAULT_CONFIG, *, max_tokens: int | None = MAX_TOKENS) -> TokenLayout:
  """The layout of a registered env name, from its description and task alone (no MJCF, no brax System)."""
  spec = envs.parse(name)
  return build_layout(spec.morphology(), spec.task, config, max_tokens=max_tokens, env_name=name)


def layout_for_env(env: envs.MorphologyTaskEnv, config: str = DEFAULT_CONFIG, *,
                   max_tokens: int | None = MAX_TOKENS) -> TokenLayout:
  """The layout of a built env, checked against its brax System: body rows, hinge q/qd addresses and the
  actuator -> joint map; the strength feature uses the env's own gear scale."""
  layout = build_layout(env.morphology, env.task, config, max_tokens=max_tokens,
                        gear_scale=env.mjcf_options.gear_scale, env_name=env.name)
  links = [b.name for b in env.morphology.bodies] + [o.name for o in env.task.objects]
  if list(env.sys.link_names) != links:
    raise ValueError(f"{env.name}: brax links {env.sys.link_names} are not the description's bodies {links}")
  mj = env.sys.mj_model
  hinges = env.morphology.joints
  for k, h in enumerate(hinges):
    jid = mj.joint(h.name).id
    t = layout.action_token_index[k]
    if mj.actuator_trnid[k, 0] != jid:
      raise ValueError(f"{env.name}: actuator {k} drives joint {mj.joint(mj.actuator_trnid[k, 0]).name!r}, "
                       f"not {h.name!r}")
    if (layout.qpos[t], layout.qvel[t]) != (mj.jnt_qposadr[jid], mj.jnt_dofadr[jid]):
      raise ValueError(f"{env.name}: joint {h.name!r} sits at q[{mj.jnt_qposadr[jid]}], qd[{mj.jnt_dofadr[jid]}]")
  if (layout.q_size, layout.qd_size) != (env.sys.q_size(), env.sys.qd_size()):
    raise ValueError(f"{env.name}: q/qd sizes {env.sys.q_size()}/{env.sys.qd_size()} differ from the layout's")
  return layout


# ---- rendering ----


def quat_to_expmap(quat: jax.Array) -> jax.Array:
  """[..., 4] wxyz -> [..., 3] exponential map, angle wrapped to [-pi, pi] (v1 `quat2expmap`)."""
  v, w = quat[..., 1:], quat[..., 0]
  s = jnp.linalg.norm(v, axis=-1)
  axis = v / (s + jnp.finfo(jnp.float32).eps)[..., None]
  theta = jnp.mod(2.0 * jnp.arctan2(s, w) + 2.0 * jnp.pi, 2.0 * jnp.pi)
  return axis * jnp.where(theta > jnp.pi, theta - 2.0 * jnp.pi, theta)[..., None]


def render(layout: TokenLayout, raw: RawState) -> tuple[jax.Array, jax.Array]:
  """Tokens [L, F] (flat configs: [1, L * F]) and mask [L] (flat: [1]) of one raw state; pure jnp.

  Padded tokens are all zeros. vmap it over leading axes of `raw` for batches or trajectories.
  """
  cfg = layout.obs_config
  idx = lambda a: jnp.maximum(a, 0)  # -1 entries gather row 0, then get masked out
  root = raw.pos[0]  # the root is body 0 and token 0
  num_goals = raw.goals.shape[0]
  identity = jnp.array([1.0, 0.0, 0.0, 0.0])
  ent_pos = jnp.concatenate([raw.pos, raw.goals])
  ent_rot = jnp.concatenate([raw.rot, jnp.broadcast_to(identity, (num_goals, 4))])
  ent_vel = jnp.concatenate([raw.vel, jnp.zeros((num_goals, 3))])
  ent_ang = jnp.concatenate([raw.ang, jnp.zeros((num_goals, 3))])
  pos, rot = ent_pos[layout.source], ent_rot[layout.source]
  has_parent = (layout.parent >= 0)[:, None]
  has_dof = layout.qpos >= 0

  feats = []
  if cfg.limb_id:
    feats.append(layout.limb_id)
  if cfg.rel_pos:
    feats.append(pos - jnp.where(has_parent, pos[idx(layout.parent)], root))  # the root's parent is itself
  feats += [pos - root, jnp.clip(ent_vel[layout.source], -VEL_CLIP, VEL_CLIP), ent_ang[layout.source]]
  if cfg.rel_rot:
    parent_rot = jnp.where(has_parent, rot[idx(layout.parent)], identity)
    feats.append(quat_to_expmap(jax.vmap(brax_math.quat_mul)(rot, jax.vmap(brax_math.quat_inv)(parent_rot))))
  feats.append(quat_to_expmap(rot))
  lo, hi = layout.joint_range[:, 0], layout.joint_range[:, 1]
  degrees = jnp.degrees(raw.q[idx(layout.qpos)])
  angle = jnp.where(has_dof, (degrees - lo) / jnp.where(has_dof, hi - lo, 1.0), 0.0)
  feats += [angle[:, None], jnp.where(has_dof[:, None], (180.0 + layout.joint_range) / 360.0, 0.0)]
  if cfg.joint_vel:
    feats.append(jnp.where(has_dof, raw.qd[idx(layout.qvel)], 0.0)[:, None])
  if cfg.morph:
    feats += [layout.shape, jnp.clip(layout.mass, 0.0, MASS_CLIP)[:, None], jnp.clip(layout.inertia, 0.0, INERTIA_CLIP),
              STRENGTH_SCALE * layout.strength[:, None], layout.dof_onehot]
  if cfg.goal_edge == "one_hot":
    feats.append(layout.edge)
  elif cfg.goal_edge == "direct":
    goal = ent_pos[idx(layout.slot_source)] - root  # [S, 3]
    value = jnp.where(layout.slot_height[:, None], jnp.stack([goal[:, 2], jnp.zeros_like(goal[:, 2])], -1), goal[:, :2])
    value = jnp.where((layout.slot_source >= 0)[:, None], value, 0.0)
    feats.append(layout.edge * value.reshape(-1))
  mask = jnp.asarray(layout.mask)
  tokens = jnp.concatenate(feats, axis=-1).astype(jnp.float32) * mask[:, None]
  if cfg.flat:
    return tokens.reshape(1, -1), jnp.ones((1,), bool)
  return tokens, mask


def actions_from_tokens(layout: TokenLayout, token_actions: jax.Array) -> jax.Array:
  """Per-token outputs [..., L] -> the env action [..., A] (actuator order)."""
  return token_actions[..., layout.action_token_index]


def tokens_from_actions(layout: TokenLayout, actions: jax.Array) -> jax.Array:
  """An env action [..., A] -> per-token targets [..., L], zero on tokens without an actuator (see `action_mask`)."""
  out = jnp.zeros(actions.shape[:-1] + (layout.max_tokens,), actions.dtype)
  return out.at[..., layout.action_token_index].set(actions)
