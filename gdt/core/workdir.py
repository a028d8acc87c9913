"""A workdir is the unit of a run: config.json, metrics (CSV, JSONL, TensorBoard), progress, atomic files.

On a multi-process (multi-host) run only process 0 writes: `is_primary()` guards every writer here.
"""

from __future__ import annotations

import copy
import csv
import fcntl
import io
import json
import math
import os
import socket
import sys
import tempfile
import time
from typing import Any, Mapping

import jax
import numpy as np

CONFIG_FILE = "config.json"


def is_primary() -> bool:
  """True on the process that writes files (process 0 of a multi-host run; always True on one host)."""
  return jax.process_index() == 0


# `atomic_write_bytes`'s temp names: ".tmp-", mkstemp's 8 random characters (this alphabet), the target's name.
_TEMP_PREFIX = ".tmp-"
_TEMP_RANDOM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes via a temp file in the same directory and a rename, so readers never see half a file. The file gets
  the permissions an `open(path, "wb")` would (mkstemp's are owner-only), so shared run directories stay readable."""
  if not is_primary():
    return
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TEMP_PREFIX, suffix=os.path.basename(path))
  try:
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


LOCK_FILE = ".lock"


class WorkdirBusy(RuntimeError):
  """Another live process holds the workdir."""


class WorkdirLock:
  """One writer per workdir: an exclusive `flock` on `<workdir>/.lock`, which names its holder.

  A second process (or a second lock in this one) refuses at once with the holder's pid, host and start time.
  The kernel drops the lock when its holder dies however it dies, so a lock left by a killed run is simply
  taken over (its stale record is overwritten). Use as a context manager around everything that writes.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._file = None

  def acquire(self) -> "WorkdirLock":
    if not is_primary():
      return self
    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
    f = open(self.path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "an unknown process"
      f.close()
      raise WorkdirBusy(f"{os.path.dirname(self.path)} is in use by {holder}; wait for it to finish or use another "
                        "--workdir") from None
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    f.flush()
    self._file = f
    return self

  def release(self) -> None:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def config_to_dict(config: Any) -> dict:
  """ml_collections ConfigDict (or a plain mapping) -> JSON-able dict."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  return json.loads(json.dumps(config, default=_json_default))


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  if isinstance(o, tuple):
    return list(o)
  raise TypeError(f"cannot serialise {type(o).__name__} in a config")


def with_added_fields(recorded: dict, added: Mapping[str, Any]) -> dict:
  """A recorded config dict with every `added` key (dotted) it lacks set to the value that reproduces what runs
  recorded before that field existed did (a config family's ADDED_FIELDS)."""
  out = copy.deepcopy(recorded)
  for dotted, value in added.items():
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
      node = node.setdefault(key, {})
    node.setdefault(leaf, value)
  return out


