"""Test-wide setup: the persistent compilation cache (compile time dominates small tests)."""

import os

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "jax"))

from gdt.core import runtime  # noqa: E402

runtime.enable_compilation_cache()
runtime.install_brax_compat()
