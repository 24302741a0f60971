"""Files replaced in one rename: a crash leaves the old file or the new one, never a mix."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Mode of every file written here: what ``open(path, "w")`` would give (0644 under the usual
#: umask 022), not ``mkstemp``'s private 0600.
FILE_MODE = 0o666 & ~_umask()


def write_chunks(f, chunks: Iterable[bytes]) -> None:
    """Write the chunks to ``f`` (a seam for tests that simulate a crash mid-write)."""
    for chunk in chunks:
        f.write(chunk)


def atomic_write(path, chunks: Iterable[bytes], *, sync: bool = True) -> Path:
    """Write ``chunks`` to ``path`` through a temporary file in the same folder and one
    ``os.replace``; with ``sync`` the data and the rename are flushed to disk first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write_chunks(f, chunks)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    return path
