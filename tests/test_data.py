"""Trajectory container (npz round trip, validation errors) and the D4RL-hdf5 / Minari loaders."""

import json
import os

import h5py
import numpy as np
import pytest

from gdt.data import (
    DatasetError,
    Trajectories,
    dataset_path,
    default_metadata,
    load_d4rl_hdf5,
    load_minari,
    parse_dataset_name,
)

OBS, ACT = 4, 2


def flat_stream(M, seed=0):
  rng = np.random.default_rng(seed)
  obs = rng.normal(size=(M, OBS)).astype(np.float32)
  act = rng.uniform(-1, 1, size=(M, ACT)).astype(np.float32)
  rew = rng.normal(size=M).astype(np.float32)
  return obs, act, rew


def make_trajs(levels=("medium", "medium", "expert"), ends=(4, 10), M=16, seed=0):
  """Flat stream of M steps cut after each index in `ends` (terminal at the first, timeout after)."""
  obs, act, rew = flat_stream(M, seed)
  term, tout = np.zeros(M, bool), np.zeros(M, bool)
  term[ends[0]] = True
  tout[list(ends[1:])] = True
  meta = default_metadata("hopper", "medium-expert", "brax", "generalized", len(levels), {"x_velocity": 1},
                          seed=seed)
  meta["policy_levels"] = list(levels)
  return Trajectories.from_flat(obs, act, rew, term, tout, meta)


@pytest.fixture
def saved(tmp_path):
  t = make_trajs()
  path = str(tmp_path / "hopper-medium-expert.npz")
  t.save(path)
  return t, path


def rewrite(path, **changes):
  """Rewrites the npz at `path` with arrays replaced (None deletes) and metadata edited via `metadata=fn`."""
  with np.load(path) as npz:
    contents = {k: npz[k] for k in npz.files}
  edit = changes.pop("metadata", None)
  if edit is not None:
    meta = json.loads(str(contents["metadata_json"]))
    edit(meta)
    contents["metadata_json"] = np.array(json.dumps(meta))
  for k, v in changes.items():
    if v is None:
      del contents[k]
    else:
      contents[k] = v
  np.savez(path, **contents)


# --- container ---------------------------------------------------------------------------------

def test_dataset_path_convention():
  assert dataset_path("/d", "hopper", "medium-replay") == "/d/datasets/hopper-medium-replay.npz"


def test_from_flat_splits_on_terminals_and_timeouts_keeping_trailing_piece():
  obs, act, rew = flat_stream(16)
  t = make_trajs()
  # cut after step 4 (terminal) and step 10 (timeout); steps 11..15 are an unterminated tail.
  np.testing.assert_array_equal(t.lengths, [5, 6, 5])
  assert t.lengths.dtype == np.int32 and (t.num_trajectories, t.max_length) == (3, 6)
  assert (t.obs_dim, t.act_dim, t.num_transitions) == (OBS, ACT, 16)
  np.testing.assert_array_equal(t.observations[1, :6], obs[5:11])
  np.testing.assert_array_equal(t.actions[2, :5], act[11:16])
  np.testing.assert_array_equal(t.terminals.nonzero(), ([0], [4]))
  np.testing.assert_array_equal(t.timeouts.nonzero(), ([1], [5]))
  assert not t.terminals[2].any() and not t.timeouts[2].any()
  # padding is zeros
  assert not t.observations[0, 5:].any() and not t.rewards[2, 5:].any()
  np.testing.assert_allclose(t.returns(), [rew[:5].sum(), rew[5:11].sum(), rew[11:].sum()], rtol=1e-6)


def test_from_flat_trailing_terminal_gives_no_empty_episode():
  obs, act, rew = flat_stream(6)
  term = np.array([0, 0, 1, 0, 0, 1], bool)
  t = Trajectories.from_flat(obs, act, rew, term, np.zeros(6, bool), {})
  np.testing.assert_array_equal(t.lengths, [3, 3])