def prepare_workdir(workdir: str, config: Any, allow_changes: tuple[str, ...] = (), recorded: dict | None = None,
                    added_fields: Mapping[str, Any] | None = None) -> dict:
  """Creates `workdir` and writes config.json, or checks that a resumed run has the same config.

  Keys listed in `allow_changes` (dotted paths such as "train.num_steps") may differ on resume;
  any other difference raises, naming the keys, so a resume never silently mixes two configs. `recorded` is a
  copy of the config kept elsewhere in the workdir (e.g. in its checkpoints): it is checked too, so deleting
  config.json does not let another config take over a run. Records are read through `with_added_fields`.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  olds = [(path, json.load(open(path)))] if os.path.exists(path) else []
  olds += [] if recorded is None else [(f"the checkpoints in {workdir}", recorded)]
  olds = [(where, with_added_fields(old, added_fields or {})) for where, old in olds]
  for where, old in olds:
    diffs = [k for k in config_diff(old, new) if not any(k == a or k.startswith(a + ".") for a in allow_changes)]
    if diffs:
      raise ValueError(
          f"{where}: recorded for a run with a different config (keys: {', '.join(diffs)}); "
          "use a new --workdir or restore the old config")
  if not is_primary():
    return new
  atomic_write_bytes(path, (json.dumps(new, indent=2, sort_keys=True) + "\n").encode())
  return new


def load_config(workdir: str) -> dict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir!r} is not a workdir of this codebase")
  with open(path) as f:
    return json.load(f)


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
  """Dotted keys whose values differ between two config dicts."""
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += config_diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
    return out
  return [] if a == b else [prefix or "<root>"]


class _EventFile:
  """TensorBoard scalars on disk before `scalars` returns. tensorboardX's SummaryWriter hands events to a background
  thread and its flush() does not wait for that queue, so a SIGKILL right after a checkpoint lost the last rows
  (tests/test_kill.py caught it). `purge_step`: a restart's SessionLog START, which makes TensorBoard drop the
  events at steps >= it that a killed run wrote."""

  def __init__(self, logdir: str, purge_step: int | None):
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    os.makedirs(logdir, exist_ok=True)
    # Nanoseconds in the suffix: a restart within the same second neither reopens (truncates) the killed run's file
    # nor sorts before it (TensorBoard reads a directory's event files in name order).
    self._writer = EventsWriter(os.path.join(logdir, "events"), f".{time.time_ns():020d}")
    if purge_step is not None:
      self._writer.write_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
    self._writer.flush()

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()])
    self._writer.write_event(Event(wall_time=time.time(), step=step, summary=summary))
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MetricWriter:
  """Appends scalar metrics to `<workdir>/<name>.csv`, `<name>.jsonl` and TensorBoard events.

  The CSV header is the union of keys seen in the first write; later new keys go to JSONL and
  TensorBoard only (and are announced once on stderr). `resume_step`: rows after it (written by a run
  that was killed after its last checkpoint) are dropped from every file, so a resumed run's metrics read
  as an uninterrupted run's. Writes nothing on processes other than process 0.
  """

  def __init__(self, workdir: str, name: str = "metrics", tensorboard: bool = True, resume_step: int | None = None):
    self.csv_path = os.path.join(workdir, f"{name}.csv")
    self.jsonl_path = os.path.join(workdir, f"{name}.jsonl")
    self._active = is_primary()
    self._columns: list[str] | None = None
    self._warned: set[str] = set()
    self._tb = None
    if not self._active:
      return
    os.makedirs(workdir, exist_ok=True)
    if resume_step is not None:
      self._drop_rows_after(resume_step)
    if os.path.exists(self.csv_path):
      with open(self.csv_path) as f:
        header = f.readline().strip()
      self._columns = header.split(",") if header else None
    if tensorboard:
      try:
        self._tb = _EventFile(os.path.join(workdir, "tb", name), None if resume_step is None else resume_step + 1)
      except ImportError:
        pass

  def _drop_rows_after(self, step: int) -> None:
    if os.path.exists(self.jsonl_path):
      rows = [line for line in open(self.jsonl_path) if line.strip() and json.loads(line)["step"] <= step]
      atomic_write_bytes(self.jsonl_path, "".join(rows).encode())
    if os.path.exists(self.csv_path):
      with open(self.csv_path, newline="") as f:
        rows = list(csv.reader(f))
      kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
      with io.StringIO() as buf:
        csv.writer(buf).writerows(kept)
        atomic_write_bytes(self.csv_path, buf.getvalue().encode())

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self._active:
      return
    row = {"step": int(step)}
    row.update({k: _to_float(v) for k, v in metrics.items()})
    with open(self.jsonl_path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._columns is None:
      self._columns = list(row)
      with open(self.csv_path, "w", newline="") as f:
        csv.writer(f).writerow(self._columns)
    extra = set(row) - set(self._columns) - self._warned
    if extra:
      print(f"[metrics] keys not in {self.csv_path} header (JSONL only): {sorted(extra)}", file=sys.stderr)
      self._warned |= extra
    with open(self.csv_path, "a", newline="") as f:
      csv.writer(f).writerow([row.get(c, "") for c in self._columns])
    if self._tb is not None:
      self._tb.scalars(int(step), {k: v for k, v in row.items()
                                   if k != "step" and isinstance(v, float) and math.isfinite(v)})

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _to_float(v: Any) -> float:
  return float(np.asarray(v))


class Progress:
  """One progress line per report: step/total, rate, ETA and a few metrics."""

  def __init__(self, total: int, start: int = 0, unit: str = "steps", label: str = "", stream=None):
    self.total, self.start, self.unit, self.label = total, start, unit, label
    self.stream = stream or sys.stdout
    self._t0 = time.perf_counter()

  def rate(self, step: int) -> float:
    dt = time.perf_counter() - self._t0
    return (step - self.start) / dt if dt > 0 else float("nan")

  def line(self, step: int, metrics: Mapping[str, Any] | None = None) -> str:
    rate = self.rate(step)
    eta = max(self.total - step, 0) / rate if rate and rate > 0 and math.isfinite(rate) else float("nan")
    parts = [f"{self.label}{step}/{self.total} {self.unit}", f"{rate:,.1f} {self.unit}/s", f"ETA {format_seconds(eta)}"]
    for k, v in (metrics or {}).items():
      parts.append(f"{k}={_to_float(v):.4g}")
    return " | ".join(parts)

  def report(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
    if not is_primary():
      return
    print(self.line(step, metrics), file=self.stream, flush=True)


def format_seconds(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(round(s))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def _is_stale_temp_name(name: str) -> bool:
  n = len(_TEMP_PREFIX)
  return name.startswith(_TEMP_PREFIX) and len(name) > n + 8 and set(name[n:n + 8]) <= _TEMP_RANDOM


def remove_stale_temp_files(directory: str, log=print) -> list[str]:
  """Deletes the temp files that interrupted `atomic_write_bytes` calls left under `directory` (recursively).

  A run killed mid-write leaves `.tmp-XXXXXXXX<name>` beside the file it was writing; nothing reads it again. Only
  files of exactly that pattern go (never another file, never a directory; symlinked directories are not
  entered), with one line naming how many. Call it once, holding the directory's `WorkdirLock` (a live writer's
  temp file would vanish under it); returns the paths removed.

    with WorkdirLock(workdir):
      remove_stale_temp_files(workdir)  # "[workdir] removed 2 temp files left by interrupted writes in ..."
  """
  if not is_primary() or not os.path.isdir(directory):
    return []
  removed = []
  for root, _, files in os.walk(directory):
    for name in sorted(files):
      path = os.path.join(root, name)
      if _is_stale_temp_name(name) and os.path.isfile(path) and not os.path.islink(path):
        os.remove(path)
        removed.append(path)
  if removed:
    shown = ", ".join(os.path.relpath(p, directory) for p in removed[:3]) + (", ..." if len(removed) > 3 else "")
    log(f"[workdir] removed {len(removed)} temp file{'s' if len(removed) > 1 else ''} left by interrupted writes "
        f"in {directory}: {shown}")
  return removed
