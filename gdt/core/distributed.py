"""Multi-host runs: `jax.distributed.initialize` from flags or the cluster's environment, and process-local data.

Every entry point that goes through `gdt.core.cli.run` has the flags `--coordinator_address`, `--num_processes`,
`--process_id` and `--multihost={auto,on,off}`; `initialize` reads them before any JAX computation:
- explicit coordinator flags (or $JAX_COORDINATOR_ADDRESS / $JAX_NUM_PROCESSES / $JAX_PROCESS_ID): those;
- `auto` (default): under SLURM with more than one task (`srun`), or on a multi-worker TPU VM slice, JAX's own
  cluster detection supplies them; on one machine without those variables nothing happens (one process);
- `on`: cluster detection is required (an error when there is none); `off`: never initialise.

After initialisation the trainer's mesh spans `jax.devices()` (every process's devices), each process places its
own copy of the data on its devices (`put_process_local`), every process runs the same program, and only process 0
writes files (`gdt.core.workdir.is_primary`). On CPU the cross-process collectives use gloo.

    srun --ntasks=2 python -m experiments.train_gdt --config=... --workdir=/shared/run     # SLURM
    python -m experiments.train_gdt ... --coordinator_address=host0:1234 --num_processes=2 --process_id=$i
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

MODES = ("auto", "on", "off")
_ENV = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
        "process_id": "JAX_PROCESS_ID"}


def detected_cluster() -> str | None:
  """The multi-process launcher this process runs under, or None: 'slurm' (srun with >1 task) or 'tpu' (a TPU VM
  slice with several workers). One-task SLURM jobs and single TPU VMs are one process: None."""
  if int(os.environ.get("SLURM_NTASKS", os.environ.get("SLURM_STEP_NUM_TASKS", "1")) or 1) > 1 and (
      "SLURM_STEP_NODELIST" in os.environ or "SLURM_JOB_NODELIST" in os.environ):
    return "slurm"
  if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
    return "tpu"
  return None


def explicit_args(coordinator_address: str | None = None, num_processes: int | None = None,
                  process_id: int | None = None) -> dict[str, Any]:
  """The coordinator arguments given by flags or, failing that, by $JAX_COORDINATOR_ADDRESS etc.; {} if none.
  Raises ValueError when only some are given or they do not fit together."""
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
  args = {k: v if v not in (None, "") else os.environ.get(_ENV[k]) or None for k, v in given.items()}
  if all(v is None for v in args.values()):
    return {}
  missing = [k for k, v in args.items() if v is None]
  if missing:
    raise ValueError(f"multi-host: --coordinator_address, --num_processes and --process_id go together; missing "
                     f"{', '.join('--' + m for m in missing)} (or ${', $'.join(_ENV[m] for m in missing)})")
  n, i = int(args["num_processes"]), int(args["process_id"])
  if n < 1 or not 0 <= i < n:
    raise ValueError(f"multi-host: --process_id must be in [0, --num_processes={n}), got {i}")
  if ":" not in str(args["coordinator_address"]):
    raise ValueError(f"multi-host: --coordinator_address must be host:port, got {args['coordinator_address']!r}")
  return {"coordinator_address": str(args["coordinator_address"]), "num_processes": n, "process_id": i}


def initialize(mode: str = "auto", *, coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, log=print) -> bool:
  """Initialises `jax.distributed` as the module docstring says; True when this is now a multi-process run.
  Must run before the first JAX computation of the process."""
  if mode not in MODES:
    raise ValueError(f"--multihost must be one of {MODES}, got {mode!r}")
  if mode == "off":
    return False
  args = explicit_args(coordinator_address, num_processes, process_id)
  cluster = detected_cluster()
  if not args and cluster is None:
    if mode == "on":
      raise ValueError("--multihost=on but no coordinator flags ($JAX_COORDINATOR_ADDRESS ...) and no SLURM (>1 "
                       "task) or multi-worker TPU environment: nothing to initialise from")
    return False
  if args.get("num_processes") == 1:
    return False
  # gloo gives CPU devices cross-process collectives (harmless for accelerators, which use their own).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**args)
  from gdt.core import runtime
  runtime.install_mjx_multihost_compat()
  log(f"[multihost] process {jax.process_index()} of {jax.process_count()} "
      f"({'flags' if args else cluster}): {jax.local_device_count()} local of {jax.device_count()} devices")
  return jax.process_count() > 1


def put_process_local(tree: Any, sharding: jax.sharding.Sharding) -> Any:
  """Places host values on `sharding`, which may span other processes' devices: every process passes its own copy
  of the values (the same on every process for a replicated sharding). On one process: `jax.device_put`."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def put_rows(x: np.ndarray, sharding: jax.sharding.NamedSharding) -> jax.Array:
  """`x` [N, ...] split by rows over `sharding` (leading axis on the mesh's data axis), zero-padded to a multiple of
  the axis size. Each process builds only the row blocks of its own devices (a callback per local device), so no
  process transfers or holds on device the other processes' rows."""
  x = np.asarray(x)
  parts = sharding.mesh.shape[sharding.spec[0]]
  n = x.shape[0]
  padded = -(-n // parts) * parts

  def block(index):
    start, stop, _ = index[0].indices(padded)
    out = np.zeros((stop - start,) + x.shape[1:], x.dtype)
    out[:max(0, min(stop, n) - start)] = x[start:min(stop, n)]
    return out

  return jax.make_array_from_callback((padded,) + x.shape[1:], sharding, block)


_barriers = 0
BARRIER_TIMEOUT_S = 3600


def barrier(name: str) -> None:
  """Waits until every process reaches this point (no-op on one process), through the coordination service.

  Needed before the collectives of a freshly compiled program: gloo gives a cross-process collective context 30 s
  to form, so a process that compiled from the persistent cache in 16 s, while its peer compiled for 64 s on a
  loaded machine, aborted the run. Every process calls the same barriers in the same order (one program)."""
  global _barriers
  if jax.process_count() == 1:
    return
  from jax._src import distributed as jax_distributed  # the client jax.distributed.initialize created
  _barriers += 1
  jax_distributed.global_state.client.wait_at_barrier(f"{name}#{_barriers}", BARRIER_TIMEOUT_S * 1000)
