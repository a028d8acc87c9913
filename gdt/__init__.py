"""Generalized Decision Transformer: hindsight information matching in JAX/Flax.

The machinery shared with `morphology` (registries, workdirs, the transformer trunk, the trainer, checkpoints,
rollouts, PPO) lives in `gdt.core`, which knows no algorithm.
"""

__version__ = "0.1.0"

from gdt.core import runtime as _runtime

_runtime.set_xla_defaults()  # before any JAX computation: XLA reads its flags once per process
