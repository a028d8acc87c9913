"""Readers for datasets from elsewhere: D4RL hdf5 files and Minari dataset directories -> Trajectories.

Both split episodes on `terminals OR timeouts` (the reference's fixed 1000-step counter misaligns
episodes; gdt_reference.md §8.1). Observation layouts of the gym/gymnasium MuJoCo locomotion envs
come from `GYM_OBSERVATION_LAYOUTS`.
"""

from __future__ import annotations

import json
import os
import re

import h5py
import numpy as np

from gdt.data.trajectories import DatasetError, Trajectories, default_metadata

# Feature -> observation index in the gym v2+/gymnasium MuJoCo observations (qpos without the root
# x (and y for ant), then qvel): x_velocity is qvel[0].
GYM_OBSERVATION_LAYOUTS = {
    "halfcheetah": {"x_velocity": 8},
    "hopper": {"x_velocity": 5},
    "walker2d": {"x_velocity": 8},
    "ant": {"x_velocity": 13, "y_velocity": 14, "z_velocity": 15},
}
# The simulator the external files were recorded with (not a Brax backend).
D4RL_BACKEND = "gym-mujoco"
MINARI_BACKEND = "gymnasium-mujoco"


def parse_dataset_name(name: str) -> tuple[str, str]:
  """'halfcheetah-medium-replay-v2' or 'mujoco/halfcheetah/medium-v0' -> ('halfcheetah', 'medium-replay').

  Known env names are matched as a prefix (so 'walker2d-...' is not cut at a '-'); otherwise the
  env is the text before the first '-'.
  """
  parts = [p for p in re.sub(r"\.(hdf5|h5)$", "", name).split("/") if p]
  if len(parts) >= 2:  # Minari namespaced id: [namespace/]env/dataset-vN
    env, dataset = parts[-2], parts[-1]
  else:
    stem = parts[0]
    env = _known_env_prefix(stem) or stem.split("-")[0]
    dataset = stem[len(env) + 1:]
  return env.lower(), re.sub(r"-v\d+$", "", dataset)


def _known_env_prefix(stem: str) -> str | None:
  return next((e for e in sorted(GYM_OBSERVATION_LAYOUTS, key=len, reverse=True)
               if stem.lower().startswith(e + "-")), None)


def load_d4rl_hdf5(path: str, env: str | None = None, dataset: str | None = None,
                   max_episode_steps: int | None = None) -> Trajectories:
  """Reads a D4RL hdf5 file (top-level observations [M, obs], actions [M, act], rewards [M],
  terminals [M], timeouts [M]; other keys ignored) into Trajectories.

  Episodes end after every step with terminals | timeouts. A file without `timeouts` is refused
  unless `max_episode_steps` is given: then episodes also end every `max_episode_steps` steps since
  the last end, those cuts are marked as timeouts, and metadata['timeouts_synthesized'] says so.
  `env`/`dataset` default to what the file name says ('hopper-medium-replay-v2.hdf5').
  """
  parsed_env, parsed_dataset = parse_dataset_name(os.path.basename(path))
  env, dataset = env or parsed_env, dataset or parsed_dataset
  with _open_hdf5(path) as f:
    missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
    if missing:
      raise DatasetError(f"{path}: not a D4RL file: missing {missing}; has {sorted(f)}")
    flat = {k: _read_dataset(path, f, k) for k in ("observations", "actions", "rewards", "terminals")}
    has_timeouts = "timeouts" in f
    if has_timeouts:
      flat["timeouts"] = _read_dataset(path, f, "timeouts")
  extra = {"episode_split": "terminals | timeouts"}
  if not has_timeouts:
    if max_episode_steps is None:
      raise DatasetError(
          f"{path}: no 'timeouts' dataset, so episode ends at time limits are unknown; pass "
          "max_episode_steps (e.g. 1000) to cut episodes every that many steps")
    if max_episode_steps < 1:
      raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    flat["timeouts"] = _cut_every(flat["terminals"].reshape(-1).astype(bool), max_episode_steps)
    extra = {"episode_split": f"terminals, and every {max_episode_steps} steps since the last end "
                              "(the file has no timeouts)",
             "timeouts_synthesized": True, "max_episode_steps": int(max_episode_steps)}
  return _build(path, flat, env, dataset, "d4rl_hdf5", D4RL_BACKEND, extra)


