"""Robustness: checkpoints verified on restore (a damaged step falls back to the newest intact one, with a warning),
a divergence guard on the loss and on the params' and gradients' norms that keeps the last good checkpoint, and
evaluations that never overwrite earlier files with non-finite scores."""

import copy
import gc
import glob
import json
import os
import shutil
import types
import warnings

import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp

from gdt import evaluate, train
from gdt.core import checkpoint as core_ckpt
from gdt.core.trainer import Trainer, global_norm, train_loop, train_loop_seeds
from gdt.core.workdir import read_jsonl
from tests import test_checkpoint
from tests.test_seeds import PARAM_ATOL
from tests.test_train import S, A

setup = test_checkpoint.setup  # fixture: the tiny CDT (dropout 0.1) with its trainer, data and meta
# A read that fails on a damaged file leaves orbax's other read coroutines un-awaited; they are collected (below) and
# their "never awaited" notices dropped here, so they neither clutter nor land on later tests.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
N = test_checkpoint.N  # steps per call
LOOP = dict(steps_per_call=N, checkpoint_every=N, max_checkpoints=None, log=lambda _: None)


@pytest.fixture(autouse=True)
def _collect_orbax_coroutines():
  yield
  gc.collect()


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_same(a, b):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def steps_of(workdir):
  return sorted(int(p) for p in os.listdir(core_ckpt.checkpoint_dir(workdir)) if p.isdigit())


@pytest.fixture(scope="module")
def pristine(setup, tmp_path_factory):
  """A workdir trained 2N steps (checkpoints at N and 2N) and the params of each step, read while intact."""
  _, _, trainer, data, meta = setup
  workdir = str(tmp_path_factory.mktemp("pristine"))
  train_loop(trainer, trainer.init(0), data, workdir, num_steps=2 * N, meta=meta, **LOOP)
  return workdir, {s: core_ckpt.load_model(workdir, step=s).params for s in (N, 2 * N)}


def copy_of(pristine, path) -> str:
  shutil.copytree(pristine[0], str(path))
  return str(path)


def damage(workdir: str, step: int, item: str = "params", how: str = "flip") -> None:
  """Flips 100 bytes of, or truncates to half, every array data file of `item` at `step`.

  Every one: tensorstore's OCDBT leaves data files of superseded flushes beside the ones the final manifest reads,
  and how many there are and which is largest depends on write timing, so damaging one file (the largest, say) can
  leave the checkpoint intact.
  """
  files = [p for p in glob.glob(os.path.join(core_ckpt.checkpoint_dir(workdir), str(step), item, "**", "d", "*"),
                                recursive=True) if os.path.isfile(p)]
  assert files, f"no data files of {item!r} at step {step}"
  for path in files:
    with open(path, "rb") as f:
      data = bytearray(f.read())
    if how == "flip":
      for i in np.random.default_rng(0).choice(len(data), size=min(100, len(data)), replace=False):
        data[i] ^= 0xFF
    else:
      data = data[:len(data) // 2]
    with open(path, "wb") as f:
      f.write(bytes(data))


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint integrity.


@pytest.mark.parametrize("item,how", [("params", "flip"), ("params", "truncate"), ("train_state", "flip")])
def test_a_damaged_latest_step_falls_back_to_the_newest_intact_one(setup, pristine, tmp_path, item, how):
  _, _, trainer, data, meta = setup
  workdir = copy_of(pristine, tmp_path / "run")
  damage(workdir, 2 * N, item, how)
  if item == "params":
    with pytest.warns(core_ckpt.CorruptCheckpointWarning, match=f"skipping checkpoint step {2 * N} "):
      loaded = core_ckpt.load_model(workdir)
    assert loaded.step == N
    assert_same(loaded.params, pristine[1][N])
    with pytest.raises(core_ckpt.CorruptCheckpointError, match=f"step {2 * N}"):
      core_ckpt.load_model(workdir, step=2 * N)  # an explicit step does not fall back
  else:  # load_model reads no train state: the step's params are intact and load
    with warnings.catch_warnings():
      warnings.simplefilter("error", core_ckpt.CorruptCheckpointWarning)
      assert core_ckpt.load_model(workdir).step == 2 * N

  lines = []
  with pytest.warns(core_ckpt.CorruptCheckpointWarning) as record:
    train_loop(trainer, trainer.init(7), data, workdir, num_steps=2 * N, meta=meta, **dict(LOOP, log=lines.append))
  messages = [str(w.message) for w in record if w.category is core_ckpt.CorruptCheckpointWarning]
  assert messages[0].startswith(f"skipping checkpoint step {2 * N} in {core_ckpt.checkpoint_dir(workdir)} (resume): ")
  assert messages[1:] == [f"moved the damaged checkpoint step {2 * N} to "
                          f"{os.path.join(workdir, core_ckpt.CORRUPT_DIR, str(2 * N))}"]
  assert lines[0] == (f"[train] resumed from step {N} (newer steps [{2 * N}] failed verification: moved to "
                      f"{core_ckpt.CORRUPT_DIR}/)")
  assert os.listdir(os.path.join(workdir, core_ckpt.CORRUPT_DIR)) == [str(2 * N)]  # kept, out of the way
  assert steps_of(workdir) == [N, 2 * N]
  redone = core_ckpt.load_model(workdir)  # the exact resume trains step 2N's params again, bit for bit
  assert redone.step == 2 * N
  assert_same(redone.params, pristine[1][2 * N])
  assert [r["step"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))] == [N, 2 * N]


