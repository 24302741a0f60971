"""The bad-input corpus (issue 20), table-driven.

API cases: a call that must fail with a given error class and a one-line message naming the
argument or file, writing nothing. CLI cases: a command line that must exit with a given code
(2: the user's input; 1: a runtime fault), print exactly one line on stderr naming the option or
file, no traceback, and leave every file of the run folders it was pointed at unchanged (hashes
before and after). None of them compiles a training program (checks run before any work)."""

import hashlib
import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab import cli, storage
from evojax_lab.core import files
from evojax_lab.tasks.gymnax_tasks import missing_download

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


def CARTPOLE():
    return el.tasks.make("CartPole-v1")


def _tell(strategy, fitness):
    state = strategy.init(KEY, PARAMS)
    population, state = strategy.ask(KEY, state)
    return strategy.tell(KEY, population, fitness, state)


def _make_train(**options):
    task = CARTPOLE()
    return el.make_train(task, el.policies.for_task(task, hidden=(4,)), es(),
                         **{"generations": 1, **options})


CONFIG = el.runs.RunConfig.resolve("CartPole-v1", "openai_es").to_dict()

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
    # the ask/tell protocol
    ("tell-fitness-short", lambda: _tell(el.strategies.openai_es(8, 0.1), jnp.zeros(7)),
     ValueError, "fitness must have shape (8,)"),
    ("tell-fitness-2d", lambda: _tell(el.strategies.openai_es(8, 0.1), jnp.zeros((8, 2))),
     ValueError, "fitness must have shape (8,)"),
    ("tell-ga-fitness", lambda: _tell(ga(), jnp.zeros(5)), ValueError,
     "fitness must have shape (8,)"),
    ("ga-elites-neg", lambda: ga(elites=-1), ValueError, "elites must be >= 0"),
    ("ga-elites-big", lambda: ga(elites=9), ValueError, "elites must be < pop_size"),
    ("ga-validation-neg", lambda: ga(validation_episodes=-1), ValueError,
     "validation_episodes must be >= 0"),
    ("ns-k-0", lambda: el.strategies.ns_es(8, 0.1, behavior_size=2, k=0), ValueError,
     "k must be >= 1"),
    ("ns-agents-0", lambda: el.strategies.ns_es(8, 0.1, behavior_size=2, num_agents=0),
     ValueError, "num_agents must be >= 1"),
    # the registry
    ("make-preset-blame", lambda: el.strategies.make("deep_ga", "CartPole-v1", pop_size=16),
     ValueError, "truncation=20 comes from the deep_ga preset for CartPole-v1"),
    ("make-no-behavior", lambda: el.strategies.make("nsr_es"), ValueError,
     "nsr_es needs a behavior descriptor"),
    ("make-behavior-es", lambda: el.strategies.make("openai_es", behavior_size=2), ValueError,
     "openai_es takes no behavior_size"),
    ("make-unknown-keyword", lambda: el.strategies.make("openai_es", foo=1), ValueError,
     "openai_es has no setting or keyword foo"),
    ("settings-unknown", lambda: el.strategies.settings("openai_es", foo=1), ValueError,
     "openai_es has no setting foo"),
    # tasks and policies
    ("task-not-str", lambda: el.tasks.make(5), TypeError, "task name must be a str"),
    ("task-needs-argument", lambda: el.tasks.make("digits"), ValueError,
     "task 'digits': missing a required argument: 'apply_fn'"),
    ("task-unknown-argument", lambda: el.tasks.make("hard_maze", colour=1), ValueError,
     "task 'hard_maze': got an unexpected keyword argument 'colour'"),
    ("task-max-steps-0", lambda: el.tasks.make("CartPole-v1", max_steps=0), ValueError,
     "max_steps must be >= 1"),
    pytest.param(lambda: el.tasks.make("MNISTBandit-bsuite"), ValueError,
                 "MNISTBandit-bsuite needs a download", id="task-needs-download",
                 marks=pytest.mark.skipif(missing_download("MNISTBandit-bsuite") is None,
                                          reason="the MNIST files are cached here")),
    ("policy-hidden-0", lambda: el.policies.for_task(CARTPOLE(), hidden=(0,)), ValueError,
     "hidden must be layer widths >= 1"),
    ("policy-hidden-str", lambda: el.policies.for_task(CARTPOLE(), hidden="32"), ValueError,
     "hidden must be layer widths >= 1"),
    # make_train options
    ("train-generations-0", lambda: _make_train(generations=0), ValueError,
     "generations must be >= 1"),
    ("train-episodes-0", lambda: _make_train(episodes=0), ValueError, "episodes must be >= 1"),
    ("train-eval-neg", lambda: _make_train(eval_episodes=-1), ValueError,
     "eval_episodes must be >= 0"),
    ("train-chunk-0", lambda: _make_train(chunk_size=0), ValueError, "chunk_size must be >= 1"),
    ("train-record", lambda: _make_train(record=("colour",)), ValueError,
     "record: unknown field(s) ['colour']"),
    ("train-noise-discrete", lambda: _make_train(action_noise=0.1), ValueError,
     "action_noise needs a continuous action space; CartPole-v1's is discrete"),
    ("train-noise-inf", lambda: _make_train(action_noise=INF), ValueError,
     "action_noise must be finite"),
    # run configs (a config.json edited by hand, or train --config FILE)
    *[(f"config-{field}-{value!r}", lambda f=field, v=value: el.runs.RunConfig.from_dict(
        {**CONFIG, f: v}), ValueError, f"run config field {field!r} must be")
      for field, value in [("seed", 2**70), ("seed", "abc"), ("seed", 1.5), ("eval_episodes", -1),
                           ("chunk_size", 0), ("record", ["colour"]), ("obs_norm", "yes"),
                           ("action_noise", -1), ("action_noise", NAN), ("hidden", "abc"),
                           ("hidden", [0]), ("task", 5)]],
    ("config-version", lambda: el.runs.RunConfig.from_dict({**CONFIG, "version": 99}),
     ValueError, "run config version 99 was written by a newer evojax_lab"),
    ("config-missing", lambda: el.runs.RunConfig.from_dict({"task": "CartPole-v1"}),
     ValueError, "missing strategy, seed"),
    ("config-not-object", lambda: el.runs.RunConfig.from_dict([1]), ValueError,
     "a run config is a JSON object, got list"),
    ("config-json", lambda: el.runs.RunConfig.from_json("{"), ValueError, "not valid JSON"),
    ("config-file", lambda: el.runs.RunConfig.load("no/such.json"), ValueError,
     "no/such.json not found"),
    ("config-strategy", lambda: el.runs.RunConfig.from_dict({**CONFIG, "strategy": "cma_es"}),
     ValueError, "unknown strategy 'cma_es'"),
    # genome bytes
    ("genome-empty", lambda: el.genome.info(b""), ValueError, "genome bytes truncated"),
    ("genome-foreign", lambda: el.genome.info(b"x" * 64), ValueError,
     "not an evojax_lab genome"),
    # devices
    ("process-id", lambda: el.parallel.initialize("127.0.0.1:1", 2, 2), ValueError,
     "process_id must be in [0, 2)"),
    ("processes-0", lambda: el.parallel.initialize("127.0.0.1:1", 0, 0), ValueError,
     "num_processes must be >= 1"),
    ("coordinator", lambda: el.parallel.initialize("localhost", 2, 0), ValueError,
     "coordinator_address must be HOST:PORT, got 'localhost'"),
]


