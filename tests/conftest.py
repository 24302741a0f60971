"""Shared test set-up.

JAX compile time dominates these tests: CI points ``JAX_COMPILATION_CACHE_DIR`` at a folder
outside the clone (see .ci/run) and every cached program is reused across runs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
