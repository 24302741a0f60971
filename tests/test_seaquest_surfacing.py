"""benchmarks/seaquest_ns.py's ``with_surfacing`` against refills counted by hand on gymnax."""

import sys
from pathlib import Path

import gymnax
import jax
import numpy as np
import pytest

import evojax_lab as el

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from seaquest_ns import with_surfacing  # noqa: E402

UP, DOWN = 2, 4  # gymnax Seaquest: 0 noop, 1 left, 2 up, 3 right, 4 down, 5 fire


@pytest.fixture(scope="module")
def game():
    env, params = gymnax.make("Seaquest-MinAtar")
    return env, params, with_surfacing(el.tasks.make("Seaquest-MinAtar", max_steps=1000))


def _submerged(state, divers: int):
    """The state one row below the surface, ``divers`` aboard, half the oxygen left."""
    return state.replace(sub_y=np.int32(1), diver_count=np.int32(divers),
                         oxygen=np.int32(100), surface=np.array(False))


def _by_hand(env, params, state, actions, keys):
    """Drive the raw environment; a refill = oxygen up on a step that does not end the game.
    Returns (refills, oxygen rises, per-step done, final state)."""
    refills = rises = 0
    dones = []
    for action, key in zip(actions, keys, strict=True):
        before = int(state.oxygen)
        _, state, _, done, _ = env.step_env(jax.random.split(key)[0], state, action, params)
        after = int(state.oxygen)
        rises += after > before
        refills += after > before and not bool(done)
        dones.append(bool(done))
    return refills, rises, dones, state


def _wrapped(task, state, actions, keys):
    dones = []
    obs = None
    for action, key in zip(actions, keys, strict=True):
        obs, state, _, done = task.step(key, state, action)
        dones.append(bool(done))
    return obs, state, dones


def _run(game, divers, actions):
    env, params, task = game
    keys = list(jax.random.split(jax.random.PRNGKey(3), len(actions)))
    obs, (inner, refills) = task.reset(jax.random.PRNGKey(0))
    assert int(refills) == 0
    np.testing.assert_array_equal(task.behavior(obs, (inner, refills)),
                                  [0.0, float(inner.sub_x), 0.0])
    start = _submerged(inner, divers)
    expected = _by_hand(env, params, start, actions, keys)
    obs, state, dones = _wrapped(task, (start, refills), actions, keys)
    return expected, obs, state, dones


def test_surfacing_with_divers_counts_each_refill(game):
    # surface (2 divers -> 1), dive twice, back up and surface (1 -> 0), dive, surface with none
    actions = [UP, DOWN, DOWN, UP, UP, DOWN, UP]
    (refills, rises, dones, final), obs, state, wrapped_dones = _run(game, 2, actions)
    assert refills == 2 and rises == 3  # the last surfacing refills oxygen and ends the game
    assert dones == wrapped_dones == [False] * 6 + [True]
    inner, counted = state
    assert int(counted) == refills
    assert int(inner.oxygen) == int(final.oxygen) and int(inner.sub_y) == 0
    _, _, task = game
    np.testing.assert_array_equal(task.behavior(obs, state),
                                  np.array([refills, int(final.sub_x), int(final.sub_y)],
                                           np.float32))
    assert task.behavior(obs, state).dtype == np.float32 and task.behavior_size == 3


def test_surfacing_without_divers_ends_the_episode_uncounted(game):
    (refills, rises, dones, final), obs, state, wrapped_dones = _run(game, 0, [UP])
    assert (refills, rises) == (0, 1) and int(final.oxygen) == 200  # oxygen rose; game over
    assert dones == wrapped_dones == [True]
    _, _, task = game
    assert int(state[1]) == 0
    np.testing.assert_array_equal(task.behavior(obs, state), [0.0, float(final.sub_x), 0.0])
