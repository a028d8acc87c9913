"""The trajectory container: padded `[N, T, ...]` numpy arrays plus metadata, one `.npz` per dataset.

A saved dataset is a single npz (written atomically) holding the arrays and a JSON string of the
metadata (no pickle). `Trajectories.load` validates everything a consumer relies on and reports
each problem as a `DatasetError` whose message starts with the file path.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from gdt import __version__
from gdt.core.workdir import atomic_write_bytes, config_to_dict

# Bump when the on-disk layout changes; `load` refuses files written by a newer schema.
SCHEMA_VERSION = 1
SOURCES = ("brax", "d4rl_hdf5", "minari")

# name -> (ndim, dtype kinds accepted, canonical dtype, shape description for messages).
_ARRAYS = {
    "observations": (3, "f", np.float32, "[N, T, obs_dim]"),
    "actions": (3, "f", np.float32, "[N, T, act_dim]"),
    "rewards": (2, "f", np.float32, "[N, T]"),
    "terminals": (2, "b", np.bool_, "[N, T]"),
    "timeouts": (2, "b", np.bool_, "[N, T]"),
    "lengths": (1, "iu", np.int32, "[N]"),
}
_METADATA_KEY = "metadata_json"
# Metadata lists with one entry per trajectory: `select` slices them, `concatenate` joins them. `task` is the label
# of the env (and env options) each trajectory was played in, set when a dataset mixes tasks (see `task_specs`).
PER_TRAJECTORY_KEYS = ("policy_levels", "policy_steps", "task")
# Metadata that must agree for trajectories to be concatenated (env and env_kwargs may differ: the parts' tasks are
# then kept per trajectory).
_MUST_AGREE = ("backend", "observation_layout", "source")
_LEVEL_STATS = ("mean", "std", "min", "max", "count")


class DatasetError(ValueError):
  """A dataset file (or an in-memory dataset about to be saved) is missing something or inconsistent."""


def dataset_path(data_dir: str, env: str, dataset: str) -> str:
  """Where the generator writes, and the trainer reads, the `dataset` of `env`."""
  return f"{data_dir}/datasets/{env}-{dataset}.npz"


def task_label(env: str, env_kwargs: dict | None = None) -> str:
  """The task name of `env` built with `env_kwargs`: the env name, plus the options when there are any.

  >>> task_label("cheetah_vel", {"target_velocity": 2.0})
  'cheetah_vel(target_velocity=2.0)'
  """
  if not env_kwargs:
    return env
  return f"{env}({','.join(f'{k}={env_kwargs[k]}' for k in sorted(env_kwargs))})"


def level_return_stats(returns: np.ndarray, levels: Sequence[str]) -> dict[str, dict[str, float]]:
  """Per policy level: mean/std/min/max of the returns [N] of its trajectories, and their count."""
  returns = np.asarray(returns, np.float64)
  levels_arr = np.asarray(list(levels), dtype=object)
  if levels_arr.shape != returns.shape:
    raise ValueError(f"{len(levels_arr)} policy levels for {returns.size} trajectories; expected one each")
  stats = {}
  for level in dict.fromkeys(levels):  # first-seen order
    r = returns[levels_arr == level]
    stats[level] = {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
                    "max": float(r.max()), "count": int(r.size)}
  return stats


@dataclasses.dataclass
class Trajectories:
  """N trajectories padded to T steps; step t of trajectory i is real iff t < lengths[i].

  observations [N, T, obs] f32, actions [N, T, act] f32, rewards [N, T] f32, terminals [N, T] bool,
  timeouts [N, T] bool, lengths [N] i32. Padding is zeros. `metadata` keys: env, backend, dataset,
  observation_layout, policy_levels (one per trajectory), level_returns, seed, version, source; optional env_kwargs
  (the env's constructor options), and for a dataset that mixes tasks `task` (one label per trajectory) and `tasks`
  (label -> {env, env_kwargs, backend}); `env` is then the '+'-joined env names.
  """

  observations: np.ndarray
  actions: np.ndarray
  rewards: np.ndarray
  terminals: np.ndarray
  timeouts: np.ndarray
  lengths: np.ndarray
  metadata: dict = dataclasses.field(default_factory=dict)

  @property
  def num_trajectories(self) -> int:
    return int(self.observations.shape[0])

  @property
  def max_length(self) -> int:
    return int(self.observations.shape[1])

  @property
  def obs_dim(self) -> int:
    return int(self.observations.shape[2])

  @property
  def act_dim(self) -> int:
    return int(self.actions.shape[2])

  @property
  def num_transitions(self) -> int:
    return int(self.lengths.sum())

  @property
  def name(self) -> str:
    """'env-dataset' for messages."""
    return f"{self.metadata.get('env', '?')}-{self.metadata.get('dataset', '?')}"

  def mask(self) -> np.ndarray:
    """[N, T] bool, True on real steps."""
    return np.arange(self.max_length)[None, :] < self.lengths[:, None]

  def returns(self) -> np.ndarray:
    """[N] f32 undiscounted return of each trajectory."""
    return np.where(self.mask(), self.rewards, 0.0).sum(axis=1, dtype=np.float64).astype(np.float32)

  def feature_index(self, name: str) -> int:
    """Index of observation feature `name` (e.g. 'x_velocity') from metadata['observation_layout']."""
    layout = self.metadata.get("observation_layout", {})
    if name not in layout:
      raise KeyError(
          f"feature {name!r} is not in the observation layout of dataset {self.name}; "
          f"available: {sorted(layout) or 'none'}")
    return int(layout[name])

  def task_specs(self) -> dict[str, dict]:
    """Task label -> {env, env_kwargs, backend}: how to build the env each trajectory was played in."""
    return _task_specs(self.metadata)

  def tasks(self) -> list[str]:
    """[N] the task label of each trajectory (`task_specs` keys)."""
    return _task_list(self.metadata, self.num_trajectories)

  def select(self, indices) -> Trajectories:
    """The trajectories at `indices` (ints or a bool mask [N]), same T; per-level stats recomputed."""
    idx = np.arange(self.num_trajectories)[np.asarray(indices)]
    metadata = dict(self.metadata)
    for key in PER_TRAJECTORY_KEYS:
      if key in metadata:
        metadata[key] = [metadata[key][i] for i in idx]
    out = Trajectories(self.observations[idx], self.actions[idx], self.rewards[idx],
                       self.terminals[idx], self.timeouts[idx], self.lengths[idx], metadata)
    out.refresh_level_returns()
    return out

  @classmethod
  def concatenate(cls, parts: Sequence[Trajectories], metadata: dict | None = None) -> Trajectories:
    """Stacks `parts` along N, zero-padding to the largest T.

    Metadata: per-trajectory lists (PER_TRAJECTORY_KEYS) are joined and level_returns recomputed;
    backend, observation_layout and source must agree; differing `dataset` names are joined
    with '-' (medium + expert -> 'medium-expert'); differing seeds become None; any other key is
    kept where all parts agree and dropped otherwise. Entries of `metadata` override the result.
    Parts of different tasks (env or env_kwargs, e.g. halfcheetah + cheetah_backflip: same observation and action
    spaces) keep each trajectory's task: `task` [N] and `tasks` (`task_specs`), env = the '+'-joined env names.

      mixed = Trajectories.concatenate([forward, backflip])  # mixed.tasks() == ['halfcheetah', ..., 'cheetah_backflip']
    """
    if not parts:
      raise ValueError("concatenate needs at least one Trajectories")
    dims = {(p.obs_dim, p.act_dim) for p in parts}
    if len(dims) > 1:
      raise ValueError(f"concatenate: parts have different (obs_dim, act_dim): "
                       f"{[(p.name, p.obs_dim, p.act_dim) for p in parts]}; only envs with the same observation "
                       "and action spaces can share a dataset")
    T = max(p.max_length for p in parts)

    def stack(field):
      arrays = [getattr(p, field) for p in parts]
      return np.concatenate([_pad_time(a, T) for a in arrays], axis=0)

    merged = _merge_metadata([p.metadata for p in parts], [p.num_trajectories for p in parts])
    merged.update(metadata or {})
    out = cls(stack("observations"), stack("actions"), stack("rewards"), stack("terminals"),
              stack("timeouts"), np.concatenate([p.lengths for p in parts]), merged)
    if metadata is None or "level_returns" not in metadata:
      out.refresh_level_returns()
    return out

  @classmethod
  def from_flat(cls, observations, actions, rewards, terminals, timeouts, metadata: dict | None = None,
                episode_ends=None) -> Trajectories:
    """Splits a flat D4RL-style stream of M steps after every step with `terminals | timeouts`.

    observations [M, obs], actions [M, act], rewards [M], terminals [M], timeouts [M]. A final
    piece without a terminal or timeout is kept. `episode_ends` [M] bool (optional) marks further
    split points that are neither (e.g. the end of a file's episode). If `metadata` has no
    policy_levels they are left unset; level_returns are computed when policy_levels are given.
    """
    obs = np.asarray(observations, np.float32)
    act = np.asarray(actions, np.float32)
    rew = np.asarray(rewards, np.float32).reshape(-1)
    term = np.asarray(terminals).astype(bool).reshape(-1)
    tout = np.asarray(timeouts).astype(bool).reshape(-1)
    M = obs.shape[0]
    if M == 0:
      raise ValueError("from_flat: the stream has no steps")
    if obs.ndim != 2 or act.ndim != 2:
      raise ValueError(f"from_flat: observations {obs.shape} and actions {act.shape} must be [M, dim]")
    if not all(x.shape[0] == M for x in (act, rew, term, tout)):
      raise ValueError(
          f"from_flat: step counts differ: observations {M}, actions {act.shape[0]}, rewards {rew.shape[0]}, "
          f"terminals {term.shape[0]}, timeouts {tout.shape[0]}")
    ends = term | tout
    if episode_ends is not None:
      ends = ends | np.asarray(episode_ends, bool).reshape(-1)
    ends[-1] = True
    last = np.flatnonzero(ends)
    first = np.concatenate([[0], last[:-1] + 1])
    lengths = (last - first + 1).astype(np.int32)
    episode = np.repeat(np.arange(lengths.size), lengths)
    t = np.arange(M) - first[episode]
    N, T = lengths.size, int(lengths.max())

    def scatter(x):
      out = np.zeros((N, T) + x.shape[1:], x.dtype)
      out[episode, t] = x
      return out

    out = cls(scatter(obs), scatter(act), scatter(rew), scatter(term), scatter(tout), lengths,
              dict(metadata or {}))
    if "policy_levels" in out.metadata:
      out.refresh_level_returns()
    return out

  def validate(self, where: str = "<in memory>") -> None:
    """Raises DatasetError (message prefixed by `where`) if arrays or metadata are inconsistent."""
    _validate_arrays(where, {f: getattr(self, f) for f in _ARRAYS})
    _validate_metadata(where, self.metadata, self.num_trajectories, self.obs_dim)

  def save(self, path: str, compress: bool = False) -> None:
    """Validates, then writes one npz atomically (arrays + metadata as JSON, with schema_version).

    Uncompressed by default: for 1M steps x 17 dims (98 MB) deflate saves ~10% but makes saving
    ~10x and loading ~4x slower; `compress=True` pays off for heavily padded sets (medium-replay:
    ~70% smaller).
    """
    self.validate(where=f"{path} (not written)")
    metadata = config_to_dict(self.metadata)
    metadata["schema_version"] = SCHEMA_VERSION
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(
        buf, **{f: getattr(self, f) for f in _ARRAYS},
        **{_METADATA_KEY: np.array(json.dumps(metadata, sort_keys=True))})
    atomic_write_bytes(path, buf.getvalue())

  @classmethod
  def load(cls, path: str) -> Trajectories:
    """Reads and validates a file written by `save`; every problem is a DatasetError naming `path`."""
    if not os.path.exists(path):
      raise DatasetError(f"{path}: no such file (generate it or check --data_dir)")
    try:
      with np.load(path, allow_pickle=False) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
          raise DatasetError(f"{path}: not an npz archive (a bare .npy array?)")
        contents = {k: npz[k] for k in npz.files}
    except DatasetError:
      raise
    except Exception as e:  # zipfile, zlib, EOF and format errors all mean the same thing here
      raise DatasetError(
          f"{path}: not a readable npz file (truncated or corrupted?): {type(e).__name__}: {e}") from None
    missing = [k for k in (*_ARRAYS, _METADATA_KEY) if k not in contents]
    if missing:
      raise DatasetError(f"{path}: missing {', '.join(repr(k) for k in missing)}; has {sorted(contents)}")
    try:
      metadata = json.loads(str(contents[_METADATA_KEY]))
    except json.JSONDecodeError as e:
      raise DatasetError(f"{path}: metadata is not valid JSON: {e}") from None
    if not isinstance(metadata, dict):
      raise DatasetError(f"{path}: metadata is a JSON {type(metadata).__name__}, expected an object")
    version = metadata.pop("schema_version", None)
    if not isinstance(version, int) or isinstance(version, bool):
      raise DatasetError(f"{path}: metadata 'schema_version' is {version!r}, expected an int")
    if version > SCHEMA_VERSION:
      raise DatasetError(
          f"{path}: schema_version {version} is newer than this code's {SCHEMA_VERSION}; update the code")
    arrays = {k: contents[k] for k in _ARRAYS}
    _validate_arrays(path, arrays)
    arrays = {k: arrays[k].astype(_ARRAYS[k][2], copy=False) for k in _ARRAYS}
    out = cls(**arrays, metadata=metadata)
    _validate_metadata(path, metadata, out.num_trajectories, out.obs_dim)
    return out

  def refresh_level_returns(self) -> None:
    """Recomputes metadata['level_returns'] from the returns and metadata['policy_levels']."""
    if "policy_levels" in self.metadata and self.num_trajectories > 0:
      self.metadata["level_returns"] = level_return_stats(self.returns(), self.metadata["policy_levels"])


def default_metadata(env: str, dataset: str, source: str, backend: str, num_trajectories: int,
                     observation_layout: dict[str, int], seed: int | None = None, **extra) -> dict:
  """Every required metadata key, with all trajectories at policy level `dataset` (level_returns
  are filled in by the Trajectories methods that take metadata)."""
  return {"env": env, "dataset": dataset, "source": source, "backend": backend,
          "observation_layout": dict(observation_layout), "policy_levels": [dataset] * num_trajectories,
          "seed": seed, "version": __version__, **extra}


def _pad_time(x: np.ndarray, T: int) -> np.ndarray:
  pad = [(0, 0)] * x.ndim
  pad[1] = (0, T - x.shape[1])
  return np.pad(x, pad)


def _task_specs(metadata: dict) -> dict[str, dict]:
  if "tasks" in metadata:
    return {k: dict(v) for k, v in metadata["tasks"].items()}
  env_kwargs = dict(metadata.get("env_kwargs") or {})
  return {task_label(metadata["env"], env_kwargs): {
      "env": metadata["env"], "env_kwargs": env_kwargs, "backend": metadata.get("backend")}}


def _task_list(metadata: dict, num_trajectories: int) -> list[str]:
  if "task" in metadata:
    return list(metadata["task"])
  (label,) = _task_specs(metadata)
  return [label] * num_trajectories


def _with_tasks(metas: list[dict], sizes: list[int]) -> list[dict]:
  """`metas` with per-trajectory `task` labels and the `tasks` table when the parts span more than one task."""
  specs: dict[str, dict] = {}
  for m in metas:
    for label, spec in _task_specs(m).items():
      if specs.setdefault(label, spec) != spec:
        raise ValueError(f"concatenate: task {label!r} means {specs[label]} in one part and {spec} in another")
  if len(specs) == 1:
    return metas
  env = "+".join(dict.fromkeys(s["env"] for s in specs.values()))
  # env_kwargs describe one task; with several they live in `tasks`
  return [{**{k: v for k, v in m.items() if k != "env_kwargs"}, "task": _task_list(m, n), "tasks": specs, "env": env}
          for m, n in zip(metas, sizes, strict=True)]


def _merge_metadata(metas: list[dict], sizes: list[int]) -> dict:
  merged: dict[str, Any] = {}
  missing = object()
  for key in _MUST_AGREE:  # before tasks: a task's spec holds the backend
    values = [m.get(key) for m in metas]
    if any(v != values[0] for v in values):
      raise ValueError(f"concatenate: parts disagree on metadata {key!r}: {values}")
  metas = _with_tasks(metas, sizes)
  for key in dict.fromkeys(k for m in metas for k in m):
    values = [m.get(key, missing) for m in metas]
    if key in PER_TRAJECTORY_KEYS:
      if any(v is missing for v in values):
        raise ValueError(f"concatenate: some parts have no {key!r}")
      merged[key] = [x for v in values for x in v]
    elif all(v == values[0] for v in values):
      merged[key] = values[0]
    elif key in _MUST_AGREE:
      raise ValueError(f"concatenate: parts disagree on metadata {key!r}: "
                       f"{[None if v is missing else v for v in values]}")
    elif key == "dataset":
      merged[key] = "-".join(dict.fromkeys(v for v in values if v is not missing))
    elif key == "seed":
      merged[key] = None
  merged.pop("level_returns", None)
  return merged


def _validate_arrays(where: str, arrays: dict[str, np.ndarray]) -> None:
  for k, (ndim, kinds, _, shape) in _ARRAYS.items():
    a = arrays[k]
    if a.ndim != ndim:
      raise DatasetError(f"{where}: {k!r} has {a.ndim} dims, expected {ndim} {shape}")
    if a.dtype.kind not in kinds:
      raise DatasetError(f"{where}: {k!r} has dtype {a.dtype}, expected {np.dtype(_ARRAYS[k][2])}")
  N, T = arrays["observations"].shape[:2]
  for k, (ndim, _, _, shape) in _ARRAYS.items():
    expected = (N, T)[:ndim] if ndim <= 2 else (N, T)
    if arrays[k].shape[:len(expected)] != expected:
      raise DatasetError(
          f"{where}: {k!r} has shape {arrays[k].shape}, inconsistent with observations [N={N}, T={T}, ...] "
          f"(expected {shape})")
  if N == 0 or T == 0:
    raise DatasetError(f"{where}: empty dataset (N={N}, T={T})")
  lengths = arrays["lengths"]
  bad = np.flatnonzero((lengths < 1) | (lengths > T))
  if bad.size:
    raise DatasetError(
        f"{where}: 'lengths' outside [1, T={T}] for trajectories {bad[:5].tolist()} "
        f"(values {lengths[bad[:5]].tolist()})")
  mask = np.arange(T)[None, :] < lengths[:, None]
  for k in ("observations", "actions", "rewards"):
    a = arrays[k]
    valid = a[mask]
    if not np.isfinite(valid).all():
      rows = np.flatnonzero((~np.isfinite(a).reshape(N, T, -1).all(-1) & mask).any(1))
      raise DatasetError(f"{where}: {k!r} has non-finite values on valid steps of trajectories {rows[:5].tolist()}")
  for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
    a = arrays[k]
    if np.any(a[~mask]):
      rows = np.flatnonzero((np.any(a.reshape(N, T, -1) != 0, axis=-1) & ~mask).any(1)).tolist()
      raise DatasetError(f"{where}: {k!r} is not zero in the padding beyond 'lengths' (trajectories {rows[:5]})")
  ends = arrays["terminals"] | arrays["timeouts"]
  early = ends & (np.arange(T)[None, :] < lengths[:, None] - 1)
  if early.any():
    rows = np.flatnonzero(early.any(1))
    raise DatasetError(
        f"{where}: terminals/timeouts before the last step of trajectories {rows[:5].tolist()} "
        "(a trajectory ends at its first terminal or timeout)")


def _validate_metadata(where: str, metadata: dict, num_trajectories: int, obs_dim: int) -> None:
  required = {"env": str, "backend": str, "dataset": str, "source": str, "version": str,
              "observation_layout": dict, "policy_levels": list, "level_returns": dict}
  for key, kind in required.items():
    if key not in metadata:
      raise DatasetError(f"{where}: metadata is missing key {key!r} (has {sorted(metadata)})")
    if not isinstance(metadata[key], kind):
      raise DatasetError(
          f"{where}: metadata {key!r} is a {type(metadata[key]).__name__}, expected {kind.__name__}")
  if "seed" not in metadata:
    raise DatasetError(f"{where}: metadata is missing key 'seed' (has {sorted(metadata)})")
  seed = metadata["seed"]
  if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
    raise DatasetError(f"{where}: metadata 'seed' is {seed!r}, expected an int or null")
  if metadata["source"] not in SOURCES:
    raise DatasetError(f"{where}: metadata 'source' is {metadata['source']!r}, expected one of {SOURCES}")
  for key in PER_TRAJECTORY_KEYS:
    if key in metadata and (not isinstance(metadata[key], list) or len(metadata[key]) != num_trajectories):
      size = len(metadata[key]) if isinstance(metadata[key], list) else type(metadata[key]).__name__
      raise DatasetError(
          f"{where}: metadata {key!r} has {size} entries, expected one per trajectory ({num_trajectories})")
  if "task" in metadata:
    tasks = metadata.get("tasks")
    if not isinstance(tasks, dict) or not all(isinstance(v, dict) and isinstance(v.get("env"), str)
                                              for v in tasks.values()):
      raise DatasetError(f"{where}: metadata 'task' needs a 'tasks' table {{label: {{env, env_kwargs, backend}}}}")
    unknown = sorted(set(metadata["task"]) - set(tasks))
    if unknown:
      raise DatasetError(f"{where}: metadata 'task' labels {unknown} are not in 'tasks' ({sorted(tasks)})")
  levels = metadata["policy_levels"]
  if not all(isinstance(lvl, str) for lvl in levels):
    raise DatasetError(f"{where}: metadata 'policy_levels' must be strings")
  for name, index in metadata["observation_layout"].items():
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < obs_dim:
      raise DatasetError(
          f"{where}: observation_layout[{name!r}] = {index!r} is not an index into obs_dim={obs_dim}")
  for level in dict.fromkeys(levels):
    stats = metadata["level_returns"].get(level)
    if not isinstance(stats, dict) or any(
        not isinstance(stats.get(s), (int, float)) or not math.isfinite(stats[s]) for s in _LEVEL_STATS):
      raise DatasetError(
          f"{where}: metadata 'level_returns'[{level!r}] must be a dict with finite {', '.join(_LEVEL_STATS)}")
