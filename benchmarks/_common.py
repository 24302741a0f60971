"""Shared helpers of the benchmark scripts (not part of the library).

Every benchmark runs each configuration in its own Python subprocess (``--worker``): JAX flags
such as the host device count must be set before JAX starts, and the peak resident memory of a
process (``VmHWM``) then belongs to that configuration alone. The driver process never imports
JAX. Workers print one line ``RESULT {json}``; the driver collects them, prints a table and
appends a dated section to ``benchmarks/RESULTS.md``.

Every section records the machine and the device JAX runs on (its default backend, device kind
and count, probed in a fresh process); on a GPU or TPU every worker's ``RESULT`` also carries the
device's peak memory (``memory_stats()["peak_bytes_in_use"]``), listed in the section (for a
benchmark that runs JAX in its own process, that process's peak). On the CPU the peak memory is
the process's ``VmHWM`` (the ``peak RSS`` columns).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
HOST_FLAG = "--xla_force_host_platform_device_count"


# -- worker side ------------------------------------------------------------------------------
def peak_rss_gb() -> float:
    """Peak resident memory of this process in GB (10^9 bytes), from ``VmHWM``.

    ``VmHWM`` belongs to the current address space, so it starts afresh at ``exec`` (unlike
    ``ru_maxrss``, which can carry the parent's high-water mark over a fork).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def timed(fn: Callable[[], object]) -> float:
    """Wall time of ``fn()`` including ``jax.block_until_ready`` on its result."""
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def strong(like, tree):
    """``tree`` with every leaf cast to the dtype of ``like``'s leaf as a strongly typed array.

    evosax's states carry weakly typed scalars whose weak type flips between a jitted loop's
    input and output, so feeding a run its own output would retrace; this pins the types.
    """
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda x, s: jnp.asarray(x, dtype=s.dtype), tree, like)


def device_info() -> dict:
    """JAX's default backend in this process: ``platform`` (cpu, gpu, tpu), the first device's
    ``kind`` (e.g. "cpu", "NVIDIA H200") and the device ``count``."""
    import jax

    return {"platform": jax.default_backend(), "kind": jax.devices()[0].device_kind,
            "count": jax.device_count()}


def device_peak_gb() -> float | None:
    """Peak memory in use on this process's accelerator in GB (10^9 bytes), or None on the CPU.

    The largest ``memory_stats()["peak_bytes_in_use"]`` over the local devices of JAX's default
    backend (GPU, TPU). None where JAX runs on the CPU or a device keeps no statistics: there the
    process's ``VmHWM`` (:func:`peak_rss_gb`) is the figure.
    """
    import jax

    peaks = []
    for device in jax.local_devices():
        if device.platform == "cpu":
            continue
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            peaks.append(stats["peak_bytes_in_use"])
    return max(peaks) / 1e9 if peaks else None


def report(result: dict) -> None:
    """Hand a worker's result to the driver (last stdout line).

    Adds ``peak_rss_gb`` and, when the worker imported JAX, ``device`` (:func:`device_info`) and
    ``device_peak_gb`` (:func:`device_peak_gb`; None on the CPU), unless the worker set them.
    """
    result = dict(result)
    result.setdefault("peak_rss_gb", peak_rss_gb())
    if "jax" in sys.modules:
        result.setdefault("device", device_info())
        result.setdefault("device_peak_gb", device_peak_gb())
    print("RESULT " + json.dumps(result), flush=True)


def worker_args(argv: Sequence[str] | None = None) -> dict | None:
    """The worker's config if this process was started with ``--worker JSON``, else None."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--worker" in argv:
        return json.loads(argv[argv.index("--worker") + 1])
    return None


# -- driver side ------------------------------------------------------------------------------
# The device record of every worker this driver ran, in order: (label, device, device_peak_gb).
# save_section lists the accelerator peaks from it.
WORKER_DEVICES: list[tuple[str, dict | None, float | None]] = []


def worker_env(host_devices: int | None) -> dict:
    """The environment of a worker process (see :func:`run_worker`)."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(HOST_FLAG)]
    if host_devices is not None:
        flags.append(f"{HOST_FLAG}={int(host_devices)}")
    env["XLA_FLAGS"] = " ".join(flags)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # No persistent compilation cache: compile times and first-call times must be real.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def run_worker(script: str | Path, config: dict, *, host_devices: int | None,
               timeout: float | None = None) -> dict:
    """Run ``script --worker config`` in a fresh process and return its ``RESULT``.

    ``host_devices``: the number of CPU host devices to expose (sets ``XLA_FLAGS`` before JAX
    starts); ``None`` removes the flag, so JAX sees its default single CPU device.
    """
    cmd = [sys.executable, str(script), "--worker", json.dumps(config)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=worker_env(host_devices), capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + "\n" + proc.stderr[-8000:] + "\n")
        raise RuntimeError(f"worker {config} failed with exit code {proc.returncode}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_s"] = wall
    label = str(config.get("impl", f"worker {len(WORKER_DEVICES) + 1}"))
    WORKER_DEVICES.append((label, result.get("device"), result.get("device_peak_gb")))
    return result


