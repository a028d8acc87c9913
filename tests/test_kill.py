"""Runs SIGKILLed at seeded random moments and restarted until they finish end as the uninterrupted run did.

Training (`experiments.train_gdt`): the final checkpoints (params, optimiser state, RNG: their checksums) and params
are bitwise the uninterrupted run's, metrics.jsonl / metrics.csv rows equal (wall-clock rates aside), TensorBoard
holds each step once (read with its purge-on-restart rule), the evaluation scores are the same.
Data generation (`experiments.generate_data`): every dataset is complete and loads; a restart of PPO from a trained
snapshot is recorded in every dataset's metadata (`ppo_resumes`) and the snapshots before it are bitwise the
uninterrupted run's, and a run without one equals the uninterrupted datasets; kills during the collection stages
(after PPO) reproduce the datasets exactly. Both: no temp file is left (planted ones of a killed write are removed
at the restart) and the workdir lock is free. Each kill waits for an output line of its phase, then a delay drawn
from a seeded generator; where it landed is printed (`pytest -s`).
"""

import csv
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboardX.proto.event_pb2 import Event, SessionLog

import gdt.train  # noqa: F401  (registers the models load_model rebuilds)
from gdt.core import checkpoint as core_ckpt
from gdt.core import ppo
from gdt.core.workdir import WorkdirLock, read_jsonl
from gdt.data import Trajectories, generation
from tests.test_generation import tiny_config
from tests.test_train import synthetic_trajectories

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALL_CLOCK = ("steps_per_sec",)  # metrics that measure time, not training
PLANTED = ".tmp-kill0001{}"  # the name a write killed before its rename leaves (`atomic_write_bytes`)


# ----------------------------------------------------------------------------------------------------------------
# Running and killing.


class Attempt:
  """One run of `cmd` with its output (stdout and stderr) collected line by line as it comes."""

  def __init__(self, cmd: list[str], log):
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # JAX_COMPILATION_CACHE_DIR as set for the tests (conftest)
    self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    self.lines: list[str] = []
    self._log = log
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stdout:
      self.lines.append(line.rstrip("\n"))
      self._log.write(line)
      self._log.flush()

  def wait_for(self, pattern: str | None, count: int = 1) -> bool:
    """Until `count` lines matched `pattern` (None: at once): True, or False if the run ended first."""
    while pattern is not None:
      ended = self.proc.poll() is not None and not self._reader.is_alive()
      if sum(bool(re.search(pattern, line)) for line in list(self.lines)) >= count:
        return True
      if ended:
        return False
      time.sleep(0.01)
    return True

  def kill(self) -> None:
    self.proc.send_signal(signal.SIGKILL)
    self.finish()

  def finish(self) -> int:
    self.proc.wait()
    self._reader.join()
    return self.proc.returncode


def run_with_kills(cmd, workdir, log_path, kills, rng, phase, after_first_kill=None) -> list[str]:
  """Starts `cmd` once per kill (pattern, count, low, high): SIGKILL `uniform(low, high)` s after the count-th
  output line matching pattern (None: the start); then once more to the end, which must succeed. Returns where each
  kill landed (`phase(lines, workdir)`, read after the kill); stops killing once a run finishes first."""
  landed = []
  with open(log_path, "a") as log:
    for pattern, count, low, high in kills:
      delay = rng.uniform(low, high)
      log.write(f"\n===== attempt: kill {delay:.2f}s after line {count} matching {pattern!r}\n")
      log.flush()
      attempt = Attempt(cmd, log)
      if attempt.wait_for(pattern, count):
        time.sleep(delay)
      if attempt.proc.poll() is not None:  # finished before the kill
        assert attempt.finish() == 0, _tail(log_path)
        return landed
      attempt.kill()
      landed.append(phase(attempt.lines, workdir))
      if len(landed) == 1 and after_first_kill is not None:
        after_first_kill()
    log.write("\n===== attempt: to the end\n")
    log.flush()
    assert Attempt(cmd, log).finish() == 0, _tail(log_path)
  return landed


def run_once(cmd, log_path) -> None:
  with open(log_path, "a") as log:
    log.write(f"\n===== uninterrupted run: {' '.join(cmd)}\n")
    assert Attempt(cmd, log).finish() == 0, _tail(log_path)


def _tail(path: str, n: int = 40) -> str:
  with open(path) as f:
    return "".join(f.readlines()[-n:])


def last_line(lines, prefixes) -> str:
  ours = [line for line in lines if line.startswith(prefixes)]
  return ours[-1] if ours else ""


