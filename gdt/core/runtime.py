"""Process-level JAX setup: XLA flag defaults, the persistent compilation cache and the brax-on-new-jax shim."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "seqrl", "jax")

# XLA flags this package sets unless XLA_FLAGS already names them. XLA's CPU fusion emitters (its default) compiled
# brax physics ~1.4x slower and ran the paper-size train step ~1.2x slower than its legacy emitters
# (benchmarks/bench_xla_flags.py); rounding differs, so simulations diverge from runs without it (BUILD.md).
# An XLA that does not know a flag aborts the process, so they are only set on the jaxlib they were measured on
# (constraints.txt pins it).
XLA_DEFAULT_FLAGS = {"xla_cpu_use_fusion_emitters": "false"}
XLA_DEFAULTS_MEASURED_ON = ("0.10.",)  # jaxlib version prefixes
NO_XLA_DEFAULTS_ENV = "SEQRL_NO_XLA_DEFAULTS"  # set to 1 to keep XLA's own defaults


def set_xla_defaults() -> list[str]:
  """Appends XLA_DEFAULT_FLAGS to $XLA_FLAGS (those it does not already name); -> the flags added.

  Takes effect only if no JAX computation ran yet in this process (XLA reads its flags once); `import gdt` calls it.
  Nothing is added on a jaxlib outside XLA_DEFAULTS_MEASURED_ON or when $SEQRL_NO_XLA_DEFAULTS is set.
  """
  import jaxlib
  if os.environ.get(NO_XLA_DEFAULTS_ENV) or not jaxlib.__version__.startswith(XLA_DEFAULTS_MEASURED_ON):
    return []
  current = os.environ.get("XLA_FLAGS", "")
  added = [f"--{name}={value}" for name, value in XLA_DEFAULT_FLAGS.items() if f"--{name}" not in current]
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current.strip()] + added).strip()
  return added


def enable_compilation_cache(path: str | None = None) -> str:
  """Turns on XLA's persistent cache (second process start ~24 s -> ~8 s on 2 CPU cores).

  The directory is `path`, else $JAX_COMPILATION_CACHE_DIR, else ~/.cache/seqrl/jax.
  """
  path = path or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_CACHE_DIR
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def _device_put_replicated(x, devices):
  """What jax<0.9 `device_put_replicated` did: stack `x` once per device along a new axis 0."""
  devices = list(devices)
  mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replica"))

  def put(v):
    v = jnp.asarray(v)
    return jax.device_put(jnp.broadcast_to(v[None], (len(devices),) + v.shape), sharding)

  return jax.tree.map(put, x)


def install_brax_compat() -> None:
  """brax 0.14.2's PPO calls `jax.device_put_replicated`, removed from jax 0.10; restore it.

  A no-op on a jax that still has it (tests/test_infra.py checks the shim).
  """
  if not hasattr(jax, "device_put_replicated"):
    jax.device_put_replicated = _device_put_replicated


def install_mjx_multihost_compat() -> None:
  """MJX (mujoco 4.0) puts every model on `jax.devices()[0]` when no device is given: on a multi-process run that
  is process 0's device, so every other process's brax env held arrays it could not use. Default to this
  process's first device instead. Called by `gdt.core.distributed.initialize` on multi-process runs only."""
  from mujoco.mjx._src import io
  if getattr(io._resolve_impl_and_device, "_local_default", False):
    return
  resolve = io._resolve_impl_and_device

  def local_default(impl, device=None):
    return resolve(impl, device if device is not None else jax.local_devices()[0])

  local_default._local_default = True
  io._resolve_impl_and_device = local_default
