"""The bad-input corpus (issue 20), table-driven: each case is a call that must fail with a given
error class and a one-line message naming the argument or file. These cases need no
compilation (checks run before any work); the CLI's cases and the run folders' live in
tests/test_runs.py and tests/test_cli.py for now."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab import storage

INF, NAN = math.inf, math.nan
PARAMS = {"w": jnp.zeros(3)}
KEY = jax.random.PRNGKey(0)


def es(**kw):
    return el.strategies.openai_es(8, **{"sigma": 0.1, **kw})


def es_init(**overrides):
    return es().init(KEY, PARAMS, **overrides)


def nsr(**kw):
    return el.strategies.nsr_es(8, 0.1, behavior_size=2, **kw)


def ga(**kw):
    return el.strategies.deep_ga(8, **{"sigma": 0.1, "truncation": 2, **kw})


def ga_ns(**kw):
    return el.strategies.ga_ns(8, **{"sigma": 0.1, "truncation": 2, "behavior_size": 2, **kw})


# (id, call, error class, text the message must contain)
CASES = [
    # OpenAI-ES: sizes and hyperparameters, at the factory and as (concrete) init overrides
    ("es-sigma-inf", lambda: es(sigma=INF), ValueError, "sigma must be finite and > 0, got inf"),
    ("es-sigma--inf", lambda: es(sigma=-INF), ValueError, "sigma must be finite"),
    ("es-sigma-nan", lambda: es(sigma=NAN), ValueError, "sigma must be finite and > 0, got nan"),
    ("es-sigma-0", lambda: es(sigma=0.0), ValueError, "sigma must be finite and > 0, got 0.0"),
    ("es-sigma-neg", lambda: es(sigma=-0.1), ValueError, "sigma must be finite and > 0"),
    ("es-lr-inf", lambda: es(learning_rate=INF), ValueError, "learning_rate must be finite"),
    ("es-lr-nan", lambda: es(learning_rate=NAN), ValueError, "learning_rate must be finite"),
    ("es-lr-0", lambda: es(learning_rate=0.0), ValueError, "learning_rate must be finite and >"),
    ("es-wd-inf", lambda: es(weight_decay=INF), ValueError, "weight_decay must be finite"),
    ("es-wd-neg", lambda: es(weight_decay=-1e-3), ValueError, "weight_decay must be finite and"),
    ("es-wd-nan", lambda: es(weight_decay=NAN), ValueError, "weight_decay must be finite"),
    ("es-odd-pop", lambda: el.strategies.openai_es(7, 0.1), ValueError,
     "pop_size must be even with mirrored sampling"),
    ("es-pop-1", lambda: el.strategies.openai_es(1, 0.1, mirrored=False), ValueError,
     "pop_size must be >= 2"),
    ("es-pop-float", lambda: el.strategies.openai_es(8.0, 0.1), TypeError,
     "pop_size must be an int"),
    ("es-pop-bool", lambda: el.strategies.openai_es(True, 0.1), TypeError,
     "pop_size must be an int"),
    ("es-chunk-0", lambda: es(chunk_size=0), ValueError, "chunk_size must be >= 1"),
    ("es-init-sigma-inf", lambda: es_init(sigma=INF), ValueError, "sigma must be finite"),
    ("es-init-sigma-neg", lambda: es_init(sigma=-1.0), ValueError, "sigma must be finite"),
    ("es-init-wd-inf", lambda: es_init(weight_decay=INF), ValueError, "weight_decay must be"),
    ("es-init-lr-inf", lambda: es_init(learning_rate=INF), ValueError, "learning_rate must be"),
    ("es-init-lr-plain-adam", lambda: el.strategies.openai_es(
        8, 0.1, optimizer=__import__("optax").adam(0.01)).init(KEY, PARAMS, learning_rate=0.1),
     ValueError, "learning_rate override needs an optimizer built with"),
    # NS-ES family
    ("nsr-sigma-inf", lambda: el.strategies.nsr_es(8, INF, behavior_size=2), ValueError,
     "sigma must be finite"),
    ("nsr-lr-inf", lambda: nsr(learning_rate=INF), ValueError, "learning_rate must be finite"),
    ("nsr-wd-inf", lambda: nsr(weight_decay=INF), ValueError, "weight_decay must be finite"),
    ("nsr-delta-inf", lambda: nsr(delta=INF), ValueError, "delta must be finite"),
    ("nsr-delta-neg", lambda: nsr(delta=-0.1), ValueError, "delta must be finite"),
    ("nsr-odd-pop", lambda: el.strategies.nsr_es(7, 0.1, behavior_size=2), ValueError,
     "pop_size must be even"),
    # Deep GA and GA-NS
    ("ga-sigma-inf", lambda: ga(sigma=INF), ValueError, "sigma must be finite"),
    ("ga-sigma-nan", lambda: ga(sigma=NAN), ValueError, "sigma must be finite"),
    ("ga-truncation-big", lambda: ga(truncation=9), ValueError,
     "truncation must be <= pop_size"),
    ("ga-ns-sigma-inf", lambda: ga_ns(sigma=INF), ValueError, "sigma must be finite"),
    ("ga-ns-prob-big", lambda: ga_ns(archive_probability=1.5), ValueError,
     "archive_probability"),
    ("ga-ns-prob-nan", lambda: ga_ns(archive_probability=NAN), ValueError,
     "archive_probability"),
    # names
    ("strategy-unknown", lambda: el.strategies.make("cma_es"), ValueError, "cma_es"),
    ("task-unknown", lambda: el.tasks.make("NoSuchTask-v0"), ValueError, "NoSuchTask-v0"),
    ("landscape-depth-inf", lambda: el.tasks.landscapes.gap_landscape(depth=INF), ValueError,
     "depth must be finite"),
    ("landscape-width-0", lambda: el.tasks.landscapes.gap_landscape(width=0.0), ValueError,
     "width must be finite and > 0"),
    # files and folders
    ("restore-missing", lambda: el.checkpoint.restore("no/such/file.ckpt", like=PARAMS),
     el.checkpoint.CheckpointError, "no/such/file.ckpt: no such checkpoint file"),
    ("manifest-no-step", lambda: storage.manifest("no/such/run"), el.checkpoint.CheckpointError,
     "no checkpoint"),
    ("load-run-missing", lambda: el.load_run("no/such/run"), ValueError,
     "is not a run folder"),
    ("save-step-rows", lambda: storage.save_step(
        "never/written", 2, PARAMS, key=KEY, total=2, metrics={"a": np.zeros(1)}, first=0),
     ValueError, "needs the metrics of those 2 generations"),
    ("save-step-gap", lambda: storage.save_step(
        "never/written", 4, PARAMS, key=KEY, total=4, metrics={"a": np.zeros(2)}, first=2),
     ValueError, "has no step there"),
    ("save-step-metadata", lambda: storage.save_step(
        "never/written", 1, PARAMS, key=KEY, total=1, metrics={"a": np.zeros(1)}, first=0,
        metadata={"x": object()}), ValueError, "metadata must be JSON-serializable"),
    # devices
    ("process-id", lambda: el.parallel.initialize("127.0.0.1:1", 2, 2), ValueError,
     "process_id must be in [0, 2)"),
]


@pytest.mark.parametrize("call, error, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_one_line_error_naming_it(call, error, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths above land (if at all) in a scratch folder
    with pytest.raises(error) as err:
        call()
    message = str(err.value)
    assert text in message, message
    assert "\n" not in message.strip(), message
    assert not list(tmp_path.rglob("*")), "a failed call wrote files"
