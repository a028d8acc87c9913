"""MxT expert data stored as raw simulation state, so any observation config can be rendered from it later.

`collect` rolls a pure policy `act(obs, rng) -> action` (the env's own flat observation, one env; vmapped here) on
`morphology.envs.make(env_name)` with the core rollout (`gdt.core.rollout`): all episodes of an env in one batch,
one compilation per env. Each step stores the `graph.RawState` the action was taken in, the action (clipped to
[-1, 1], what the env applied), the reward, success and done of the step, and whether it counted (`valid`); the
raw states have T+1 entries, so state t+1 is exactly the state step t led to (after an episode ends its state is
frozen, as the rollout freezes it). Episodes end on success (the env's `done`, as the reference's auto-reset
collection) or at the time limit.

    ds = collect("ant_reach_2", lambda obs, rng: jnp.zeros(4), episodes=8, seed=0)
    ds.save(dataset_path("workdirs/mxt_data", "ant_reach_2"))          # <root>/ant_reach_2.npz + .json
    ds = MxtDataset.load(dataset_path("workdirs/mxt_data", "ant_reach_2"))
    rendered = render_dataset(ds, graph.layout_for_name("ant_reach_2", "mtg_v2_base_m"))
    rendered.tokens  # [N, T, L, F]; .mask [N, T, L]; .actions [N, T, L]; .action_mask [L]; .valid [N, T]

Files: `<name>.npz` (arrays) and `<name>.json` (metadata, shapes and the npz's sha256), both written atomically, the
json last; `load` refuses a pair whose npz does not hash to what its json recorded (a partial or stale file).
Metadata: env name, env config, MJCF hash (sha256 of the env's MJCF text: data of an env whose model has since
changed is refused by `check_env`), collection seed, episodes, episode length, and the caller's entries (expert
step, expert success, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from brax import com, kinematics
from brax.base import Motion, Transform

from gdt.core import rollout
from gdt.core.registry import Registry
from gdt.core.workdir import atomic_write_bytes
from morphology import envs, graph

SCHEMA_VERSION = 1
CHUNK_STEPS = 100  # steps per compiled rollout chunk; a batch stops after the chunk its last episode ended in
RAW_FIELDS = graph.RawState._fields  # pos, rot, vel, ang, q, qd, goals
STEP_FIELDS = ("actions", "rewards", "success", "done", "valid")

ActFn = Callable[[jax.Array, jax.Array], jax.Array]  # (flat env observation [obs], rng) -> action [A]


class DatasetError(ValueError):
  """A dataset file is missing, partial, corrupted, or does not belong to the env it is used for."""


def dataset_path(root: str, env_name: str) -> str:
  """<root>/<env_name>.npz (its metadata beside it as <env_name>.json)."""
  return os.path.join(root, f"{env_name}.npz")


def _json_path(npz_path: str) -> str:
  return os.path.splitext(npz_path)[0] + ".json"


def mjcf_hash(env: envs.MorphologyTaskEnv) -> str:
  """sha256 of the env's MJCF text: what the physics of stored data came from."""
  return hashlib.sha256(env.xml.encode()).hexdigest()


def env_config_dict(config: envs.EnvConfig) -> dict:
  return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, as read back from JSON


def env_config_from_dict(d: dict) -> envs.EnvConfig:
  """The inverse of `env_config_dict` (JSON lists back to the tuples EnvConfig holds)."""
  return envs.EnvConfig(**dict(d, mjcf_overrides=tuple(tuple(p) for p in d.get("mjcf_overrides", ()))))


