"""Generalized Decision Transformer: hindsight information matching in JAX/Flax.

Shared machinery (registries, workdirs and metric writers, the transformer trunk, the trainer
skeleton and checkpoints) lives in this package; `morphology` imports it.
"""

__version__ = "0.1.0"
