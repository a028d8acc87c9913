"""Hostile inputs (issue 12): configs, datasets, workdirs and checkpoints that a run must refuse before any work.

Every case asserts that the error names the problem (the field or the file), that it arrives before any training
(`train.prepare_data`, the first step after every check, is a tripwire), and that nothing that existed in the workdir
or the data directory was overwritten and nothing was added (bytes, mtimes and the directory tree compared; the
workdir's `.lock` records its holder and is rewritten by design whenever a run takes the lock). Controls show that the
unmodified inputs do get past every check, so each case fails for its own reason. The CLI cases check that a refusal
is one `error:` line without a traceback, and that --debug shows the traceback.
"""

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from experiments.configs import bdt, cdt, dt
from experiments.configs import data as data_configs
from gdt import train
from gdt.core import checkpoint as core_ckpt
from gdt.core.workdir import LOCK_FILE, WorkdirBusy, WorkdirLock, config_to_dict
from gdt.data import DatasetError, dataset_path, generation
from tests.test_data import rewrite
from tests.test_train import synthetic_trajectories, tiny

ENV, DATASET = "halfcheetah", "medium-expert"  # what tiny() configs read
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DELETE = object()


class TrainingReached(Exception):
  pass


def _tripwire(*args, **kwargs):
  raise TrainingReached("the input got past every check, to preparing the training data")


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
  monkeypatch.setattr(train, "prepare_data", _tripwire)


def quiet(_):
  pass


def save_dataset(data_dir, trajs=None) -> str:
  path = dataset_path(str(data_dir), ENV, DATASET)
  (trajs if trajs is not None else synthetic_trajectories()).save(path)
  return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """One valid tiny dataset shared by every case that does not break the data itself."""
  root = tmp_path_factory.mktemp("data")
  save_dataset(root)
  return root


def snapshot(*roots) -> dict:
  """{path: sha256 and mtime of a file, or 'dir'} of everything under `roots` but workdir lock files."""
  out = {}
  for root in map(str, roots):
    if not os.path.exists(root):
      continue
    if os.path.isfile(root):
      out[root] = _file_state(root)
      continue
    for here, dirs, files in os.walk(root):
      for d in dirs:
        out[os.path.join(here, d)] = "dir"
      for f in files:
        if f != LOCK_FILE:
          out[os.path.join(here, f)] = _file_state(os.path.join(here, f))
  return out


def _file_state(path: str) -> tuple[str, int]:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns


def assert_refused(run, error, names, roots, workdir):
  """`run()` raises `error` naming every one of `names`, before training, leaving `roots` exactly as they were."""
  existed = os.path.exists(workdir)
  before = snapshot(*roots)
  with pytest.raises(error) as e:
    run()
  text = e.value.args[0] if isinstance(e.value, KeyError) else str(e.value)
  for name in names:
    assert str(name) in text, f"{name!r} not named in: {text}"
  assert snapshot(*roots) == before, "a refused run changed, added or removed files"
  assert os.path.exists(workdir) == existed, "a refused run created its workdir"
  return text


def with_value(config, field: str, value):
  """`config` with dotted `field` set to `value` whatever its type, or removed (DELETE): a ConfigDict rebuilt from a
  plain dict, as a programmatic caller may build one (a locked config from the command line refuses such values)."""
  d = config.to_dict()
  *path, leaf = field.split(".")
  node = d
  for part in path:
    node = node[part]
  if value is DELETE:
    del node[leaf]
  else:
    node[leaf] = value
  return ml_collections.ConfigDict(d)


def base(data_dir, module=cdt):
  return tiny(module, data_dir=str(data_dir))


# ----------------------------------------------------------------------------------------------------------------
# Configs: refused by validate_config, before the dataset is even read.