def load_minari(path: str, env: str | None = None, dataset: str | None = None) -> Trajectories:
  """Reads a Minari dataset (its directory, its `data/` directory or `data/main_data.hdf5`).

  Each hdf5 group `episode_<k>` (taken in numeric order of k) holds observations [T+1, obs],
  actions [T, act], rewards [T], terminations [T], truncations [T]. The final observation of each
  episode (the one after the last action) is dropped so that every step has an (s, a, r). An
  episode is split after any step with a termination or truncation, including in its middle.
  Dict observations are refused. `env`/`dataset` default to what the dataset id says.
  """
  file, metadata_json = _minari_files(path)
  info = {}
  if metadata_json is not None:
    try:
      with open(metadata_json) as fh:
        info = json.load(fh)
    except json.JSONDecodeError as e:
      raise DatasetError(f"{metadata_json}: not valid JSON: {e}") from None
  pieces = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts", "ends")}
  with _open_hdf5(file) as f:
    dataset_id = info.get("dataset_id") or _attr_str(f.attrs.get("dataset_id"))
    episodes = sorted((k for k in f if re.fullmatch(r"episode_\d+", k)), key=lambda k: int(k[8:]))
    if not episodes:
      raise DatasetError(f"{file}: no 'episode_<k>' groups; has {sorted(f)[:10]}")
    for name in episodes:
      group = f[name]
      if isinstance(group.get("observations"), h5py.Group):
        raise DatasetError(
            f"{file}: {name}/observations is a dict of {sorted(group['observations'])}; only flat Box "
            "observations are supported")
      missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations")
                 if k not in group]
      if missing:
        raise DatasetError(f"{file}: {name} is missing {missing}")
      obs, act = _read_dataset(file, group, "observations"), _read_dataset(file, group, "actions")
      T = act.shape[0]
      first = pieces["observations"][0].shape[1:] if pieces["observations"] else obs.shape[1:]
      if obs.ndim != 2 or act.ndim != 2 or obs.shape[0] != T + 1 or obs.shape[1:] != first:
        raise DatasetError(
            f"{file}: {name} has observations {obs.shape} and actions {act.shape}; expected "
            f"[T+1, {first[0] if first else 'obs'}] and [T, act]")
      pieces["observations"].append(obs[:T])
      pieces["actions"].append(act)
      for key, source_key in (("rewards", "rewards"), ("terminals", "terminations"), ("timeouts", "truncations")):
        x = _read_dataset(file, group, source_key)
        if x.size != T:
          raise DatasetError(f"{file}: {name}/{source_key} has shape {x.shape}, expected [T={T}]")
        pieces[key].append(x.reshape(T))
      pieces["ends"].append(np.arange(T) == T - 1)
  parsed_env, parsed_dataset = parse_dataset_name(dataset_id or _minari_dir_name(file))
  flat = {k: np.concatenate(v) for k, v in pieces.items()}
  extra = {"episode_split": "terminations | truncations | end of a Minari episode",
           "dataset_id": dataset_id or ""}
  return _build(file, flat, env or parsed_env, dataset or parsed_dataset, "minari", MINARI_BACKEND, extra)


def _build(path, flat, env, dataset, source, backend, extra) -> Trajectories:
  M = flat["observations"].shape[0]
  for k, shape in (("observations", "[M, obs]"), ("actions", "[M, act]"), ("rewards", "[M]"),
                   ("terminals", "[M]"), ("timeouts", "[M]")):
    x = flat[k]
    if x.ndim == 2 and x.shape[1] == 1 and shape == "[M]":  # some writers store [M, 1]
      flat[k] = x = x[:, 0]
    if x.ndim != shape.count(",") + 1 or x.shape[0] != M:
      raise DatasetError(f"{path}: {k!r} has shape {x.shape}, expected {shape} with M={M} steps")
  layout = GYM_OBSERVATION_LAYOUTS.get(env, {})
  obs_dim = flat["observations"].shape[1]
  if any(i >= obs_dim for i in layout.values()):
    raise DatasetError(
        f"{path}: observations have {obs_dim} dims, too few for the {env} layout {layout}; "
        "pass the right env=")
  trajs = Trajectories.from_flat(flat["observations"], flat["actions"], flat["rewards"], flat["terminals"],
                                 flat["timeouts"], episode_ends=flat.get("ends"))
  trajs.metadata = default_metadata(env, dataset, source, backend, trajs.num_trajectories, layout,
                                    source_file=os.path.abspath(path), **extra)
  trajs.refresh_level_returns()
  trajs.validate(where=path)
  return trajs


def _cut_every(terminals: np.ndarray, max_steps: int) -> np.ndarray:
  """[M] bool: True on every `max_steps`-th step since the last terminal (never on a terminal)."""
  ends = np.flatnonzero(terminals)
  starts = np.concatenate([[0], ends + 1])
  segment = np.cumsum(terminals) - terminals  # terminals strictly before each step
  position = np.arange(terminals.size) - starts[segment]
  return ((position + 1) % max_steps == 0) & ~terminals


def _open_hdf5(path: str) -> h5py.File:
  if not os.path.exists(path):
    raise DatasetError(f"{path}: no such file")
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise DatasetError(f"{path}: not a readable hdf5 file (truncated or corrupted?): {e}") from None


def _read_dataset(path: str, group: h5py.Group, key: str) -> np.ndarray:
  node = group[key]
  if not isinstance(node, h5py.Dataset):
    raise DatasetError(f"{path}: {group.name.rstrip('/')}/{key} is a group, expected an array")
  try:
    return node[()]
  except OSError as e:
    raise DatasetError(f"{path}: cannot read {group.name.rstrip('/')}/{key} (corrupted?): {e}") from None


def _attr_str(value) -> str | None:
  if value is None:
    return None
  return value.decode() if isinstance(value, bytes) else str(value)


def _minari_files(path: str) -> tuple[str, str | None]:
  """-> (main_data.hdf5, metadata.json or None) for a dataset dir, its data/ dir, or the hdf5 itself."""
  if os.path.isdir(path):
    candidates = [os.path.join(path, "data", "main_data.hdf5"), os.path.join(path, "main_data.hdf5")]
    file = next((c for c in candidates if os.path.isfile(c)), None)
    if file is None:
      raise DatasetError(f"{path}: not a Minari dataset directory (no data/main_data.hdf5)")
  else:
    file = path
  meta = os.path.join(os.path.dirname(file), "metadata.json")
  return file, meta if os.path.isfile(meta) else None


def _minari_dir_name(file: str) -> str:
  """The dataset directory's name: <id>/data/main_data.hdf5 -> <id>."""
  data_dir = os.path.dirname(os.path.abspath(file))
  dataset_dir = os.path.dirname(data_dir) if os.path.basename(data_dir) == "data" else data_dir
  name = os.path.basename(dataset_dir)
  # 'halfcheetah-medium-v0' names itself; namespaced trees are .../halfcheetah/medium-v0.
  return name if _known_env_prefix(name) else f"{os.path.basename(os.path.dirname(dataset_dir))}/{name}"
