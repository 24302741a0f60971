"""Devices and hosts: meshes over the population axis, host CPU devices, multi-host set-up.

One machine: ``make_mesh()`` spans every device (GPUs, or CPU cores exposed as host devices with
:func:`use_host_devices`, which must run before JAX initializes its backends). Several machines:
call :func:`initialize` in every process (same program, same arguments apart from
``process_id``); ``jax.devices()`` then lists the devices of all processes and the same mesh code
spans them. Nothing here uses ``pmap``.
"""

from __future__ import annotations

import os
import re
import warnings

import jax
import numpy as np
from jax.sharding import Mesh

from evojax_lab.core.sharding import POP_AXIS

_HOST_FLAG = "--xla_force_host_platform_device_count"


def use_host_devices(count: int | None = None) -> int:
    """Expose ``count`` (default: all cores) CPU host devices via ``XLA_FLAGS``.

    Must be called before JAX creates its backends (before the first computation). Has no effect
    on GPU/TPU devices. An explicit count already in ``XLA_FLAGS`` wins. Returns the count asked.
    """
    count = int(count or os.cpu_count() or 1)
    flags = os.environ.get("XLA_FLAGS", "")
    if _HOST_FLAG in flags:
        match = re.search(_HOST_FLAG + r"=(\d+)", flags)
        return int(match.group(1)) if match else count
    os.environ["XLA_FLAGS"] = f"{flags} {_HOST_FLAG}={count}".strip()
    return count


def make_mesh(devices=None, pop_size: int | None = None) -> Mesh | None:
    """A 1-D mesh named ``"pop"`` over ``devices`` (default: all devices of all processes).

    With ``pop_size`` given, a single-process run uses the largest number of devices that
    divides it (with a warning if that is fewer than all). Returns ``None`` for one device.
    """
    devices = list(jax.devices() if devices is None else devices)
    if pop_size is not None and pop_size % len(devices):
        if jax.process_count() > 1:
            raise ValueError(
                f"population size {pop_size} is not divisible by the {len(devices)} devices of "
                f"the {jax.process_count()} processes"
            )
        usable = max(d for d in range(1, len(devices) + 1) if pop_size % d == 0)
        warnings.warn(
            f"population size {pop_size} is not divisible by {len(devices)} devices; "
            f"using {usable}", stacklevel=2,
        )
        devices = devices[:usable]
    if len(devices) == 1:
        return None
    return Mesh(np.asarray(devices), (POP_AXIS,))


def initialize(coordinator_address: str, num_processes: int, process_id: int,
               local_device_count: int | None = None) -> None:
    """Join a multi-process run (``jax.distributed.initialize``).

    On CPU the cross-process collectives use gloo. Every process must call this with the same
    ``coordinator_address`` (``host:port`` of process 0) and ``num_processes``, and its own
    ``process_id``, before any other JAX call.
    """
    host, _, port = str(coordinator_address).rpartition(":")
    if not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"coordinator_address must be HOST:PORT, got {coordinator_address!r}")
    if int(num_processes) < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
    if local_device_count:
        use_host_devices(local_device_count)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=int(num_processes),
        process_id=int(process_id),
    )


def to_host(tree):
    """NumPy copies of a pytree of (possibly multi-process, replicated or sharded) arrays.

    In a multi-process run the arrays that span processes are gathered (every process must
    call this with the same tree); arrays already local to the process (NumPy arrays, or JAX
    arrays on its own devices) are copied as they are, not concatenated across processes.
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    leaves, treedef = jax.tree.flatten(tree)
    spans = [i for i, x in enumerate(leaves)
             if isinstance(x, jax.Array) and not x.is_fully_addressable]
    gathered = multihost_utils.process_allgather([leaves[i] for i in spans], tiled=True)
    gathered = dict(zip(spans, gathered, strict=True))
    out = [np.asarray(gathered[i] if i in gathered else jax.device_get(x))
           for i, x in enumerate(leaves)]
    return jax.tree.unflatten(treedef, out)