# ----------------------------------------------------------------------------------------------------------------
# Workdir checks shared by both runs.


def leftovers(workdir: str) -> list[str]:
  """Temp files and uncommitted orbax directories anywhere under `workdir`."""
  out = []
  for root, dirs, files in os.walk(workdir):
    out += [os.path.join(root, n) for n in dirs + files if n.startswith(".tmp") or ".orbax-checkpoint-tmp" in n]
  return out


def assert_clean_and_unlocked(workdir: str) -> None:
  assert leftovers(workdir) == []
  WorkdirLock(workdir).acquire().release()  # free: nothing holds it


def plant_temp_file(directory: str, name: str) -> str:
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, PLANTED.format(name))
  with open(path, "w") as f:
    f.write("half a file")
  return path


# ----------------------------------------------------------------------------------------------------------------
# Training.

TRAIN_STEPS, STEPS_PER_CALL, CHECKPOINT_EVERY = 300, 10, 20


def train_cmd(data_dir: str, workdir: str) -> list[str]:
  overrides = dict(**{"model.embed_dim": 16, "model.num_layers": 1, "model.encoder_horizon": 3}, context_length=5,
                   num_bins=8, **{"train.batch_size": 16, "train.steps_per_call": STEPS_PER_CALL,
                                  "train.checkpoint_every": CHECKPOINT_EVERY, "train.warmup_steps": 1,
                                  "eval.best_k": 1, "eval.middle_k": 0, "eval.episodes_per_target": 1,
                                  "eval.chunk_steps": 10, "eval.plots": False})
  return [sys.executable, "-m", "experiments.train_gdt",
          f"--config=experiments/configs/cdt.py:env=halfcheetah,dataset=medium,data_dir={data_dir},steps={TRAIN_STEPS}",
          *[f"--config.{k}={v}" for k, v in overrides.items()], f"--workdir={workdir}"]


def train_phase(lines, workdir) -> str:
  progress = last_line(lines, ("[train] ",)).split(" | ")[0]
  if any(f"resumed from step {TRAIN_STEPS}" in line or "[train] done" in line for line in lines):
    return "evaluation" + (" (rollout)" if any(line.startswith("[eval") for line in lines) else " (setup, compile)")
  if not any("compiled train_many" in line for line in lines):
    return "startup" if not any("training trajectories" in line for line in lines) else "compile"
  saving = glob.glob(os.path.join(core_ckpt.checkpoint_dir(workdir), "*.orbax-checkpoint-tmp"))
  if saving:
    return f"checkpoint save of step {os.path.basename(saving[0]).split('.')[0]} (after {progress!r})"
  return f"training (after {progress!r})"


def tensorboard_scalars(logdir: str) -> list[tuple[str, int, float]]:
  """(tag, step, value) as TensorBoard shows them: files in order, a restart's SessionLog START at step s dropping
  the events at steps >= s read so far, a record cut short by a kill ignored."""
  events = []
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (n,) = struct.unpack("<Q", data[pos:pos + 8])
      if pos + 16 + n > len(data):
        break
      event = Event.FromString(data[pos + 12:pos + 12 + n])
      pos += 16 + n
      if event.HasField("session_log") and event.session_log.status == SessionLog.START:
        events = [e for e in events if e[1] < event.step]
      events += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
  return events


def csv_rows(path: str) -> list[list[str]]:
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  keep = [i for i, c in enumerate(rows[0]) if c not in WALL_CLOCK]
  return [[r[i] for i in keep] for r in rows]


def checksums(workdir: str) -> dict[int, dict]:
  """Every kept checkpoint step's saved sha256 of its params, train state (optimiser, step, RNG) and meta."""
  mngr = core_ckpt.manager(workdir, read_only=True)
  try:
    return {s: mngr.restore(s, args=ocp.args.Composite(integrity=ocp.args.JsonRestore()))["integrity"]
            for s in mngr.all_steps()}
  finally:
    mngr.close()


