"""Orbax checkpoints of a run, and `load_model(workdir)`: any registered model rebuilt from its workdir alone.

A checkpoint step holds four items: `params` (the model's Flax params), `train_state` (optimiser state, step
counter and PRNG key, for an exact resume), `meta` (JSON: `{"model": {"name", "kwargs"}, ...}` plus whatever
the algorithm needs to use the model, e.g. normalisation statistics) and `integrity` (JSON: sha256 of the other
three, taken from the values being saved). The model is rebuilt as `MODELS.get(name)(**kwargs)`, as brax's
`load_policy` does, so loading needs no training code.

Restores are verified: a step whose values do not hash to its saved checksums, or that orbax fails to read
(truncated or corrupted files), is skipped with a `CorruptCheckpointWarning` naming the step and the reason, and the
newest intact step is used instead (`restore_latest`, `load_model`, `latest_meta`); when none is intact a
`CorruptCheckpointError` lists every step's reason. Steps saved before checksums existed restore unverified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from gdt.core.registry import Registry
from gdt.core.workdir import is_primary

CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "checkpoints_corrupt"  # where a resume moves steps that failed verification (never deleted)
ITEMS = ("params", "train_state", "meta", "integrity")
MODELS: Registry = Registry("model")  # name -> constructor(**kwargs) of a flax module


class CorruptCheckpointError(RuntimeError):
  """A checkpoint step (or every step of a workdir) failed verification or could not be read."""


class CorruptCheckpointWarning(UserWarning):
  """A checkpoint step was skipped (an older intact one is used instead), moved aside, or restored unverified."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def model_spec(name: str, **kwargs) -> dict:
  """The JSON record that rebuilds a model: checked against the registry now, not at load time."""
  MODELS.get(name)
  return {"name": name, "kwargs": kwargs}


def build_model(spec: dict):
  if spec["name"] not in MODELS:
    raise KeyError(f"model {spec['name']!r} is not registered in this process; import the module that registers it "
                   f"(registered: {', '.join(MODELS.names()) or 'none'})")
  return MODELS.get(spec["name"])(**spec["kwargs"])


def manager(workdir: str, max_to_keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
  """The run's CheckpointManager over `<workdir>/checkpoints` (step directories, atomic saves)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                         read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=ITEMS)


# ----------------------------------------------------------------------------------------------------------------
# Checksums: of the values (dtype, shape, bytes of every leaf in tree order), so they hold for any storage format.


def tree_digest(tree: Any) -> str:
  """sha256 over every leaf's dtype, shape and bytes, in tree order (host copies of device arrays)."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{a.dtype.str}{a.shape};".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def meta_digest(meta: dict) -> str:
  return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def _step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(os.fspath(mngr.directory), str(step))


def _has_integrity(mngr: ocp.CheckpointManager, step: int) -> bool:
  return os.path.isdir(os.path.join(_step_dir(mngr, step), "integrity"))


def _verify(mngr: ocp.CheckpointManager, step: int, items: dict) -> None:
  """Raises CorruptCheckpointError unless every restored item hashes to the checksum saved with `step`."""
  if not _has_integrity(mngr, step):
    warnings.warn(f"checkpoint step {step} in {mngr.directory} has no checksums (saved before they were written): "
                  "restored unverified", CorruptCheckpointWarning, stacklevel=3)
    return
  saved = mngr.restore(step, args=ocp.args.Composite(integrity=ocp.args.JsonRestore()))["integrity"]["sha256"]
  for name, value in items.items():
    got = meta_digest(value) if name == "meta" else tree_digest(value)
    if saved.get(name) != got:
      raise CorruptCheckpointError(f"checkpoint step {step} in {mngr.directory}: {name!r} does not match its saved "
                                   "checksum (corrupted files)")


def _reason(e: BaseException) -> str:
  """One line: the innermost cause (orbax wraps tensorstore's informative error), without the tensorstore spec."""
  while e.__cause__ is not None:
    e = e.__cause__
  lines = str(e).split(" [tensorstore_spec=")[0].strip().splitlines()
  return f"{type(e).__name__}: {lines[0][:500]}" if lines else type(e).__name__


def _newest_intact(mngr: ocp.CheckpointManager, steps: list[int], read: Callable[[int], Any], what: str):
  """(step, read(step), skipped) for the newest step whose `read` (restore + verify) succeeds; each failure warns.
  Raises CorruptCheckpointError, naming every step's reason, when none succeeds."""
  skipped: list[tuple[int, str]] = []
  for step in sorted(steps, reverse=True):
    try:
      return step, read(step), skipped
    except Exception as e:  # noqa: BLE001  orbax/tensorstore raise many types on damaged files
      skipped.append((step, _reason(e)))
      warnings.warn(f"skipping checkpoint step {step} in {mngr.directory} ({what}): {_reason(e)}; trying an older "
                    "step", CorruptCheckpointWarning, stacklevel=3)
  found = "; ".join(f"step {s}: {r}" for s, r in skipped)
  raise CorruptCheckpointError(f"no intact checkpoint in {mngr.directory} ({what}): {found}. Move the damaged step "
                               "directories away to start over, or restore them from a copy")


# ----------------------------------------------------------------------------------------------------------------
# Save and restore.


def save(mngr: ocp.CheckpointManager, step: int, params: Any, train_state: Any, meta: dict) -> None:
  """Saves one step synchronously (the caller may exit right after: a finished save is a durable one), with the
  checksums of what it saves in the same atomic step."""
  if "model" not in meta:
    raise ValueError("checkpoint meta needs a 'model' record (see model_spec)")
  integrity = {"format": 1, "sha256": {"params": tree_digest(params), "train_state": tree_digest(train_state),
                                       "meta": meta_digest(meta)}}
  mngr.save(step, args=ocp.args.Composite(
      params=ocp.args.StandardSave(params),
      train_state=ocp.args.StandardSave(train_state),
      meta=ocp.args.JsonSave(meta),
      integrity=ocp.args.JsonSave(integrity)), force=True)
  mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, step: int, params_like: Any, train_state_like: Any) -> tuple[Any, Any]:
  """Restores (params, train_state) into the structure, dtypes and shardings of the given templates, verified
  against the step's checksums (CorruptCheckpointError when they differ)."""
  out = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(_abstract(params_like)),
      train_state=ocp.args.StandardRestore(_abstract(train_state_like))))
  _verify(mngr, step, {"params": out["params"], "train_state": out["train_state"]})
  return out["params"], out["train_state"]


