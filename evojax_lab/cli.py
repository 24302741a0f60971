"""The ``evojax-lab`` command line: ``train`` (with checkpoints, ``--resume`` and ``--config``),
``replay``, ``plot``, ``bench`` and ``info``."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
from pathlib import Path

from evojax_lab import runs
from evojax_lab.strategies import registry

# Settings `evojax-lab train` uses unless an option overrides them: the strategy's defaults,
# then the (task, strategy) preset on top (both in evojax_lab.strategies.registry).
DEFAULTS, PRESETS = registry.DEFAULTS, registry.PRESETS
STRATEGIES = tuple(DEFAULTS)
GENOME_STRATEGIES = ("deep_ga", "random_search", "ga_ns")
_OPTION_NAMES = ("pop_size", "sigma", "learning_rate", "generations", "episodes", "hidden",
                 "truncation", "elites", "validation_episodes", "agents", "k",
                 "archive_probability")
# Options that define a run: fixed by the run's config.json when it is resumed.
_RUN_OPTIONS = ("task", "strategy", "seed", *(n for n in _OPTION_NAMES if n != "generations"),
                "eval_episodes", "chunk_size", "record", "obs_norm", "action_noise", "run_dir",
                "list_presets", "config")
# Strategies whose state is sized from --generations (genome / archive capacity).
_SIZED_BY_GENERATIONS = ("deep_ga", "ga_ns", "ns_es", "nsr_es", "nsra_es")
# Default generations per jitted block between host updates (progress, logs, checkpoints):
# benchmarks/progress_overhead.py measures the cost of the host updates against one jitted call.
DEFAULT_LOG_EVERY = 10
DEFAULT_CHECKPOINT_EVERY = 50
RECORD_FIELDS = ("fitness", "behavior", "steps")
# Final observation statistics of a --obs-norm run (next to params.msgpack).
OBS_STATS_NAME = "obs_stats.msgpack"


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden must be comma-separated ints, got {text!r}"
        ) from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"--hidden widths must be >= 1, got {text!r}")
    return widths


def _integer(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def _finite(*, zero_allowed: bool):
    """argparse type: a finite number > 0 (or >= 0 with ``zero_allowed``)."""
    bound = ">= 0" if zero_allowed else "> 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = value >= 0 if zero_allowed else value > 0
        if not ok or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text}")
        return value

    return parse


_positive_int = _integer(1)
_nonnegative_int = _integer(0)
_positive_float = _finite(zero_allowed=False)
_nonnegative_float = _finite(zero_allowed=True)


def _record(text: str) -> tuple[str, ...]:
    fields = tuple(f for f in text.replace(" ", "").split(",") if f)
    unknown = [f for f in fields if f not in RECORD_FIELDS]
    if unknown or not fields:
        raise argparse.ArgumentTypeError(
            f"--record takes a comma-separated subset of {','.join(RECORD_FIELDS)}, got {text!r}"
        )
    return fields


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evojax-lab",
        description="JAX-accelerated neuroevolution: train (checkpointed, resumable), replay "
        "a solution, plot a run folder, bench a strategy on this machine. "
        "`evojax-lab COMMAND --help` describes each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                help="what to do; `evojax-lab COMMAND --help` lists its options")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="train a policy on a task and write a run folder",
        description="Train a policy with an evolution strategy. Settings not given come from "
        "the task's preset (see --list-presets) or the general defaults. Generations run in "
        "jitted blocks of --log-every; after each block the progress bar (with the current "
        "score) and the metrics files are updated. Writes config.json, metrics.jsonl, "
        "metrics.csv, checkpoint.ckpt (every --checkpoint-every generations and at the end), "
        "curve.png, params.msgpack, summary.json (and elite.genome for GA strategies, "
        "population_<field>.npy with --record, obs_stats.msgpack with --obs-norm, "
        "tensorboard/ with --tensorboard) to the run "
        "folder. An interrupted run continues with --resume RUN_DIR and ends exactly as the "
        "uninterrupted run would.",
    )
    t.add_argument("--task", default="CartPole-v1", help="task name (default: CartPole-v1)")
    t.add_argument("--strategy", default="openai_es", choices=STRATEGIES,
                   help="strategy (default: openai_es)")
    t.add_argument("--generations", type=_positive_int,
                   help="number of generations (with --resume: the total to reach)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--pop-size", type=_positive_int, help="population size (even for ES)")
    t.add_argument("--sigma", type=_positive_float, help="perturbation std (ES)")
    t.add_argument("--lr", type=_positive_float, dest="learning_rate",
                   help="Adam learning rate (ES)")
    t.add_argument("--truncation", type=int, metavar="T",
                   help="parents per generation (GA; 0 = random search)")
    t.add_argument("--elites", type=int, help="individuals copied unmodified (GA)")
    t.add_argument("--validation-episodes", type=int, metavar="E",
                   help="extra episodes re-evaluating the elite candidates (GA; 0 = off)")
    t.add_argument("--agents", type=_positive_int, metavar="M",
                   help="meta-population size (NS-ES / NSR-ES / NSRA-ES)")
    t.add_argument("--k", type=_positive_int, help="nearest neighbours of the novelty")
    t.add_argument("--archive-probability", type=float, metavar="P",
                   help="archive insertion probability per individual (GA-NS)")
    t.add_argument("--episodes", type=_positive_int, help="episodes per member per generation")
    t.add_argument("--hidden", type=_hidden, help="hidden layer widths, e.g. 32,32")
    t.add_argument("--eval-episodes", type=int, default=10,
                   help="episodes scoring the solution after each generation (default: 10)")
    t.add_argument("--final-episodes", type=_positive_int, default=100,
                   help="episodes for the final score of the solution (default: 100)")
    t.add_argument("--chunk-size", type=_positive_int,
                   help="evaluate the population this many members at a time (bounded memory)")
    t.add_argument("--run-dir", help="run folder (default: runs/<task>_<strategy>_<time>)")
    t.add_argument("--log-every", type=_positive_int, default=DEFAULT_LOG_EVERY, metavar="B",
                   help="generations per jitted block between host updates: progress bar, "
                   f"metrics files (default: {DEFAULT_LOG_EVERY}; costs < 5%% of the run time, "
                   "see benchmarks/RESULTS.md)")
    t.add_argument("--checkpoint-every", type=_nonnegative_int, metavar="K",
                   default=DEFAULT_CHECKPOINT_EVERY,
                   help="write RUN_DIR/checkpoint.ckpt (atomically) every K generations, rounded "
                   "up to a multiple of --log-every, and at the end; 0: no checkpoints "
                   f"(default: {DEFAULT_CHECKPOINT_EVERY})")
    t.add_argument("--config", metavar="FILE",
                   help="train the run a config file describes (a run folder's config.json, or "
                   "one written by el.runs.RunConfig.to_json) into a new run folder; options "
                   "that define the run cannot be given, except --generations")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its checkpoint, with the settings of "
                   "its config.json, up to --generations (default: the run's own); options "
                   "that define the run (task, strategy, seed, sizes, ...) cannot be given")
    t.add_argument("--record", type=_record, metavar="FIELDS",
                   help="also save every evaluated member's results of every generation, a "
                   "comma-separated subset of fitness,behavior,steps, as population_<field>.npy "
                   "(behavior on a maze: `evojax-lab plot` draws the final positions)")
    t.add_argument("--obs-norm", action="store_true",
                   help="normalize observations with running statistics of every observation "
                   "the population acts on (ES paper, make_train(obs_norm=True)); the final "
                   "statistics are saved as obs_stats.msgpack and used by the final score and "
                   "by `evojax-lab replay`")
    t.add_argument("--action-noise", type=_nonnegative_float, default=0.0, metavar="SIGMA",
                   help="std of Gaussian noise added to every action of the training rollouts "
                   "(continuous action spaces; the ES paper uses 0.01 on MuJoCo); the solution "
                   "is scored without it (default: 0, off)")
    t.add_argument("--tensorboard", action="store_true",
                   help="also log scalar metrics to RUN_DIR/tensorboard (needs tensorboardX: "
                   "pip install 'evojax_lab[tensorboard]')")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    _device_options(t)

    r = sub.add_parser(
        "replay",
        help="play a trained solution from a run folder",
        description="Rebuild the policy from a run folder (config.json + params.msgpack, and "
        "obs_stats.msgpack for a run trained with --obs-norm) and play it, printing the mean "
        "return.",
    )
    r.add_argument("run", help="run folder written by `evojax-lab train`, or a .genome file "
                   "(Deep GA / random search elite; the genome of an --obs-norm run is "
                   "played with the obs_stats.msgpack beside it)")
    r.add_argument("--hidden", type=_hidden,
                   help="hidden widths of the policy (default: from the run or genome)")
    r.add_argument("--task", help="task to play on (default: the run's task)")
    r.add_argument("--episodes", type=_positive_int, default=10,
                   help="episodes to play (default: 10)")
    r.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    _device_options(r, multihost=False)

    b = sub.add_parser(
        "bench",
        help="time a strategy's generations on a task on this machine's devices",
        description="Compile one jitted run of --generations generations (default 10) of a "
        "strategy on a task, then time --reps calls of it: prints the devices, the compile "
        "time, seconds per generation (median) and environment steps per second. Settings not "
        "given come from the task's preset, like train. Nothing is written. Side-by-side "
        "comparisons with other libraries are the scripts in benchmarks/.",
    )
    b.add_argument("--task", default="CartPole-v1", help="task name (default: CartPole-v1)")
    b.add_argument("--strategy", default="openai_es", choices=STRATEGIES,
                   help="strategy (default: openai_es)")
    b.add_argument("--generations", type=_positive_int, default=10,
                   help="generations per timed call (default: 10)")
    b.add_argument("--reps", type=_positive_int, default=3,
                   help="timed calls after the compiling one (default: 3)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    b.add_argument("--pop-size", type=_positive_int, help="population size (even for ES)")
    b.add_argument("--episodes", type=_positive_int, help="episodes per member per generation")
    b.add_argument("--hidden", type=_hidden, help="hidden layer widths, e.g. 32,32")
    b.add_argument("--chunk-size", type=_positive_int,
                   help="evaluate the population this many members at a time (bounded memory)")
    b.add_argument("--obs-norm", action="store_true", help="normalize observations (as train)")
    b.add_argument("--json", action="store_true", help="print one JSON object instead")
    _device_options(b)

    pl = sub.add_parser(
        "plot",
        help="draw the pictures of a run folder",
        description="Draw every picture a run folder allows: the learning curve from "
        "metrics.jsonl (curve.png); with population_behavior.npy of a Hard Maze run "
        "(train --record behavior) the final positions on the maze walls (maze.png); with "
        "sensitivity.npz (one array of raw per-weight safe-mutation sensitivities per kind, "
        "e.g. np.savez(path, sum=s)) log-sensitivity histograms (sensitivity.png); with "
        "es_vs_sgd.jsonl (one JSON object per point: method, x, y, optional metric and "
        "x_label) ES-vs-SGD curves (es_vs_sgd.png). Needs no JAX device.",
    )
    pl.add_argument("run", help="run folder (written by `evojax-lab train`, or holding the "
                    "files above)")
    pl.add_argument("--out", metavar="FILE",
                    help="file for the learning curve (suffix picks the format: .png, .pdf, "
                    ".svg); the other pictures go next to it as <stem>_maze<suffix>, "
                    "<stem>_sensitivity<suffix>, <stem>_es_vs_sgd<suffix> (default: in the "
                    "run folder)")

    i = sub.add_parser(
        "info",
        help="print a run folder's config, progress and checkpoint state",
        description="Print what a run folder holds: its config (the settings that shape the "
        "run), how far it got (the checkpoint's generation and the last metrics row) and its "
        "checkpoint (format version, size, whether it can be resumed). Reads files only: needs "
        "no JAX device, changes nothing.",
    )
    i.add_argument("run", help="run folder (written by `evojax-lab train`)")
    i.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser


def _device_options(p: argparse.ArgumentParser, multihost: bool = True) -> None:
    g = p.add_argument_group("devices and hosts")
    g.add_argument("--host-devices", type=_positive_int, metavar="N",
                   help="on a CPU-only machine, expose N CPU cores as N JAX devices and shard "
                   "the population over them (default: all cores)")
    g.add_argument("--no-host-devices", action="store_true",
                   help="do not split the CPU into host devices (one CPU device)")
    if not multihost:
        return
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="multi-host run: address of process 0 (jax.distributed.initialize)")
    g.add_argument("--num-processes", type=_positive_int, metavar="N",
                   help="multi-host run: number of processes")
    g.add_argument("--process-id", type=int, metavar="I",
                   help="multi-host run: this process's index, 0..N-1")


def _setup_devices(args) -> None:
    """Host devices and multi-host set-up; must run before JAX creates its backends."""
    if not getattr(args, "no_host_devices", True):
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            count = args.host_devices or os.cpu_count() or 1
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={count}".strip()
            )
    coordinator = getattr(args, "coordinator", None)
    multi = (coordinator, getattr(args, "num_processes", None), getattr(args, "process_id", None))
    if any(v is not None for v in multi):
        if any(v is None for v in multi):
            raise CLIError("a multi-host run needs --coordinator, --num-processes and --process-id")
        from evojax_lab import parallel

        try:
            parallel.initialize(coordinator, args.num_processes, args.process_id)
        except ValueError as err:
            raise CLIError(str(err)) from None


def _settings(args) -> dict:
    settings = registry.settings(args.strategy, args.task)
    for name in _OPTION_NAMES:
        value = getattr(args, name, None)  # bench has only some of train's options
        if value is not None:
            if name not in settings:
                raise CLIError(f"--{name.replace('_', '-')} does not apply to {args.strategy}")
            settings[name] = value
    return settings


def _block_size(generations: int, target: int) -> int:
    """Generations per jitted block: the largest divisor of ``generations`` not above
    ``target`` (one compiled block length) unless that is below half the target; then
    ``target`` itself (the last, shorter block compiles once more)."""
    target = max(1, min(target, generations))
    divisor = max(d for d in range(1, target + 1) if generations % d == 0)
    return divisor if 2 * divisor >= target else target


def _explicit_options(argv) -> set[str]:
    """Destinations of the options given on the command line (not defaults)."""
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv))) - {"command"}
    except SystemExit:  # (already parsed once: cannot happen)
        return set()


def _resume(args) -> tuple[Path, dict, dict]:
    """The run folder, its config and the settings of a ``--resume``d run; ``args`` gets the
    run's task, strategy, seed, eval episodes, chunk size, record fields, observation
    normalization and action noise (an older config.json without the last two: off)."""
    run_dir = Path(args.resume)
    given = sorted(getattr(args, "explicit", set()) & set(_RUN_OPTIONS))
    if given:
        names = ", ".join("--" + g.replace("_", "-") for g in given)
        raise CLIError(f"{names} cannot be given with --resume: the run's settings come from "
                       f"{run_dir / 'config.json'}")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise CLIError(f"{config_path} not found: --resume needs a run folder written by "
                       "`evojax-lab train`")
    try:
        config = json.loads(config_path.read_text())
        args.task, args.strategy, args.seed = config["task"], config["strategy"], config["seed"]
        args.eval_episodes, args.chunk_size = config["eval_episodes"], config["chunk_size"]
        args.record = tuple(config.get("record", ()))
        args.obs_norm = bool(config.get("obs_norm", False))
        args.action_noise = float(config.get("action_noise", 0.0))
        s = {k: config[k] for k in DEFAULTS[args.strategy]}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CLIError(f"{config_path} is not a run configuration: {err!r}") from None
    s["hidden"] = tuple(s["hidden"])
    if args.generations is not None and args.generations != s["generations"]:
        if args.strategy in _SIZED_BY_GENERATIONS:
            raise CLIError(f"--generations cannot change on --resume for {args.strategy}: its "
                           f"genome/archive capacity was sized for {s['generations']}")
        s["generations"] = args.generations
    from evojax_lab.checkpoint import CHECKPOINT_NAME

    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise CLIError(f"{run_dir / CHECKPOINT_NAME} not found: nothing to resume (was the run "
                       "trained with --checkpoint-every 0?)")
    return run_dir, config, s


def _from_config(args) -> dict:
    """The settings of ``train --config FILE``; ``args`` gets the config's task, strategy,
    seed and ``make_train`` options."""
    given = sorted(getattr(args, "explicit", set()) & (set(_RUN_OPTIONS) - {"run_dir", "config"}))
    if args.resume:
        given.append("resume")
    if given:
        names = ", ".join("--" + g.replace("_", "-") for g in given)
        raise CLIError(f"{names} cannot be given with --config: the run's settings come from "
                       f"{args.config}")
    try:
        config = runs.RunConfig.load(args.config)
    except ValueError as err:
        raise CLIError(str(err)) from None
    args.task, args.strategy, args.seed = config.task, config.strategy, config.seed
    args.eval_episodes, args.chunk_size = config.eval_episodes, config.chunk_size
    args.record, args.obs_norm = config.record, config.obs_norm
    args.action_noise = config.action_noise
    s = dict(config.settings)
    if args.generations is not None:
        s["generations"] = args.generations
    return s


def cmd_train(args) -> int:
    if args.list_presets:
        print(json.dumps({"defaults": DEFAULTS, "presets": registry.presets()}, indent=2))
        return 0
    if args.config:
        s = _from_config(args)
    elif args.resume:
        run_dir, config, s = _resume(args)
    else:
        s = _settings(args)
    if args.eval_episodes < 0:
        raise CLIError(f"--eval-episodes must be >= 0, got {args.eval_episodes}")
    import jax
    import numpy as np
    from flax import serialization

    import evojax_lab as el
    from evojax_lab import checkpoint
    from evojax_lab.parallel import to_host
    from evojax_lab.plots import plot_run

    lead = jax.process_index() == 0  # only process 0 writes files and prints
    try:
        task = el.tasks.make(args.task)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.action_noise and task.action_space.kind != "continuous":
        raise CLIError(f"--action-noise needs a continuous action space; {args.task} has a "
                       f"{task.action_space.kind} one")
    record = tuple(args.record or ())
    loggers = []
    if args.tensorboard:
        try:
            tensorboard = checkpoint.TensorBoardLogger  # checked before any work is done
            import tensorboardX  # noqa: F401
        except ImportError:
            raise CLIError("--tensorboard needs tensorboardX: pip install "
                           "'evojax_lab[tensorboard]'") from None

    if not args.resume:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.run_dir or Path("runs") / f"{args.task}_{args.strategy}_{stamp}")
        try:
            config = runs.RunConfig.from_dict({
                "task": args.task, "strategy": args.strategy, "seed": args.seed, **s,
                "eval_episodes": args.eval_episodes, "chunk_size": args.chunk_size,
                "record": record, "obs_norm": args.obs_norm,
                "action_noise": args.action_noise}).to_dict()
        except (ValueError, TypeError) as err:
            raise CLIError(str(err)) from None
    config.update(generations=s["generations"], devices=[str(d) for d in jax.devices()],
                  processes=jax.process_count())
    try:
        task, policy, strategy, trainer = runs.build(config)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None
    checkpoint_dir = run_dir if args.checkpoint_every else None  # every process reads it
    args.checkpoint_dir = checkpoint_dir if lead else None  # for the hint after Ctrl-C
    if not lead:  # a worker's outputs go to a scratch folder: process 0 owns the run folder
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix="evojax-lab-worker-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if lead:
        loggers = [checkpoint.JsonlLogger(run_dir / "metrics.jsonl"),
                   checkpoint.CsvLogger(run_dir / "metrics.csv")]
        if args.tensorboard:
            loggers.append(tensorboard(run_dir / "tensorboard"))

    gens = s["generations"]
    block = _block_size(gens, args.log_every)
    every = -(-max(args.checkpoint_every, 1) // block) * block  # a multiple of the block
    progress = False
    if not args.no_progress and lead:
        where = f"{jax.device_count()} {jax.devices()[0].platform} device(s)"
        progress = f"{args.task} {args.strategy} on {where}"
    start = time.perf_counter()
    try:
        result = checkpoint.run_with_checkpoints(
            trainer, jax.random.PRNGKey(args.seed), checkpoint_dir, every=every, block=block,
            resume=bool(args.resume), loggers=loggers, progress=progress,
            metadata={"task": args.task, "strategy": args.strategy, "seed": args.seed})
    except checkpoint.CheckpointError as err:
        raise CLIError(f"{err} (resume needs the settings the checkpoint was written with)") \
            from None
    train_seconds = time.perf_counter() - start

    metrics = {k: np.asarray(v) for k, v in result.metrics.items()}  # host history
    for name in record:
        np.save(run_dir / f"population_{name}.npy",
                np.asarray(metrics[el.train.RECORDABLE[name]]), allow_pickle=False)
    if lead:
        plot_run(run_dir)
    solution_host = to_host(result.solution)
    (run_dir / "params.msgpack").write_bytes(serialization.to_bytes(solution_host))
    obs_stats = None
    if result.obs_stats is not None:  # deploy (and score) the solution with the final stats
        obs_stats = jax.tree.map(np.asarray, to_host(result.obs_stats))
        (run_dir / OBS_STATS_NAME).write_bytes(serialization.to_bytes(obs_stats))
    genome_note = ""
    if args.strategy in GENOME_STRATEGIES:
        genome = to_host(el.strategies.elite_genome(result.state))
        num_params = el.tree.num_params(solution_host)
        data = el.genome.to_bytes(genome, num_params=num_params, metadata={
            "task": args.task, "strategy": args.strategy, "hidden": list(s["hidden"]),
            "obs_norm": bool(args.obs_norm)})
        (run_dir / "elite.genome").write_bytes(data)
        genome_note = (f" | elite genome {len(data)} B vs {4 * num_params} B of weights "
                       f"({4 * num_params / len(data):.0f}x smaller)")

    final_key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 10_000_019)
    per_episode = jax.jit(
        lambda k, p, stats: jax.vmap(
            lambda kk: el.rollout(kk, task, policy, p, obs_norm=stats)[0]
        )(jax.random.split(k, args.final_episodes))
    )(final_key, solution_host, obs_stats)
    returns = np.asarray(per_episode)
    env_steps = float(np.asarray(metrics["steps"])[-1])
    summary = {
        "task": args.task, "strategy": args.strategy, "generations": gens,
        "final_mean_return": float(returns.mean()), "final_std_return": float(returns.std()),
        "final_episodes": args.final_episodes, "env_steps": env_steps,
        "train_seconds": train_seconds, "run_dir": str(run_dir),
        "resumed": bool(args.resume),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not lead:  # a worker's scratch folder: process 0 owns the run folder
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        return 0
    print(f"{args.task} {args.strategy}: solution mean return {returns.mean():.1f} "
          f"± {returns.std():.1f} over {args.final_episodes} episodes | {gens} generations, "
          f"{env_steps:.3g} env steps, {train_seconds:.1f} s"
          f"{' (resumed)' if args.resume else ''} | run folder {run_dir}{genome_note}")
    return 0


def cmd_bench(args) -> int:
    import statistics
    import time

    s = _settings(args)
    s["generations"] = args.generations
    import jax
    import numpy as np

    from evojax_lab.core.compiles import count_compilations

    config = {"task": args.task, "strategy": args.strategy, **s, "eval_episodes": 0,
              "chunk_size": args.chunk_size, "obs_norm": args.obs_norm}
    try:
        task, policy, strategy, trainer = runs.build(config)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    result = jax.block_until_ready(trainer(key))  # traces and compiles
    first = time.perf_counter() - start
    times = []
    with count_compilations() as seen:  # the timed calls must reuse the compiled run
        for _ in range(args.reps):
            start = time.perf_counter()
            result = jax.block_until_ready(trainer(key))
            times.append(time.perf_counter() - start)
    call = statistics.median(times)
    steps = float(np.asarray(result.metrics["steps"])[-1])
    devices = jax.devices()
    report = {
        "task": args.task, "strategy": args.strategy, "pop_size": s["pop_size"],
        "episodes": s["episodes"], "hidden": list(s["hidden"]),
        "generations": s["generations"], "reps": args.reps,
        "devices": len(devices), "platform": devices[0].platform,
        "device_kind": devices[0].device_kind, "processes": jax.process_count(),
        "compile_s": max(first - call, 0.0), "first_call_s": first,
        "seconds_per_generation": call / s["generations"],
        "env_steps_per_s": steps / call, "env_steps_per_call": steps,
        "retraces": seen.traced("train_run"),
    }
    if jax.process_index() != 0:
        return 0
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.task} {args.strategy}: P = {s['pop_size']}, {s['episodes']} episode(s), "
          f"MLP {'-'.join(map(str, s['hidden']))} on {len(devices)} {devices[0].platform} "
          f"device(s) ({devices[0].device_kind})")
    print(f"  compile ~{report['compile_s']:.1f} s (first call {first:.1f} s) | "
          f"{report['seconds_per_generation'] * 1e3:.2f} ms per generation (median of "
          f"{args.reps} calls of {s['generations']}) | "
          f"{report['env_steps_per_s']:,.0f} env steps/s | retraced {report['retraces']}x")
    return 0


def cmd_plot(args) -> int:
    from evojax_lab.plots import plot_run

    try:
        written = plot_run(args.run, args.out)
    except (ValueError, OSError) as err:
        raise CLIError(str(err)) from None
    for path in written:
        print(path)
    return 0


def _run_info(run: Path) -> dict:
    """What ``info`` reports about a run folder (files only)."""
    from evojax_lab import checkpoint

    try:
        config = runs.read_config(run)
    except ValueError as err:
        raise CLIError(str(err)) from None
    out = {"run": str(run), "config": config}
    path = run / checkpoint.CHECKPOINT_NAME
    if path.is_file():
        try:
            header = checkpoint.info(path)
        except (checkpoint.CheckpointError, OSError) as err:
            out["checkpoint"] = {"file": str(path), "readable": False, "problem": str(err)}
        else:
            meta = header.get("metadata", {})
            out["checkpoint"] = {"file": str(path), "readable": True,
                                 "format_version": header.get("version"),
                                 "bytes": path.stat().st_size,
                                 "generation": meta.get("generation"),
                                 "generations": meta.get("generations")}
    else:
        out["checkpoint"] = None
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        lines = [line for line in metrics.read_text().splitlines() if line.strip()]
        try:
            out["last_metrics"] = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError as err:
            out["last_metrics"] = {"problem": f"{metrics} last line is not JSON: {err}"}
    summary = run / "summary.json"
    if summary.is_file():
        try:
            out["summary"] = json.loads(summary.read_text())
        except json.JSONDecodeError as err:
            out["summary"] = {"problem": f"{summary} is not valid JSON: {err}"}
    return out


def cmd_info(args) -> int:
    info = _run_info(Path(args.run))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    config, ckpt = info["config"], info["checkpoint"]
    print(f"run folder   {info['run']}")
    print(f"task         {config['task']} | strategy {config['strategy']} | seed "
          f"{config['seed']}")
    skip = {"task", "strategy", "seed", "devices", "processes"}
    print("settings     " + ", ".join(f"{k}={v}" for k, v in config.items() if k not in skip))
    if ckpt is None:
        print("checkpoint   none (trained with --checkpoint-every 0, or not started)")
    elif not ckpt["readable"]:
        print(f"checkpoint   UNREADABLE: {ckpt['problem']}")
    else:
        done = ckpt["generation"] == ckpt["generations"]
        state = "finished" if done else "resumable with `evojax-lab train --resume`"
        print(f"checkpoint   generation {ckpt['generation']} of {ckpt['generations']} "
              f"({state}); format {ckpt['format_version']}, {ckpt['bytes']:,} bytes")
    row = info.get("last_metrics")
    if row:
        fields = ("generation", "best_fitness", "mean_fitness", "solution_fitness", "steps")
        print("last metrics " + ", ".join(f"{k}={row[k]}" for k in fields if k in row))
    summary = info.get("summary")
    if summary and "final_mean_return" in summary:
        print(f"final score  {summary['final_mean_return']:.4g} ± "
              f"{summary['final_std_return']:.3g} over {summary['final_episodes']} episodes")
    return 0


def cmd_replay(args) -> int:
    import jax
    from flax import serialization

    import evojax_lab as el

    run = Path(args.run)
    obs_stats = None  # observation statistics of a run trained with --obs-norm
    if run.is_file():  # a genome file
        data = run.read_bytes()
        try:
            meta = el.genome.info(data)["metadata"] or {}
        except ValueError as err:
            raise CLIError(f"{run}: {err}") from None
        task_name = args.task or meta.get("task")
        if not task_name:
            raise CLIError(f"{run} does not name its task: pass --task")
        hidden = args.hidden or tuple(meta.get("hidden", (32, 32)))
        task, policy, template = _replay_policy(el, task_name, hidden)
        try:
            params = el.genome.decode(data, template)
        except ValueError as err:
            raise CLIError(f"{run}: {err}") from None
        if meta.get("obs_norm"):  # the statistics were saved beside the genome
            obs_stats = _load_obs_stats(el, run.parent / OBS_STATS_NAME, task)
        print(f"{run}: {el.genome.info(data)['num_mutations']} mutations, {len(data)} bytes")
    else:
        config_path, params_path = run / "config.json", run / "params.msgpack"
        for p in (config_path, params_path):
            if not p.is_file():
                raise CLIError(f"{p} not found: give a run folder written by `evojax-lab "
                               "train` or a .genome file")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise CLIError(f"{config_path} is not valid JSON: {err}") from None
        task_name = args.task or config.get("task")
        hidden = args.hidden or tuple(config.get("hidden", (32, 32)))
        task, policy, template = _replay_policy(el, task_name, hidden)
        try:
            params = serialization.from_bytes(template, params_path.read_bytes())
        except Exception as err:  # msgpack / structure mismatch: name the file, no traceback
            raise CLIError(f"{params_path} is not a parameter file for this policy: {err}") \
                from None
        if config.get("obs_norm"):
            obs_stats = _load_obs_stats(el, run / OBS_STATS_NAME, task)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.episodes)
    returns = jax.jit(jax.vmap(
        lambda k: el.rollout(k, task, policy, params, obs_norm=obs_stats)[0]
    ))(keys)
    print(f"{task_name}: mean return {float(returns.mean()):.1f} ± {float(returns.std()):.1f} "
          f"over {args.episodes} episodes")
    return 0


def _load_obs_stats(el, path: Path, task):
    """The final observation statistics of a ``--obs-norm`` run (``obs_stats.msgpack``)."""
    import numpy as np
    from flax import serialization

    if not path.is_file():
        raise CLIError(f"{path} not found: the run was trained with --obs-norm and its policy "
                       "needs the observation statistics")
    template = el.policies.normalization.obs_stats_init(task.observation_shape)
    try:
        stats = serialization.from_bytes(template, path.read_bytes())
        if any(np.shape(a) != np.shape(b) for a, b in zip(stats, template, strict=True)):
            raise ValueError(f"shapes {[np.shape(a) for a in stats]} do not match the task's "
                             f"observation shape {tuple(task.observation_shape)}")
    except Exception as err:  # msgpack / structure mismatch: name the file, no traceback
        raise CLIError(f"{path} is not an observation statistics file for this task: "
                       f"{str(err).splitlines()[0] if str(err) else repr(err)}") from None
    return stats


def _replay_policy(el, task_name, hidden):
    import jax

    try:
        task = el.tasks.make(task_name)
    except ValueError as err:
        raise CLIError(str(err)) from None
    policy = el.policies.for_task(task, hidden=tuple(hidden))
    template = policy.init(jax.random.PRNGKey(0), jax.numpy.zeros(task.observation_shape))
    return task, policy, template


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.explicit = _explicit_options(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _setup_devices(args)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "replay":
            return cmd_replay(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "plot":
            return cmd_plot(args)
        if args.command == "info":
            return cmd_info(args)
    except CLIError as err:
        print(f"evojax-lab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        folder = getattr(args, "checkpoint_dir", None)
        hint = ""
        if folder is not None and (Path(folder) / "checkpoint.ckpt").is_file():
            hint = f"; continue with: evojax-lab train --resume {folder}"
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
