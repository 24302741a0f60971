"""``evojax-lab bench``: time a strategy on this machine's devices."""

from __future__ import annotations

import json
import time

from evojax_lab.cli._common import (
    STRATEGY_HELP,
    _build,
    _device_options,
    _hidden,
    _positive_int,
    _seed,
    _settings,
    _strategy,
)


def add_parser(sub) -> None:
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
    b.add_argument("--strategy", default="openai_es", type=_strategy, metavar="STRATEGY",
                   help=f"{STRATEGY_HELP} (default: openai_es)")
    b.add_argument("--generations", type=_positive_int, default=10,
                   help="generations per timed call (default: 10)")
    b.add_argument("--reps", type=_positive_int, default=3,
                   help="timed calls after the compiling one (default: 3)")
    b.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    b.add_argument("--pop-size", type=_positive_int, help="population size (even for ES)")
    b.add_argument("--episodes", type=_positive_int, help="episodes per member per generation")
    b.add_argument("--hidden", type=_hidden,
                   help="hidden layer widths, e.g. 32,32 (none: a linear policy)")
    b.add_argument("--chunk-size", type=_positive_int,
                   help="evaluate the population this many members at a time (bounded memory)")
    b.add_argument("--obs-norm", action="store_true", help="normalize observations (as train)")
    b.add_argument("--json", action="store_true", help="print one JSON object instead")
    _device_options(b)


def cmd_bench(args) -> int:
    import statistics

    s = _settings(args)
    s["generations"] = args.generations
    import jax
    import numpy as np

    from evojax_lab.core.compiles import count_compilations

    config = {"task": args.task, "strategy": args.strategy, **s, "eval_episodes": 0,
              "chunk_size": args.chunk_size, "obs_norm": args.obs_norm}
    task, policy, strategy, trainer = _build(args, config)
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