@pytest.mark.timeout(2400)  # 8 training runs: 13 min on 2 cores shared at load ~25
def test_killed_training_resumes_to_the_uninterrupted_run(tmp_path):
  synthetic_trajectories(n=8, t_max=30, min_length=30).save(str(tmp_path / "datasets" / "halfcheetah-medium.npz"))
  ref, killed = str(tmp_path / "ref"), str(tmp_path / "killed")
  log = str(tmp_path / "train.log")
  rng = np.random.default_rng(0)
  checkpoint_line = rf"^\[train\] \d*[02468]0/{TRAIN_STEPS} steps"  # printed just before that step's save
  progress_line = rf"^\[train\] \d+/{TRAIN_STEPS} steps"
  kills = [(None, 1, 1.0, 5.0),  # imports, dataset, model init
           ("training trajectories", 1, 0.0, 1.5),  # the train step's compile (or cache load)
           (checkpoint_line, 3, 0.0, 0.3),  # the 3rd checkpoint save of the attempt
           (progress_line, 4, 0.0, 0.5),  # training
           (checkpoint_line, 2, 0.0, 0.3),
           (r"^\[train\] done", 1, 0.0, 3.0)]  # evaluation (env and policy compile, rollout)
  planted = []
  landed = run_with_kills(train_cmd(str(tmp_path), killed), killed, log, kills, rng, train_phase,
                          after_first_kill=lambda: planted.append(plant_temp_file(killed, "metrics.csv")))
  run_once(train_cmd(str(tmp_path), ref), log)
  print(f"\n{len(landed)} kills landed in: " + "; ".join(landed))
  assert len(landed) >= 4, _tail(log)

  # Checkpoints: the same steps kept, each with the same checksums (params, optimiser state, step, RNG, meta).
  assert checksums(killed) == checksums(ref) and max(checksums(ref)) == TRAIN_STEPS
  for a, b in zip(*(jax.tree.leaves(core_ckpt.load_model(w).params) for w in (ref, killed)), strict=True):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

  # Metrics: one row per call, none missing or repeated, values equal.
  rows = {w: [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in read_jsonl(os.path.join(w, "metrics.jsonl"))]
          for w in (ref, killed)}
  assert [r["step"] for r in rows[killed]] == list(range(STEPS_PER_CALL, TRAIN_STEPS + 1, STEPS_PER_CALL))
  assert rows[killed] == rows[ref]
  assert csv_rows(os.path.join(killed, "metrics.csv")) == csv_rows(os.path.join(ref, "metrics.csv"))
  assert len(csv_rows(os.path.join(killed, "metrics.csv"))) == 1 + TRAIN_STEPS // STEPS_PER_CALL

  # TensorBoard: each (tag, step) once, the same values as the reference run.
  scalars = {w: tensorboard_scalars(os.path.join(w, "tb", "metrics")) for w in (ref, killed)}
  assert max(Counter((tag, step) for tag, step, _ in scalars[killed]).values()) == 1
  assert ({(tag, step) for tag, step, _ in scalars[killed]}
          == {(tag, r["step"]) for r in read_jsonl(os.path.join(ref, "metrics.jsonl")) for tag in r if tag != "step"})
  same = {w: sorted(e for e in scalars[w] if e[0] not in WALL_CLOCK) for w in (ref, killed)}
  assert same[killed] == same[ref]

  # Evaluation: the same scores.
  scores = [{k: v for k, v in json.load(open(os.path.join(w, "eval_histogram.json"))).items()
             if k in ("targets", "aggregates")} for w in (ref, killed)]
  assert scores[1] == scores[0] and scores[0]["targets"]
  assert not os.path.exists(planted[0])
  assert_clean_and_unlocked(killed)


# ----------------------------------------------------------------------------------------------------------------
# Data generation.

LEVELS = tiny_config().levels


def data_cmd(config_path: str, workdir: str) -> list[str]:
  return [sys.executable, "-m", "experiments.generate_data", f"--config={config_path}", f"--workdir={workdir}"]


def data_phase(lines, workdir) -> str:
  last = last_line(lines, ("[ppo]", "[rollout", "[data]")).split(" | ")[0]
  saving = glob.glob(os.path.join(generation.run_dir(workdir, "hopper"), ppo.SNAPSHOT_DIR, "*.orbax-checkpoint-tmp"))
  if saving:
    return f"PPO snapshot save (after {last!r})"
  return f"after {last!r}" if last else "startup, PPO compile"


def datasets(workdir: str) -> dict[str, Trajectories]:
  return {level: Trajectories.load(generation.dataset_path(workdir, "hopper", level)) for level in LEVELS}


def assert_same_dataset(a: Trajectories, b: Trajectories) -> None:
  for field in ("observations", "actions", "rewards", "terminals", "timeouts", "lengths"):
    x, y = getattr(a, field), getattr(b, field)
    assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), (a.name, field)
  assert a.metadata == b.metadata, a.name