nan, inf = math.nan, math.inf
CONFIGS = [
    # (module, {field: value}, what the message must name)
    (cdt, {"env": "halfcheeta"}, ["'env'", "halfcheetah"]),
    (cdt, {"env": 3}, ["'env'"]),
    (cdt, {"dataset": ""}, ["'dataset'"]),
    (cdt, {"feature": "x_velocty"}, ["'feature'", "x_velocity"]),
    (cdt, {"feature": "reward"}, None),  # control: another registered feature
    (cdt, {"data_dir": None}, ["'data_dir'"]),
    (cdt, {"seed": -1}, ["'seed'"]),
    (cdt, {"seed": 1.5}, ["'seed'"]),
    (cdt, {"seed": True}, ["'seed'"]),
    (cdt, {"conditioning": "histgram"}, ["'conditioning'", "histogram"]),
    (cdt, {"context_length": 0}, ["'context_length'"]),
    (cdt, {"context_length": "5"}, ["'context_length'"]),
    (cdt, {"num_bins": 1}, ["'num_bins'"]),
    (cdt, {"gamma": 0.0}, ["'gamma'"]),
    (cdt, {"gamma": 1.5}, ["'gamma'"]),
    (cdt, {"gamma": nan}, ["'gamma'"]),
    (dt, {"rtg_scale": 0.0}, ["'rtg_scale'"]),
    (dt, {"rtg_scale": inf}, ["'rtg_scale'"]),
    (cdt, {"stats_include_targets_like_reference": "yes"}, ["'stats_include_targets_like_reference'"]),
    (cdt, {"model.embed_dim": 0}, ["'model.embed_dim'"]),
    (cdt, {"model.num_layers": 0}, ["'model.num_layers'"]),
    (cdt, {"model.num_heads": 0}, ["'model.num_heads'"]),
    (cdt, {"model.num_heads": 3}, ["'model.num_heads'", "embed_dim=16"]),
    (cdt, {"model.dropout_rate": 1.0}, ["'model.dropout_rate'"]),
    (cdt, {"model.dropout_rate": -0.1}, ["'model.dropout_rate'"]),
    (cdt, {"model.max_timestep": 0}, ["'model.max_timestep'"]),
    (cdt, {"model.max_timestep": 4}, ["'context_length'", "max_timestep=4"]),
    (bdt, {"model.z_dim": 0}, ["'model.z_dim'"]),
    (bdt, {"model.encoder_horizon": 0}, ["'model.encoder_horizon'"]),
    (bdt, {"model.bdt_unflipped_like_reference": 1}, ["'model.bdt_unflipped_like_reference'"]),
    (cdt, {"train.optimizer": "adam"}, ["'train.optimizer'", "adamw_warmup"]),
    (cdt, {"train.batch_size": 0}, ["'train.batch_size'"]),
    (cdt, {"train.batch_size": 2.5}, ["'train.batch_size'"]),
    (cdt, {"train.num_steps": 0}, ["'train.num_steps'"]),
    (cdt, {"train.num_steps": -5}, ["'train.num_steps'"]),
    (cdt, {"train.steps_per_call": 0}, ["'train.steps_per_call'"]),
    (cdt, {"train.learning_rate": -1e-3}, ["'train.learning_rate'"]),
    (cdt, {"train.learning_rate": 0.0}, ["'train.learning_rate'"]),
    (cdt, {"train.learning_rate": 3.0}, ["'train.learning_rate'"]),
    (cdt, {"train.weight_decay": -1e-4}, ["'train.weight_decay'"]),
    (cdt, {"train.warmup_steps": -1}, ["'train.warmup_steps'"]),
    (cdt, {"train.grad_clip_norm": 0.0}, ["'train.grad_clip_norm'"]),
    (cdt, {"train.checkpoint_every": 0}, ["'train.checkpoint_every'"]),
    (cdt, {"train.checkpoint_every": 30}, ["'train.checkpoint_every'", "steps_per_call=50"]),
    (cdt, {"train.max_checkpoints": 0}, ["'train.max_checkpoints'"]),
    (cdt, {"train.max_checkpoints": None}, None),  # control: None keeps every checkpoint
    (cdt, {"train.uniform_traj_sampling": None}, ["'train.uniform_traj_sampling'"]),
    (cdt, {"train.dropout_prng": "philox"}, ["'train.dropout_prng'"]),
    (cdt, {"eval.best_k": -1}, ["'eval.best_k'"]),
    (cdt, {"eval.best_k": 0, "eval.middle_k": 0}, ["'eval.best_k/middle_k'"]),
    (cdt, {"eval.episodes_per_target": 0}, ["'eval.episodes_per_target'"]),
    (cdt, {"eval.chunk_steps": 0}, ["'eval.chunk_steps'"]),
    (cdt, {"eval.plots": "no"}, ["'eval.plots'"]),
    (cdt, {"eval.score_features": ("rewrd",)}, ["'eval.score_features'", "reward"]),
    (cdt, {"eval.score_features": "reward"}, ["'eval.score_features'"]),
    (cdt, {"eval.schedule": "closed-loop"}, ["'eval.schedule'", "closed_loop"]),
    (dt, {"eval.schedule": "closed_loop", "gamma": 0.99}, ["'eval.schedule'", "gamma == 1"]),
    (cdt, {"eval.schedule": "closed_loop", "gamma": 0.99}, None),  # control: only DT's RTG needs gamma == 1
    (cdt, {"eval.xvel_offset_like_gdt": None}, ["'eval.xvel_offset_like_gdt'"]),
    (cdt, {"train.lr": 3e-4}, ["'train.lr'", "unknown", "did you mean train.learning_rate", "gdt_base.py"]),
    (cdt, {"learning_rate": 3e-4}, ["'learning_rate'", "did you mean train.learning_rate"]),
    (cdt, {"model.num_layer": 2}, ["'model.num_layer'", "did you mean model.num_layers"]),
    (cdt, {"eval.schedule": DELETE}, ["'eval.schedule'", "missing"]),
]


