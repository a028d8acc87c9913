"""Data parallelism: 1 device and 8 simulated CPU devices train the same model (same batches, same losses), for
every trainer: GDT, GDT with vmapped seeds, and the MxT distillation trainer with each of its models; and with the
data's rows split over the devices (`train.shard_data`, row counts that need padding) as with it replicated.

XLA's device count is fixed when jax starts, so the comparison runs in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (this file's __main__).
"""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _loss_curves() -> dict:
  import jax
  from experiments.configs import cdt
  from gdt import train
  from morphology import distill
  from tests.test_train import S, A, synthetic_trajectories, tiny

  config = tiny(cdt)
  config.model.dropout_rate = 0.1
  config.train.steps_per_call = 10
  # float32 matmuls: with the default bfloat16 inputs a reduction-order difference that crosses a bfloat16 rounding
  # boundary moves an input by 2^-9 relative, and 30 steps grow that to 5.7e-4 in the params (measured), which
  # would hide a real data-parallel error.
  config.model.matmul_dtype = "float32"
  rows = copy.deepcopy(config)
  rows.train.shard_data = True
  trajs = synthetic_trajectories()
  prep = train.prepare_data(trajs, config)  # 12 trajectories: 8 devices need 4 padding rows
  out = {"devices": jax.local_device_count()}
  trainers = {  # name -> (make_trainer(devices), host data, seeds: None = one state)
      "gdt": (lambda d: train.GDTTrainer(config, S, A, prep.labels.cond_dim, devices=d), prep.data, None),
      "gdt_seeds": (lambda d: train.GDTTrainer(config, S, A, prep.labels.cond_dim, devices=d), prep.data, (0, 1)),
      "gdt_rows": (lambda d: train.GDTTrainer(rows, S, A, prep.labels.cond_dim, devices=d), prep.data, None),
  }
  for model, shard in (("mxt_transformer", False), ("mxt_mlp", False), ("mxt_mlp", True)):
    mxt_config, tokens, data = _mxt_setup(model)  # 40 transitions: 8 devices need no padding, 3 envs of 7/20/13
    mxt_config.train.shard_data = shard
    trainers[model + ("_rows" if shard else "")] = (
        (lambda d, c=mxt_config, t=tokens: distill.MxtTrainer(c, t, devices=d)), data, None)
  for kind, (make, host_data, seeds) in trainers.items():
    out[kind] = {}
    for name, devices in (("one", jax.local_devices()[:1]), ("all", jax.local_devices())):
      trainer = make(devices)
      data = trainer.put_data(host_data)
      state = trainer.init(0) if seeds is None else trainer.init_many(seeds)
      losses = []
      for _ in range(3):
        state, metrics = trainer.train_many(state, data, 10)
        losses.append(np.asarray(metrics["loss"]).tolist())
      out[kind][name] = {"losses": losses,
                         "params": [np.asarray(x).ravel()[:50].tolist() for x in jax.tree.leaves(state.params)],
                         "param_sharding": str(jax.tree.leaves(state.params)[0].sharding),
                         "row_sharding": str(jax.tree.leaves(data)[0].sharding)}  # states / tokens
  return out


def _mxt_setup(model: str):
  """A tiny MxT config and synthetic multi-task data of 3 envs (no env needed: the trainer sees arrays)."""
  from experiments.configs import mxt_base
  from morphology import distill, graph
  c = mxt_base.get_config(f"model={model}")
  c.model.update(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=16, hidden_dim=16, num_hidden=1)
  c.train.update(batch_size=16, steps_per_call=10)
  cfg = graph.OBS_CONFIGS.get(c.obs_config)
  L = graph.MAX_TOKENS
  token_shape = (1, L * cfg.token_size) if cfg.flat else (L, cfg.token_size)
  rng = np.random.default_rng(0)
  counts = np.array([7, 20, 13], np.int32)
  m = int(counts.sum())
  data = distill.MultiTaskData(
      tokens=rng.normal(size=(m, *token_shape)).astype(np.float32), mask=np.ones((m, token_shape[0]), bool),
      targets=rng.uniform(-1, 1, (m, L)).astype(np.float32), action_mask=rng.uniform(size=(m, L)) < 0.5,
      offsets=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32), counts=counts)
  return c, token_shape, data


@pytest.mark.slow
def test_one_device_and_eight_devices_agree():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, os.path.abspath(__file__)], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["devices"] == 8
  # Parameter tolerance per trainer: the 8-device gradient sum is ordered differently; Adam (the MxT trainer's
  # element-wise clip + Adam) turns that into up to 9.2e-5 on near-zero parameters of the transformer (measured).
  param_atol = {"gdt": 1e-5, "gdt_seeds": 1e-5, "gdt_rows": 1e-5, "mxt_transformer": 2e-4, "mxt_mlp": 1e-5,
                "mxt_mlp_rows": 1e-5}
  for kind, atol in param_atol.items():
    one, all_ = out[kind]["one"], out[kind]["all"]
    assert "'data': 1" in one["param_sharding"] and "'data': 8" in all_["param_sharding"], kind
    np.testing.assert_allclose(all_["losses"], one["losses"], rtol=1e-4, err_msg=kind)
    for a, b in zip(all_["params"], one["params"], strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=atol, err_msg=kind)
  # Split rows: the big arrays live on the data axis, and on the same 8 devices the batches, hence every loss and
  # parameter, are the replicated data's bit for bit.
  for kind in ("gdt", "mxt_mlp"):
    rows, replicated = out[kind + "_rows"]["all"], out[kind]["all"]
    assert "P('data',)" in rows["row_sharding"] and "P()" in replicated["row_sharding"], kind
    assert rows["losses"] == replicated["losses"] and rows["params"] == replicated["params"], kind


if __name__ == "__main__":
  from gdt.core import runtime
  runtime.enable_compilation_cache()
  print(json.dumps(_loss_curves()))
