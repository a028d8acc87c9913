"""Shared machinery: registries, config-argument parsing, workdirs and metric writers, the brax shim."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdt.core import config as configs, registry, runtime, workdir


def test_registry_unknown_name_lists_closest():
  r = registry.Registry("feature")
  r.register("x_velocity", lambda: 1)
  r.register("reward", lambda: 2)
  assert r.get("reward")() == 2
  with pytest.raises(KeyError, match="x_velocity"):
    r.get("x_velocty")
  with pytest.raises(ValueError, match="twice"):
    r.register("reward", lambda: 3)


def test_parse_arg_types_and_errors():
  c = configs.parse_arg("env=hopper,steps=10,lr=0.5,quick", env="halfcheetah", steps=1, lr=1.0, quick=False)
  assert (c.env, c.steps, c.lr, c.quick) == ("hopper", 10, 0.5, True)
  with pytest.raises(ValueError, match="unknown config argument 'bogus'"):
    configs.parse_arg("bogus=1", env="x")
  with pytest.raises(ValueError, match="steps"):
    configs.parse_arg("steps=ten", steps=1)


def test_prepare_workdir_resume_checks_config(tmp_path):
  d = str(tmp_path / "run")
  workdir.prepare_workdir(d, {"a": 1, "train": {"num_steps": 10}})
  workdir.prepare_workdir(d, {"a": 1, "train": {"num_steps": 20}}, allow_changes=("train.num_steps",))
  with pytest.raises(ValueError, match="keys: a"):
    workdir.prepare_workdir(d, {"a": 2, "train": {"num_steps": 20}})
  assert workdir.load_config(d)["train"]["num_steps"] == 20
  # With config.json deleted, the copy the checkpoints hold still refuses another config, and nothing is written.
  os.remove(os.path.join(d, "config.json"))
  with pytest.raises(ValueError, match="checkpoints.*keys: a"):
    workdir.prepare_workdir(d, {"a": 2, "train": {"num_steps": 20}}, recorded={"a": 1, "train": {"num_steps": 20}})
  assert not os.path.exists(os.path.join(d, "config.json"))


def test_metric_writer_appends_csv_and_jsonl(tmp_path):
  w = workdir.MetricWriter(str(tmp_path), tensorboard=True)
  w.write(1, {"loss": np.float32(0.5)})
  w.write(2, {"loss": jnp.asarray(0.25)})
  w.close()
  rows = workdir.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["loss"] for r in rows] == [0.5, 0.25]
  with open(tmp_path / "metrics.csv") as f:
    assert f.read().splitlines() == ["step,loss", "1,0.5", "2,0.25"]
  assert os.listdir(tmp_path / "tb" / "metrics")


def test_atomic_write_leaves_no_temp_files(tmp_path):
  p = tmp_path / "x.json"
  workdir.atomic_write_bytes(str(p), json.dumps({"a": 1}).encode())
  assert json.loads(p.read_text()) == {"a": 1}
  assert os.listdir(tmp_path) == ["x.json"]


def test_device_put_replicated_shim_stacks_per_device():
  x = {"w": jnp.arange(3.0), "s": jnp.asarray(2)}
  out = runtime._device_put_replicated(x, jax.local_devices())
  n = jax.local_device_count()
  assert out["w"].shape == (n, 3) and out["s"].shape == (n,)
  np.testing.assert_array_equal(np.asarray(out["w"])[0], np.arange(3.0))
  runtime.install_brax_compat()
  assert hasattr(jax, "device_put_replicated")


def test_both_override_parsers_read_a_value_the_same_way():
  import ml_collections
  for text, want in (("yes", True), ("No", False), ("1", True), ("false", False)):
    assert configs.parse_arg(f"flag={text}", flag=False).flag is want
    c = configs.apply_overrides(ml_collections.ConfigDict({"a": {"flag": False}}), [f"a.flag={text}"])
    assert c.a.flag is want
  for bad in ("maybe", "2"):
    with pytest.raises(ValueError, match="flag"):
      configs.parse_arg(f"flag={bad}", flag=False)
    with pytest.raises(ValueError, match="flag"):
      configs.apply_overrides(ml_collections.ConfigDict({"flag": False}), [f"flag={bad}"])
  c = configs.apply_overrides(ml_collections.ConfigDict({"features": ("reward",)}), ["features=reward,x_velocity"])
  assert c.features == ("reward", "x_velocity")


def test_fields_added_later_read_as_their_old_value(tmp_path):
  d = str(tmp_path / "run")
  workdir.prepare_workdir(d, {"a": 1, "data": {"n": 2}})  # recorded before data.new existed
  added = {"data.new": False}
  workdir.prepare_workdir(d, {"a": 1, "data": {"n": 2, "new": False}}, added_fields=added)  # the old behaviour
  with pytest.raises(ValueError, match="data.new"):
    workdir.prepare_workdir(d, {"a": 1, "data": {"n": 2, "new": True}}, added_fields=added)
  assert workdir.with_added_fields({"a": 1}, {"x.y": 3}) == {"a": 1, "x": {"y": 3}}
  assert workdir.with_added_fields({"x": {"y": 4}}, {"x.y": 3}) == {"x": {"y": 4}}  # a recorded value is kept


def test_metric_writer_resume_drops_rows_after_the_checkpoint(tmp_path):
  """A run killed after writing steps 10-30 but checkpointing only step 20 resumes at 20: step 30 must not
  appear twice."""
  w = workdir.MetricWriter(str(tmp_path), tensorboard=False)
  for step in (10, 20, 30):
    w.write(step, {"loss": step / 10})
  w.close()
  w = workdir.MetricWriter(str(tmp_path), tensorboard=False, resume_step=20)
  w.write(30, {"loss": 3.5})
  w.close()
  assert [(r["step"], r["loss"]) for r in workdir.read_jsonl(str(tmp_path / "metrics.jsonl"))] == [
      (10, 1.0), (20, 2.0), (30, 3.5)]
  with open(tmp_path / "metrics.csv") as f:
    assert f.read().splitlines() == ["step,loss", "10,1.0", "20,2.0", "30,3.5"]


def test_core_imports_no_algorithm():
  """gdt.core is algorithm-free: importing every core module loads nothing from gdt's algorithms or morphology."""
  import subprocess
  import sys
  core = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gdt", "core")
  modules = sorted(f"gdt.core.{f[:-3]}" for f in os.listdir(core) if f.endswith(".py") and f != "__init__.py")
  assert {"gdt.core.trainer", "gdt.core.checkpoint", "gdt.core.rollout", "gdt.core.transformer"} <= set(modules)
  code = ("import importlib, sys, json\n"
          f"for m in {modules!r}: importlib.import_module(m)\n"
          "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('gdt', 'morphology', 'experiments',"
          " 'launch'))))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(core) + "/..")
  loaded = json.loads(out.stdout.strip().splitlines()[-1])
  outside = [m for m in loaded if m not in ("gdt",) and not m.startswith("gdt.core")]
  assert not outside, f"gdt.core imported {outside}"


def test_workdir_lock_refuses_a_second_writer_and_takes_over_a_dead_ones(tmp_path):
  import signal
  import subprocess
  import sys
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from gdt.core.workdir import WorkdirLock; "
       f"lock = WorkdirLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
      stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir.WorkdirBusy, match=f"'pid': {holder.pid}|\"pid\": {holder.pid}") as e:
      workdir.WorkdirLock(str(tmp_path)).acquire()
    assert "host" in str(e.value) and "started" in str(e.value)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with workdir.WorkdirLock(str(tmp_path)):  # the killed holder's lock is taken over
    record = json.loads((tmp_path / workdir.LOCK_FILE).read_text())
    assert record["pid"] == os.getpid()
    with pytest.raises(workdir.WorkdirBusy):  # and held: a second lock, even in this process, is refused
      workdir.WorkdirLock(str(tmp_path)).acquire()
  workdir.WorkdirLock(str(tmp_path)).acquire().release()


