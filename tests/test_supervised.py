"""Supervised learning as a task: the digits split, the IDX / MNIST loaders, the minibatch
fitness and ES training on digits.

IDX files are written byte by byte here (``struct``), independently of the reader; expected
losses and accuracies come from a NumPy forward pass of the same MLP.
"""

from __future__ import annotations

import gzip
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.tasks.supervised import (
    DIGITS_TEST_SIZE,
    MNIST_FILES,
    accuracy,
    cross_entropy,
    load_digits,
    load_mnist,
    read_idx,
    supervised,
)

# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int, fmt: str) -> bytes:
    """An IDX file written by hand: 0, 0, type code, ndim, big-endian sizes, big-endian data."""
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    body = b"".join(struct.pack(">" + fmt, v) for v in array.ravel().tolist())
    return head + body


@pytest.mark.parametrize(
    "dtype,code,fmt",
    [(np.uint8, 0x08, "B"), (np.int8, 0x09, "b"), (np.int16, 0x0B, "h"), (np.int32, 0x0C, "i"),
     (np.float32, 0x0D, "f"), (np.float64, 0x0E, "d")],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_types(tmp_path, dtype, code, fmt, compress):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(3, 4, 2)) * 50).astype(dtype)
    raw = idx_bytes(a, code, fmt)
    if compress:
        raw = gzip.compress(raw)
    path = tmp_path / "a.idx"
    path.write_bytes(raw)
    for source in (path, str(path), raw):
        out = read_idx(source)
        assert out.shape == (3, 4, 2)
        assert out.dtype.isnative
        np.testing.assert_array_equal(out, a)


def test_read_idx_one_dimensional():
    labels = np.array([7, 0, 255, 3], np.uint8)
    np.testing.assert_array_equal(read_idx(idx_bytes(labels, 0x08, "B")), labels)