def test_values_that_read_fine_but_differ_from_the_checksum_are_rejected(setup, pristine, tmp_path):
  workdir = copy_of(pristine, tmp_path / "run")
  ckpts = core_ckpt.checkpoint_dir(workdir)
  shutil.rmtree(os.path.join(ckpts, str(2 * N), "params"))  # a well-formed item, but step N's values
  shutil.copytree(os.path.join(ckpts, str(N), "params"), os.path.join(ckpts, str(2 * N), "params"))
  with pytest.warns(core_ckpt.CorruptCheckpointWarning, match="'params' does not match its saved checksum"):
    assert core_ckpt.load_model(workdir).step == N


def test_no_intact_step_is_a_clear_error_that_moves_nothing(setup, pristine, tmp_path):
  _, _, trainer, data, meta = setup
  workdir = copy_of(pristine, tmp_path / "run")
  for step in (N, 2 * N):
    damage(workdir, step, "train_state", "truncate")
  with pytest.warns(core_ckpt.CorruptCheckpointWarning), \
       pytest.raises(core_ckpt.CorruptCheckpointError, match=f"no intact checkpoint.*step {2 * N}: .*step {N}: "):
    train_loop(trainer, trainer.init(0), data, workdir, num_steps=3 * N, meta=meta, **LOOP)
  assert steps_of(workdir) == [N, 2 * N] and not os.path.exists(os.path.join(workdir, core_ckpt.CORRUPT_DIR))
  for step in (N, 2 * N):
    damage(workdir, step, "params", "flip")
  with pytest.warns(core_ckpt.CorruptCheckpointWarning), \
       pytest.raises(core_ckpt.CorruptCheckpointError, match="no intact checkpoint.*load_model"):
    core_ckpt.load_model(workdir)


def test_latest_meta_skips_a_damaged_meta(setup, pristine, tmp_path):
  _, _, _, _, meta = setup
  workdir = copy_of(pristine, tmp_path / "run")
  path = os.path.join(core_ckpt.checkpoint_dir(workdir), str(2 * N), "meta", "metadata")
  with open(path) as f:
    text = f.read()
  assert '"conditioning": "histogram"' in text
  with open(path, "w") as f:
    f.write(text.replace('"conditioning": "histogram"', '"conditioning": "histogrum"'))  # valid JSON, another run
  with pytest.warns(core_ckpt.CorruptCheckpointWarning, match=f"step {2 * N} .*'meta' does not match"):
    assert core_ckpt.latest_meta(workdir) == json.loads(json.dumps(meta))


def test_a_step_saved_without_checksums_restores_with_a_warning(setup, pristine, tmp_path):
  workdir = copy_of(pristine, tmp_path / "run")
  shutil.rmtree(os.path.join(core_ckpt.checkpoint_dir(workdir), str(2 * N), "integrity"))  # as older code saved it
  with pytest.warns(core_ckpt.CorruptCheckpointWarning, match=f"step {2 * N} .*no checksums"):
    loaded = core_ckpt.load_model(workdir)
  assert loaded.step == 2 * N
  assert_same(loaded.params, pristine[1][2 * N])