@dataclasses.dataclass
class MxtDataset:
  """Episodes of one env: raw states [N, T+1, ...] (numpy `graph.RawState`), actions [N, T, A], rewards, success,
  done [N, T] float32 (all 0 where not valid), valid [N, T] bool, metadata (JSON-able dict)."""

  raw: graph.RawState
  actions: np.ndarray
  rewards: np.ndarray
  success: np.ndarray
  done: np.ndarray
  valid: np.ndarray
  metadata: dict
  source: dict = dataclasses.field(default_factory=dict)  # {path, npz_sha256} when loaded from files

  @property
  def env_name(self) -> str:
    return self.metadata["env"]

  @property
  def num_episodes(self) -> int:
    return int(self.actions.shape[0])

  @property
  def horizon(self) -> int:
    return int(self.actions.shape[1])

  @property
  def lengths(self) -> np.ndarray:
    return self.valid.sum(axis=1).astype(np.int32)

  @property
  def num_transitions(self) -> int:
    return int(self.valid.sum())

  def state(self, episode: int, t: int) -> graph.RawState:
    """The raw state of one episode at step t (0..T)."""
    return graph.RawState(*(x[episode, t] for x in self.raw))

  def episodes(self, n: int) -> "MxtDataset":
    """The first n episodes (few-shot demonstrations)."""
    if not 1 <= n <= self.num_episodes:
      raise ValueError(f"{self.env_name}: asked for {n} episodes, the dataset holds {self.num_episodes}")
    return self.select(np.arange(n))

  def successful(self) -> "MxtDataset":
    """The episodes that reached the task's success (in their order); refuses a dataset without any."""
    keep = np.flatnonzero(self.success.max(axis=1) > 0)
    if not keep.size:
      raise ValueError(f"{self.env_name}: none of the {self.num_episodes} episodes succeeded")
    return self.select(keep)

  def select(self, index: np.ndarray) -> "MxtDataset":
    """The episodes at `index`, in that order."""
    cut = lambda x: x[index]
    return dataclasses.replace(self, raw=graph.RawState(*map(cut, self.raw)), actions=cut(self.actions),
                               rewards=cut(self.rewards), success=cut(self.success), done=cut(self.done),
                               valid=cut(self.valid), metadata=dict(self.metadata, episodes=int(len(index))))

  def validate(self, where: str = "<in memory>") -> None:
    """Raises DatasetError if the arrays disagree in shape or the metadata lacks what loading needs."""
    n, t = self.valid.shape
    for name in RAW_FIELDS:
      x = getattr(self.raw, name)
      if x.shape[:2] != (n, t + 1):
        raise DatasetError(f"{where}: raw.{name} has leading shape {x.shape[:2]}, expected {(n, t + 1)} (T+1 states)")
    for name in STEP_FIELDS:
      x = getattr(self, name)
      if x.shape[:2] != (n, t):
        raise DatasetError(f"{where}: {name} has leading shape {x.shape[:2]}, expected {(n, t)}")
    missing = [k for k in ("env", "env_config", "mjcf_sha256", "seed", "episodes") if k not in self.metadata]
    if missing:
      raise DatasetError(f"{where}: metadata lacks {missing}")

  def check_env(self, env: envs.MorphologyTaskEnv) -> None:
    """Refuses data of another env, or of this env before its MJCF changed."""
    if env.name != self.env_name:
      raise DatasetError(f"dataset of {self.env_name!r} used for env {env.name!r}")
    if mjcf_hash(env) != self.metadata["mjcf_sha256"]:
      raise DatasetError(f"dataset of {self.env_name!r} was collected on another MJCF model (sha256 "
                         f"{self.metadata['mjcf_sha256'][:12]}, now {mjcf_hash(env)[:12]}); collect it again")

  def save(self, path: str) -> None:
    """Writes <path> (.npz) then its .json (with the npz's sha256), each atomically."""
    self.validate(where=f"{path} (not written)")
    arrays = {f"raw_{k}": np.asarray(v) for k, v in self.raw._asdict().items()}
    arrays.update({k: np.asarray(getattr(self, k)) for k in STEP_FIELDS})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    record = {"schema_version": SCHEMA_VERSION, "npz_sha256": hashlib.sha256(data).hexdigest(),
              "npz_bytes": len(data), "shapes": {k: list(v.shape) for k, v in arrays.items()},
              "metadata": self.metadata}
    atomic_write_bytes(path, data)
    atomic_write_bytes(_json_path(path), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())

  @classmethod
  def load(cls, path: str) -> "MxtDataset":
    """Reads a pair written by `save`; any missing, partial or mismatched file is a DatasetError naming it."""
    meta_path = _json_path(path)
    for p in (path, meta_path):
      if not os.path.exists(p):
        raise DatasetError(f"{p}: no such file (collect the dataset first)")
    try:
      with open(meta_path) as f:
        record = json.load(f)
      version, sha, metadata = record["schema_version"], record["npz_sha256"], record["metadata"]
    except (ValueError, KeyError, TypeError) as e:
      raise DatasetError(f"{meta_path}: unreadable dataset record ({type(e).__name__}: {e})") from None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
      raise DatasetError(f"{meta_path}: schema_version {version!r}; this code reads <= {SCHEMA_VERSION}")
    with open(path, "rb") as f:
      data = f.read()
    if hashlib.sha256(data).hexdigest() != sha:
      raise DatasetError(f"{path}: contents do not match the sha256 in {meta_path} (a partial or replaced file); "
                         "collect the dataset again")
    try:
      with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # noqa: BLE001  zip and format errors all mean an unreadable file
      raise DatasetError(f"{path}: not a readable npz ({type(e).__name__}: {e})") from None
    missing = [k for k in [f"raw_{r}" for r in RAW_FIELDS] + list(STEP_FIELDS) if k not in arrays]
    if missing:
      raise DatasetError(f"{path}: missing arrays {missing}")
    ds = cls(raw=graph.RawState(*(arrays[f"raw_{r}"] for r in RAW_FIELDS)),
             **{k: arrays[k] for k in STEP_FIELDS}, metadata=metadata,
             source={"path": os.path.abspath(path), "npz_sha256": sha})
    ds.validate(where=path)
    return ds


