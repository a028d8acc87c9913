"""MxT-Bench envs: morphology x task as a brax `PipelineEnv`, and the registry of env names.

Names follow the reference patterns (mxt_reference 2.4) and are parsed by a small grammar,
`{agent}_{task}_{morphology}`:
- agent: ant | centipede | claw | worm | unimal;
- task: reach | reach_hard | touch | push | reach_handsup | reach_hard_handsup | reach2_handsup | reach_handsup2;
- morphology: `{n}` (base family), `{n}_b_{j}` (broken leg j), `{n}_b_{side}_{j}[_all]` (centipede:
  shin, or the whole leg, of side 4=left/5=right of torso j), `{n}_mass_{a}_{b}_{c}` / `{n}_size_{a}_{b}_{c}`
  (per-leg values cycled, printed as floats), or a unimal id.
Which combinations exist is the `SUITES` table; `registered_names()` enumerates it.

    env = make("ant_reach_4")                  # PipelineEnv; env dt 0.05 (physics 0.005 x 10)
    state = jax.jit(env.reset)(rng)            # state.info: goals [G, 3], success, distance, ...
    state = jax.jit(env.step)(state, action)   # action [env.action_size] in [-1, 1]
    eval_env = wrap_eval(env)                  # time limit + success / final-distance bookkeeping
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from brax import base as brax_base
from brax import math as brax_math
from brax.envs.base import PipelineEnv, State, Wrapper
from brax.envs.wrappers.training import EpisodeWrapper
from brax.io import mjcf as brax_mjcf

from gdt.core.registry import unknown_name_message
from morphology import components
from morphology.components.mjcf import options_for, to_mjcf
from morphology.tasks import Frame, Task, evaluate, make_task

PHYSICS_DT = 0.005
ENV_DT = 0.05
# The fastest CPU pipeline that stays physical (benchmarks/bench_morphology_env.py, ant_reach_4, batch 64,
# 2 shared cores): positional 2.6k steps/s; spring 11k but under random actions the ant flies 20 m up and
# its joints pass their limits by 200 degrees; generalized 0.4k.
DEFAULT_BACKEND = "positional"
BACKENDS = ("positional", "spring", "generalized", "mjx")


# ---- the env ----


# Where on an end-effector body the reach / handsup distances are measured (`EnvConfig.end_effector_point`):
# - 'centre': the centre of the body's geom. v1's rule: its reach and handsup terms read the QP position of
#   `$ Body 4_i`, and a v1 body sits at its collider's centre (for ant, claw and centipede this is our body
#   frame, the middle of the lower leg; for unimals the capsule midpoint; for worm the last torso's centre).
# - 'tip': the far end of the last segment (`Body.tip`, cap included), where a foot touches the ground; it
#   is half a lower leg further out (ant 0.36 m, claw 0.2 m), so success needs a different pose than in v1.
END_EFFECTOR_POINTS = ("centre", "tip")

# The flat observation an env returns (`EnvConfig.observation`; PPO experts and the Gymnasium wrapper read it, the
# MTG tokens are rendered from raw state instead, `morphology.graph`):
# - 'egocentric': root height, gravity, root velocities, goal / object offsets and object velocities in the root
#   body's frame, plus joint angles and velocities: nothing depends on where the agent stands or which way it
#   faces, so "walk toward the goal" is one function of the goal's body-frame offset.
# - 'world': [q, qd, (goals - root), (objects - root)] with world-frame offsets and the root's world pose, like the
#   reference's flat amorpheus observation (an MLP must learn to rotate the offset by the root quaternion itself).
OBSERVATIONS = ("egocentric", "world")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
  backend: str = DEFAULT_BACKEND
  end_effector_point: str = "centre"  # an END_EFFECTOR_POINTS value; the default is v1's
  observation: str = "egocentric"  # an OBSERVATIONS value
  # (field, value) pairs applied on top of the family's MJCF options (`mjcf.options_for`), e.g.
  # (("floor_contact", "end_effectors"),).
  mjcf_overrides: tuple = ()

  def __post_init__(self):
    if self.end_effector_point not in END_EFFECTOR_POINTS:
      raise ValueError(unknown_name_message("end_effector_point", self.end_effector_point, END_EFFECTOR_POINTS))
    if self.observation not in OBSERVATIONS:
      raise ValueError(unknown_name_message("observation", self.observation, OBSERVATIONS))


class MorphologyTaskEnv(PipelineEnv):
  """A morphology with a task; `done` is the task's success, there is no other termination (v1).

  reset: the agent at its mid-limit pose, at rest; free objects and goals sampled by the task.
  obs: the flat observation `config.observation` names (OBSERVATIONS); the MTG tokens come from raw state.
  state.info: goals [G, 3], success, distance, initial_distance; state.metrics: success, distance
  and one entry per reward term.
  """

  def __init__(self, morph: components.Morphology, task: Task, config: EnvConfig = EnvConfig(), name: str = ""):
    ee = morph.end_effectors()
    if len(ee) < task.min_tips():
      raise ValueError(f"{name or morph.name}: task {task.name} needs {task.min_tips()} end effectors, "
                       f"{morph.name} has {len(ee)}")
    self.name = name or f"{morph.name}_{task.name}"
    self.morphology = morph
    self.task = task
    self.config = config
    self.episode_length = task.episode_length
    self.mjcf_options = options_for(morph, **dict(config.mjcf_overrides))
    self.xml = to_mjcf(morph, task.objects, self.mjcf_options)
    sys = brax_mjcf.loads(self.xml)
    n_frames = round(ENV_DT / PHYSICS_DT)
    if not np.isclose(sys.opt.timestep, PHYSICS_DT):
      raise ValueError(f"MJCF timestep {sys.opt.timestep} != {PHYSICS_DT}")
    super().__init__(sys, backend=config.backend, n_frames=n_frames)

    link = sys.link_names.index
    mj = sys.mj_model
    self._root = link(morph.root.name)
    self._tip_bodies = np.array([link(b.name) for b in ee], dtype=np.int32)
    # Body-frame offsets of the measured points (a tip-less end effector falls back to its centre).
    use_tip = config.end_effector_point == "tip"
    self._tip_offsets = np.array([b.tip if use_tip and b.tip is not None else b.geom.pos for b in ee],
                                 dtype=np.float32).reshape(len(ee), 3)
    self._obj_bodies = np.array([link(o.name) for o in task.objects], dtype=np.int32)
    # Free-joint qpos addresses of the objects, so reset can place them through q.
    self._obj_qadr = np.array(
        [mj.jnt_qposadr[mj.body_jntadr[mj.body(o.name).id]] for o in task.objects], dtype=np.int32)
    # The agent's hinge coordinates: everything but the root's and the objects' free joints (7 q, 6 qd each).
    obj_dadr = [mj.jnt_dofadr[mj.body_jntadr[mj.body(o.name).id]] for o in task.objects]
    q_free = {0, *range(1, 7), *(a + i for a in self._obj_qadr for i in range(7))}
    qd_free = {*range(6), *(a + i for a in obj_dadr for i in range(6))}
    self._joint_q = np.array([i for i in range(sys.q_size()) if i not in q_free], dtype=np.int32)
    self._joint_qd = np.array([i for i in range(sys.qd_size()) if i not in qd_free], dtype=np.int32)

  def frame(self, ps: brax_base.State) -> Frame:
    """The task's view of a pipeline state."""
    tip_pos = ps.x.pos[self._tip_bodies] + jax.vmap(brax_math.rotate)(
        jnp.asarray(self._tip_offsets), ps.x.rot[self._tip_bodies])
    return Frame(root_pos=ps.x.pos[self._root], root_vel=ps.xd.vel[self._root], tips=tip_pos,
                 obj_pos=ps.x.pos[self._obj_bodies], obj_vel=ps.xd.vel[self._obj_bodies])

  def reset(self, rng: jax.Array) -> State:
    obj_pos, goals = self.task.sample(rng)
    q = jnp.asarray(self.sys.init_q)
    for i, adr in enumerate(self._obj_qadr):
      q = q.at[adr:adr + 7].set(jnp.concatenate([obj_pos[i], jnp.array([1.0, 0.0, 0.0, 0.0])]))
    ps = self.pipeline_init(q, jnp.zeros(self.sys.qd_size()))
    frame = self.frame(ps)
    out = evaluate(self.task, frame, goals, self.dt)
    zero = jnp.zeros(())
    info = {"goals": goals, "success": zero, "distance": out.distance, "initial_distance": out.distance}
    metrics = {"success": zero, "distance": out.distance, **{k: zero for k in out.terms}}
    return State(ps, self._obs(ps, frame, goals), zero, zero, metrics, info)

  def step(self, state: State, action: jax.Array) -> State:
    ps = self.pipeline_step(state.pipeline_state, action)
    goals = state.info["goals"]
    frame = self.frame(ps)
    out = evaluate(self.task, frame, goals, self.dt)
    state.info.update(success=out.success, distance=out.distance)
    state.metrics.update(success=out.success, distance=out.distance, **out.terms)
    return state.replace(pipeline_state=ps, obs=self._obs(ps, frame, goals), reward=out.reward, done=out.success)

  def _obs(self, ps: brax_base.State, frame: Frame, goals: jax.Array) -> jax.Array:
    if self.config.observation == "world":
      rel = lambda p: (p - frame.root_pos).ravel()
      return jnp.concatenate([ps.q, ps.qd, rel(goals), rel(frame.obj_pos)])
    rot = ps.x.rot[self._root]
    body = lambda v: jax.vmap(brax_math.inv_rotate, in_axes=(0, None))(jnp.reshape(v, (-1, 3)), rot).ravel()
    return jnp.concatenate([
        frame.root_pos[2:], body(jnp.array([0.0, 0.0, -1.0])), body(frame.root_vel), body(ps.xd.ang[self._root]),
        ps.q[self._joint_q], ps.qd[self._joint_qd], body(goals - frame.root_pos),
        body(frame.obj_pos - frame.root_pos), body(frame.obj_vel)])