PROBE = ("import json, jax; d = jax.devices()[0]; print(json.dumps({'platform': "
         "jax.default_backend(), 'kind': d.device_kind, 'count': jax.device_count()}))")


@functools.cache
def probe_device() -> dict:
    """JAX's default backend as a fresh worker process sees it (without host devices):
    ``{"platform", "kind", "count"}``; ``platform`` is "unknown" (and ``error`` says why) when
    JAX cannot start. Probed once per driver, in a subprocess, so the driver never imports JAX
    (and never holds an accelerator)."""
    proc = subprocess.run([sys.executable, "-c", PROBE], env=worker_env(None),
                          capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"platform": "unknown", "kind": "unknown", "count": 0, "error": last[:200]}
    return json.loads(lines[-1])


def device_line(device: dict, workers: Sequence[tuple[str, dict | None, float | None]] = ()
                ) -> str:
    """One line describing the device record: the backend, and on an accelerator the peak
    device memory of each worker (in run order)."""
    text = (f"JAX default backend {device['platform']}, {device['count']} x {device['kind']}"
            + (f" ({device['error']})" if "error" in device else ""))
    peaks = [f"{label} {peak:.2f}" for label, _, peak in workers if peak is not None]
    if peaks:
        return text + ("; peak device memory (memory_stats peak_bytes_in_use) per worker "
                       "process, in run order: " + ", ".join(peaks) + " GB")
    if device["platform"] == "cpu":
        return text + "; peak memory = the process VmHWM (peak RSS)"
    return text


