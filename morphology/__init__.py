"""MxT-Bench on Brax: procedural morphologies x tasks, the MTG observation, behavior distillation.

    import morphology
    policy = morphology.load_policy("workdirs/mxt_bc")   # a trained distillation policy (morphology.distill)
"""

import gdt  # noqa: F401  (process-level XLA defaults, gdt.core.runtime.set_xla_defaults)


def __getattr__(name):
  # Lazy, so `from morphology import envs` does not import the training stack.
  if name == "load_policy":
    from morphology.distill import load_policy
    return load_policy
  raise AttributeError(f"module 'morphology' has no attribute {name!r}")
