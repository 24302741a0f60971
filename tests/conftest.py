"""Shared test set-up.

JAX compile time dominates these tests: CI points ``JAX_COMPILATION_CACHE_DIR`` at a folder
outside the clone (see .ci/run) and every cached program is reused across runs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Two CPU host devices, so the default (sharded) path of make_train and 1-vs-2-device equality
# are exercised; must be set before JAX creates its backend.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import jax  # noqa: E402

if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