class GoalEvalWrapper(Wrapper):
  """Success / final-distance / return bookkeeping for evaluation (v1 GoalEvalWrapper), no auto-reset.

  Wrap a time-limited env (`wrap_eval`). `info['eval']` after any number of steps holds, per env:
  finished (episode ended), success (ended by the goal, not by truncation), final_distance (the
  distance when it ended, else the current one), initial_distance, episode_return and length
  (both frozen once finished).
  """

  def reset(self, rng: jax.Array) -> State:
    state = self.env.reset(rng)
    zero = jnp.zeros_like(state.reward)
    state.info["eval"] = {"finished": zero, "success": zero, "final_distance": state.info["distance"],
                          "initial_distance": state.info["distance"], "episode_return": zero, "length": zero}
    return state

  def step(self, state: State, action: jax.Array) -> State:
    ev = state.info["eval"]
    active = 1.0 - ev["finished"]
    state = self.env.step(state, action)
    ended = active * state.done
    state.info["eval"] = {
        "finished": jnp.maximum(ev["finished"], state.done),
        "success": jnp.maximum(ev["success"], ended * (1.0 - state.info["truncation"])),
        "final_distance": jnp.where(active > 0, state.info["distance"], ev["final_distance"]),
        "initial_distance": ev["initial_distance"],
        "episode_return": ev["episode_return"] + active * state.reward,
        "length": ev["length"] + active,
    }
    return state


