"""The 2-D landscapes of ES vs finite differences, with fixed seeds (acceptance).

Formulas are checked against NumPy; the smoothing argument behind the gap landscape is checked
by Monte Carlo in NumPy; ES and FD runs use el.analysis.es_ascent / fd_ascent with the same
plain gradient-ascent update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.analysis import es_ascent, fd_ascent
from evojax_lab.tasks.landscapes import (
    gap_fitness,
    gap_landscape,
    landscape_task,
    narrowing_fitness,
    narrowing_landscape,
)

SEEDS = range(10)
STEPS, LR, PAIRS = 400, 0.01, 10
SIGMA_GAP, SIGMA_PATH = 0.3, 0.5


def np_gap(x, y):
    return x - 0.5 * y**2 - 2.0 * np.exp(-(x**2) / (2 * 0.05**2))


def np_narrowing(x, y):
    w = 0.15 + 0.85 * 0.5 * (1 - np.tanh((x - 0.75) / 0.3))
    return x - 4.0 * (1 - np.exp(-((y / w) ** 4)))


def test_formulas_match_numpy():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1.5, 2.5, (50, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(gap_fitness(pts)), np_gap(pts[:, 0], pts[:, 1]),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(narrowing_fitness(pts)),
                               np_narrowing(pts[:, 0], pts[:, 1]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        gap_fitness(jnp.zeros(3))
    with pytest.raises(ValueError, match="w_min"):
        narrowing_landscape(w_min=2.0)
    with pytest.raises(ValueError, match="width"):
        gap_landscape(width=0.0)


def test_smoothed_gap_rises_and_smoothed_path_dips():
    # Monte Carlo in NumPy of E F(p + sigma eps) along y = 0 (common random numbers).
    eps = np.random.default_rng(1).normal(size=(200_000, 2))
    xs = np.linspace(-0.8, 0.8, 17)
    gap = [np_gap(x + SIGMA_GAP * eps[:, 0], SIGMA_GAP * eps[:, 1]).mean() for x in xs]
    assert np.all(np.diff(gap) > 0)
    path = [np_narrowing(x + SIGMA_PATH * eps[:, 0], SIGMA_PATH * eps[:, 1]).mean()
            for x in (0.0, 1.0, 1.5)]
    assert path[1] < path[0] - 0.3 and path[2] < path[0] - 0.3
    # while the raw function on the path only rises
    assert np_narrowing(0.0, 0.0) < np_narrowing(1.0, 0.0) < np_narrowing(1.5, 0.0)


def starts(landscape):
    """Per-seed starts: x jittered by +-0.2 and y by +-0.02 around the landscape's start."""
    out = []
    for seed in SEEDS:
        u = np.random.default_rng(seed).uniform(-1, 1, 2)
        out.append(np.array(landscape.start) + u * np.array([0.2, 0.02]))
    return jnp.asarray(np.stack(out), jnp.float32)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for land, sigma in ((gap_landscape(), SIGMA_GAP), (narrowing_landscape(), SIGMA_PATH)):
        x0 = starts(land)
        keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(len(SEEDS)))
        es = jax.jit(jax.vmap(lambda k, x, f=land.fn, s=sigma: es_ascent(
            k, f, x, steps=STEPS, learning_rate=LR, sigma=s, num_pairs=PAIRS)))(keys, x0)
        fd = jax.jit(jax.vmap(lambda x, f=land.fn: fd_ascent(
            f, x, steps=STEPS, learning_rate=LR, h=1e-4)))(x0)
        out[land.name] = (land, np.asarray(es), np.asarray(fd))
    return out


def test_large_sigma_es_crosses_the_gap_fd_does_not(runs):
    land, es, fd = runs["gap"]
    es_success = int(np.sum(es[:, -1, 0] >= land.goal_x))
    fd_success = int(np.sum(fd[:, :, 0].max(axis=1) >= land.goal_x))
    assert es_success >= 8, es[:, -1]
    assert fd_success == 0, fd[:, -1]
    # FD stops at the near rim of the trench: the local maximum at x ~= -0.15
    np.testing.assert_allclose(fd[:, -1, 0], -0.155, atol=0.02)


def test_fd_walks_the_narrowing_path_large_sigma_es_stalls(runs):
    land, es, fd = runs["narrowing"]
    assert np.all(fd[:, -1, 0] >= land.goal_x), fd[:, -1]
    assert np.all(np.abs(fd[:, :, 1]) < 0.05)  # it stayed on the path
    es_success = int(np.sum(es[:, :, 0].max(axis=1) >= land.goal_x))
    assert es_success == 0, es[:, -1]
    # it hesitates before the narrow part (the path is narrowest from x ~= 1.2 on)
    assert np.all(es[:, -1, 0] < 1.0)


def test_landscape_tasks_in_the_registry_and_with_evaluate():
    task = el.tasks.make("landscape/gap")
    assert task.name == "landscape/gap" and task.behavior_size == 2
    pop = jnp.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.5]])
    ev = el.evaluate(jax.random.PRNGKey(0), task, None, pop)
    np.testing.assert_allclose(np.asarray(ev.fitness), np_gap(pop[:, 0], pop[:, 1]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ev.behavior), np.asarray(pop))
    path = landscape_task(narrowing_landscape())
    np.testing.assert_allclose(float(path.fn(None, jnp.array([0.5, 0.1]))[0]),
                               np_narrowing(0.5, 0.1), rtol=1e-5)
    assert "landscape/narrowing" in el.tasks.names()