def _param(case):
    return pytest.param(*case[1:], id=case[0]) if isinstance(case[0], str) else case


@pytest.mark.parametrize("call, error, text", [_param(c) for c in CASES])
def test_bad_input_is_a_one_line_error_naming_it(call, error, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths above land (if at all) in a scratch folder
    with pytest.raises(error) as err:
        call()
    message = str(err.value)
    assert text in message, message
    assert "\n" not in message.strip(), message
    assert not list(tmp_path.rglob("*")), "a failed call wrote files"


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A small Deep GA run (checkpoints, elite genome) and damaged copies and files beside it:
    every CLI case points at these and must leave them as they were."""
    base = tmp_path_factory.mktemp("bad-cli")
    run = base / "run"
    assert cli.main(["train", "--strategy", "deep_ga", "--pop-size", "8", "--truncation", "2",
                     "--generations", "2", "--hidden", "4", "--eval-episodes", "0",
                     "--final-episodes", "2", "--log-every", "1", "--checkpoint-every", "1",
                     "--no-progress", "--run-dir", str(run)]) == 0
    for name, damage in [("nockpt", lambda d: shutil.rmtree(d / "checkpoints")),
                         ("badconfig", lambda d: (d / "config.json").write_text("{not json")),
                         ("foreignconfig", lambda d: (d / "config.json").write_text('{"a": 1}')),
                         ("badparams", lambda d: (d / "params.msgpack").write_bytes(b"\x00" * 9))]:
        shutil.copytree(run, base / name)
        damage(base / name)
    for name, edit in [("editedpop", {"pop_size": 16, "truncation": 2}),
                       ("editedtask", {"task": "Acrobot-v1"})]:
        shutil.copytree(run, base / name)  # config.json edited by hand after the run
        config = json.loads((base / name / "config.json").read_text())
        (base / name / "config.json").write_text(json.dumps({**config, **edit}))
    genome = el.genome.from_bytes((run / "elite.genome").read_bytes())
    for name, metadata in [("task5", {"task": 5, "hidden": [4]}),
                           ("hiddenabc", {"task": "CartPole-v1", "hidden": "abc"}),
                           ("hidden0", {"task": "CartPole-v1", "hidden": [0]}),
                           ("obsnormyes", {"task": "CartPole-v1", "hidden": [4],
                                           "obs_norm": "yes"}),
                           ("notask", {"hidden": [4]})]:
        data = el.genome.to_bytes(genome, num_params=30, metadata=metadata)
        (base / f"{name}.genome").write_bytes(data)  # a valid CRC over malformed metadata
    data = (run / "elite.genome").read_bytes()
    (base / "truncated.genome").write_bytes(data[:20])
    (base / "empty.genome").write_bytes(b"")
    (base / "foreign.genome").write_bytes(bytes(range(64)))
    (base / "file.txt").write_text("not a folder\n")
    (base / "broken.json").write_text("{")
    (base / "foreign.json").write_text('{"a": 1}')
    config = json.loads((run / "config.json").read_text())
    (base / "seed70.json").write_text(json.dumps({**config, "seed": 2**70}))
    (base / "hiddenabc.json").write_text(json.dumps({**config, "hidden": "abc"}))
    return base


def _hashes(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "folder" for p in sorted(folder.rglob("*"))}


T = ["train", "--no-progress", "--run-dir", "{base}/new"]  # a fresh train (never created)
R = ["train", "--no-progress", "--resume", "{base}/run"]
HIDDEN = "argument --hidden: expected comma-separated widths >= 1"
RECORD = "argument --record: expected a comma-separated subset"

# (id, argv ({base}: the folders above), exit code, text the one line must contain)
CLI_CASES = [
    # options argparse refuses
    ("pop-0", [*T, "--pop-size", "0"], 2, "--pop-size: expected an integer >= 1, got 0"),
    ("pop-neg", [*T, "--pop-size", "-4"], 2, "--pop-size: expected an integer >= 1"),
    ("pop-text", [*T, "--pop-size", "abc"], 2, "--pop-size: expected an integer, got 'abc'"),
    ("sigma-0", [*T, "--sigma", "0"], 2, "--sigma: expected a finite number > 0, got 0"),
    ("sigma-neg", [*T, "--sigma", "-1"], 2, "--sigma: expected a finite number > 0"),
    ("sigma-inf", [*T, "--sigma", "inf"], 2, "--sigma: expected a finite number > 0, got inf"),
    ("sigma-nan", [*T, "--sigma", "nan"], 2, "--sigma: expected a finite number > 0, got nan"),
    ("lr-0", [*T, "--lr", "0"], 2, "--lr: expected a finite number > 0"),
    ("lr-inf", [*T, "--lr", "inf"], 2, "--lr: expected a finite number > 0"),
    ("generations-0", [*T, "--generations", "0"], 2, "--generations: expected an integer >= 1"),
    ("generations-text", [*T, "--generations", "zero"], 2, "--generations: expected an integer"),
    ("seed-2**70", [*T, "--seed", str(2**70)], 2, "--seed: must fit in 64 bits"),
    ("seed--2**70", [*T, "--seed", str(-(2**70))], 2, "--seed: must fit in 64 bits"),
    ("seed-text", [*T, "--seed", "abc"], 2, "--seed: expected an integer, got 'abc'"),
    ("hidden-empty", [*T, "--hidden", ""], 2, HIDDEN),
    ("hidden-commas", [*T, "--hidden", "32,,"], 2, "got '32,,'"),
    ("hidden-0", [*T, "--hidden", "0"], 2, HIDDEN),
    ("hidden-neg", [*T, "--hidden", "-3"], 2, HIDDEN),
    ("hidden-text", [*T, "--hidden", "a,b"], 2, "got 'a,b'"),
    ("hidden-float", [*T, "--hidden", "32.5"], 2, "got '32.5'"),
    ("strategy-unknown", [*T, "--strategy", "cma_es"], 2, "--strategy: invalid choice: 'cma_es'"),
    ("record-unknown", [*T, "--record", "colour"], 2, RECORD),
    ("record-empty", [*T, "--record", ""], 2, RECORD),
    ("noise-neg", [*T, "--action-noise", "-0.1"], 2, "--action-noise: expected a finite number"),
    ("noise-nan", [*T, "--action-noise", "nan"], 2, "--action-noise: expected a finite number"),
    ("keep-0", [*T, "--keep", "0"], 2, "--keep: expected an integer >= 1"),
    ("log-every-0", [*T, "--log-every", "0"], 2, "--log-every: expected an integer >= 1"),
    ("checkpoint-every-neg", [*T, "--checkpoint-every", "-1"], 2,
     "--checkpoint-every: expected an integer >= 0"),
    ("final-episodes-0", [*T, "--final-episodes", "0"], 2, "--final-episodes: expected an"),
    ("episodes-0", [*T, "--episodes", "0"], 2, "--episodes: expected an integer >= 1"),
    ("chunk-0", [*T, "--chunk-size", "0"], 2, "--chunk-size: expected an integer >= 1"),
    ("agents-0", [*T, "--strategy", "nsr_es", "--agents", "0"], 2, "--agents: expected"),
    ("k-0", [*T, "--strategy", "ns_es", "--k", "0"], 2, "--k: expected an integer >= 1"),
    ("host-devices-0", [*T, "--host-devices", "0"], 2, "--host-devices: expected an integer"),
    ("processes-0", [*T, "--num-processes", "0"], 2, "--num-processes: expected an integer"),
    ("unknown-option", [*T, "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("no-command", [], 2, "the following arguments are required: COMMAND"),
    ("unknown-command", ["fly"], 2, "invalid choice: 'fly'"),
    ("replay-no-run", ["replay"], 2, "the following arguments are required: run"),
    ("replay-episodes-0", ["replay", "{base}/run", "--episodes", "0"], 2,
     "--episodes: expected an integer >= 1"),
    ("replay-seed-2**70", ["replay", "{base}/run", "--seed", str(2**70)], 2,
     "--seed: must fit in 64 bits"),
    ("replay-hidden-empty", ["replay", "{base}/run", "--hidden", ""], 2,
     "argument --hidden: expected comma-separated widths"),
    ("bench-reps-0", ["bench", "--reps", "0"], 2, "--reps: expected an integer >= 1"),
    ("bench-generations-0", ["bench", "--generations", "0"], 2, "--generations: expected"),
    ("bench-seed-2**70", ["bench", "--seed", str(2**70)], 2, "--seed: must fit in 64 bits"),
    ("bench-truncation", ["bench", "--truncation", "3"], 2, "unrecognized arguments"),
    ("plot-no-run", ["plot"], 2, "the following arguments are required: run"),
    ("info-no-run", ["info"], 2, "the following arguments are required: run"),
    # settings refused before any work
    ("eval-episodes-neg", [*T, "--eval-episodes", "-1"], 2, "--eval-episodes must be >= 0"),
    ("task-unknown", [*T, "--task", "NoSuchTask-v0"], 2, "unknown task 'NoSuchTask-v0'"),
    ("task-case", [*T, "--task", "cartpole-v1"], 2, "Did you mean 'CartPole-v1'"),
    ("task-needs-argument", [*T, "--task", "digits"], 2,
     "task 'digits': missing a required argument: 'apply_fn'"),
    ("task-needs-download", [*T, "--task", "MNISTBandit-bsuite"], 2,
     "MNISTBandit-bsuite needs a download"),
    ("preset-blame", [*T, "--strategy", "deep_ga", "--pop-size", "16"], 2,
     "truncation=20 comes from the deep_ga preset for CartPole-v1"),
    ("truncation-given", [*T, "--strategy", "deep_ga", "--pop-size", "8", "--truncation", "9"],
     2, "got truncation=9 > pop_size=8"),
    ("pop-odd", [*T, "--pop-size", "7"], 2, "pop_size must be even with mirrored sampling"),
    ("truncation-es", [*T, "--truncation", "3"], 2, "--truncation does not apply to openai_es"),
    ("agents-ga", [*T, "--strategy", "deep_ga", "--agents", "2"], 2,
     "--agents does not apply to deep_ga"),
    ("elites-neg", [*T, "--strategy", "deep_ga", "--elites", "-1"], 2, "elites must be >= 0"),
    ("validation-neg", [*T, "--strategy", "deep_ga", "--validation-episodes", "-1"], 2,
     "validation_episodes must be >= 0"),
    ("archive-probability-big", [*T, "--strategy", "ga_ns", "--archive-probability", "1.5"],
     2, "archive_probability"),
    ("archive-probability-nan", [*T, "--strategy", "ga_ns", "--archive-probability", "nan"],
     2, "archive_probability"),
    ("noise-discrete", [*T, "--action-noise", "0.01"], 2,
     "--action-noise needs a continuous action space"),
    ("multi-host-partial", [*T, "--coordinator", "127.0.0.1:1"], 2,
     "a multi-host run needs --coordinator, --num-processes and --process-id"),
    ("multi-host-id", [*T, "--coordinator", "127.0.0.1:1", "--num-processes", "2",
                       "--process-id", "5"], 2, "process_id must be in [0, 2)"),
    ("multi-host-address", [*T, "--coordinator", "localhost", "--num-processes", "2",
                            "--process-id", "0"], 2, "coordinator_address must be HOST:PORT"),
    ("bench-task", ["bench", "--task", "NoSuchTask-v0"], 2, "unknown task 'NoSuchTask-v0'"),
    ("bench-preset-blame", ["bench", "--strategy", "deep_ga", "--pop-size", "16"], 2,
     "truncation=20 comes from the deep_ga preset"),
    ("bench-pop-odd", ["bench", "--pop-size", "7"], 2, "pop_size must be even"),
    # run folders and files: train
    ("train-existing-run", ["train", "--no-progress", "--run-dir", "{base}/run"], 2,
     "already holds a run; continue it with `evojax-lab train --resume"),
    ("train-run-dir-file", ["train", "--no-progress", "--run-dir", "{base}/file.txt"], 2,
     "file.txt is a file, not a folder"),
    ("resume-missing", ["train", "--resume", "{base}/none"], 2, "none/config.json not found"),
    ("resume-file", ["train", "--resume", "{base}/file.txt"], 2,
     "--resume {base}/file.txt is a file, not a run folder"),
    ("resume-pop", [*R, "--pop-size", "8"], 2, "--pop-size cannot be given with --resume"),
    ("resume-task", [*R, "--task", "Acrobot-v1"], 2, "--task cannot be given with --resume"),
    ("resume-seed", [*R, "--seed", "3"], 2, "--seed cannot be given with --resume"),
    ("resume-hidden", [*R, "--hidden", "8"], 2, "--hidden cannot be given with --resume"),
    ("resume-overwrite", [*R, "--overwrite"], 2, "--overwrite cannot be given with --resume"),
    ("resume-generations-ga", [*R, "--generations", "5"], 2,
     "--generations cannot change on --resume for deep_ga"),
    ("resume-no-checkpoint", ["train", "--resume", "{base}/nockpt"], 2, "holds no checkpoint"),
    ("resume-bad-config", ["train", "--resume", "{base}/badconfig"], 2,
     "badconfig/config.json is not valid JSON"),
    ("resume-foreign-config", ["train", "--resume", "{base}/foreignconfig"], 2,
     "foreignconfig/config.json is not a run configuration: it lacks 'task'"),
    ("resume-edited-pop", ["train", "--no-progress", "--resume", "{base}/editedpop"], 2,
     "pop_size 8, this run has 16"),
    ("resume-edited-task", ["train", "--no-progress", "--resume", "{base}/editedtask"], 2,
     "task 'CartPole-v1', this run has 'Acrobot-v1'"),
    ("config-missing", [*T, "--config", "{base}/none.json"], 2, "none.json not found"),
    ("config-broken", [*T, "--config", "{base}/broken.json"], 2, "not valid JSON"),
    ("config-foreign", [*T, "--config", "{base}/foreign.json"], 2, "not a run configuration"),
    ("config-seed-2**70", [*T, "--config", "{base}/seed70.json"], 2,
     "run config field 'seed' must be an integer that fits in 64 bits"),
    ("config-hidden", [*T, "--config", "{base}/hiddenabc.json"], 2,
     "run config field 'hidden' must be a list of widths"),
    ("config-with-seed", [*T, "--config", "{base}/run/config.json", "--seed", "3"], 2,
     "--seed cannot be given with --config"),
    ("config-with-resume", ["train", "--config", "{base}/run/config.json", "--resume",
                            "{base}/run"], 2, "--resume cannot be given with --config"),
    # replay
    ("replay-missing", ["replay", "{base}/none"], 2, "none/config.json not found"),
    ("replay-task", ["replay", "{base}/run", "--task", "Acrobot-v1"], 2,
     "params.msgpack does not fit the policy of --task Acrobot-v1 --hidden 4 (the run's: "
     "--task CartPole-v1 --hidden 4)"),
    ("replay-hidden", ["replay", "{base}/run", "--hidden", "64,64"], 2,
     "does not fit the policy of --task CartPole-v1 --hidden 64,64"),
    ("replay-linear", ["replay", "{base}/run", "--hidden", "none"], 2,
     "does not fit the policy of --task CartPole-v1 --hidden none"),
    ("replay-task-unknown", ["replay", "{base}/run", "--task", "NoSuchTask-v0"], 2,
     "unknown task 'NoSuchTask-v0'"),
    ("replay-bad-config", ["replay", "{base}/badconfig"], 2, "config.json is not valid JSON"),
    ("replay-bad-params", ["replay", "{base}/badparams"], 2,
     "badparams/params.msgpack does not fit the policy"),
    ("replay-genome-task", ["replay", "{base}/run/elite.genome", "--task", "Acrobot-v1"], 2,
     "elite.genome: genome was written for a network with 30 parameters"),
    ("replay-genome-hidden", ["replay", "{base}/run/elite.genome", "--hidden", "64,64"], 2,
     "elite.genome: genome was written for a network with 30 parameters"),
    ("replay-genome-task-int", ["replay", "{base}/task5.genome"], 2,
     "task5.genome: metadata 'task' must be a task name, got 5"),
    ("replay-genome-hidden-text", ["replay", "{base}/hiddenabc.genome"], 2,
     "hiddenabc.genome: metadata 'hidden' must be a list of widths >= 1"),
    ("replay-genome-hidden-0", ["replay", "{base}/hidden0.genome"], 2,
     "hidden0.genome: metadata 'hidden' must be a list of widths >= 1"),
    ("replay-genome-obs-norm", ["replay", "{base}/obsnormyes.genome"], 2,
     "metadata 'obs_norm' must be true or false"),
    ("replay-genome-no-task", ["replay", "{base}/notask.genome"], 2,
     "notask.genome does not name its task: pass --task"),
    ("replay-genome-truncated", ["replay", "{base}/truncated.genome"], 2,
     "truncated.genome: genome bytes truncated"),
    ("replay-genome-empty", ["replay", "{base}/empty.genome"], 2, "empty.genome: genome bytes"),
    ("replay-genome-foreign", ["replay", "{base}/foreign.genome"], 2,
     "foreign.genome: not an evojax_lab genome"),
    # plot and info
    ("plot-missing", ["plot", "{base}/none"], 2, "is not a run folder"),
    ("plot-file", ["plot", "{base}/file.txt"], 2, "file.txt is not a run folder"),
    ("info-missing", ["info", "{base}/none"], 2, "none is not a run folder"),
    ("info-file", ["info", "{base}/file.txt"], 2, "file.txt is not a run folder"),
]


def _cli(argv) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit_:  # argparse errors exit directly
        return exit_.code


@pytest.mark.parametrize("argv, code, text", [pytest.param(*c[1:], id=c[0]) for c in CLI_CASES])
def test_bad_command_line_is_one_line_and_changes_nothing(argv, code, text, folders, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # where a default run folder would go
    argv = [a.format(base=folders) for a in argv]
    text = text.format(base=folders)
    before = _hashes(folders)
    assert _cli(argv) == code
    captured = capsys.readouterr()
    err = captured.err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert text in lines[0], lines[0]
    assert lines[0].startswith("evojax-lab"), lines[0]
    assert _hashes(folders) == before, "a failed command changed the run folders"
    assert not list(tmp_path.rglob("*")), "a failed command wrote files"


def test_the_corpus_has_at_least_150_cases():
    assert len(CASES) + len(CLI_CASES) >= 150


def test_a_runtime_fault_is_one_line_exit_1_and_leaves_no_folder(tmp_path, monkeypatch,
                                                                  capsys):
    """A fault that is not the user's input (here: the run raising at its start) prints one
    line with exit code 1; the fresh run's folder, which never finished a block, is removed;
    ``--debug`` shows the traceback instead."""
    def fault(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: out of memory\nwhile allocating 8 GiB")

    monkeypatch.setattr(storage, "run_with_checkpoints", fault)
    argv = ["train", "--no-progress", "--pop-size", "8", "--hidden", "4", "--generations", "1",
            "--run-dir", str(tmp_path / "new")]
    assert _cli(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["evojax-lab train: error: RuntimeError: RESOURCE_EXHAUSTED: out of memory "
                     "(--debug shows the traceback)"]
    assert not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError, match="RESOURCE_EXHAUSTED"):
        cli.main([*argv, "--debug"])
    assert not (tmp_path / "new").exists()


def test_a_runtime_fault_after_overwrite_puts_the_old_run_back(tmp_path, monkeypatch, capsys):
    """--overwrite moves the old run aside; when the new run fails before its first block the
    old run goes back in its place, unchanged, and no ``.replaced-<n>`` folder is left."""
    def fault(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: out of memory")

    monkeypatch.setattr(storage, "run_with_checkpoints", fault)
    old = tmp_path / "run"
    (old / "sub").mkdir(parents=True)
    (old / "config.json").write_text('{"task": "CartPole-v1"}\n')
    (old / "sub" / "metrics.jsonl").write_text('{"generation": 1}\n')
    before = _hashes(old)
    argv = ["train", "--no-progress", "--pop-size", "8", "--hidden", "4", "--generations", "1",
            "--run-dir", str(old), "--overwrite"]
    assert _cli(argv) == 1
    err = capsys.readouterr().err
    assert f"moved the run in {tmp_path / 'run.replaced-1'} back to {old}" in err
    assert _hashes(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_run_files_are_written_with_the_umask_mode(folders):
    """Checkpoint steps, metrics segments and logs get the mode every other file of the run
    gets (0644 under umask 022), not the private 0600 of a temporary file."""
    modes = {str(p.relative_to(folders / "run")): p.stat().st_mode & 0o777
             for p in (folders / "run").rglob("*") if p.is_file()}
    assert any("manifest.json" in p for p in modes) and "metrics.jsonl" in modes
    assert set(modes.values()) == {files.FILE_MODE}, modes