# ---- collection ----


def _policy_step(act: ActFn) -> rollout.ActFn:
  """The core rollout's act: `act` vmapped over the batch of envs, each with its own key; actions clipped."""

  def step(inputs, carry, env_state, t, key):
    del inputs, t
    keys = jax.random.split(key, env_state.obs.shape[0])
    return jnp.clip(jax.vmap(act)(env_state.obs, keys), -1.0, 1.0), carry

  return step


def _record(inputs, carry, tr: rollout.Transition):
  del inputs
  nxt = tr.next_state
  return carry, dict(raw=graph.raw_state_from_env_state(tr.state), actions=tr.action, rewards=nxt.reward,
                     success=nxt.info["success"], done=nxt.done)


@functools.lru_cache(maxsize=32)
def _collect_fns(env_name: str, env_config: envs.EnvConfig, act: ActFn, chunk_steps: int):
  """(env, jit'd chunk) per env and policy: every episode of the env runs in one batch, compiled once."""
  env = envs.make(env_name, config=env_config)
  return env, rollout.make_chunk(env, _policy_step(act), _record, chunk_steps)


def collect(env_name: str, act: ActFn, *, episodes: int, seed: int, episode_length: int | None = None,
            metadata: dict | None = None, env_config: envs.EnvConfig | None = None,
            chunk_steps: int = CHUNK_STEPS, label: str | None = None) -> MxtDataset:
  """`episodes` episodes of `act` on `env_name`, batched, as raw state.

  act: pure (flat obs [obs], rng) -> action [A] (vmapped here). Keys: reset_rng, act_rng = split(PRNGKey(seed));
  episode e resets with split(reset_rng, episodes)[e] and acts at step t with split(fold_in(act_rng, t),
  episodes)[e]. metadata: extra JSON entries (e.g. expert_step, expert_success).
  """
  if episodes < 1:
    raise ValueError(f"collect({env_name!r}): episodes must be >= 1, got {episodes}")
  envs.parse(env_name)  # an unknown name fails here, with the closest names
  env_config = env_config or envs.EnvConfig()
  horizon = episode_length or envs.parse(env_name).task.episode_length
  chunk = min(chunk_steps, horizon)
  env, run_chunk = _collect_fns(env_name, env_config, act, chunk)
  reset_rng, act_rng = jax.random.split(jax.random.PRNGKey(seed))
  state = rollout.init_state(env, reset_rng, np.full(episodes, horizon), None)
  res = rollout.run(run_chunk, None, state, horizon, chunk, act_rng, label=label)
  out = res.outputs
  # State t (t < steps) is the one step t acted in; every later entry is the final, frozen state (each episode has
  # ended by then, and a frozen env keeps the state its last valid step led to), which is also state T.
  final = jax.device_get(graph.raw_state_from_env_state(res.state.env_state))
  steps = res.steps

  def states(field):
    x = np.asarray(getattr(out["raw"], field))[:, :steps]  # [E, steps, ...]
    last = np.asarray(getattr(final, field))[:, None]
    return np.concatenate([x, np.repeat(last, horizon + 1 - steps, axis=1)], axis=1).astype(np.float32)

  raw = graph.RawState(*(states(f) for f in RAW_FIELDS))
  meta = {"env": env_name, "env_config": env_config_dict(env.config), "mjcf_sha256": mjcf_hash(env), "seed": int(seed),
          "episodes": int(episodes), "episode_length": int(horizon), "num_bodies": int(raw.pos.shape[2]),
          "q_size": int(raw.q.shape[2]), "qd_size": int(raw.qd.shape[2]), "action_size": int(env.action_size),
          **(metadata or {})}
  valid = np.asarray(out["valid"], bool)
  # Steps after an episode's end stepped a frozen state: zero them, so every step field is 0 where not valid.
  zeroed = lambda k: np.where(valid.reshape(valid.shape + (1,) * (np.ndim(out[k]) - 2)), out[k], 0).astype(np.float32)
  ds = MxtDataset(raw=raw, actions=zeroed("actions"), rewards=zeroed("rewards"), success=zeroed("success"),
                  done=zeroed("done"), valid=valid, metadata=meta)
  ds.validate(where=f"collect({env_name!r})")
  return ds