def test_stacked_seeds_fall_back_together_or_refuse(setup, pristine, tmp_path):
  _, _, trainer, data, meta = setup
  workdirs = [copy_of(pristine, tmp_path / f"s{i}") for i in range(2)]  # two copies of seed 0's run
  loop = dict(num_steps=2 * N, metas=[meta] * 2, **LOOP)
  damage(workdirs[1], 2 * N)
  with pytest.warns(core_ckpt.CorruptCheckpointWarning), \
       pytest.raises(ValueError, match=f"different steps.*s0: {2 * N}.*s1: {N}"):
    train_loop_seeds(trainer, trainer.init_many((0, 1)), data, workdirs, **loop)
  damage(workdirs[0], 2 * N)
  lines = []
  with pytest.warns(core_ckpt.CorruptCheckpointWarning) as record:
    train_loop_seeds(trainer, trainer.init_many((5, 6)), data, workdirs, **dict(loop, log=lines.append))
  ours = [str(w.message) for w in record if w.category is core_ckpt.CorruptCheckpointWarning]  # seed 0's 2N only
  assert len(ours) == 2 and ours[0].startswith(f"skipping checkpoint step {2 * N} in {workdirs[0]}/")
  assert ours[1].startswith(f"moved the damaged checkpoint step {2 * N} to {workdirs[0]}/")
  assert lines[0].startswith(f"[train] resumed from step {N} (newer steps [{2 * N}]")
  for w in workdirs:  # each seed resumed its own step N (vmapped steps match a single run up to rounding)
    for a, b in zip(leaves(core_ckpt.load_model(w).params), leaves(pristine[1][2 * N]), strict=True):
      np.testing.assert_allclose(a, b, rtol=0, atol=PARAM_ATOL)


# ----------------------------------------------------------------------------------------------------------------
# The divergence guard.

GUARD_FAILURES = {"params": "params global norm is 1.", "grads": "gradient global norm (largest step of the call, "
                  "before clipping) is 1.", "loss": "loss is nan"}


def _toy(case: str):
  """(loss, optimizer) of a 3-param toy that trains sanely for one call of N steps, then trips exactly one check."""
  if case == "params":  # lr jumps to 1e30 after the first call: params ~1e30 while loss and gradients stay finite
    return (lambda p, b, r: jnp.sum(jnp.tanh(p["w"])),
            optax.sgd(lambda step: jnp.where(step < N, 0.02, 1e30)))
  if case == "grads":  # w grows 0.02 a step; past 0.5 (step 26) the gradient is 1e10, clipped so params stay small
    return (lambda p, b, r: -jnp.sum(jnp.where(p["w"] > 0.5, 1e10 * p["w"], p["w"])),
            optax.chain(optax.clip_by_global_norm(10.0), optax.sgd(0.02)))
  return (lambda p, b, r: -jnp.sum(p["w"]) + jnp.where(p["w"][0] > 0.5, jnp.nan, 0.0), optax.sgd(0.02))


@pytest.mark.parametrize("case", sorted(GUARD_FAILURES))
def test_the_guard_stops_a_diverging_run_and_keeps_the_last_good_checkpoint(case, tmp_path):
  loss, optimizer = _toy(case)
  trainer = Trainer(lambda rng: {"w": jnp.zeros(3)}, lambda data, rng: data, loss, optimizer)
  workdir = str(tmp_path)
  with pytest.raises(FloatingPointError) as err:
    train_loop(trainer, trainer.init(0), trainer.put_data(jnp.zeros(2)), workdir, num_steps=3 * N,
               meta={"model": {"name": "toy", "kwargs": {}}}, **LOOP)
  message = str(err.value)
  assert message.startswith(f"training diverged at step {2 * N}: {GUARD_FAILURES[case]}"), message
  assert all(other not in message for c, other in GUARD_FAILURES.items() if c != case), message
  assert f"the latest checkpoint, step {N}, stays the last good one" in message
  assert "Config values to look at: train.learning_rate, train.grad_clip_norm, train.warmup_steps" in message
  assert steps_of(workdir) == [N]
  rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))  # the diverged call's row is written, to show it
  assert [r["step"] for r in rows] == [N, 2 * N] and rows[0]["param_norm"] < 10
  if case == "params":
    assert 1e30 < rows[1]["param_norm"] < 1e31 and np.isfinite(rows[1]["loss"])


