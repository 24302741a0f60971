"""Cost of progress reporting, metric logging and checkpoints during a jitted run (issue 9).

The same CartPole-v1 OpenAI-ES run (the ``evojax-lab train`` preset: P = 256, MLP 4-32-32-2,
sigma 0.05, Adam lr 0.03, 10 solution-evaluation episodes per generation, two host devices) is
timed two ways in one process, alternately, after a warm-up call of each (so no compilation is
timed):

* ``one call``: ``trainer(key)``, all G generations in one jitted ``lax.scan``;
* ``blocks``: ``el.storage.run_with_checkpoints(trainer, key, dir, every=50, block=B, ...)``,
  what ``evojax-lab train --log-every B`` does: G / B jitted calls, and after each one the host
  fetches the block's metrics, writes metrics.jsonl and metrics.csv, updates a tqdm progress bar
  with the current score and, every 50 generations, commits a checkpoint step (orbax arrays,
  shard digests, manifest, metrics segment) into a new run folder.

The overhead is ``blocks / one call - 1`` (median over the paired runs); the requirement is
<= 5% at the CLI's default block size. The policy starts untrained (short episodes), so the
device work per generation is small and the host's share is at its largest.
Run ``python benchmarks/progress_overhead.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "Progress bar, logging and checkpoint overhead vs one jitted call (issue 9)"


def worker(cfg: dict) -> None:
    import io
    import tempfile

    import jax

    import evojax_lab as el
    from evojax_lab import loggers as logs
    from evojax_lab import storage

    task = el.tasks.make("CartPole-v1")
    policy = el.policies.for_task(task, hidden=(32, 32))
    strategy = el.strategies.openai_es(cfg["pop_size"], sigma=0.05, learning_rate=0.03)
    trainer = el.make_train(task, policy, strategy, generations=cfg["generations"],
                            eval_episodes=cfg["eval_episodes"])
    key = jax.random.PRNGKey(0)
    base = Path(tempfile.mkdtemp(prefix="progress-overhead-"))
    folders = []

    def one_call():
        return jax.block_until_ready(trainer(key))

    def blocks():  # a new run folder each time, as a new CLI run
        folder = Path(tempfile.mkdtemp(dir=base))
        folders.append(folder)
        loggers = [logs.JsonlLogger(folder / "metrics.jsonl"),
                   logs.CsvLogger(folder / "metrics.csv")]
        result = storage.run_with_checkpoints(
            trainer, key, folder, every=cfg["every"], block=cfg["block"], resume=False,
            loggers=loggers, progress="bench")
        return jax.block_until_ready(result)

    # tqdm writes to stderr: keep it in memory (a terminal would be slower to draw, not to
    # compute); the bar is still formatted and refreshed as in the CLI.
    sys.stderr = io.StringIO()
    a, b = one_call(), blocks()  # compile both
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert (jax.device_get(x) == jax.device_get(y)).all(), "blocks differ from one call"
    times = {"one": [], "blocks": []}
    cpu = {"one": [], "blocks": []}
    for i in range(cfg["reps"]):
        order = (("one", one_call), ("blocks", blocks))
        for name, fn in order if i % 2 == 0 else order[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    sys.stderr = sys.__stderr__
    ratios = [b / a for a, b in zip(times["one"], times["blocks"], strict=True)]
    cpu_ratios = [b / a for a, b in zip(cpu["one"], cpu["blocks"], strict=True)]
    steps = float(jax.device_get(a.metrics["steps"])[-1])
    C.report({"block": cfg["block"], "one_s": C.median(times["one"]),
              "blocks_s": C.median(times["blocks"]), "ratio": C.median(ratios),
              "ratios": ratios, "cpu_ratio": C.median(cpu_ratios),
              "one_cpu_s": C.median(cpu["one"]), "blocks_cpu_s": C.median(cpu["blocks"]),
              "devices": jax.device_count(), "env_steps": steps,
              "checkpoint_bytes": sum(p.stat().st_size for p in
                                      storage.root(folders[-1]).rglob("*") if p.is_file())})


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 5, 10, 25],
                        help="block sizes (generations per jitted call) to time")
    parser.add_argument("--generations", type=int, default=50,
                        help="generations per run (default: 50, the CLI preset)")
    parser.add_argument("--pop-size", type=int, default=256, help="population size")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="solution-evaluation episodes per generation")
    parser.add_argument("--every", type=int, default=50, help="checkpoint interval")
    parser.add_argument("--reps", type=int, default=8, help="timed pairs per process")
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes per block size")
    parser.add_argument("--default-block", type=int, default=10,
                        help="the CLI's default --log-every, checked against <= 5%%")
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.generations, args.reps, args.rounds = [1, 10], 20, 2, 1
        args.every = 10
    start = C.started()
    rows, by_block = [], {}
    for block in args.blocks:
        results = [C.run_worker(__file__, {"block": block, "generations": args.generations,
                                           "pop_size": args.pop_size, "every": args.every,
                                           "eval_episodes": args.eval_episodes,
                                           "reps": args.reps}, host_devices=2)
                   for _ in range(args.rounds)]
        ratio = C.median([r["ratio"] for r in results])
        one = C.median([r["one_s"] for r in results])
        blocks = C.median([r["blocks_s"] for r in results])
        by_block[block] = ratio
        cpu_ratio = C.median([r["cpu_ratio"] for r in results])
        pairs = sorted(x for r in results for x in r["ratios"])
        rows.append([block, -(-args.generations // block), one, blocks,
                     1e3 * (blocks - one) / args.generations, 100 * (ratio - 1),
                     f"{100 * (pairs[0] - 1):+.1f}% .. {100 * (pairs[-1] - 1):+.1f}%",
                     100 * (cpu_ratio - 1), results[0]["checkpoint_bytes"]])
        print(f"block {block}: one call {one:.3f} s, blocks {blocks:.3f} s, "
              f"overhead {100 * (ratio - 1):+.1f}%", flush=True)
    table = C.markdown_table(
        ["block B (gens / call)", "jitted calls", "one call s (median)", "blocks s (median)",
         "extra ms / generation", "wall overhead % (median of pairs)", "range over pairs",
         "CPU-time overhead % (median)", "checkpoint bytes"], rows)
    checks = []
    if args.default_block in by_block:
        checks.append((f"blocks of {args.default_block} (CLI default --log-every) vs one call",
                       by_block[args.default_block], "x", "<= 1.05"))
    settings = {"task": "CartPole-v1 (untrained start)", "P": args.pop_size,
                "policy": "MLP 4-32-32-2", "G": args.generations,
                "eval episodes": args.eval_episodes,
                "checkpoint every": f"{args.every} generations",
                "host updates": "metrics.jsonl + metrics.csv + tqdm bar with score",
                "timed pairs": f"{args.reps} x {args.rounds} process(es)",
                "host devices": 2}
    notes = [
        "Overhead % = blocks / one call - 1, the median of the per-pair ratios (one call and "
        "blocks alternate in the same process, so both see the same machine load). The CPU-time "
        "column uses the process's CPU time (all threads) instead of wall time: the extra work "
        "itself, much less sensitive to other processes on the machine than the wall time.",
        "Both ways give bit-identical results (checked in every worker).",
    ]
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    C.entry(worker, main)
