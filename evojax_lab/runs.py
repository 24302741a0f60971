"""Run folders: what ``evojax-lab train`` writes, rebuilt in Python.

A run folder's ``config.json`` holds every setting that shapes the run (task, strategy, seed,
the strategy's settings, the run settings); :func:`build` turns such a config into the task,
policy, strategy and trainer the CLI trained with (the CLI itself builds them here), and
:func:`load_run` gives a notebook the whole run back::

    run = el.load_run("runs/CartPole-v1_openai_es_20261129-101500")
    run.config, run.metrics, run.solution          # inspect, replay, plot
    result = run.resume(generations=200)           # continue the run to 200 generations

``resume`` continues from the folder's checkpoint with the run's own key, so it ends exactly
where an uninterrupted run of that length ends; it appends to the folder's metrics files and
keeps checkpointing there (as ``evojax-lab train --resume`` does, without rewriting the
solution files and plots, which the CLI's resume also refreshes).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evojax_lab import storage
from evojax_lab.driver import on_start
from evojax_lab.loggers import CsvLogger, JsonlLogger
from evojax_lab.strategies import registry
from evojax_lab.train import RECORDABLE

#: Strategies whose settings use ``chunk_size`` (the ES family) and whose state is sized by
#: ``generations`` (a run of them cannot change its length on resume).
CHUNKED = ("openai_es", "ns_es", "nsr_es", "nsra_es")
SIZED_BY_GENERATIONS = ("deep_ga", "ga_ns", "ns_es", "nsr_es", "nsra_es")
CONFIG_NAME = "config.json"


#: Version of the ``config.json`` layout :class:`RunConfig` writes (folders without one: 1).
CONFIG_VERSION = 1


def strategy_settings(config: dict) -> dict:
    """The strategy's settings of a run config (``hidden`` as a tuple)."""
    name = config["strategy"]
    known = registry.defaults(name)  # an unknown strategy raises, naming the registered ones
    missing = [k for k in known if k not in config]
    if missing:
        raise ValueError(f"the run config lacks {name}'s setting(s) {', '.join(missing)}")
    settings = {k: config[k] for k in known}
    hidden = settings["hidden"]
    if not (isinstance(hidden, (list, tuple)) and all(_is_int(w) and w >= 1 for w in hidden)):
        raise ValueError(f"run config field 'hidden' must be a list of widths >= 1, got "
                         f"{hidden!r}")
    settings["hidden"] = tuple(hidden)
    return settings


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(data: dict, name: str, default, ok, want: str):
    """``data[name]`` (or ``default``) if ``ok(value)``; else a one-line error naming it."""
    value = data.get(name, default)
    if not ok(value):
        raise ValueError(f"run config field {name!r} must be {want}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting that shapes a run, resolved once (what a run folder's ``config.json``
    holds, and what ``evojax-lab train --config FILE`` runs).

    Attributes:
        task, strategy, seed: what is trained, how, from which key.
        settings: the strategy's settings (``el.strategies.settings(strategy, task, ...)``,
            including ``generations``, ``episodes`` and ``hidden``).
        eval_episodes, chunk_size, record, obs_norm, action_noise: the ``make_train`` options.
        version: the layout version (:data:`CONFIG_VERSION`).

    ``to_dict`` / ``from_dict`` use the flat ``config.json`` layout (the settings beside the
    other fields); ``from_dict(to_dict(c)) == c`` and ``from_json(to_json(c)) == c``.
    """

    task: str
    strategy: str
    seed: int = 0
    settings: dict = dataclasses.field(default_factory=dict)
    eval_episodes: int = 10
    chunk_size: int | None = None
    record: tuple = ()
    obs_norm: bool = False
    action_noise: float = 0.0
    version: int = CONFIG_VERSION

    @classmethod
    def resolve(cls, task: str, strategy: str, seed: int = 0, **options) -> RunConfig:
        """The config of ``strategy`` on ``task``: its defaults, the task's preset, then
        ``options`` (strategy settings or ``make_train`` options, by name)."""
        fields = {"eval_episodes", "chunk_size", "record", "obs_norm", "action_noise"}
        run = {k: v for k, v in options.items() if k in fields}
        settings = registry.settings(strategy, task, **{k: v for k, v in options.items()
                                                        if k not in fields})
        return cls.from_dict({"task": task, "strategy": strategy, "seed": seed, **settings,
                              **run})

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Read the flat layout (extra informational keys such as ``devices`` are ignored)."""
        if not isinstance(data, dict):
            raise ValueError(f"a run config is a JSON object, got {type(data).__name__}")
        version = int(data.get("version", 1))
        if version > CONFIG_VERSION:
            raise ValueError(f"run config version {version} was written by a newer evojax_lab "
                             f"(this one reads up to {CONFIG_VERSION})")
        missing = [k for k in ("task", "strategy", "seed") if k not in data]
        if missing:
            raise ValueError(f"not a run configuration (missing {', '.join(missing)})")
        record = _field(data, "record", (), lambda v: isinstance(v, (list, tuple)) and set(v)
                        <= set(RECORDABLE), f"a list of fields from {sorted(RECORDABLE)}")
        return cls(
            task=_field(data, "task", None, lambda v: isinstance(v, str), "a task name"),
            strategy=_field(data, "strategy", None, lambda v: isinstance(v, str),
                            "a strategy name"),
            seed=_field(data, "seed", 0, lambda v: _is_int(v) and -(2**63) <= v < 2**63,
                        "an integer that fits in 64 bits"),
            settings=strategy_settings(data),
            eval_episodes=_field(data, "eval_episodes", 10, lambda v: _is_int(v) and v >= 0,
                                 "an integer >= 0"),
            chunk_size=_field(data, "chunk_size", None,
                              lambda v: v is None or _is_int(v) and v >= 1,
                              "null or an integer >= 1"),
            record=tuple(record),
            obs_norm=_field(data, "obs_norm", False, lambda v: isinstance(v, bool),
                            "true or false"),
            action_noise=float(_field(
                data, "action_noise", 0.0, lambda v: (_is_int(v) or isinstance(v, float)) and
                math.isfinite(v) and v >= 0, "a finite number >= 0")),
            version=CONFIG_VERSION)

    def to_dict(self) -> dict:
        """The flat ``config.json`` layout (JSON types only)."""
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()}
        return {"version": self.version, "task": self.task, "strategy": self.strategy,
                "seed": self.seed, **settings, "eval_episodes": self.eval_episodes,
                "chunk_size": self.chunk_size, "record": list(self.record),
                "obs_norm": self.obs_norm, "action_noise": self.action_noise}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid JSON: {err}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path) -> RunConfig:
        """A config file or a run folder's ``config.json`` (one-line errors naming the file)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ValueError(f"{path} not found: give a run config file or a run folder")
        try:
            return cls.from_json(path.read_text())
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{path}: {err}") from None


def build(config: dict, *, generations: int | None = None):
    """``(task, policy, strategy, trainer)`` of a run config (a ``config.json``).

    Args:
        config: the run's settings: ``task``, ``strategy``, the strategy's settings
            (``el.strategies.settings``: ``pop_size``, ..., ``generations``, ``episodes``,
            ``hidden``), and ``eval_episodes``, ``chunk_size``, ``record``, ``obs_norm``,
            ``action_noise`` (the last three optional: off).
        generations: a length other than the config's (not for strategies whose state is sized
            by it: ``SIZED_BY_GENERATIONS``).

    Raises:
        ValueError: an unknown task or strategy, a setting that does not fit, or a length
            change the strategy cannot take.
    """
    import evojax_lab as el

    if isinstance(config, RunConfig):
        config = config.to_dict()
    s = strategy_settings(config)
    name = config["strategy"]
    if generations is not None and int(generations) != s["generations"]:
        if name in SIZED_BY_GENERATIONS:
            raise ValueError(f"generations cannot change for {name}: its genome/archive "
                             f"capacity was sized for {s['generations']}")
        run_generations = int(generations)
    else:
        run_generations = s["generations"]
    task = el.tasks.make(config["task"])
    if config.get("action_noise") and task.action_space.kind != "continuous":
        raise ValueError(f"action_noise needs a continuous action space; {config['task']} has "
                         f"a {task.action_space.kind} one")
    policy = el.policies.for_task(task, hidden=s["hidden"])
    options = {k: v for k, v in s.items() if k not in ("episodes", "hidden")}
    if name in CHUNKED:
        options["chunk_size"] = config.get("chunk_size")
    strategy = el.strategies.make(name, task, **options)
    trainer = el.make_train(
        task, policy, strategy, generations=run_generations, episodes=s["episodes"],
        eval_episodes=config["eval_episodes"], chunk_size=config.get("chunk_size"),
        record=tuple(config.get("record", ())), obs_norm=bool(config.get("obs_norm", False)),
        action_noise=float(config.get("action_noise", 0.0)))
    return task, policy, strategy, trainer


def read_config(folder) -> dict:
    """A run folder's ``config.json`` (one-line errors for a missing or broken file)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{path} not found: {folder} is not a run folder written by "
                         "`evojax-lab train`")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    missing = [k for k in ("task", "strategy", "seed", "eval_episodes") if k not in config]
    if not isinstance(config, dict) or missing:
        raise ValueError(f"{path} is not a run configuration (missing {', '.join(missing)})")
    return config


