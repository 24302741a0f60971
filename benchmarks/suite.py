"""The headline comparisons in one command, sized for the device JAX finds; one summary table.

``python benchmarks/suite.py`` probes JAX's default backend in a fresh process
(``_common.probe_device``), picks the plan for it (:data:`PLANS`: ``cpu``, or ``accelerator``
on a GPU or TPU; ``--quick`` picks the smoke plan on any device), and runs each benchmark script
of the plan as its own process, one after another, so no two measurements share the machine.
Each script appends its own section to ``benchmarks/RESULTS.md`` as when run alone (unless
``--no-save``) and hands its ratios and limits to the suite (``_common.SUMMARY_ENV``); the suite
then prints one summary table, every check of every script with its verdict, and appends it as
a section of its own. A script that fails or runs past ``--timeout`` is listed as such and the
suite goes on.

The plans (why these sizes): on a CPU, the sizes of the issues' acceptance points (OpenAI-ES at
N = 1M, P = 1,024; CartPole-v1 and Breakout-MinAtar rollouts at P = 2,048; the CartPole train's
compile time); on an accelerator, the same scripts with populations a GPU needs to be busy
(P = 4,096 for the ES, 16,384 for rollouts). The host-device rows of the scripts (the CPU's cores
as JAX devices) say nothing on an accelerator, where JAX uses the accelerator whatever the flag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "Benchmark suite: headline comparisons"
HERE = Path(__file__).resolve().parent

#: script -> extra arguments, per plan, in run order.
PLANS: dict[str, list[tuple[str, list[str]]]] = {
    "quick": [
        ("es_quadratic.py", ["--quick"]),
        ("rollout_ceiling.py", ["--quick"]),
        ("cartpole_es.py", ["--quick", "--start", "balanced"]),
        ("compile_time.py", ["--quick"]),
        ("ns_es_overhead.py", ["--quick"]),
    ],
    "cpu": [
        ("es_quadratic.py", []),
        ("rollout_ceiling.py", []),
        ("cartpole_es.py", ["--start", "balanced"]),
        ("compile_time.py", []),
        ("ns_es_overhead.py", []),
    ],
    "accelerator": [
        ("es_quadratic.py", ["--pop-size", "4096"]),
        ("rollout_ceiling.py", ["--pop-size", "16384"]),
        ("cartpole_es.py", ["--start", "balanced", "--pop-size", "16384"]),
        ("compile_time.py", []),
        ("ns_es_overhead.py", ["--pop-size", "1024"]),
    ],
}


def plan_name(device: dict, quick: bool) -> str:
    """The plan for a probed device: ``quick`` when asked, ``cpu`` on a CPU (or when JAX could
    not start: the scripts then fail and say why), ``accelerator`` otherwise."""
    if quick:
        return "quick"
    return "cpu" if device["platform"] in ("cpu", "unknown") else "accelerator"


def run_script(script: str, extra: list[str], args, summary: Path) -> tuple[str, float]:
    """Run one benchmark script; ``(status, seconds)`` with status ``ok``, ``exit N`` or
    ``timeout``. Its output streams to this terminal."""
    cmd = [sys.executable, str(HERE / script), *extra]
    if Path(args.results) != C.RESULTS:
        cmd += ["--results", str(args.results)]
    if args.no_save:
        cmd.append("--no-save")
    env = {**os.environ, C.SUMMARY_ENV: str(summary)}
    print(f"\n=== {script} {' '.join(extra)}", flush=True)
    start = time.perf_counter()
    try:
        code = subprocess.run(cmd, env=env, timeout=args.timeout).returncode
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    return ("ok" if code == 0 else f"exit {code}"), time.perf_counter() - start


def read_records(path: Path) -> list[dict]:
    """The sections a script handed to the suite (one JSON line each)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary_rows(script: str, status: str, seconds: float, records: list[dict]) -> list[list]:
    """One row per check of a script's sections; one row for a script without checks."""
    rows = []
    for record in records:
        title = record["title"]
        for check in record["checks"]:
            value = check["value"]
            shown = f"{value:.2f}x" if check["unit"] == "x" else f"{value:.2f} {check['unit']}"
            verdict = "" if check["met"] is None else ("met" if check["met"] else "NOT met")
            rows.append(["", title, check["name"], shown, check["target"], verdict])
            title = ""
    if not rows:
        rows.append(["", "", "(no ratios reported)", "", "", ""])
    rows[0][0] = f"{script} ({status}, {seconds:.0f} s)"
    return rows


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(PLANS),
                        help="run this plan instead of the one chosen from the device")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT",
                        help="run only these scripts of the plan (e.g. es_quadratic.py)")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds one script may run (default 3600)")
    args = parser.parse_args()
    start = C.started()
    device = C.probe_device()
    name = args.plan or plan_name(device, args.quick)
    plan = [(s, e) for s, e in PLANS[name] if not args.only or s in args.only]
    if not plan:
        parser.error(f"no script of plan {name!r} matches --only {args.only}")
    print(f"device: {C.device_line(device)}; plan: {name}", flush=True)
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (script, extra) in enumerate(plan):
            summary = Path(tmp) / f"{i}.jsonl"
            status, seconds = run_script(script, extra, args, summary)
            if status != "ok":
                failed.append(f"{script}: {status}")
            rows += summary_rows(script, status, seconds, read_records(summary))
    table = C.markdown_table(["script", "section", "check", "measured", "target", "verdict"],
                             rows)
    settings = {"plan": name, "scripts": ", ".join(
        f"{s} {' '.join(e)}".strip() for s, e in plan)}
    notes = ["Each script ran in its own processes, one after another; its full section "
             "(tables, settings, notes) is the one just above this summary in RESULTS.md."]
    if failed:
        notes.append("Failed: " + "; ".join(failed) + " (its output is in the suite's log).")
    C.save_section(args, TITLE, start, settings, table, (), notes)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