def thinned(rows: Sequence, count: int = 12) -> list:
    """About ``count`` evenly spaced rows of a long table, the last row always included once."""
    step = max(len(rows) // count, 1)
    picked = list(range(0, len(rows), step))
    if rows and picked[-1] != len(rows) - 1:
        picked.append(len(rows) - 1)
    return [rows[i] for i in picked]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return None


def versions() -> dict:
    """Package versions, read from the installed metadata (no JAX import in the driver)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "evosax", "gymnax", "flax", "optax", "evojax_lab"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


#: What the benchmarks themselves write (sections, pictures, a run's JSON beside its script; not
#: ``benchmarks/configs/``): changed, they leave the measured code as it was committed.
OUTPUTS = re.compile(r"benchmarks/(RESULTS\.md|[^/]+\.(png|json))")


def git_revision() -> str:
    """The short commit of the checkout, ``+local changes`` when a tracked file other than a
    benchmark output (:data:`OUTPUTS`) differs from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
        dirty = [line for line in status if not OUTPUTS.fullmatch(line[3:].strip())]
        return rev + ("+local changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    """The machine record: CPU, cores, RAM, OS and the JAX device (:func:`probe_device`)."""
    mem = memory_total_gb()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem, 1) if mem else None,
        "platform": platform.platform(),
        "device": probe_device(),
    }


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(x):
        if isinstance(x, float):
            return f"{x:.4g}"
        return str(x)

    body = [[cell(x) for x in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(
        str(x).ljust(w) for x, w in zip(r, widths, strict=True)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in body]
    return "\n".join(out)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke version (seconds); results are marked as quick")
    parser.add_argument("--no-save", action="store_true",
                        help="print the table only; do not append to benchmarks/RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="Markdown file the dated section is appended to")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def frozen_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> dict:
    """The held-out protocol's ``--config FILE``: a committed JSON object of this script's option
    values (hyperparameters frozen before the run, and the held-out ``first_seed``/``seeds``),
    applied as the parser's defaults; options given on the command line beside it are refused
    (a frozen setting cannot change quietly). Returns ``{"path", "commit"}`` (empty without
    ``--config``). Refuses a file that is not committed as it is (``git status``)."""
    known, _ = parser.parse_known_args(argv)
    if not getattr(known, "config", None):
        return {}
    path = Path(known.config)
    values = json.loads(path.read_text())
    where = str(path.resolve())  # git runs in benchmarks/
    dests = {a.dest for a in parser._actions}
    unknown = sorted(set(values) - dests)
    if unknown:
        raise SystemExit(f"{path}: not options of this script: {', '.join(unknown)}")
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a.startswith("--")
             and a.split("=")[0] not in ("--config", "--no-save", "--results")]
    if given:
        raise SystemExit(f"{path} freezes the settings: {' '.join(given)} cannot be given with it")
    state = subprocess.run(["git", "status", "--porcelain", "--", where], cwd=HERE,
                           capture_output=True, text=True).stdout.strip()
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", where], cwd=HERE,
                             capture_output=True).returncode == 0
    if state or not tracked:
        raise SystemExit(f"{path} must be committed as it is before a held-out run (frozen)")
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", where], cwd=HERE,
                            capture_output=True, text=True).stdout.strip()
    parser.set_defaults(**values)
    return {"path": str(path), "commit": commit}


def fisher_one_sided(a_wins: int, a_runs: int, b_wins: int, b_runs: int) -> float:
    """One-sided Fisher exact test p-value that arm A succeeds more often than arm B."""
    from scipy import stats

    table = [[a_wins, a_runs - a_wins], [b_wins, b_runs - b_wins]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def bootstrap_mean_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 10_000,
                              seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``mean(a) - mean(b)`` (each arm resampled with
    replacement, independently; a fixed seed: the same data give the same interval)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    diffs = (rng.choice(a, (resamples, a.size)).mean(1)
             - rng.choice(b, (resamples, b.size)).mean(1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def started() -> dict:
    """Snapshot taken when a benchmark starts (date, load)."""
    return {"date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "load_start": load_average(), "t0": time.perf_counter()}


def save_section(args, title: str, start: dict, settings: dict, table: str,
                 checks: Sequence[tuple[str, float, str, str]] = (),
                 notes: Sequence[str] = ()) -> str:
    """Print and (unless ``--no-save``) append a dated section to the results file.

    ``checks``: ``(name, measured, unit, target)``; ``unit`` is ``"x"`` for a ratio (ours vs
    the peer, or 2 vs 1 devices) or ``"GB"``; ``target`` is text such as ``">= 3"`` or ``""``.
    """
    m, v = machine(), versions()
    lines = [f"## {title}{' (quick smoke run)' if args.quick else ''}", ""]
    lines.append(f"- Date: {start['date']}; duration {time.perf_counter() - start['t0']:.0f} s; "
                 f"load average (1/5/15 min) at start {start['load_start']}, "
                 f"at end {load_average()}")
    lines.append(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, "
                 f"{m['platform']}")
    workers = list(WORKER_DEVICES)
    if "jax" in sys.modules:  # a benchmark that ran JAX in this process (no workers)
        workers.append(("this process", device_info(), device_peak_gb()))
    lines.append(f"- Device: {device_line(m['device'], workers)}")
    lines.append("- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items())
                 + f"; evojax_lab at {git_revision()}")
    lines.append("- Settings: " + "; ".join(f"{k} = {val}" for k, val in settings.items()))
    lines += ["", table, ""]
    if checks:
        lines.append("Ratios and limits (same run):")
        lines.append("")
        for name, value, unit, target in checks:
            shown = f"{value:.2f}x" if unit == "x" else f"{value:.2f} {unit}"
            verdict = ""
            if target:
                ok = meets(value, target)
                verdict = f" (target {target}{'x' if unit == 'x' else ' ' + unit}: " \
                          f"{'met' if ok else 'NOT met'})"
            lines.append(f"- {name}: **{shown}**{verdict}")
        lines.append("")
    for note in notes:
        lines.append(f"- {note}")
    if notes:
        lines.append("")
    text = "\n".join(lines)
    summary_record(title, args, checks)
    print()
    print(text)
    if not args.no_save:
        path = Path(args.results)
        new = not path.exists()
        with open(path, "a") as f:
            if new:
                f.write("# Benchmark results\n\nAppended by the scripts in `benchmarks/` "
                        "(see benchmarks/README.md); newest sections last.\n\n")
            f.write(text + "\n")
        print(f"(appended to {path})")
    return text


#: When this environment variable names a file, :func:`save_section` appends one JSON line per
#: section to it (title, quick, every check with its verdict): ``suite.py`` collects them.
SUMMARY_ENV = "EVOJAX_LAB_BENCH_SUMMARY"


def summary_record(title: str, args, checks: Sequence[tuple[str, float, str, str]]) -> None:
    """Append a section's checks to the suite's summary file (:data:`SUMMARY_ENV`), if set."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    record = {"title": title, "quick": bool(args.quick),
              "checks": [{"name": n, "value": float(v), "unit": u, "target": t,
                          "met": meets(float(v), t) if t else None} for n, v, u, t in checks]}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def meets(value: float, target: str) -> bool:
    """``value`` against a target such as ``">= 3"`` or ``"<= 2"``."""
    target = target.strip()
    number = float(target[2:])
    if target.startswith(">="):
        return value >= number
    if target.startswith("<="):
        return value <= number
    raise ValueError(f"cannot read target {target!r}")


# -- budgets ----------------------------------------------------------------------------------
def novelty_es_generations(episodes: int, pop_size: int, agents: int) -> int:
    """Generations of an NS-ES-family run that fit in ``episodes`` episodes (one per episode
    of every member and agent evaluation).

    ``tell`` evaluates the ``agents`` initial agents once, at generation 0 (they seed the
    archive), and then the one updated agent every generation: ``G`` generations cost
    ``agents + G * (pop_size + 1)`` episodes.
    """
    return max((int(episodes) - int(agents)) // (int(pop_size) + 1), 0)


# -- CartPole set-up shared by cartpole_es.py, scaling.py and compile_time.py -----------------
CARTPOLE_HIDDEN = (32, 32)


def train_to_frames(trainer, carry, marks: Sequence[float], measure: Callable[[int, object], dict],
                    keep: Callable[[dict], dict]) -> dict:
    """Train one generation at a time (``trainer.run(carry, 1)``, compiled once by the caller)
    until the trainer's frame count (its ``steps`` metric) has passed every mark of ``marks``.

    ``keep(metrics)`` turns a generation's metrics (NumPy values of its last row) into the dict
    kept for it; at the first generation past a mark, ``measure(k, carry)`` (``k``: the mark's
    index) measures the solution and gives a dict, recorded for every mark that generation
    passed, with ``mark``, ``frames`` and ``generation``. Returns ``{"carry", "generations",
    "checkpoints", "train_s", "eval_s"}``; the times exclude each other.
    """
    import jax
    import numpy as np

    train_s = eval_s = 0.0
    gens, checkpoints, k = [], [], 0
    while k < len(marks):
        t0 = time.perf_counter()
        carry, metrics = trainer.run(carry, 1)
        metrics = jax.tree.map(lambda v: np.asarray(v)[-1], metrics)
        train_s += time.perf_counter() - t0  # np.asarray above waited for the result
        gens.append(keep(metrics))
        frames = float(metrics["steps"])
        if frames < marks[k]:
            continue
        t0 = time.perf_counter()
        point = measure(k, carry)
        eval_s += time.perf_counter() - t0
        while k < len(marks) and frames >= marks[k]:  # one generation may pass several marks
            checkpoints.append({"mark": marks[k], "frames": frames, "generation": len(gens),
                                **point})
            k += 1
    return {"carry": carry, "generations": gens, "checkpoints": checkpoints,
            "train_s": train_s, "eval_s": eval_s}


def evosax_gymnax_problem(env_name: str, cutoff: int, module=None):
    """evosax's ``GymnaxProblem`` as every benchmark compares against it: one rollout per
    member, no observation normalization, gymnax's own episode cutoff set to ``cutoff``.
    ``module`` defaults to evosax's MLP with the CartPole benchmarks' hidden layers
    (:data:`CARTPOLE_HIDDEN`, tanh) and an argmax head."""
    import jax.numpy as jnp
    from evosax.problems import GymnaxProblem
    from evosax.problems.networks import MLP

    if module is None:
        module = MLP(layer_sizes=(*CARTPOLE_HIDDEN, 2),
                     output_fn=lambda x, key=None: jnp.argmax(x, axis=-1))
    return GymnaxProblem(env_name, module, episode_length=cutoff, num_rollouts=1,
                         use_normalize_obs=False, env_params={"max_steps_in_episode": cutoff})


def cartpole_params(start: str):
    """Initial parameters of the 4-32-32-2 tanh MLP (argmax head) for CartPole-v1.

    ``start="init"``: the flax initialization (key 0): a random policy, episodes of ~10-60
    steps. ``start="balanced"``: a hand-set controller, ``push right iff 0.1 x + 0.5 x_dot +
    theta + theta_dot > 0``, carried by one unit per layer on top of small random weights; it and
    its sigma = 0.02 perturbations keep the pole up for all 500 steps, so every member runs a
    full-length episode (the throughput case). The pytree (``Dense_0..2``) fits both
    ``el.policies.MLP`` and ``evosax.problems.networks.MLP``.
    """
    import jax
    import jax.numpy as jnp

    import evojax_lab as el

    policy = el.policies.MLP(2, hidden=CARTPOLE_HIDDEN)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((4,), jnp.float32))
    if start == "init":
        return params
    if start != "balanced":
        raise ValueError(f"unknown start {start!r}")
    p = jax.tree.map(lambda x: 0.01 * x, params)["params"]
    coef = 3.0 * jnp.array([0.1, 0.5, 1.0, 1.0], jnp.float32)
    p["Dense_0"]["kernel"] = p["Dense_0"]["kernel"].at[:, 0].set(coef)
    p["Dense_1"]["kernel"] = p["Dense_1"]["kernel"].at[0, 0].set(3.0)
    p["Dense_2"]["kernel"] = p["Dense_2"]["kernel"].at[0, 1].set(3.0).at[0, 0].set(-3.0)
    return {"params": p}


def entry(worker, main) -> None:
    """A benchmark script's entry point: run as a worker process if asked to, else as driver."""
    cfg = worker_args()
    if cfg is not None:
        worker(cfg)
    else:
        main()