# ---- restoring an env state from raw state (re-stepping stored data) ----

# backend -> fn(env, pipeline state from q/qd, raw) -> pipeline state. Maximal-coordinate pipelines (positional,
# spring) step from the link transforms, which q/qd only approximate, so those are restored from pos/rot/vel/ang.
RESTORERS: Registry[Callable] = Registry("pipeline restorer")


def _from_maximal(env, ps, raw: graph.RawState):
  x, xd = Transform(pos=raw.pos, rot=raw.rot), Motion(vel=raw.vel, ang=raw.ang)
  j, jd, a_p, a_c = kinematics.world_to_joint(env.sys, x, xd)
  x_i, xd_i = com.from_world(env.sys, x, xd)
  extra = {"i_inv": com.inv_inertia(env.sys, x)} if hasattr(ps, "i_inv") else {}
  return ps.replace(x=x, xd=xd, x_i=x_i, xd_i=xd_i, j=j, jd=jd, a_p=a_p, a_c=a_c, **extra)


RESTORERS.register("positional", _from_maximal)
RESTORERS.register("spring", _from_maximal)
RESTORERS.register("generalized", lambda env, ps, raw: ps)  # the state is q, qd
RESTORERS.register("mjx", lambda env, ps, raw: ps)


def restore_env_state(env: envs.MorphologyTaskEnv, raw: graph.RawState, template=None):
  """An env state (one env) whose pipeline state and goals are `raw`'s, ready for `env.step` (jittable). The rest
  (obs, metrics, info) comes from `template`, any state of the env (default: a reset), and is refreshed by the
  step."""
  template = env.reset(jax.random.PRNGKey(0)) if template is None else template
  raw = jax.tree.map(jnp.asarray, raw)
  ps = RESTORERS.get(env.backend)(env, env.pipeline_init(raw.q, raw.qd), raw)
  return template.replace(pipeline_state=ps, info=dict(template.info, goals=raw.goals))


# ---- rendering ----


@flax.struct.dataclass
class RenderedData:
  """A dataset rendered under one observation config: tokens [N, T, L, F] (flat: [N, T, 1, L*F]), mask [N, T, L']
  (True on real tokens), actions [N, T, L] (per-token targets, 0 off actuators), action_mask [L] (actuated tokens),
  valid [N, T]. `config` names the observation config, `env_name` the env."""

  tokens: np.ndarray
  mask: np.ndarray
  actions: np.ndarray
  action_mask: np.ndarray
  valid: np.ndarray
  config: str = flax.struct.field(pytree_node=False, default=graph.DEFAULT_CONFIG)
  env_name: str = flax.struct.field(pytree_node=False, default="")