def restore_latest(mngr: ocp.CheckpointManager, params_like: Any, train_state_like: Any, *,
                   set_aside: bool = False) -> tuple[int, Any, Any, list[tuple[int, str]]] | None:
  """(step, params, train_state, skipped) of the newest intact step, None when there is no step at all.

  `skipped` lists the (step, reason) of newer steps that failed (each also warned). With `set_aside` (a resume,
  which will save those step numbers again) they are moved to `<workdir>/checkpoints_corrupt/`: only when an older
  step restored with the same templates, so a template that fits no step moves nothing.
  """
  steps = list(mngr.all_steps())
  if not steps:
    return None
  step, (params, train_state), skipped = _newest_intact(
      mngr, steps, lambda s: restore(mngr, s, params_like, train_state_like), "resume")
  if set_aside and skipped and is_primary():
    dest = os.path.join(os.path.dirname(os.fspath(mngr.directory)), CORRUPT_DIR)
    os.makedirs(dest, exist_ok=True)
    for bad, _ in skipped:
      target, n = os.path.join(dest, str(bad)), 0
      while os.path.exists(target):
        n += 1
        target = os.path.join(dest, f"{bad}.{n}")
      os.replace(_step_dir(mngr, bad), target)
      warnings.warn(f"moved the damaged checkpoint step {bad} to {target}", CorruptCheckpointWarning, stacklevel=2)
    mngr.reload()
  return step, params, train_state, skipped


def _abstract(tree: Any) -> Any:
  def leaf(x):
    x = jax.numpy.asarray(x) if not isinstance(x, jax.Array) else x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  return jax.tree.map(leaf, tree)


def _local_target(mngr: ocp.CheckpointManager, step: int) -> Any:
  """The saved params' shapes and dtypes on this process's first device: a checkpoint saved by a multi-host run
  records the shardings of devices this process may not have (orbax then refuses to restore without a target)."""
  metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(_step_dir(mngr, step)) / "params")
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata.tree)


def _restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  _verify(mngr, step, {"meta": meta})
  return meta


def latest_meta(workdir: str) -> dict | None:
  """The `meta` of the newest checkpoint in `workdir` whose meta is intact, or None when there is none."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return None
  mngr = manager(workdir, read_only=True)
  try:
    steps = list(mngr.all_steps())
    return _newest_intact(mngr, steps, lambda s: _restore_meta(mngr, s), "meta")[1] if steps else None
  finally:
    mngr.close()


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A model rebuilt from a checkpoint: the flax module, its params, the saved meta and the step."""
  model: Any
  params: Any
  meta: dict
  step: int


def load_model(workdir: str, step: int | None = None) -> LoadedModel:
  """The model saved at `step` (default: the newest intact step) in `workdir`; needs only the workdir."""
  mngr = manager(workdir, read_only=True)
  try:
    steps = list(mngr.all_steps())
    if not steps:
      raise FileNotFoundError(f"no checkpoints under {checkpoint_dir(workdir)}")
    if step is not None and step not in steps:
      raise FileNotFoundError(f"no checkpoint for step {step} under {checkpoint_dir(workdir)}; saved steps: "
                              f"{sorted(steps)}")

    def read(s):
      meta = mngr.restore(s, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      params = mngr.restore(s, args=ocp.args.Composite(params=ocp.args.StandardRestore(_local_target(mngr, s))))[
          "params"]
      _verify(mngr, s, {"meta": meta, "params": params})
      return meta, params

    if step is None:
      step, (meta, params), _ = _newest_intact(mngr, steps, read, "load_model")
    else:  # an explicitly asked-for step does not fall back: it is that step or a CorruptCheckpointError
      try:
        meta, params = read(step)
      except CorruptCheckpointError:
        raise
      except Exception as e:  # noqa: BLE001
        msg = f"checkpoint step {step} in {mngr.directory} cannot be read: {_reason(e)}"
        raise CorruptCheckpointError(msg) from None
  finally:
    mngr.close()
  # Host copies placed on this process's default device: on a multi-host run orbax restores arrays that span every
  # process's devices, which a process-local computation (evaluation, a notebook) cannot close over.
  params = jax.tree.map(lambda x: jax.numpy.asarray(np.asarray(x)), params)
  return LoadedModel(build_model(meta["model"]), params, meta, int(step))
