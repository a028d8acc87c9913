"""Orbax checkpoints of a run, and `load_model(workdir)`: any registered model rebuilt from its workdir alone.

A checkpoint step holds three items: `params` (the model's Flax params), `train_state` (optimiser state, step
counter and PRNG key, for an exact resume) and `meta` (JSON: `{"model": {"name", "kwargs"}, ...}` plus whatever
the algorithm needs to use the model, e.g. normalisation statistics). The model is rebuilt as
`MODELS.get(name)(**kwargs)`, as brax's `load_policy` does, so loading needs no training code.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from gdt.core.registry import Registry
from gdt.core.workdir import is_primary

CHECKPOINT_DIR = "checkpoints"
ITEMS = ("params", "train_state", "meta")
MODELS: Registry = Registry("model")  # name -> constructor(**kwargs) of a flax module


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
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only and is_primary(),
                                         read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=ITEMS)


def save(mngr: ocp.CheckpointManager, step: int, params: Any, train_state: Any, meta: dict) -> None:
  """Saves one step synchronously (the caller may exit right after: a finished save is a durable one)."""
  if "model" not in meta:
    raise ValueError("checkpoint meta needs a 'model' record (see model_spec)")
  mngr.save(step, args=ocp.args.Composite(
      params=ocp.args.StandardSave(params),
      train_state=ocp.args.StandardSave(train_state),
      meta=ocp.args.JsonSave(meta)), force=True)
  mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, step: int, params_like: Any, train_state_like: Any) -> tuple[Any, Any]:
  """Restores (params, train_state) into the structure, dtypes and shardings of the given templates."""
  out = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(_abstract(params_like)),
      train_state=ocp.args.StandardRestore(_abstract(train_state_like))))
  return out["params"], out["train_state"]


def _abstract(tree: Any) -> Any:
  def leaf(x):
    x = jax.numpy.asarray(x) if not isinstance(x, jax.Array) else x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  return jax.tree.map(leaf, tree)


def latest_meta(workdir: str) -> dict | None:
  """The `meta` of the newest checkpoint in `workdir`, or None when there is none."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return None
  mngr = manager(workdir, read_only=True)
  step = mngr.latest_step()
  meta = None if step is None else mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  mngr.close()
  return meta


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A model rebuilt from a checkpoint: the flax module, its params, the saved meta and the step."""
  model: Any
  params: Any
  meta: dict
  step: int


def load_model(workdir: str, step: int | None = None) -> LoadedModel:
  """The model saved at `step` (default: the latest) in `workdir`; needs only the workdir."""
  mngr = manager(workdir, read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoints under {checkpoint_dir(workdir)}")
  step = max(steps) if step is None else step
  if step not in steps:
    raise FileNotFoundError(f"no checkpoint for step {step} under {checkpoint_dir(workdir)}; saved steps: {sorted(steps)}")
  meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  params = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore()))["params"]
  mngr.close()
  return LoadedModel(build_model(meta["model"]), jax.tree.map(jax.numpy.asarray, params), meta, int(step))