@functools.lru_cache(maxsize=None)
def _render_batch():
  # one jit of graph.render vmapped over [N, T]; the layout is an argument, so same-shaped layouts share it
  return jax.jit(jax.vmap(jax.vmap(graph.render, in_axes=(None, 0)), in_axes=(None, 0)))


def check_layout(ds: MxtDataset, layout: graph.TokenLayout) -> None:
  """Refuses a layout of another env, or one whose raw-state sizes differ from the stored ones."""
  if layout.env_name != ds.env_name:
    raise DatasetError(f"layout of {layout.env_name!r} used to render a dataset of {ds.env_name!r}")
  got = (ds.raw.pos.shape[2], ds.raw.goals.shape[2], ds.raw.q.shape[2], ds.raw.qd.shape[2], ds.actions.shape[2])
  want = (layout.num_bodies, layout.num_goals, layout.q_size, layout.qd_size, layout.action_size)
  if got != want:
    raise DatasetError(f"{ds.env_name}: stored (bodies, goals, q, qd, actions) {got} differ from the layout's {want}")


def render_dataset(ds: MxtDataset, layout: graph.TokenLayout) -> RenderedData:
  """Renders the T acting states of every episode with `graph.render` (vmapped), and the per-token targets."""
  check_layout(ds, layout)
  raw = graph.RawState(*(x[:, :-1] for x in ds.raw))  # state T has no action
  tokens, mask = _render_batch()(layout, raw)
  actions = graph.tokens_from_actions(layout, jnp.asarray(ds.actions))
  return RenderedData(tokens=np.asarray(tokens), mask=np.asarray(mask), actions=np.asarray(actions),
                      action_mask=np.asarray(layout.action_mask), valid=np.asarray(ds.valid), config=layout.config,
                      env_name=ds.env_name)


def random_policy(action_size: int, scale: float = 1.0) -> ActFn:
  """Uniform actions in [-scale, scale] (a data-free stand-in for an expert in tests and smoke runs)."""
  return _RandomPolicy(action_size, scale)


@dataclasses.dataclass(frozen=True)
class _RandomPolicy:
  # hashable, so the compiled collection chunk is reused for the same size and scale
  action_size: int
  scale: float

  def __call__(self, obs, rng):
    del obs
    return jax.random.uniform(rng, (self.action_size,), minval=-self.scale, maxval=self.scale)


def load_or_collect(root: str, env_name: str, make_act: Callable[[], tuple[ActFn, dict]], *, episodes: int,
                    seed: int, episode_length: int | None = None, log: Callable[[str], None] = print) -> MxtDataset:
  """The dataset of `env_name` under `root`, collected (and saved) once: `make_act()` -> (act, metadata) is only
  called when the file is missing; a metadata 'env_config' (`env_config_dict`) is the env the act reads (an
  expert's training env). An existing file with fewer episodes than asked for is refused."""
  path = dataset_path(root, env_name)
  if os.path.exists(path) or os.path.exists(_json_path(path)):
    ds = MxtDataset.load(path)
    if ds.num_episodes < episodes:
      raise DatasetError(f"{path} holds {ds.num_episodes} episodes, {episodes} asked for; move it aside to collect "
                         "again")
    return ds
  act, metadata = make_act()
  env_config = env_config_from_dict(metadata["env_config"]) if "env_config" in metadata else None
  ds = collect(env_name, act, episodes=episodes, seed=seed, episode_length=episode_length, metadata=metadata,
               env_config=env_config, label=f"[collect {env_name}] ")
  ds.save(path)
  log(f"[collect] {env_name}: {ds.num_episodes} episodes, {ds.num_transitions} transitions, success "
      f"{float(ds.success.max(axis=1).mean()):.2f} -> {path}")
  return ds

