"""Test-wide setup: the persistent compilation cache and cheaper compiles (compile time dominates small tests)."""

import os

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "jax"))
# Tests check behaviour on tiny shapes, where XLA's compile time dominates: with most optimisations off, cold-cache
# runs of tests/test_envs.py, test_train.py and test_evaluate.py took 212-230 s instead of 305 s (A/B, twice each,
# same load). Subprocesses the tests start inherit it; benchmarks and real runs keep XLA's full optimisation.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

from gdt.core import runtime  # noqa: E402

runtime.enable_compilation_cache()
runtime.install_brax_compat()