def _config_id(case):
  module, changes, names = case
  text = ",".join(f"{k}={'<deleted>' if v is DELETE else v!r}" for k, v in changes.items())
  return f"{module.__name__.rsplit('.', 1)[-1]}:{text}" + ("" if names else "(control)")


@pytest.mark.parametrize("module, changes, names", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def test_hostile_config_is_refused_before_any_work(data_dir, tmp_path, module, changes, names):
  config = base(data_dir, module)
  for field, value in changes.items():
    config = with_value(config, field, value)
  workdir = str(tmp_path / "run")
  run = lambda: train.train_and_evaluate(config, workdir, log=quiet)  # noqa: E731
  if names is None:
    with pytest.raises(TrainingReached):
      run()
    return
  assert_refused(run, ValueError, names, [data_dir, workdir], workdir)


def test_seeds_must_be_distinct(data_dir, tmp_path):
  workdirs = [str(tmp_path / "a"), str(tmp_path / "b")]
  assert_refused(lambda: train.train_and_evaluate_seeds(base(data_dir), [1, 1], workdirs, log=quiet), ValueError,
                 ["distinct seeds"], [data_dir, tmp_path], workdirs[0])


# ----------------------------------------------------------------------------------------------------------------
# Datasets: refused when loaded, before the workdir is touched.


def _bad_array(name, edit):
  def change(path):
    with np.load(path) as npz:
      array = npz[name].copy()
    edit(array)
    rewrite(path, **{name: array})
  return change


def _metadata(edit):
  return lambda path: rewrite(path, metadata=edit)


def _raw_metadata(text):
  def change(path):
    with np.load(path) as npz:
      contents = {k: npz[k] for k in npz.files}
    contents["metadata_json"] = np.array(text)
    np.savez(path, **contents)
  return change


def _replace(**kwargs):
  return lambda path: save_dataset(os.path.dirname(os.path.dirname(path)), synthetic_trajectories(**kwargs))


def _write(data: bytes):
  def change(path):
    with open(path, "wb") as f:
      f.write(data)
  return change


def _truncate(path):
  with open(path, "rb") as f:
    data = f.read()
  _write(data[:len(data) // 2])(path)


def _bare_npy(path):
  with open(path, "wb") as f:
    np.save(f, np.zeros(3))


def _nan(a):
  a[0, 0, 0] = np.nan  # trajectory 0 is T steps long: a valid step


def _length_beyond_t(a):
  a[1] = 10_000


def _dirty_padding(path):
  with np.load(path) as npz:
    obs, lengths = npz["observations"].copy(), npz["lengths"]
  short = int(np.argmin(lengths))
  assert lengths[short] < obs.shape[1]
  obs[short, -1, 0] = 1.0
  rewrite(path, observations=obs)


DATASETS = [
    # (id, change to the file at the dataset path, config changes, error, what the message must name)
    ("missing", os.remove, {}, FileNotFoundError, ["datasets/halfcheetah-medium-expert.npz", "generate_data"]),
    ("random_bytes", _write(os.urandom(256)), {}, DatasetError, ["not a readable npz"]),
    ("truncated", _truncate, {}, DatasetError, ["truncated"]),
    ("bare_npy", _bare_npy, {}, DatasetError, ["not a readable npz"]),
    ("no_actions", lambda p: rewrite(p, actions=None), {}, DatasetError, ["'actions'"]),
    ("metadata_not_json", _raw_metadata("{oops"), {}, DatasetError, ["metadata is not valid JSON"]),
    ("newer_schema", _metadata(lambda m: m.update(schema_version=99)), {}, DatasetError, ["schema_version 99"]),
    ("nan_observation", _bad_array("observations", _nan), {}, DatasetError, ["'observations'", "non-finite"]),
    ("length_beyond_t", _bad_array("lengths", _length_beyond_t), {}, DatasetError, ["'lengths'"]),
    ("dirty_padding", _dirty_padding, {}, DatasetError, ["padding"]),
    ("layout_index_out_of_range", _metadata(lambda m: m["observation_layout"].update(x_velocity=99)), {},
     DatasetError, ["observation_layout['x_velocity']"]),
    ("other_env", _metadata(lambda m: m.update(env="hopper")), {}, ValueError, ["'env'", "hopper"]),
    ("feature_not_in_layout", _replace(layout={"z_offset": 0}), {}, ValueError, ["'feature'", "x_velocity"]),
    ("score_feature_not_in_layout", lambda p: None, {"eval.score_features": ("pitch",)}, ValueError,
     ["'eval.score_features'", "pitch"]),
    ("too_few_trajectories", _replace(n=3), {}, ValueError, ["'eval.best_k/middle_k'", "3 trajectories"]),
    ("best_and_middle_overlap", _replace(n=10), {"eval.best_k": 6, "eval.middle_k": 2}, ValueError,
     ["'eval.best_k/middle_k'", "disjoint"]),
    ("backend_that_cannot_evaluate", _metadata(lambda m: m.update(backend="warp")), {}, DatasetError,
     ["'backend'", "warp"]),
]


@pytest.mark.parametrize("change, changes, error, names", [c[1:] for c in DATASETS], ids=[c[0] for c in DATASETS])
def test_hostile_dataset_is_refused_before_any_work(tmp_path, change, changes, error, names):
  data = tmp_path / "data"
  path = save_dataset(data)
  change(path)
  config = base(data)
  for field, value in changes.items():
    config = with_value(config, field, value)
  workdir = str(tmp_path / "run")
  assert_refused(lambda: train.train_and_evaluate(config, workdir, log=quiet), error, names, [data, workdir],
                 workdir)


def test_the_unmodified_dataset_gets_past_every_check(tmp_path):
  """Control of the dataset cases: the same file, untouched, reaches training, and the workdir records it."""
  path = save_dataset(tmp_path / "data")
  workdir = tmp_path / "run"
  with pytest.raises(TrainingReached):
    train.train_and_evaluate(base(tmp_path / "data"), str(workdir), log=quiet)
  recorded = json.loads((workdir / train.DATASET_FILE).read_text())
  assert recorded == train.dataset_fingerprint(path)
  assert recorded["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Workdirs and checkpoints: a run that trained, then hostile resumes.


def first_run(root, config):
  """A workdir as a trained run leaves it: config.json and dataset.json from the real first run (stopped at the
  tripwire), and two checkpoints whose meta records the config as the trainer's do."""
  workdir = str(root / "run")
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(train, "prepare_data", _tripwire)
    with pytest.raises(TrainingReached):
      train.train_and_evaluate(config, workdir, log=quiet)
  mngr = core_ckpt.manager(workdir, max_to_keep=3)
  for step in (50, 100):
    core_ckpt.save(mngr, step, {"w": np.full(3, step, np.float32)}, {"step": np.int32(step)},
                   {"model": {"name": "gdt_policy", "kwargs": {}}, "config": config_to_dict(config)})
  mngr.close()
  return workdir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("trained")
  config = base(data_dir)
  return config, first_run(root, config)


@pytest.fixture
def resumable(trained, tmp_path):
  """A private copy of the trained workdir (same config and dataset)."""
  config, workdir = trained
  copy = str(tmp_path / "run")
  shutil.copytree(workdir, copy)
  return base(config.data_dir), copy


def test_the_unmodified_resume_gets_past_every_check(resumable, data_dir):
  config, workdir = resumable
  dataset_json = snapshot(os.path.join(workdir, train.DATASET_FILE))
  with pytest.raises(TrainingReached):
    train.train_and_evaluate(config, workdir, log=quiet)
  assert snapshot(os.path.join(workdir, train.DATASET_FILE)) == dataset_json  # kept, not rewritten


def _changed(config):
  config.model.embed_dim = 32
  return config


def _delete_config_json(workdir, config):
  os.remove(os.path.join(workdir, "config.json"))


def _config_json_rewritten_to_match(workdir, config):
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config_to_dict(config), f)


def _corrupt_dataset_json(workdir, config):
  with open(os.path.join(workdir, train.DATASET_FILE), "w") as f:
    f.write("{not json")


def _other_data_dir(workdir, config):
  other = os.path.join(os.path.dirname(workdir), "other_data")
  save_dataset(other, synthetic_trajectories(seed=7))
  config.data_dir = other


RESUMES = [
    # (id, config change, workdir change (may edit the config too), error, what the message must name)
    ("changed_config", _changed, None, ValueError, ["config.json", "model.embed_dim"]),
    ("changed_config_without_config_json", _changed, _delete_config_json, ValueError,
     ["checkpoints", "model.embed_dim"]),
    ("config_json_rewritten_to_the_changed_config", _changed, _config_json_rewritten_to_match, ValueError,
     ["checkpoints", "model.embed_dim"]),
    ("changed_data_dir_and_data", None, _other_data_dir, ValueError, ["other_data", "trained on"]),
    ("unreadable_dataset_json", None, _corrupt_dataset_json, ValueError, [train.DATASET_FILE, "unreadable"]),
]


@pytest.mark.parametrize("edit_config, edit_workdir, error, names", [c[1:] for c in RESUMES],
                         ids=[c[0] for c in RESUMES])
def test_hostile_resume_is_refused_before_any_work(resumable, data_dir, edit_config, edit_workdir, error, names):
  config, workdir = resumable
  if edit_config:
    config = edit_config(config)
  if edit_workdir:
    edit_workdir(workdir, config)
  steps = sorted(os.listdir(core_ckpt.checkpoint_dir(workdir)))
  assert_refused(lambda: train.train_and_evaluate(config, workdir, log=quiet), error, names, [data_dir, workdir],
                 workdir)
  assert sorted(os.listdir(core_ckpt.checkpoint_dir(workdir))) == steps


def test_dataset_swapped_at_the_same_path_is_refused(tmp_path):
  data = tmp_path / "data"
  path = save_dataset(data)
  config = base(data)
  workdir = first_run(tmp_path, config)
  old = train.dataset_fingerprint(path)["sha256"]
  save_dataset(data, synthetic_trajectories(seed=3))  # same path, other trajectories
  new = train.dataset_fingerprint(path)["sha256"]
  assert old != new
  text = assert_refused(lambda: train.train_and_evaluate(config, workdir, log=quiet), ValueError,
                        [old[:16], new[:16], os.path.abspath(path), "new --workdir"], [data, workdir], workdir)
  assert "trained on" in text


def test_busy_workdir_is_refused(resumable, data_dir):
  config, workdir = resumable
  with WorkdirLock(workdir):  # another holder: flock conflicts between two opens even in one process
    assert_refused(lambda: train.train_and_evaluate(config, workdir, log=quiet), WorkdirBusy,
                   ["in use by", str(os.getpid())], [data_dir, workdir], workdir)


def test_workdir_that_is_a_file_is_refused(data_dir, tmp_path):
  workdir = tmp_path / "run"
  workdir.write_text("not a directory")
  assert_refused(lambda: train.train_and_evaluate(base(data_dir), str(workdir), log=quiet), FileExistsError,
                 [str(workdir)], [data_dir, tmp_path], str(workdir))


# ----------------------------------------------------------------------------------------------------------------
# Data generation configs: refused by generation.validate_config before anything is written.

DATA_CONFIGS = [
    ({"env": "halfcheeta"}, ["'env'", "halfcheetah"]),
    ({"backend": "mjx_typo"}, ["'backend'", "spring"]),
    ({"preset": "fast"}, ["'preset'"]),
    ({"levels": ("random", "expret")}, ["'levels'", "expert"]),
    ({"levels": ()}, ["'levels'"]),
    ({"levels": ("random", "random")}, ["'levels'", "more than once"]),
    ({"select_levels_by": "best"}, ["'select_levels_by'"]),
    ({"policy": "greedy"}, ["'policy'", "stochastic"]),
    ({"medium_fraction": 1.5}, ["'medium_fraction'"]),
    ({"expert_snapshot": "last"}, ["'expert_snapshot'"]),
    ({"seed": -3}, ["'seed'"]),
    ({"episode_length": 0}, ["'episode_length'"]),
    ({"transitions_per_level": 0}, ["'transitions_per_level'"]),
    ({"rollout_envs": 0}, ["'rollout_envs'"]),
    ({"ppo.num_envs": 48}, ["'ppo.num_envs'"]),
    ({"ppo.discounting": 0.0}, ["'ppo.discounting'"]),
    ({"ppo.learning_rate": -3e-4}, ["'ppo.learning_rate'"]),
    ({"ppo.policy_hidden_layer_sizes": (32, 0)}, ["'ppo.policy_hidden_layer_sizes'"]),
    ({"ppo.lr": 3e-4}, ["'ppo.lr'", "did you mean ppo.learning_rate", "data.py"]),
]


@pytest.mark.parametrize("changes, names", DATA_CONFIGS, ids=[",".join(f"{k}={v!r}" for k, v in c[0].items())
                                                               for c in DATA_CONFIGS])
def test_hostile_data_config_is_refused_before_any_work(tmp_path, changes, names):
  config = data_configs.get_config("env=halfcheetah,preset=demo")
  for field, value in changes.items():
    config = with_value(config, field, value)
  workdir = str(tmp_path / "data")
  assert_refused(lambda: generation.generate(config, workdir), ValueError, names, [workdir], workdir)


def test_the_data_config_presets_pass_validation():
  """Control of the data cases: every preset of every env with PPO settings passes."""
  for env in data_configs.PPO_FULL:
    for preset in data_configs.PRESETS:
      generation.validate_config(data_configs.get_config(f"env={env},preset={preset}"))


def test_data_config_of_an_env_without_ppo_settings_names_it():
  with pytest.raises(ValueError, match="'env'.*no PPO settings"):
    data_configs.get_config("env=humanoid")


# ----------------------------------------------------------------------------------------------------------------
# The command line: one `error:` line, the traceback behind --debug.


def _cli(module, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(data_dir, tmp_path):
  train_args = [f"--config=experiments/configs/cdt.py:data_dir={data_dir},steps=100",
                "--config.train.learning_rate=-0.001"]
  cases = {  # name -> (process, workdir, what the line must name); started together (each imports jax)
      "train": ("experiments.train_gdt", [*train_args], ["train.learning_rate"]),
      "train_debug": ("experiments.train_gdt", [*train_args, "--debug"], ["train.learning_rate"]),
      "config_arg": ("experiments.train_gdt", ["--config=experiments/configs/cdt.py:bogus=1"], ["bogus"]),
      "data": ("experiments.generate_data", ["--config=experiments/configs/data.py:preset=demo",
                                             "--config.medium_fraction=2.0"], ["medium_fraction"]),
  }
  procs = {}
  for name, (module, args, _) in cases.items():
    procs[name] = _cli(module, *args, f"--workdir={tmp_path / name}")
  for name, proc in procs.items():
    _, err = proc.communicate(timeout=120)
    names = cases[name][2]
    assert proc.returncode == 1, (name, err)
    assert not (tmp_path / name).exists(), name
    if name.endswith("_debug"):
      assert "Traceback (most recent call last)" in err and all(n in err for n in names), err
      continue
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert all(n in errors[0] for n in names), errors[0]