@dataclasses.dataclass(frozen=True)
class Run:
    """A run folder loaded by :func:`load_run`.

    Attributes:
        folder: the run folder.
        config: its ``config.json``.
        task, policy, strategy, trainer: rebuilt from the config (:func:`build`).
        key: the run's key (``PRNGKey(seed)``).
        carry: the :class:`~evojax_lab.train.TrainCarry` of the folder's checkpoint (``None``
            without one).
        generation: the generation the checkpoint holds (0 without one).
        metrics: the metrics history up to ``generation`` (NumPy arrays with a leading
            generation axis; from the checkpoint, else from ``metrics.jsonl``).
        solution: the parameters the strategy deploys at ``generation`` (without a
            checkpoint: ``params.msgpack``, the solution the run wrote at its end).
        obs_stats: the observation statistics to deploy the solution with (``--obs-norm``
            runs), else ``None``.
    """

    folder: Path
    config: dict
    task: Any
    policy: Any
    strategy: Any
    trainer: Any
    key: jax.Array
    carry: Any
    generation: int
    metrics: dict
    solution: Any
    obs_stats: Any

    def resume(self, generations: int | None = None, *, every: int = 50, block: int = 10,
               loggers=(), progress: bool | str = False, keep: int = 3):
        """Continue the run from its checkpoint to ``generations`` (default: the config's).

        The folder's ``config.json`` gets the new length, its metrics files (``metrics.jsonl``,
        ``metrics.csv``) the new generations, and the checkpoint is saved every ``every``
        generations and at the end,
        ``keep`` checkpoints kept in all (as ``evojax-lab train --keep``, default 3).
        Returns the :class:`~evojax_lab.TrainResult` of the whole run, equal to what an
        uninterrupted run of that length returns.
        """
        if self.carry is None:
            raise ValueError(f"{storage.root(self.folder)} holds no checkpoint: nothing to "
                             "resume (was the run trained with --checkpoint-every 0?)")
        trainer, callbacks = self.trainer, []
        if generations is not None and int(generations) != trainer.generations:
            trainer = build(self.config, generations=generations)[3]
            # the folder's config says how long the run is (as `train --resume` writes it), so
            # a later load_run sizes its trainer for the checkpoints this resume writes; written
            # once the checkpoint is restored (a failed resume changes nothing)
            config = {**self.config, "generations": trainer.generations}
            text = json.dumps(config, indent=2) + "\n"
            callbacks.append(on_start(lambda _: (self.folder / CONFIG_NAME).write_text(text)))
        files = [JsonlLogger(self.folder / "metrics.jsonl"),
                 CsvLogger(self.folder / "metrics.csv")]
        return storage.run_with_checkpoints(
            trainer, self.key, self.folder, every=every, block=min(block, every),
            loggers=[*files, *loggers], progress=progress,
            metadata={k: self.config[k] for k in ("task", "strategy", "seed")}, keep=keep,
            callbacks=callbacks, settings=run_settings(self.config))