def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path):
  from gdt.core.workdir import atomic_write_bytes
  atomic_write_bytes(str(tmp_path / "a.json"), b"{}")
  with open(tmp_path / "b.json", "wb") as f:
    f.write(b"{}")
  assert (tmp_path / "a.json").stat().st_mode == (tmp_path / "b.json").stat().st_mode


def test_tensorboard_rows_are_on_disk_when_write_returns(tmp_path):
  from tests.test_kill import tensorboard_scalars
  w = workdir.MetricWriter(str(tmp_path), tensorboard=True)
  w.write(10, {"loss": 0.5})
  w.write(20, {"loss": 0.25})
  # Not closed: a SIGKILL here (after a checkpoint) must not lose these rows.
  assert tensorboard_scalars(str(tmp_path / "tb" / "metrics")) == [("loss", 10, 0.5), ("loss", 20, 0.25)]
  again = workdir.MetricWriter(str(tmp_path), tensorboard=True, resume_step=10)  # a restart from step 10
  again.write(20, {"loss": 0.75})
  assert tensorboard_scalars(str(tmp_path / "tb" / "metrics")) == [("loss", 10, 0.5), ("loss", 20, 0.75)]
  w.close()
  again.close()


def test_xla_defaults_are_appended_once_and_never_override(monkeypatch):
  flag = next(iter(runtime.XLA_DEFAULT_FLAGS))
  monkeypatch.delenv(runtime.NO_XLA_DEFAULTS_ENV, raising=False)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  assert runtime.set_xla_defaults() == [f"--{flag}={runtime.XLA_DEFAULT_FLAGS[flag]}"]
  assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", f"--{flag}=false"]
  assert runtime.set_xla_defaults() == []  # already there: not repeated
  monkeypatch.setenv("XLA_FLAGS", f"--{flag}=true")  # the user's choice wins
  assert runtime.set_xla_defaults() == [] and os.environ["XLA_FLAGS"] == f"--{flag}=true"
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setenv(runtime.NO_XLA_DEFAULTS_ENV, "1")
  assert runtime.set_xla_defaults() == [] and "XLA_FLAGS" not in os.environ


def test_importing_gdt_sets_the_xla_defaults_before_jax_starts():
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", runtime.NO_XLA_DEFAULTS_ENV)}
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=3"
  code = "import os, gdt, jax; print(jax.device_count(), os.environ['XLA_FLAGS'])"
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
  count, flags = out.strip().split(" ", 1)
  assert count == "3"  # the user's flags still apply
  assert flags.split() == ["--xla_force_host_platform_device_count=3"] + [
      f"--{k}={v}" for k, v in runtime.XLA_DEFAULT_FLAGS.items()]
