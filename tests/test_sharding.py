"""Data parallelism: 1 device and 8 simulated CPU devices train the same model (same batches, same losses).

XLA's device count is fixed when jax starts, so the comparison runs in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (this file's __main__).
"""

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
  from tests.test_train import S, A, synthetic_trajectories, tiny

  config = tiny(cdt)
  config.model.dropout_rate = 0.1
  config.train.steps_per_call = 10
  trajs = synthetic_trajectories()
  prep = train.prepare_data(trajs, config)
  out = {"devices": jax.local_device_count()}
  for name, devices in (("one", jax.local_devices()[:1]), ("all", jax.local_devices())):
    trainer = train.GDTTrainer(config, S, A, prep.labels.cond_dim, devices=devices)
    data = trainer.put_data(prep.data)
    state = trainer.init(0)
    losses = []
    for _ in range(3):
      state, metrics = trainer.train_many(state, data, config.train.steps_per_call)
      losses.append(float(metrics["loss"]))
    out[name] = {"losses": losses, "params": [np.asarray(x).ravel()[:50].tolist() for x in jax.tree.leaves(state.params)],
                 "param_sharding": str(jax.tree.leaves(state.params)[0].sharding)}
  return out


@pytest.mark.slow
def test_one_device_and_eight_devices_agree():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, os.path.abspath(__file__)], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["devices"] == 8
  np.testing.assert_allclose(out["all"]["losses"], out["one"]["losses"], rtol=1e-4)
  for a, b in zip(out["all"]["params"], out["one"]["params"], strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


if __name__ == "__main__":
  from gdt.core import runtime
  runtime.enable_compilation_cache()
  print(json.dumps(_loss_curves()))