def wrap_eval(env: MorphologyTaskEnv, episode_length: int | None = None) -> Wrapper:
  """Time limit (brax EpisodeWrapper; `truncation` in info) then GoalEvalWrapper."""
  return GoalEvalWrapper(EpisodeWrapper(env, episode_length or env.episode_length, action_repeat=1))


# ---- the name grammar ----

MASS_SETS = ((0.5, 1.0, 3.0), (0.5, 1.0, 1.0), (1.0, 3.0, 3.0))
SIZE_SETS = ((0.9, 1.0, 1.1), (0.9, 1.0, 1.0), (1.0, 1.1, 1.1))
# The count parameter's keyword in `components.make` for each agent.
COUNT_KEY = {"ant": "num_legs", "claw": "num_legs", "centipede": "num_torsos", "worm": "num_torsos"}
_NUM = r"(\d+)"
_FLOAT3 = r"(\d+\.\d+)_(\d+\.\d+)_(\d+\.\d+)"


def float_tag(values) -> str:
  """(0.5, 1, 3) -> '0.5_1.0_3.0' (the reference prints values as floats)."""
  return "_".join(str(float(v)) for v in values)


@dataclasses.dataclass(frozen=True)
class Plain:
  """`{n}`: the base family."""

  sizes: tuple[int, ...]
  pattern = re.compile(rf"{_NUM}$")

  def suffixes(self, agent: str) -> Iterator[str]:
    return (f"{n}" for n in self.sizes)

  def morphology(self, agent: str, m: re.Match) -> tuple[str, dict]:
    return agent, {COUNT_KEY[agent]: int(m[1])}