def assert_same_snapshot(a: ppo.Snapshot, b: ppo.Snapshot) -> None:
  assert (a.step, a.eval_return) == (b.step, b.eval_return)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), a.step


@pytest.fixture(scope="module")
def data_config(tmp_path_factory):
  """A config file of the tiny generation of tests/test_generation.py (4 PPO evaluations, 60 transitions a level)."""
  path = tmp_path_factory.mktemp("config") / "tiny_data.py"
  path.write_text("from tests.test_generation import tiny_config\n\n\ndef get_config():\n  return tiny_config()\n")
  return str(path)


@pytest.mark.timeout(3600)  # 10 generator runs: past the 1200 s default on 2 cores shared at load ~24
def test_killed_data_generation_finishes_complete_and_records_a_ppo_resume(tmp_path, data_config):
  ref, killed, collect = (str(tmp_path / n) for n in ("ref", "killed", "collect"))
  log = str(tmp_path / "data.log")
  rng = np.random.default_rng(1)
  run_once(data_cmd(data_config, ref), log)
  reference = datasets(ref)
  ref_run = generation.run_dir(ref, "hopper")
  assert ppo.ppo_resumes(ref_run) == [] and all(d.metadata["ppo_resumes"] == [] for d in reference.values())

  # Kills during PPO: around the step-0 evaluation (a restart from the initial params replays the run) and after the
  # step-320 evaluation (the step-160 snapshot is committed by then: a resume, recorded), then one after PPO.
  kills = [(None, 1, 2.0, 6.0), (r"^\[ppo\] 0/", 1, 0.0, 0.5), (r"^\[ppo\] 320/", 1, 0.0, 0.5),
           (r"wrote .*hopper-random\.npz", 1, 0.0, 1.0)]  # mode returns (the expert and medium levels are < 1 s)
  planted = []
  landed = run_with_kills(data_cmd(data_config, killed), killed, log, kills, rng, data_phase,
                          after_first_kill=lambda: planted.append(plant_temp_file(os.path.join(killed, "datasets"),
                                                                                  "hopper-random.npz")))
  got, run = datasets(killed), generation.run_dir(killed, "hopper")  # every level complete and loadable
  resumes = ppo.ppo_resumes(run)
  print(f"\ndata generation: {len(landed)} kills landed in: " + "; ".join(landed) + f"; PPO resumes: {resumes}")
  assert len(landed) >= 3 and resumes and resumes[0]["from_step"] >= 160, _tail(log)
  assert all(d.metadata["ppo_resumes"] == resumes for d in got.values())
  assert json.load(open(os.path.join(run, ppo.SNAPSHOT_DIR, ppo.PPO_DONE)))["resumes"] == resumes
  if resumes:  # the snapshots written before the first resume are the uninterrupted run's
    uninterrupted = {s.step: s for s in ppo.load_snapshots(ref_run)}
    before = [s for s in ppo.load_snapshots(run) if s.step <= resumes[0]["from_step"]]
    assert [s.step for s in before] == [s for s in uninterrupted if s <= resumes[0]["from_step"]]
    for s in before:
      assert_same_snapshot(s, uninterrupted[s.step])
  else:  # no resume recorded: the data must be the uninterrupted run's
    for level in LEVELS:
      assert_same_dataset(got[level], reference[level])
  assert not os.path.exists(planted[0])
  assert_clean_and_unlocked(killed)

  # Kills during collection (PPO done: the uninterrupted run's snapshots) reproduce every dataset exactly.
  shutil.copytree(ref_run, generation.run_dir(collect, "hopper"),
                  ignore=shutil.ignore_patterns(generation.MODE_RETURNS, generation.SUMMARY))
  kills = [(r"^\[ppo\] done", 1, 0.0, 2.0), (r"wrote .*hopper-random\.npz", 1, 0.0, 1.0),
           (r"^\[data\] mode returns", 1, 0.0, 0.1)]
  landed = run_with_kills(data_cmd(data_config, collect), collect, log, kills, rng, data_phase)
  print(f"collection: {len(landed)} kills landed in: " + "; ".join(landed))
  assert len(landed) >= 2, _tail(log)
  got = datasets(collect)
  for level in LEVELS:
    assert_same_dataset(got[level], reference[level])
  assert (json.load(open(os.path.join(generation.run_dir(collect, "hopper"), generation.MODE_RETURNS)))
          == json.load(open(os.path.join(ref_run, generation.MODE_RETURNS))))
  assert_clean_and_unlocked(collect)