@pytest.mark.parametrize(
    "raw,match",
    [(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "two zero bytes"),
     (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type code"),
     (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated header"),
     (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05\x06", "needs 3 data bytes")],
)
def test_read_idx_rejects_malformed(raw, match):
    with pytest.raises(ValueError, match=match):
        read_idx(raw)


def _write_mnist(folder, n_train=5, n_test=3, side=4, gz=True, bad_labels=False):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "y_train": rng.integers(0, 10, (n_train + int(bad_labels),), dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "y_test": rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }
    for k, stem in MNIST_FILES.items():
        raw = idx_bytes(arrays[k], 0x08, "B")
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_generated_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    data = load_mnist(tmp_path)
    assert data.x_train.shape == (5, 16) and data.x_test.shape == (3, 16)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    np.testing.assert_allclose(data.x_train, arrays["x_train"].reshape(5, 16) / 255.0)
    np.testing.assert_allclose(data.x_test, arrays["x_test"].reshape(3, 16) / 255.0)
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert data.num_classes == max(arrays["y_train"].max(), arrays["y_test"].max()) + 1


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, bad_labels=True)
    with pytest.raises(ValueError, match="train"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_data():
    return load_digits()


def test_digits_split(digits_data):
    from sklearn.datasets import load_digits as sk_load

    d = digits_data
    full = sk_load()
    assert d.x_test.shape == (DIGITS_TEST_SIZE, 64) and d.x_train.shape == (1797 - 359, 64)
    assert d.num_classes == 10
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    # The split is the documented permutation: rng(0).permutation, first 359 are the test set.
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_allclose(d.x_test, full.data[order[:359]] / 16.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(d.y_train, full.target[order[359:]])
    again = load_digits()
    np.testing.assert_array_equal(again.x_train, d.x_train)
    other = load_digits(split_seed=1)
    assert not np.array_equal(other.y_test, d.y_test)
    with pytest.raises(ValueError, match="test_size"):
        load_digits(test_size=0)


# ---------------------------------------------------------------------------------------------
# the task
# ---------------------------------------------------------------------------------------------

MODEL = el.policies.MLP(10, hidden=(8,), head="linear")


@pytest.fixture(scope="module")
def model_params():
    return MODEL.init(jax.random.PRNGKey(0), jnp.zeros(64))


def numpy_logits(params, x):
    p = jax.tree.map(np.asarray, params)["params"]
    h = np.tanh(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]


def numpy_cross_entropy(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def test_full_batch_loss_and_accuracy(digits_data, model_params):
    d = digits_data
    task = supervised(MODEL.apply, d.x_train, d.y_train, batch_size=None)
    logits = numpy_logits(model_params, d.x_train)
    expected = -numpy_cross_entropy(logits, d.y_train)
    fit = task.fn(jax.random.PRNGKey(3), model_params)
    np.testing.assert_allclose(float(fit), expected, rtol=1e-5)
    acc_task = supervised(MODEL.apply, d.x_train, d.y_train, batch_size=None, fitness="accuracy")
    expected_acc = np.mean(logits.argmax(1) == d.y_train)
    np.testing.assert_allclose(float(acc_task.fn(jax.random.PRNGKey(3), model_params)),
                               expected_acc, atol=1e-6)
    np.testing.assert_allclose(
        float(accuracy(MODEL.apply, model_params, d.x_test, d.y_test)),
        np.mean(numpy_logits(model_params, d.x_test).argmax(1) == d.y_test), atol=1e-6)
    np.testing.assert_allclose(
        float(cross_entropy(MODEL.apply, model_params, d.x_test, d.y_test)),
        numpy_cross_entropy(numpy_logits(model_params, d.x_test), d.y_test), rtol=1e-5)


def test_minibatch_from_key(digits_data, model_params):
    d = digits_data
    task = supervised(MODEL.apply, d.x_train, d.y_train, batch_size=16)
    key = jax.random.PRNGKey(7)
    idx = np.asarray(jax.random.randint(key, (16,), 0, len(d.y_train)))
    expected = -numpy_cross_entropy(numpy_logits(model_params, d.x_train[idx]), d.y_train[idx])
    np.testing.assert_allclose(float(task.fn(key, model_params)), expected, rtol=1e-5)
    other = float(task.fn(jax.random.PRNGKey(8), model_params))
    assert other != pytest.approx(expected, rel=1e-6)


def test_population_members_share_the_minibatch(digits_data, model_params):
    d = digits_data
    task = supervised(MODEL.apply, d.x_train, d.y_train, batch_size=32)
    same = jax.tree.map(lambda x: jnp.broadcast_to(x, (4, *x.shape)), model_params)
    key = jax.random.PRNGKey(11)
    # Identical members score identically only if they see the same minibatch.
    shared = np.asarray(el.evaluate(key, task, None, same).fitness)
    assert shared.shape == (4,)
    np.testing.assert_array_equal(shared, shared[0])
    own = np.asarray(el.evaluate(key, task, None, same, common_random_numbers=False).fitness)
    assert len(set(own.tolist())) > 1


def test_make_digits_and_bad_input(digits_data):
    task = el.tasks.make("digits", apply_fn=MODEL.apply, batch_size=8)
    assert isinstance(task, el.tasks.FunctionTask) and task.name == "digits"
    d = digits_data
    with pytest.raises(ValueError, match="fitness"):
        supervised(MODEL.apply, d.x_train, d.y_train, fitness="mse")
    with pytest.raises(ValueError, match="batch_size"):
        supervised(MODEL.apply, d.x_train, d.y_train, batch_size=0)
    with pytest.raises(ValueError, match="same n"):
        supervised(MODEL.apply, d.x_train, d.y_train[:-1])
    with pytest.raises(ValueError, match="integers"):
        supervised(MODEL.apply, d.x_train, d.y_train.astype(np.float32))


@pytest.mark.slow
def test_es_learns_digits(digits_data):
    """OpenAI-ES through make_train on the digits task: well above chance on the test set."""
    d = digits_data
    model = el.policies.MLP(10, hidden=(32,), head="linear")
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(64))
    task = supervised(model.apply, d.x_train, d.y_train, batch_size=100)
    strategy = el.strategies.openai_es(200, sigma=0.05, learning_rate=0.03,
                                       noise=el.noise.table(1_000_000))
    train = el.make_train(task, None, strategy, params=params, generations=150,
                          eval_episodes=0)
    result = train(jax.random.PRNGKey(1))
    before = float(accuracy(model.apply, params, d.x_test, d.y_test))
    after = float(accuracy(model.apply, result.solution, d.x_test, d.y_test))
    assert before < 0.3
    assert after >= 0.85, after