@dataclasses.dataclass(frozen=True)
class Broken:
  """`{n}_b_{j}`: leg j has lost its last segment (broken_ant / broken_claw)."""

  sizes: tuple[int, ...]
  pattern = re.compile(rf"{_NUM}_b_{_NUM}$")

  def suffixes(self, agent: str) -> Iterator[str]:
    return (f"{n}_b_{j}" for n in self.sizes for j in range(n))

  def morphology(self, agent: str, m: re.Match) -> tuple[str, dict]:
    return f"broken_{agent}", {COUNT_KEY[agent]: int(m[1]), "broken_id": int(m[2])}


@dataclasses.dataclass(frozen=True)
class BrokenSide:
  """`{n}_b_{side}_{j}[_all]`: centipede torso j loses the shin (or, with _all, the whole leg) of side 4|5."""

  sizes: tuple[int, ...]
  pattern = re.compile(rf"{_NUM}_b_([45])_{_NUM}(_all)?$")

  def suffixes(self, agent: str) -> Iterator[str]:
    return (f"{n}_b_{side}_{j}{tail}" for n in self.sizes for j in range(n) for side in (4, 5)
            for tail in ("", "_all"))

  def morphology(self, agent: str, m: re.Match) -> tuple[str, dict]:
    return f"broken_{agent}", {COUNT_KEY[agent]: int(m[1]), "side": int(m[2]), "torso": int(m[3]),
                               "whole_leg": m[4] is not None}


@dataclasses.dataclass(frozen=True)
class Randomized:
  """`{n}_{kind}_{a}_{b}_{c}`: per-leg masses or size scales (mass_rand_* / size_rand_*)."""

  kind: str  # 'mass' | 'size'
  sizes: tuple[int, ...]
  value_sets: tuple[tuple[float, ...], ...]

  @property
  def pattern(self) -> re.Pattern:
    return re.compile(rf"{_NUM}_{self.kind}_{_FLOAT3}$")

  def suffixes(self, agent: str) -> Iterator[str]:
    return (f"{n}_{self.kind}_{float_tag(v)}" for n in self.sizes for v in self.value_sets)

  def morphology(self, agent: str, m: re.Match) -> tuple[str, dict]:
    key = {"mass": "masses", "size": "scales"}[self.kind]
    return f"{self.kind}_rand_{agent}", {COUNT_KEY[agent]: int(m[1]), key: tuple(float(m[i]) for i in (2, 3, 4))}


@dataclasses.dataclass(frozen=True)
class Unimal:
  """`{id}`: one of `components.unimal_ids()`."""

  pattern = re.compile(r"(\w[\w.-]*)$")

  def suffixes(self, agent: str) -> Iterator[str]:
    return iter(components.unimal_ids())

  def morphology(self, agent: str, m: re.Match) -> tuple[str, dict]:
    return "unimal", {"unimal_id": m[1]}


@dataclasses.dataclass(frozen=True)
class Suite:
  """One `{agent}_{task_word}_*` group: its task (registry name + parameters) and morphologies."""

  agent: str
  task_word: str
  task: str
  task_params: tuple = ()
  morphologies: tuple = ()


ANT_N, CENTIPEDE_N = tuple(range(2, 7)), tuple(range(2, 8))
_ANT_MORPHS = (Plain(ANT_N), Broken(tuple(range(3, 7))), Randomized("mass", ANT_N, MASS_SETS),
               Randomized("size", ANT_N, SIZE_SETS))
_CENTIPEDE_MORPHS = (Plain(CENTIPEDE_N), BrokenSide(CENTIPEDE_N), Randomized("size", CENTIPEDE_N, SIZE_SETS),
                     Randomized("mass", CENTIPEDE_N, MASS_SETS))
_HARD = (("r_range", (10.5, 11.5)),)
_PUSH_WORM = (("box_r_range", (2.5, 3.5)), ("target_r_range", (6.0, 6.5)), ("target_radius", 1.5),
              ("success_bonus", 25.0), ("to_target_scale", 4.0))

