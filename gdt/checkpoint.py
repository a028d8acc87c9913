"""A trained GDT policy from its workdir alone: `load_policy(workdir)` for notebooks and evaluation.

The checkpoint itself is the core's (`gdt.core.checkpoint`: params, train state, and a JSON `meta`). A GDT run's
meta holds the model record (`gdt_policy` and its kwargs), the run's config, the state normalisation statistics,
the `Labels` (conditioning, feature, bin edges, rtg_scale, gamma) and the env it acts in.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from gdt.conditioning import Labels
from gdt.core import checkpoint as core_ckpt
from gdt.models import GDTPolicy


def policy_kwargs(config: dict, state_dim: int, act_dim: int, cond_dim: int) -> dict:
  """The GDTPolicy kwargs of a run with `config` (a plain dict, e.g. config.json)."""
  return dict(state_dim=int(state_dim), act_dim=int(act_dim), conditioning=config["conditioning"],
              cond_dim=int(cond_dim), **config["model"])


def policy_meta(config: dict, state_dim: int, act_dim: int, state_mean: np.ndarray, state_std: np.ndarray,
                labels: Labels, env: str, backend: str) -> dict:
  """Everything besides params that rebuilds and feeds the policy (JSON: float32 -> float round-trips exactly)."""
  return {
      "model": core_ckpt.model_spec("gdt_policy", **policy_kwargs(config, state_dim, act_dim, labels.cond_dim)),
      "config": config,
      "state_mean": np.asarray(state_mean, np.float32).tolist(),
      "state_std": np.asarray(state_std, np.float32).tolist(),
      "labels": labels.to_json(),
      "env": env,
      "backend": backend,
  }


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
  """A trained policy with what it needs to act: normalisation, context length and its `Labels`.

  `apply(cond, states [B,K,S] (normalised), actions [B,K,A], timesteps [B,K] int32, mask [B,K] bool)
  -> actions [B,K,A]` runs the model deterministically; it is jit-compiled once per input shape.
  """
  model: GDTPolicy
  params: Any
  state_mean: np.ndarray
  state_std: np.ndarray
  context_length: int
  labels: Labels
  env: str
  backend: str
  config: dict = dataclasses.field(default_factory=dict)
  _apply: Any = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    model = self.model

    def apply(params, cond, states, actions, timesteps, mask):
      return model.apply({"params": params}, cond, states, actions, timesteps, mask, deterministic=True)

    object.__setattr__(self, "_apply", jax.jit(apply))

  conditioning = property(lambda self: self.labels.conditioning)
  feature = property(lambda self: self.labels.feature)
  bin_edges = property(lambda self: self.labels.edges)
  rtg_scale = property(lambda self: self.labels.rtg_scale)
  gamma = property(lambda self: self.labels.gamma)

  def apply(self, cond, states, actions, timesteps, mask):
    return self._apply(self.params, cond, states, actions, timesteps, mask)

  def normalize(self, states):
    """Raw states [..., S] -> the normalised states the model reads."""
    return (states - self.state_mean) / self.state_std


def load_policy(workdir: str, step: int | None = None) -> LoadedPolicy:
  """The policy saved at `step` (default: the latest) in `workdir`; needs only the workdir."""
  loaded = core_ckpt.load_model(workdir, step)
  meta = loaded.meta
  return LoadedPolicy(
      model=loaded.model, params=loaded.params, state_mean=np.asarray(meta["state_mean"], np.float32),
      state_std=np.asarray(meta["state_std"], np.float32), context_length=int(meta["config"]["context_length"]),
      labels=Labels.from_json(meta["labels"]), env=meta["env"], backend=meta["backend"], config=meta["config"])
