"""``evojax-lab train``: train a policy and write a run folder (``--resume``, ``--config``)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
import sys
import time
from pathlib import Path

from evojax_lab import runs
from evojax_lab.cli._common import (
    _RUN_OPTIONS,
    _SIZED_BY_GENERATIONS,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_KEEP,
    DEFAULT_LOG_EVERY,
    DEFAULTS,
    GENOME_STRATEGIES,
    OBS_STATS_NAME,
    STRATEGY_HELP,
    CLIError,
    _block_size,
    _build,
    _device_options,
    _hidden,
    _nonnegative_float,
    _nonnegative_int,
    _positive_float,
    _positive_int,
    _record,
    _seed,
    _settings,
    _strategy,
)
from evojax_lab.strategies import registry


def add_parser(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a policy on a task and write a run folder",
        description="Train a policy with an evolution strategy. Settings not given come from "
        "the task's preset (see --list-presets) or the general defaults. Generations run in "
        "jitted blocks of --log-every; after each block the progress bar (with the current "
        "score) and the metrics files are updated. Writes config.json, metrics.jsonl, "
        "metrics.csv, checkpoints/ (every --checkpoint-every generations and at the end), "
        "curve.png, params.msgpack, summary.json (and elite.genome for GA strategies, "
        "population_<field>.npy with --record, obs_stats.msgpack with --obs-norm, "
        "tensorboard/ with --tensorboard) to the run "
        "folder. An interrupted run continues with --resume RUN_DIR and ends exactly as the "
        "uninterrupted run would.",
    )
    t.add_argument("--task", default="CartPole-v1", help="task name (default: CartPole-v1)")
    t.add_argument("--strategy", default="openai_es", type=_strategy, metavar="STRATEGY",
                   help=f"{STRATEGY_HELP} (default: openai_es)")
    t.add_argument("--generations", type=_positive_int,
                   help="number of generations (with --resume: the total to reach)")
    t.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
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
    t.add_argument("--hidden", type=_hidden,
                   help="hidden layer widths, e.g. 32,32 (none: a linear policy)")
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
                   help="commit a checkpoint to RUN_DIR/checkpoints/ every K generations, "
                   "rounded up to a multiple of --log-every, and at the end; 0: no checkpoints "
                   f"(default: {DEFAULT_CHECKPOINT_EVERY})")
    t.add_argument("--keep", type=_positive_int, metavar="N", default=DEFAULT_KEEP,
                   help="checkpoints kept: the newest N, as checkpoints/<generation>/ "
                   f"(default: {DEFAULT_KEEP})")
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
    t.add_argument("--overwrite", action="store_true",
                   help="train into --run-dir even if it holds a run: the old folder is moved "
                   "aside to RUN_DIR.replaced-<n> first (never deleted)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    _device_options(t)


#: Options that shape a run's files but not its numbers: saved in config.json ("options") and
#: kept by --resume unless given again.
_FILE_OPTIONS = ("checkpoint_every", "log_every", "keep", "final_episodes", "tensorboard")


def _keep_saved_options(args, config: dict) -> None:
    """A resumed run keeps the saved file options the command line does not give again."""
    saved = config.get("options", {})
    for name in _FILE_OPTIONS:
        if name in saved and name not in getattr(args, "explicit", set()):
            setattr(args, name, saved[name])


def _claim(run_dir: Path, overwrite: bool) -> tuple[Path, Path | None]:
    """Create the folder of a fresh run; a folder holding a run is refused, or with
    ``overwrite`` moved aside to ``<name>.replaced-<n>`` (never deleted). Returns the folder and
    where the old run went (``None``: there was none)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CLIError(f"--run-dir {run_dir} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise CLIError(f"{run_dir} already holds a run; continue it with `evojax-lab train "
                           f"--resume {run_dir}`, or pass --overwrite to move it aside")
        n = 1
        while (aside := run_dir.with_name(f"{run_dir.name}.replaced-{n}")).exists():
            n += 1
        run_dir.rename(aside)
        print(f"moved the run in {run_dir} aside to {aside}", file=sys.stderr)
        run_dir.mkdir(parents=True)
        return run_dir, aside
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, None


@contextlib.contextmanager
def _discarded_unless_started(run_dir: Path | None, moved_aside: Path | None = None):
    """On any failure, remove ``run_dir`` (a fresh run's folder, created by this command) if
    the run never finished a generation block: no checkpoint and no metrics row; the run that
    ``--overwrite`` moved aside (``moved_aside``) goes back in its place. A failed command
    leaves the folders as it found them. ``None``: nothing to discard (a resume, a worker)."""
    try:
        yield
    except BaseException:
        from evojax_lab import storage

        metrics = run_dir / "metrics.jsonl" if run_dir is not None else None
        if metrics is not None and not (metrics.is_file() and metrics.stat().st_size) and \
                not storage.has_checkpoint(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            if moved_aside is not None and not run_dir.exists():
                moved_aside.rename(run_dir)
                print(f"moved the run in {moved_aside} back to {run_dir}", file=sys.stderr)
        raise


def _new_default_folder(task: str, strategy: str) -> Path:
    """``runs/<task>_<strategy>_<time>``, created exclusively (``-2``, ``-3``, ... when a run
    started in the same second already has the name)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{task}_{strategy.replace(':', '-')}_{stamp}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise CLIError(f"no free run folder name next to {base}")


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
    if run_dir.is_file():
        raise CLIError(f"--resume {run_dir} is a file, not a run folder")
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
        s = {k: config[k] for k in registry.defaults(args.strategy)}
    except ImportError as err:
        raise CLIError(f"{config_path}: {err}") from None
    except json.JSONDecodeError as err:
        raise CLIError(f"{config_path} is not valid JSON: {err}") from None
    except KeyError as err:
        raise CLIError(f"{config_path} is not a run configuration: it lacks {err}") from None
    except (TypeError, ValueError) as err:
        raise CLIError(f"{config_path} is not a run configuration: {err}") from None
    s["hidden"] = tuple(s["hidden"])
    if args.generations is not None and args.generations != s["generations"]:
        if args.strategy in _SIZED_BY_GENERATIONS:
            raise CLIError(f"--generations cannot change on --resume for {args.strategy}: its "
                           f"genome/archive capacity was sized for {s['generations']}")
        s["generations"] = args.generations
    from evojax_lab import storage

    if not storage.has_checkpoint(run_dir):
        raise CLIError(f"{storage.root(run_dir)} holds no checkpoint: nothing to resume (was the "
                       "run trained with --checkpoint-every 0?)")
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
    except (ValueError, ImportError) as err:  # ImportError: evosax:<Algorithm> without evosax
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
        if args.overwrite:
            raise CLIError("--overwrite cannot be given with --resume (a resume continues the "
                           "run in its folder)")
        run_dir, config, s = _resume(args)
        _keep_saved_options(args, config)
        from evojax_lab import storage

        try:
            storage.check_writable(run_dir)  # before anything is written or compiled
        except PermissionError as err:
            raise CLIError(f"cannot resume: {err}") from None
    else:
        s = _settings(args)
    if args.eval_episodes < 0:
        raise CLIError(f"--eval-episodes must be >= 0, got {args.eval_episodes}")
    import jax
    import numpy as np
    from flax import serialization

    import evojax_lab as el
    from evojax_lab import checkpoint, storage
    from evojax_lab.driver import on_start
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
        if args.run_dir is None and jax.process_count() > 1:
            raise CLIError("a multi-process run needs --run-dir (every process must write to "
                           "the same folder)")
        run_dir = None if args.run_dir is None else Path(args.run_dir)
        try:
            config = runs.RunConfig.from_dict({
                "task": args.task, "strategy": args.strategy, "seed": args.seed, **s,
                "eval_episodes": args.eval_episodes, "chunk_size": args.chunk_size,
                "record": record, "obs_norm": args.obs_norm,
                "action_noise": args.action_noise}).to_dict()
        except (ValueError, TypeError) as err:
            raise CLIError(str(err)) from None
    config.update(generations=s["generations"], devices=[str(d) for d in jax.devices()],
                  processes=jax.process_count(),
                  options={name: getattr(args, name) for name in _FILE_OPTIONS})
    task, policy, strategy, trainer = _build(args, config)
    moved_aside = None
    if not args.resume and lead:  # the folder is claimed once the run is known to build
        run_dir, moved_aside = _claim(run_dir, args.overwrite) if run_dir is not None else \
            (_new_default_folder(args.task, args.strategy), None)
    with _discarded_unless_started(run_dir if not args.resume and lead else None, moved_aside):
        checkpoint_dir = run_dir if args.checkpoint_every else None  # every process reads it
        args.checkpoint_dir = checkpoint_dir if lead else None  # for the hint after Ctrl-C
        if not lead:  # a worker's outputs go to a scratch folder: process 0 owns the run folder
            import tempfile

            run_dir = Path(tempfile.mkdtemp(prefix="evojax-lab-worker-"))
        run_dir.mkdir(parents=True, exist_ok=True)

        def write_config(generation):  # once the run starts: a resume that fails changes nothing
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
            result = storage.run_with_checkpoints(
                trainer, jax.random.PRNGKey(args.seed), checkpoint_dir, every=every, block=block,
                resume=bool(args.resume), loggers=loggers, progress=progress,
                metadata={"task": args.task, "strategy": args.strategy, "seed": args.seed},
                keep=args.keep, callbacks=[on_start(write_config)],
                settings=runs.run_settings(config))
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
            shutil.rmtree(run_dir, ignore_errors=True)
            return 0
        print(f"{args.task} {args.strategy}: solution mean return {returns.mean():.1f} "
              f"± {returns.std():.1f} over {args.final_episodes} episodes | {gens} generations, "
              f"{env_steps:.3g} env steps, {train_seconds:.1f} s"
              f"{' (resumed)' if args.resume else ''} | run folder {run_dir}{genome_note}")
        return 0