def test_mask_returns_select_concatenate():
  t = make_trajs()
  t.metadata["policy_steps"] = [10, 11, 12]
  np.testing.assert_array_equal(t.mask().sum(1), t.lengths)
  assert t.mask().dtype == bool and t.mask()[0, 4] and not t.mask()[0, 5]
  r = t.returns()
  assert r.shape == (3,) and r.dtype == np.float32

  s = t.select([2, 0])
  np.testing.assert_array_equal(s.lengths, [5, 5])
  np.testing.assert_array_equal(s.observations, t.observations[[2, 0]])
  assert s.metadata["policy_levels"] == ["expert", "medium"] and s.metadata["policy_steps"] == [12, 10]
  assert s.metadata["level_returns"]["expert"]["count"] == 1
  np.testing.assert_allclose(s.metadata["level_returns"]["medium"]["mean"], r[0], rtol=1e-6)
  assert t.select(np.array([False, True, False])).num_trajectories == 1
  assert t.metadata["policy_levels"] == ["medium", "medium", "expert"]  # select does not mutate

  short = make_trajs(levels=("random",) * 4, ends=(1, 3, 5), M=8, seed=1)  # T = 2
  short.metadata.update(dataset="random", policy_steps=[0] * 4, medium_step=5)
  c = Trajectories.concatenate([short, t])
  assert (c.num_trajectories, c.max_length) == (7, 6)
  np.testing.assert_array_equal(c.lengths, np.concatenate([short.lengths, t.lengths]))
  assert not c.observations[:4, 2:].any()  # short ones zero-padded to T=6
  np.testing.assert_array_equal(c.observations[4:], t.observations)
  assert c.metadata["policy_levels"] == ["random"] * 4 + ["medium", "medium", "expert"]
  assert c.metadata["dataset"] == "random-medium-expert"
  assert c.metadata["seed"] is None  # seeds 1 and 0 differ
  assert c.metadata["policy_steps"] == [0] * 4 + [10, 11, 12]
  assert "medium_step" not in c.metadata  # not shared by all parts
  assert c.metadata["observation_layout"] == {"x_velocity": 1} and c.metadata["env"] == "hopper"
  assert Trajectories.concatenate([short, t], metadata={"dataset": "mixed"}).metadata["dataset"] == "mixed"
  assert c.metadata["level_returns"]["random"]["count"] == 4
  np.testing.assert_allclose(c.returns(), np.concatenate([short.returns(), r]), rtol=1e-6)
  c.validate()

  other_backend = make_trajs()
  other_backend.metadata.update(backend="spring", policy_steps=[1, 2, 3])
  with pytest.raises(ValueError, match="disagree on metadata 'backend'"):
    Trajectories.concatenate([t, other_backend])
  # another env with the same spaces is kept as a task per trajectory (tests/test_multi_env.py)
  other_env = make_trajs()
  other_env.metadata.update(env="walker2d", policy_steps=[1, 2, 3])
  mixed = Trajectories.concatenate([t, other_env])
  assert mixed.tasks() == ["hopper"] * 3 + ["walker2d"] * 3 and mixed.metadata["env"] == "hopper+walker2d"


def test_feature_index_error_names_feature_dataset_and_available():
  t = make_trajs()
  assert t.feature_index("x_velocity") == 1
  with pytest.raises(KeyError) as e:
    t.feature_index("z_height")
  msg = str(e.value)
  assert "'z_height'" in msg and "hopper-medium-expert" in msg and "x_velocity" in msg


def test_save_load_round_trip(saved):
  t, path = saved
  u = Trajectories.load(path)
  for f in ("observations", "actions", "rewards", "terminals", "timeouts", "lengths"):
    a, b = getattr(t, f), getattr(u, f)
    assert a.dtype == b.dtype, f
    np.testing.assert_array_equal(a, b, err_msg=f)
  assert u.metadata == json.loads(json.dumps(t.metadata))
  assert "schema_version" not in u.metadata
  with np.load(path, allow_pickle=False) as npz:  # metadata is JSON, not a pickle
    assert json.loads(str(npz["metadata_json"]))["schema_version"] == 1


def test_atomic_save_leaves_no_temp_file(saved, tmp_path):
  t, path = saved
  t.save(path)  # overwrite
  assert sorted(os.listdir(tmp_path)) == ["hopper-medium-expert.npz"]


def test_save_refuses_invalid_and_writes_nothing(tmp_path):
  t = make_trajs()
  t.metadata["policy_levels"] = ["medium"]
  path = str(tmp_path / "bad.npz")
  with pytest.raises(DatasetError, match="policy_levels' has 1 entries, expected one per trajectory"):
    t.save(path)
  assert os.listdir(tmp_path) == []


def test_load_missing_file(tmp_path):
  path = str(tmp_path / "nope.npz")
  with pytest.raises(DatasetError, match=r"nope\.npz: no such file"):
    Trajectories.load(path)


def test_load_random_bytes(tmp_path):
  path = tmp_path / "junk.npz"
  path.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(DatasetError, match=r"junk\.npz: not a readable npz file"):
    Trajectories.load(str(path))