def run_settings(config: dict) -> dict:
    """The fields of a run's ``config.json`` that identify its checkpoints: all but its length,
    where it ran and the options of its files (``generations``, ``devices``, ``processes``,
    ``options``), which a resume may change."""
    return {k: v for k, v in config.items()
            if k not in ("generations", "devices", "processes", "options")}


#: The final observation statistics of an ``obs_norm`` run, beside ``params.msgpack``.
OBS_STATS_NAME = "obs_stats.msgpack"


def load_obs_stats(path, task):
    """The observation statistics a run saved (``obs_stats.msgpack``, flax msgpack of an
    :class:`~evojax_lab.policies.ObsStats`), checked against ``task``'s observation shape."""
    from flax import serialization

    from evojax_lab.policies.normalization import obs_stats_init

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} not found: the run was trained with --obs-norm and its policy "
                         "needs the observation statistics")
    template = obs_stats_init(task.observation_shape)
    try:
        stats = serialization.from_bytes(template, path.read_bytes())
        if any(np.shape(a) != np.shape(b) for a, b in zip(stats, template, strict=True)):
            raise ValueError(f"shapes {[np.shape(a) for a in stats]} do not match the task's "
                             f"observation shape {tuple(task.observation_shape)}")
    except Exception as err:  # msgpack / structure mismatch: name the file, no traceback
        raise ValueError(f"{path} is not an observation statistics file for this task: "
                         f"{str(err).splitlines()[0] if str(err) else repr(err)}") from None
    return stats