def test_a_huge_learning_rate_stops_a_gdt_run_naming_the_config_values(setup, pristine, tmp_path):
  config, prep, _, _, meta = setup
  workdir = copy_of(pristine, tmp_path / "run")
  hot = copy.deepcopy(config)
  hot.train.learning_rate = 1e5
  trainer = train.GDTTrainer(hot, S, A, prep.labels.cond_dim)
  with pytest.raises(FloatingPointError) as err:
    train_loop(trainer, trainer.init(0), trainer.put_data(prep.data), workdir, num_steps=3 * N, meta=meta, **LOOP)
  message = str(err.value)
  assert message.startswith(f"training diverged at step {3 * N}: "), message
  assert f"the latest checkpoint, step {2 * N}, stays the last good one" in message
  assert ("train.learning_rate=100000.0, train.grad_clip_norm=0.25, train.warmup_steps=1, train.batch_size=16, "
          "train.weight_decay=0.0001") in message
  assert steps_of(workdir) == [N, 2 * N]


def test_global_norm_does_not_overflow():
  np.testing.assert_allclose(float(global_norm({"a": jnp.full(3, 1e30), "b": jnp.ones(2)})), 3 ** 0.5 * 1e30,
                             rtol=1e-5)
  np.testing.assert_allclose(float(global_norm({"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])})), 5.0)
  assert np.isnan(float(global_norm({"a": jnp.array([1.0, jnp.inf])})))
  assert np.isnan(float(global_norm({"a": jnp.array([1.0, jnp.nan])})))


# ----------------------------------------------------------------------------------------------------------------
# Evaluation files.


def fake_result(w1) -> evaluate.EvalResult:
  """An EvalResult of two targets (synthetic: NaN target returns, which are not scores)."""
  edges = np.linspace(0.0, 1.0, 3)
  targets = types.SimpleNamespace(names=("best_1", "middle_1"), lengths=np.array([3, 3]), returns=np.full(2, np.nan),
                                  score_features=(("x_velocity", edges, np.full((2, 2), 0.5)),),
                                  feature="x_velocity", conditioning="histogram")
  rows = tuple({"name": n, "w1": float(w), "mean_return": 1.0, "target_return": float("nan")}
               for n, w in zip(targets.names, w1, strict=True))
  zeros = np.zeros((2, 1, 3))
  return evaluate.EvalResult(
      targets=targets, rows=rows, aggregates={"w1_all": float(np.mean(w1)), "mean_return_all": 1.0},
      features={"x_velocity": zeros}, achieved_histograms={"x_velocity": np.zeros((2, 2))},
      valid=zeros > -1, rewards=zeros, actions=zeros[..., None], observations=zeros[..., None],
      protocol={"plots": False})


def test_a_non_finite_evaluation_never_overwrites_the_earlier_one(tmp_path):
  workdir = str(tmp_path)
  paths = fake_result([0.1, 0.2]).write(workdir, "histogram")
  assert paths == {"npz": f"{workdir}/eval_histogram.npz", "json": f"{workdir}/eval_histogram.json"}
  before = {p: open(p, "rb").read() for p in paths.values()}
  with pytest.raises(FloatingPointError, match=r"non-finite scores \(middle_1\.w1, aggregates\.w1_all\).*"
                     r"eval_histogram\.nonfinite\.json.*left eval_histogram\.\* untouched"):
    fake_result([0.1, float("nan")]).write(workdir, "histogram")
  assert {p: open(p, "rb").read() for p in paths.values()} == before
  with open(os.path.join(workdir, "eval_histogram.nonfinite.json")) as f:
    assert np.isnan(json.load(f)["targets"][1]["w1"])
  assert os.path.exists(os.path.join(workdir, "eval_histogram.nonfinite.npz"))
