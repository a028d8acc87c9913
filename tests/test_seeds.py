"""Seeds in one process: a vmapped seed is its own single run, and train_loop_seeds writes each seed's workdir as
train_loop would (metrics rows, checkpoint steps, resume; refusal when the seeds' checkpoints differ).

Why not bit for bit: init, batches, dropout masks and the RNG stream ARE bit-identical (checked exactly below), but
XLA's CPU backend computes a vmapped matmul as a batched dot with another summation order than the unbatched one,
so the forward pass already differs in the last bits (~1e-7) and Adam, which normalises every gradient component,
grows that to ~2e-4 in the params after 100 steps of the tiny model at lr 3e-3 (measured: 4e-5..1.7e-4 over seeds
0-2), while two different seeds' params are >= 3e-2 apart. PARAM_ATOL sits between the two.
These tests use float32 matmuls: with the default bfloat16 matmul inputs a last-bit difference that crosses a
bfloat16 rounding boundary moves an input by 2^-9 relative, and 100 steps of the tiny model grow that to loss
differences of up to 4.2e-4 relative and parameter differences of 6.8e-3 (measured), which would hide small bugs.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from experiments.configs import cdt
from gdt import train
from gdt.core import checkpoint as core_ckpt
from gdt.core.trainer import DROPOUT_PRNGS, dropout_key, train_loop, train_loop_seeds, unstack_states
from gdt.core.workdir import read_jsonl
from tests import test_checkpoint
from tests.test_train import S, A, synthetic_trajectories, tiny



@pytest.fixture(scope="module")
def setup():
  """test_checkpoint's tiny CDT (dropout 0.1, rbg masks: the configs' default) with float32 matmuls."""
  config = tiny(cdt)
  config.model.matmul_dtype = "float32"
  return test_checkpoint.make_setup(config)

K = test_checkpoint.N  # steps per call
SEEDS = (0, 1)
CALLS = 5  # 100 steps
PARAM_ATOL = 1e-3  # see the module docstring
LOSS_RTOL = 1e-5  # measured <= 1e-7
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_batches_and_dropout_masks_are_each_seeds_own_under_vmap(setup):
  _, _, trainer, data, _ = setup
  keys = jnp.stack([trainer.init(s).rng for s in SEEDS])

  def draws(key):  # a batch, and per PRNG the mask bits flax draws (it folds the module path into the key first)
    bits = {impl: jax.random.bits(jax.random.fold_in(dropout_key(key, impl), 7), (256,)) for impl in DROPOUT_PRNGS}
    return trainer.sample(data, key), bits

  # One compile: vmapped over the seeds, and each seed's key on its own.
  vmapped, alone = jax.jit(lambda keys: (jax.vmap(draws)(keys), [draws(k) for k in keys]))(keys)
  for i in range(len(SEEDS)):
    for a, b in zip(leaves(vmapped), leaves(alone[i]), strict=True):
      np.testing.assert_array_equal(a[i], b)
  for impl, bits in vmapped[1].items():
    assert not np.array_equal(bits[0], bits[1]), impl
  # Unbatched, the masks are jax's own PRNG's: single runs draw what they drew before the vmap-exact wrapper.
  own = jax.random.wrap_key_data(jax.random.bits(keys[0], (4,), jnp.uint32), impl="rbg")
  np.testing.assert_array_equal(np.asarray(jax.random.bits(jax.random.fold_in(own, 7), (256,))),
                                np.asarray(alone[0][1]["rbg"]))


def test_a_vmapped_seed_equals_its_single_run(setup):
  _, _, trainer, data, _ = setup
  states = trainer.init_many(SEEDS)
  for seed, s in zip(SEEDS, unstack_states(states), strict=True):
    for a, b in zip(leaves(s), leaves(trainer.init(seed)), strict=True):
      np.testing.assert_array_equal(a, b)  # init(seed), stacked
  losses = []
  for _ in range(CALLS):
    states, metrics = trainer.train_many(states, data, K)
    assert metrics["loss"].shape == (len(SEEDS),)
    losses.append(metrics["loss"])
  finals = unstack_states(states)
  for i, seed in enumerate(SEEDS):
    single = trainer.init(seed)
    for call in range(CALLS):
      single, metrics = trainer.train_many(single, data, K)
      np.testing.assert_allclose(losses[call][i], metrics["loss"], rtol=LOSS_RTOL)
    assert int(finals[i].step) == int(single.step) == CALLS * K
    np.testing.assert_array_equal(np.asarray(finals[i].rng), np.asarray(single.rng))
    for a, b in zip(leaves((finals[i].params, finals[i].opt_state)), leaves((single.params, single.opt_state)),
                    strict=True):
      np.testing.assert_allclose(a, b, rtol=0, atol=PARAM_ATOL)
    other = finals[1 - i]  # the tolerance still tells seeds apart
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves(other.params), leaves(single.params), strict=True))
    assert gap > 10 * PARAM_ATOL


def test_seed_workdirs_read_as_single_runs(setup, tmp_path):
  _, _, trainer, data, meta = setup
  loop = dict(steps_per_call=K, checkpoint_every=K, max_checkpoints=None, log=lambda _: None)
  workdirs = [str(tmp_path / f"s{seed}") for seed in SEEDS]
  lines = []
  first = train_loop_seeds(trainer, trainer.init_many(SEEDS), data, workdirs, num_steps=2 * K, metas=[meta] * 2,
                           **dict(loop, log=lines.append))
  single_dir = str(tmp_path / "single")
  train_loop(trainer, trainer.init(SEEDS[1]), data, single_dir, num_steps=2 * K, meta=meta, **loop)

  rows, single_rows = read_jsonl(os.path.join(workdirs[1], "metrics.jsonl")), read_jsonl(f"{single_dir}/metrics.jsonl")
  assert [r["step"] for r in rows] == [r["step"] for r in single_rows] == [K, 2 * K]
  assert [list(r) for r in rows] == [list(r) for r in single_rows]
  np.testing.assert_allclose([r["loss"] for r in rows], [r["loss"] for r in single_rows], rtol=LOSS_RTOL)
  with open(os.path.join(workdirs[1], "metrics.csv")) as f, open(f"{single_dir}/metrics.csv") as g:
    assert f.readline() == g.readline()
  for w in workdirs + [single_dir]:
    assert sorted(int(p) for p in os.listdir(core_ckpt.checkpoint_dir(w)) if p.isdigit()) == [K, 2 * K], w
  saved, single = core_ckpt.load_model(workdirs[1]), core_ckpt.load_model(single_dir)
  assert saved.step == single.step == 2 * K and saved.meta == single.meta
  for a, b in zip(leaves(saved.params), leaves(single.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=0, atol=PARAM_ATOL)

  # Resume: every seed's own slice comes back exactly (other seeds' init is only a template).
  again = train_loop_seeds(trainer, trainer.init_many((7, 8)), data, workdirs, num_steps=2 * K, metas=[meta] * 2,
                           **dict(loop, log=lines.append))
  assert lines.count(f"[train] resumed from step {2 * K}") == 1
  for a, b in zip(leaves(first), leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)
  train_loop_seeds(trainer, trainer.init_many((7, 8)), data, workdirs, num_steps=3 * K, metas=[meta] * 2, **loop)
  for w in workdirs:
    assert [r["step"] for r in read_jsonl(os.path.join(w, "metrics.jsonl"))] == [K, 2 * K, 3 * K]

  shutil.rmtree(os.path.join(core_ckpt.checkpoint_dir(workdirs[1]), str(3 * K)))  # seed 1 now ends at 2K
  with pytest.raises(ValueError, match=f"different steps.*s0: {3 * K}.*s1: {2 * K}"):
    train_loop_seeds(trainer, trainer.init_many(SEEDS), data, workdirs, num_steps=4 * K, metas=[meta] * 2, **loop)


def run_python(*args: str, **env: str) -> str:
  """stdout of `python args` in the repo root (XLA's device count is fixed when jax starts: it takes a process)."""
  proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, **env),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout


TINY_SWEEP = ["--configs=cdt", "--seeds=0,1", "--set=model.embed_dim=16", "--set=model.num_layers=1",
              "--set=model.num_heads=1", "--set=model.encoder_horizon=3", "--set=context_length=5", "--set=num_bins=8",
              "--set=train.batch_size=16", "--set=train.steps_per_call=25", "--set=train.checkpoint_every=25",
              "--set=train.warmup_steps=1", "--set=eval.best_k=1", "--set=eval.middle_k=1",
              "--set=eval.episodes_per_target=2", "--set=eval.chunk_steps=10", "--set=eval.plots=false"]


@pytest.mark.slow
def test_launch_seeds_vmapped_writes_the_sweep_a_default_launch_writes(tmp_path):
  synthetic_trajectories(n=8, t_max=30, min_length=30).save(str(tmp_path / "datasets" / "halfcheetah-medium-expert.npz"))
  arg = f"--arg=data_dir={tmp_path},steps=50"
  vmapped = run_python("-m", "launch.seeds", arg, f"--workdir={tmp_path / 'vmapped'}", "--vmap_seeds", *TINY_SWEEP)
  assert "[seeds] cdt seeds 0, 1 vmapped" in vmapped and "[train 2 seeds]" in vmapped
  run_python("-m", "launch.seeds", arg, f"--workdir={tmp_path / 'default'}", *TINY_SWEEP)
  for run in ("cdt_s0", "cdt_s1"):
    a, b = tmp_path / "vmapped" / run, tmp_path / "default" / run
    assert sorted(os.listdir(a)) == sorted(os.listdir(b)) and (a / "eval_histogram.json").exists()
    assert (a / "config.json").read_text() == (b / "config.json").read_text()
    rows, single_rows = read_jsonl(str(a / "metrics.jsonl")), read_jsonl(str(b / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [r["step"] for r in single_rows] == [25, 50]
    np.testing.assert_allclose([r["loss"] for r in rows], [r["loss"] for r in single_rows], rtol=LOSS_RTOL)
  assert "| cdt | 2 |" in (tmp_path / "vmapped" / "summary.md").read_text()
  rerun = run_python("-m", "launch.seeds", arg, f"--workdir={tmp_path / 'vmapped'}", "--vmap_seeds", *TINY_SWEEP)
  assert "[seeds] cdt" not in rerun  # finished seeds are not redone


def _two_device_run() -> dict:
  """Per-seed losses of 3 vmapped seeds on 1 device and on all, and whether each device got half of every seed's
  batch (the compiled, partitioned step holds [3 seeds, 16 / 2, K, S] state windows)."""
  config = tiny(cdt)
  config.train.dropout_prng = "threefry"  # rbg masks depend on the device count
  prep = train.prepare_data(synthetic_trajectories(), config)
  out = {"devices": jax.local_device_count()}
  for name, devices in (("one", jax.local_devices()[:1]), ("all", jax.local_devices())):
    trainer = train.GDTTrainer(config, S, A, prep.labels.cond_dim, devices=devices)
    data, states = trainer.put_data(prep.data), trainer.init_many((0, 1, 2))
    hlo = trainer.compiled(states, data, 10).as_text()
    out[name] = {"losses": trainer.train_many(states, data, 10)[1]["loss"].tolist(),
                 "split_batch": f"f32[3,{16 // len(devices)},5,{S}]" in hlo}
  return out


@pytest.mark.slow
def test_vmapped_seeds_keep_data_parallelism():
  out = json.loads(run_python(os.path.abspath(__file__), XLA_FLAGS="--xla_force_host_platform_device_count=2")
                   .strip().splitlines()[-1])
  assert out["devices"] == 2 and out["one"]["split_batch"] and out["all"]["split_batch"]
  np.testing.assert_allclose(out["all"]["losses"], out["one"]["losses"], rtol=1e-5)


if __name__ == "__main__":
  from gdt.core import runtime
  runtime.enable_compilation_cache()
  print(json.dumps(_two_device_run()))
