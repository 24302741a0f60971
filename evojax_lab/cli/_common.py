"""What every ``evojax-lab`` command shares: settings, option types, one-line errors, devices."""

from __future__ import annotations

import argparse
import math
import os

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
_SIZED_BY_GENERATIONS = runs.SIZED_BY_GENERATIONS
# Default generations per jitted block between host updates (progress, logs, checkpoints):
# benchmarks/progress_overhead.py measures the cost of the host updates against one jitted call.
DEFAULT_LOG_EVERY = 10
DEFAULT_CHECKPOINT_EVERY = 50
# Checkpoints `train` keeps (the latest and the ones before it).
DEFAULT_KEEP = 3
RECORD_FIELDS = ("fitness", "behavior", "steps")
# Final observation statistics of a --obs-norm run (next to params.msgpack).
OBS_STATS_NAME = runs.OBS_STATS_NAME


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _hidden(text: str) -> tuple[int, ...]:
    """argparse type: hidden widths ``32,32``; ``none`` for a linear policy (no hidden layer)."""
    if text.strip().lower() == "none":
        return ()
    items = [w.strip() for w in text.split(",")]
    if not all(w.isdigit() and int(w) >= 1 for w in items):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated widths >= 1 (e.g. 32,32; none for a linear "
            f"policy), got {text!r}")
    return tuple(int(w) for w in items)


def _seed(text: str) -> int:
    """argparse type: a seed JAX accepts (a 64-bit signed integer)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must fit in 64 bits (|seed| < 2**63), got {text}")
    return value


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


def _strategy(text: str) -> str:
    """argparse type: a registered strategy or ``evosax:<Algorithm>``. The algorithm is looked
    up later (:func:`_settings`): importing evosax starts JAX's backend, which must wait for
    the device options."""
    if text in STRATEGIES:
        return text
    if registry.is_evosax(text):
        if not text[len(registry.EVOSAX_PREFIX):].isidentifier():
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (evosax:<Algorithm> names an evosax algorithm "
                f"class, e.g. {registry.EVOSAX_PREFIX}CMA_ES)")
        return text
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(STRATEGIES)}, or "
        f"{registry.EVOSAX_PREFIX}<Algorithm> for an evosax algorithm, e.g. "
        f"{registry.EVOSAX_PREFIX}CMA_ES)")


STRATEGY_HELP = ("strategy: " + ", ".join(STRATEGIES) + ", or evosax:<Algorithm> (any evosax "
                 "algorithm, e.g. evosax:CMA_ES; pip install 'evojax_lab[evosax]')")


def _record(text: str) -> tuple[str, ...]:
    fields = tuple(f for f in text.replace(" ", "").split(",") if f)
    unknown = [f for f in fields if f not in RECORD_FIELDS]
    if unknown or not fields:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(RECORD_FIELDS)}, got {text!r}"
        )
    return fields


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    try:
        settings = registry.settings(args.strategy, args.task)
    except (ValueError, ImportError) as err:  # an evosax:<Algorithm> evosax does not have
        raise CLIError(f"--strategy {args.strategy}: {err}") from None
    for name in _OPTION_NAMES:
        value = getattr(args, name, None)  # bench has only some of train's options
        if value is not None:
            if name not in settings:
                raise CLIError(f"--{name.replace('_', '-')} does not apply to {args.strategy}")
            settings[name] = value
    return settings


def _build(args, config: dict):
    """``runs.build(config)``; an error names where the settings the user did not type came
    from (a preset, the defaults), unless they all come from a config file."""
    try:
        return runs.build(config)
    except (ValueError, TypeError, ImportError) as err:  # ImportError: evosax:<Algorithm>
        message = str(err)
        if not (isinstance(err, ImportError) or getattr(args, "config", None)
                or getattr(args, "resume", None)):
            message = registry.explain(message, args.strategy, args.task,
                                       getattr(args, "explicit", set()))
        raise CLIError(message) from None


def _block_size(generations: int, target: int) -> int:
    """Generations per jitted block: the largest divisor of ``generations`` not above
    ``target`` (one compiled block length) unless that is below half the target; then
    ``target`` itself (the last, shorter block compiles once more)."""
    target = max(1, min(target, generations))
    divisor = max(d for d in range(1, target + 1) if generations % d == 0)
    return divisor if 2 * divisor >= target else target


def _explicit_options(argv) -> set[str]:
    """Destinations of the options given on the command line (not defaults)."""
    from evojax_lab.cli import build_parser

    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv))) - {"command"}
    except SystemExit:  # (already parsed once: cannot happen)
        return set()