SUITES: tuple[Suite, ...] = (
    Suite("ant", "reach", "reach", (), _ANT_MORPHS),
    Suite("ant", "reach_hard", "reach", _HARD,
          _ANT_MORPHS + (Randomized("size", ANT_N, ((0.8, 1.0, 1.5),)),)),
    Suite("ant", "touch", "touch", (), _ANT_MORPHS),
    Suite("ant", "push", "push", (), _ANT_MORPHS),
    Suite("ant", "reach_handsup", "reach_handsup", (), (Plain(ANT_N),)),
    Suite("ant", "reach2_handsup", "reach2_handsup", (), (Plain(tuple(range(3, 7))),)),
    Suite("ant", "reach_handsup2", "reach_handsup2", (), (Plain(tuple(range(3, 7))),)),
    Suite("centipede", "reach", "reach", (("r_range", (5.0, 6.0)),), _CENTIPEDE_MORPHS),
    Suite("centipede", "touch", "touch", (("r_range", (9.0, 12.0)),), (Plain(CENTIPEDE_N),)),
    Suite("centipede", "push", "push", (("target_r_range", (7.5, 8.0)),), _CENTIPEDE_MORPHS),
    Suite("claw", "reach", "reach", (), (Plain(ANT_N),)),
    Suite("claw", "touch", "touch", (), (Plain(ANT_N),)),
    Suite("claw", "push", "push", (), (Plain(ANT_N),)),
    Suite("claw", "reach_handsup", "reach_handsup", (("r_range", (1.25, 1.75)), ("z_range", (0.55, 0.7))),
          (Plain(ANT_N),)),
    Suite("claw", "reach_hard_handsup", "reach_handsup", (("r_range", (3.5, 5.5)), ("z_range", (0.5, 0.6))),
          (Plain(ANT_N),)),
    Suite("worm", "touch", "touch", (), (Plain(CENTIPEDE_N),)),
    Suite("worm", "push", "push", _PUSH_WORM, (Plain(CENTIPEDE_N),)),
    Suite("unimal", "reach", "reach", (), (Unimal(),)),
    Suite("unimal", "touch", "touch", (("threshold", 0.35),), (Unimal(),)),
    Suite("unimal", "reach_handsup", "reach_handsup", (("r_range", (1.25, 1.75)), ("z_range", (0.5, 0.6))),
          (Unimal(),)),
)


@dataclasses.dataclass(frozen=True)
class EnvSpec:
  """A parsed env name: the morphology family and parameters, the task and its parameters."""

  name: str
  suite: Suite
  family: str
  morph_params: tuple  # sorted (key, value) pairs for components.make

  @property
  def task(self) -> Task:
    return make_task(self.suite.task, **dict(self.suite.task_params))

  def morphology(self) -> components.Morphology:
    return components.make(self.family, **dict(self.morph_params))


def _suite_for(name: str) -> tuple[Suite, str] | None:
  """The suite whose `{agent}_{task_word}_` prefix is the longest match, and the remaining suffix."""
  matches = [s for s in SUITES if name.startswith(f"{s.agent}_{s.task_word}_")]
  if not matches:
    return None
  suite = max(matches, key=lambda s: len(s.task_word))
  return suite, name[len(suite.agent) + len(suite.task_word) + 2:]


def parse(name: str) -> EnvSpec:
  """'ant_reach_4_b_1' -> EnvSpec(family='broken_ant', morph_params=(('broken_id', 1), ('num_legs', 4)), ...).

  Raises KeyError with the closest registered names for a name that is not registered.
  """
  if name not in _registered():
    raise KeyError(unknown_name_message("env", name, _registered()))
  suite, suffix = _suite_for(name)
  for morph in suite.morphologies:
    m = morph.pattern.match(suffix)
    if m:
      family, params = morph.morphology(suite.agent, m)
      return EnvSpec(name, suite, family, tuple(sorted(params.items())))
  raise AssertionError(f"registered name {name!r} matches no morphology pattern of {suite}")


@functools.lru_cache(maxsize=None)
def _registered() -> frozenset[str]:
  return frozenset(registered_names())


def registered_names() -> list[str]:
  """Every registered env name (about 790), in `SUITES` order."""
  return [f"{s.agent}_{s.task_word}_{suffix}" for s in SUITES for morph in s.morphologies
          for suffix in morph.suffixes(s.agent)]


def make(name: str, backend: str | None = None, config: EnvConfig | None = None) -> MorphologyTaskEnv:
  """make('ant_reach_4') -> the env (backend defaults to `DEFAULT_BACKEND`)."""
  spec = parse(name)
  config = config or EnvConfig()
  config = dataclasses.replace(config, backend=backend or config.backend)
  return MorphologyTaskEnv(spec.morphology(), spec.task, config, name=name)