def _jsonl_metrics(path: Path) -> dict:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    names = list(dict.fromkeys(k for r in rows for k in r))
    return {k: np.asarray([np.nan if r.get(k) is None else r[k] for r in rows]) for k in names}


def load_run(folder) -> Run:
    """Load a run folder written by ``evojax-lab train`` (see the module docstring).

    Raises:
        ValueError: the folder is not a run folder, its config does not build, or its
            checkpoint does not belong to it (:class:`~evojax_lab.checkpoint.CheckpointError`).
    """
    from flax import serialization

    folder = Path(folder)
    config = read_config(folder)
    task, policy, strategy, trainer = build(config)
    key = jax.random.PRNGKey(int(config["seed"]))
    carry, generation, metrics, obs_stats = None, 0, {}, None
    found = storage.restore(folder, trainer.init(key), key, trainer.generations,
                            storage.identity(trainer, run_settings(config)))
    if found is not None:
        carry, past, generation = found
        metrics = {k: np.concatenate([np.asarray(b[k]) for b in past]) for k in past[0]} \
            if past else {}
        solution = strategy.solution(carry.state)
        obs_stats = carry.obs_stats
    else:
        metrics = _jsonl_metrics(folder / "metrics.jsonl")
        params_path = folder / "params.msgpack"
        if not params_path.is_file():
            raise ValueError(f"{folder} holds neither a checkpoint ({storage.CHECKPOINTS}/) nor "
                             "params.msgpack: nothing to load")
        template = trainer.initial_params(jax.random.PRNGKey(0))
        solution = serialization.from_bytes(template, params_path.read_bytes())
        generation = int(metrics["generation"][-1]) if "generation" in metrics else 0
        if config.get("obs_norm"):
            obs_stats = load_obs_stats(folder / OBS_STATS_NAME, task)
    return Run(folder, config, task, policy, strategy, trainer, key, carry, generation,
               metrics, solution, obs_stats)


__all__ = ["CONFIG_VERSION", "OBS_STATS_NAME", "Run", "RunConfig", "build", "load_obs_stats",
           "load_run", "read_config", "run_settings", "strategy_settings"]