def test_load_truncated(saved):
  _, path = saved
  data = open(path, "rb").read()
  open(path, "wb").write(data[: len(data) // 2])
  with pytest.raises(DatasetError, match=r"hopper-medium-expert\.npz: not a readable npz file \(truncated"):
    Trajectories.load(path)


def test_load_bit_flip_is_caught_by_the_zip_checksum(saved):
  _, path = saved
  data = bytearray(open(path, "rb").read())
  data[len(data) // 3] ^= 0xFF
  open(path, "wb").write(bytes(data))
  with pytest.raises(DatasetError, match=r"\.npz: not a readable npz file .*Bad CRC-32"):
    Trajectories.load(path)


def _bad_nan(x):
  x = x.copy()
  x[1, 2, 0] = np.nan
  return x


@pytest.mark.parametrize("change, message", [
    (dict(actions=None), "missing 'actions'"),
    (dict(metadata_json=None), "missing 'metadata_json'"),
    (dict(actions=np.zeros((3, 6), np.float32)), r"'actions' has 2 dims, expected 3 \[N, T, act_dim\]"),
    (dict(rewards=np.zeros((4, 6), np.float32)), r"'rewards' has shape \(4, 6\), inconsistent with observations \[N=3, T=6"),
    (dict(terminals=np.zeros((3, 6), np.float32)), "'terminals' has dtype float32, expected bool"),
    (dict(lengths=np.array([5, 7, 5], np.int32)), r"'lengths' outside \[1, T=6\] for trajectories \[1\]"),
    (dict(lengths=np.array([5, 6, 0], np.int32)), r"'lengths' outside \[1, T=6\] for trajectories \[2\]"),
    ("nan_obs", r"'observations' has non-finite values on valid steps of trajectories \[1\]"),
    (dict(lengths=np.array([4, 6, 5], np.int32)), r"'observations' is not zero in the padding .*\[0\]"),
    (dict(metadata=lambda m: m.pop("env")), "metadata is missing key 'env'"),
    (dict(metadata=lambda m: m.pop("seed")), "metadata is missing key 'seed'"),
    (dict(metadata=lambda m: m.update(seed="0")), "metadata 'seed' is '0', expected an int or null"),
    (dict(metadata=lambda m: m.update(observation_layout=[8])), "metadata 'observation_layout' is a list, expected dict"),
    (dict(metadata=lambda m: m.update(policy_levels=["medium"] * 4)),
     "'policy_levels' has 4 entries, expected one per trajectory \\(3\\)"),
    (dict(metadata=lambda m: m.update(policy_steps=[1, 2])),
     "'policy_steps' has 2 entries, expected one per trajectory \\(3\\)"),
    (dict(metadata=lambda m: m.update(observation_layout={"x_velocity": 4})),
     r"observation_layout\['x_velocity'\] = 4 is not an index into obs_dim=4"),
    (dict(metadata=lambda m: m["level_returns"].pop("expert")), r"'level_returns'\['expert'\] must be a dict"),
    (dict(metadata=lambda m: m.update(source="d4rl")), "'source' is 'd4rl', expected one of"),
    (dict(metadata=lambda m: m.update(schema_version=99)), "schema_version 99 is newer than this code's 1"),
    (dict(metadata=lambda m: m.pop("schema_version")), "'schema_version' is None, expected an int"),
])
def test_load_rejects_bad_schema(saved, change, message):
  t, path = saved
  if change == "nan_obs":
    change = dict(observations=_bad_nan(t.observations))
  rewrite(path, **change)
  with pytest.raises(DatasetError, match=message) as e:
    Trajectories.load(path)
  assert str(e.value).startswith(path + ":")


def test_load_rejects_end_flag_before_last_step(saved):
  t, path = saved
  term = t.terminals.copy()
  term[1, 2] = True
  rewrite(path, terminals=term)
  with pytest.raises(DatasetError, match=r"terminals/timeouts before the last step of trajectories \[1\]"):
    Trajectories.load(path)


# --- D4RL hdf5 -----------------------------------------------------------------------------------

def write_d4rl(path, M=20, terminal_at=(3,), timeout_at=(9, 14), timeouts=True, obs_dim=18):
  rng = np.random.default_rng(0)
  term, tout = np.zeros(M, bool), np.zeros(M, bool)
  term[list(terminal_at)] = True
  tout[list(timeout_at)] = True
  with h5py.File(path, "w") as f:
    f["observations"] = rng.normal(size=(M, obs_dim)).astype(np.float32)
    f["next_observations"] = rng.normal(size=(M, obs_dim)).astype(np.float32)
    f["actions"] = rng.uniform(-1, 1, size=(M, 6)).astype(np.float32)
    f["rewards"] = rng.normal(size=M)  # float64 in some D4RL files
    f["terminals"] = term
    if timeouts:
      f["timeouts"] = tout
    f["infos/qpos"] = rng.normal(size=(M, 9))
    f["metadata/algorithm"] = "SAC"
  return term, tout


def test_load_d4rl_hdf5_splits_on_terminals_or_timeouts(tmp_path):
  path = str(tmp_path / "halfcheetah-medium-replay-v2.hdf5")
  term, tout = write_d4rl(path)
  t = load_d4rl_hdf5(path)
  # ends after 3 (terminal), 9 and 14 (timeouts); 15..19 is a trailing piece.
  np.testing.assert_array_equal(t.lengths, [4, 6, 5, 5])
  with h5py.File(path) as f:
    np.testing.assert_array_equal(t.observations[1, :6], f["observations"][4:10])
    np.testing.assert_allclose(t.returns()[2], f["rewards"][10:15].sum(), rtol=1e-5)
  assert t.terminals[0, 3] and t.timeouts[1, 5] and t.timeouts[2, 4] and t.terminals.sum() == 1
  m = t.metadata
  assert (m["env"], m["dataset"], m["source"]) == ("halfcheetah", "medium-replay", "d4rl_hdf5")
  assert m["observation_layout"] == {"x_velocity": 8} and t.feature_index("x_velocity") == 8
  assert m["policy_levels"] == ["medium-replay"] * 4 and m["level_returns"]["medium-replay"]["count"] == 4
  # the result round-trips through the npz container
  t.save(str(tmp_path / "x.npz"))
  np.testing.assert_array_equal(Trajectories.load(str(tmp_path / "x.npz")).lengths, t.lengths)


def test_load_d4rl_hdf5_without_timeouts_needs_max_episode_steps(tmp_path):
  path = str(tmp_path / "hopper-medium-v2.hdf5")
  write_d4rl(path, M=12, terminal_at=(4,), timeout_at=(), timeouts=False, obs_dim=11)
  with pytest.raises(DatasetError, match="no 'timeouts' dataset.*max_episode_steps"):
    load_d4rl_hdf5(path)
  t = load_d4rl_hdf5(path, max_episode_steps=3)
  # terminal after 4 cuts [0..4] into 3 + 2; then 5..7, 8..10 (cuts), 11 left over.
  np.testing.assert_array_equal(t.lengths, [3, 2, 3, 3, 1])
  assert t.metadata["timeouts_synthesized"] and t.metadata["max_episode_steps"] == 3
  np.testing.assert_array_equal(t.timeouts[:, :3].nonzero(), ([0, 2, 3], [2, 2, 2]))
  assert t.terminals[1, 1] and t.metadata["observation_layout"] == {"x_velocity": 5}


def test_load_d4rl_hdf5_env_argument_and_bad_files(tmp_path):
  path = str(tmp_path / "mydata.hdf5")
  write_d4rl(path, obs_dim=20)
  t = load_d4rl_hdf5(path, env="ant", dataset="expert")
  assert t.metadata["observation_layout"] == {"x_velocity": 13, "y_velocity": 14, "z_velocity": 15}
  with pytest.raises(DatasetError, match="too few for the ant layout"):
    write_d4rl(path, obs_dim=10)
    load_d4rl_hdf5(path, env="ant")
  junk = tmp_path / "walker2d-expert-v2.hdf5"
  junk.write_bytes(b"not hdf5" * 100)
  with pytest.raises(DatasetError, match=r"walker2d-expert-v2\.hdf5: not a readable hdf5 file"):
    load_d4rl_hdf5(str(junk))
  with h5py.File(path, "w") as f:
    f["observations"] = np.zeros((3, 2))
  with pytest.raises(DatasetError, match=r"not a D4RL file: missing \['actions', 'rewards', 'terminals'\]"):
    load_d4rl_hdf5(path)
  write_d4rl(path)
  with h5py.File(path, "a") as f:
    del f["rewards"]
    f["rewards"] = np.zeros(19)
  with pytest.raises(DatasetError, match=r"'rewards' has shape \(19,\), expected \[M\] with M=20 steps"):
    load_d4rl_hdf5(path)


def test_parse_dataset_name():
  assert parse_dataset_name("walker2d-medium-expert-v2.hdf5") == ("walker2d", "medium-expert")
  assert parse_dataset_name("mujoco/halfcheetah/expert-v0") == ("halfcheetah", "expert")


# --- Minari --------------------------------------------------------------------------------------

def write_minari(root, episodes, dataset_id="mujoco/hopper/medium-v0", dict_obs=False):
  """episodes: list of (T, terminations idx, truncations idx). Written as episode_<k> in shuffled order."""
  data = os.path.join(root, "data")
  os.makedirs(data)
  rng = np.random.default_rng(0)
  written = {}
  with h5py.File(os.path.join(data, "main_data.hdf5"), "w") as f:
    f.attrs["total_episodes"] = len(episodes)
    for k in reversed(range(len(episodes))):  # storage order differs from numeric order
      T, terms, truncs = episodes[k]
      g = f.create_group(f"episode_{k}")
      obs = rng.normal(size=(T + 1, 11)).astype(np.float32)
      if dict_obs:
        g["observations/achieved_goal"] = obs
      else:
        g["observations"] = obs
      g["actions"] = rng.uniform(-1, 1, size=(T, 3)).astype(np.float32)
      g["rewards"] = rng.normal(size=T)
      term, trunc = np.zeros(T, bool), np.zeros(T, bool)
      term[list(terms)] = True
      trunc[list(truncs)] = True
      g["terminations"], g["truncations"] = term, trunc
      g.create_group("infos")["x"] = np.zeros(T)
      written[k] = obs
  if dataset_id is not None:
    with open(os.path.join(data, "metadata.json"), "w") as fh:
      json.dump({"dataset_id": dataset_id, "total_episodes": len(episodes)}, fh)
  return written


def test_load_minari_orders_episodes_drops_final_obs_and_splits_mid_episode(tmp_path):
  root = str(tmp_path / "medium-v0")
  # 12 episodes so that lexical order (episode_10 < episode_2) would be wrong
  episodes = [(3, [2], [])] * 12
  episodes[1] = (7, [], [2, 6])  # truncation mid-episode and at the end -> 3 + 4
  episodes[2] = (5, [4], [])
  episodes[3] = (4, [], [])  # ends with neither flag: still an episode boundary
  obs = write_minari(root, episodes)
  for path in (root, os.path.join(root, "data"), os.path.join(root, "data", "main_data.hdf5")):
    t = load_minari(path)
    np.testing.assert_array_equal(t.lengths, [3, 3, 4, 5, 4] + [3] * 8)
    np.testing.assert_array_equal(t.observations[1, :3], obs[1][:3])
    np.testing.assert_array_equal(t.observations[2, :4], obs[1][3:7])  # final obs obs[1][7] dropped
    np.testing.assert_array_equal(t.observations[12, :3], obs[11][:3])
    assert t.timeouts[1, 2] and t.timeouts[2, 3] and t.terminals[3, 4]
    assert not (t.terminals[4].any() or t.timeouts[4].any())
    m = t.metadata
    assert (m["env"], m["dataset"], m["source"], m["dataset_id"]) == ("hopper", "medium", "minari",
                                                                      "mujoco/hopper/medium-v0")
    assert m["observation_layout"] == {"x_velocity": 5}
    t.validate()


def test_load_minari_rejects_dict_observations_and_non_datasets(tmp_path):
  root = str(tmp_path / "ds")
  write_minari(root, [(3, [2], [])], dict_obs=True)
  with pytest.raises(DatasetError, match=r"episode_0/observations is a dict of \['achieved_goal'\]"):
    load_minari(root)
  with pytest.raises(DatasetError, match="not a Minari dataset directory"):
    load_minari(str(tmp_path))


def test_load_minari_names_from_directory_and_checks_step_counts(tmp_path):
  root = str(tmp_path / "mujoco" / "walker2d" / "expert-v0")
  write_minari(root, [(3, [], [2]), (2, [1], [])], dataset_id=None)
  t = load_minari(root)
  assert (t.metadata["env"], t.metadata["dataset"]) == ("walker2d", "expert")
  np.testing.assert_array_equal(t.lengths, [3, 2])
  with h5py.File(os.path.join(root, "data", "main_data.hdf5"), "a") as f:
    del f["episode_1/rewards"]
    f["episode_1/rewards"] = np.zeros(3)
  with pytest.raises(DatasetError, match=r"episode_1/rewards has shape \(3,\), expected \[T=2\]"):
    load_minari(root)
