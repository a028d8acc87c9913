"""Orbax checkpoints of a GDT run, and `load_policy(workdir)`: a trained policy from its workdir alone.

A checkpoint step holds three items: `params` (the policy's Flax params), `train_state` (optimiser state,
step counter and PRNG key, for an exact resume) and `policy` (JSON: the run's config, the dataset shapes,
the state normalisation statistics and the histogram bin edges). `load_policy` reads `params` and
`policy` only, so a notebook needs neither the dataset nor any training code.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from gdt.models import GDTPolicy

CHECKPOINT_DIR = "checkpoints"


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def manager(workdir: str, max_to_keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
  """The run's CheckpointManager over `<workdir>/checkpoints` (step directories, atomic saves)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only, read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=("params", "train_state", "policy"))


def save(mngr: ocp.CheckpointManager, step: int, params: Any, train_state: Any, policy_meta: dict) -> None:
  """Saves one step synchronously (the caller may exit right after: a finished save is a durable one)."""
  mngr.save(step, args=ocp.args.Composite(
      params=ocp.args.StandardSave(params),
      train_state=ocp.args.StandardSave(train_state),
      policy=ocp.args.JsonSave(policy_meta)), force=True)
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


def policy_meta(config: dict, state_dim: int, act_dim: int, cond_dim: int, state_mean: np.ndarray,
                state_std: np.ndarray, bin_edges: np.ndarray | None, env: str, backend: str) -> dict:
  """Everything besides params that rebuilds and feeds the policy (JSON: float32 -> float round-trips exactly)."""
  return {
      "config": config,
      "state_dim": int(state_dim),
      "act_dim": int(act_dim),
      "cond_dim": int(cond_dim),
      "state_mean": np.asarray(state_mean, np.float32).tolist(),
      "state_std": np.asarray(state_std, np.float32).tolist(),
      "bin_edges": None if bin_edges is None else np.asarray(bin_edges, np.float32).tolist(),
      "env": env,
      "backend": backend,
  }


def policy_from_config(config: dict, state_dim: int, act_dim: int, cond_dim: int) -> GDTPolicy:
  """The GDTPolicy a run with `config` (a plain dict, e.g. config.json) trains."""
  return GDTPolicy(state_dim=state_dim, act_dim=act_dim, conditioning=config["conditioning"], cond_dim=cond_dim,
                   **config["model"])


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
  """A trained policy with what it needs to act: normalisation, context length and conditioning settings.

  `apply(cond, states [B,K,S] (normalised), actions [B,K,A], timesteps [B,K] int32, mask [B,K] bool)
  -> actions [B,K,A]` runs the model deterministically; it is jit-compiled once per input shape.
  """
  model: GDTPolicy
  params: Any
  state_mean: np.ndarray
  state_std: np.ndarray
  context_length: int
  conditioning: str
  feature: str
  bin_edges: np.ndarray | None
  rtg_scale: float
  gamma: float
  env: str
  backend: str
  config: dict = dataclasses.field(default_factory=dict)
  _apply: Any = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    model = self.model

    def apply(params, cond, states, actions, timesteps, mask):
      return model.apply({"params": params}, cond, states, actions, timesteps, mask, deterministic=True)

    object.__setattr__(self, "_apply", jax.jit(apply))

  def apply(self, cond, states, actions, timesteps, mask):
    return self._apply(self.params, cond, states, actions, timesteps, mask)

  def normalize(self, states):
    """Raw states [..., S] -> the normalised states the model reads."""
    return (states - self.state_mean) / self.state_std


def load_policy(workdir: str, step: int | None = None) -> LoadedPolicy:
  """The policy saved at `step` (default: the latest) in `workdir`; needs only the workdir."""
  mngr = manager(workdir, read_only=True)
  steps = mngr.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoints under {checkpoint_dir(workdir)}")
  step = max(steps) if step is None else step
  if step not in steps:
    raise FileNotFoundError(f"no checkpoint for step {step} under {checkpoint_dir(workdir)}; saved steps: {sorted(steps)}")
  meta = mngr.restore(step, args=ocp.args.Composite(policy=ocp.args.JsonRestore()))["policy"]
  config = meta["config"]
  model = policy_from_config(config, meta["state_dim"], meta["act_dim"], meta["cond_dim"])
  params = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore()))["params"]
  edges = meta["bin_edges"]
  return LoadedPolicy(
      model=model,
      params=jax.tree.map(jax.numpy.asarray, params),
      state_mean=np.asarray(meta["state_mean"], np.float32),
      state_std=np.asarray(meta["state_std"], np.float32),
      context_length=int(config["context_length"]),
      conditioning=config["conditioning"],
      feature=config["feature"],
      bin_edges=None if edges is None else np.asarray(edges, np.float32),
      rtg_scale=float(config["rtg_scale"]),
      gamma=float(config["gamma"]),
      env=meta["env"],
      backend=meta["backend"],
      config=config)
