"""(d) Peak memory of bounded-memory OpenAI-ES generations vs the number of parameters N.

For each N (default 250k, 1M, 2M, 4M: 4M is about the Nature-DQN size) at P = 4,096, a fresh
process runs the bounded-memory path of ``es_quadratic.py`` (``openai_es(P,
noise=noise.table(...), chunk_size=C)`` in ``make_train(function_task, ..., chunk_size=C)`` on
f = -||theta||^2): a warm-up call (compile + G generations), then timed calls. The peak resident
memory (``VmHWM``) of that process is the number reported; for scale, one P x N float32 array
(what a strategy that materializes the population holds, several times over) is listed next to
it. Modes: ``default`` (host devices on, ``mesh="auto"``) and ``one`` (one device, no mesh).
Run ``python benchmarks/memory.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import es_quadratic  # noqa: E402

TITLE = "(d) Peak memory of bounded-memory OpenAI-ES vs N"


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--num-params", type=int, nargs="+",
                        default=[250_000, 1_000_000, 2_000_000, 4_000_000])
    parser.add_argument("--pop-size", type=int, default=4096)
    parser.add_argument("--generations", type=int, default=1,
                        help="generations per call (default 1)")
    parser.add_argument("--reps", type=int, default=1, help="timed calls after the warm-up")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--table-size", type=int, default=25_000_000)
    parser.add_argument("--modes", nargs="+", choices=["default", "one"],
                        default=["default", "one"])
    args = parser.parse_args()
    if args.quick:
        args.num_params, args.pop_size, args.chunk_size = [20_000, 40_000], 64, 8
        args.table_size = 1_000_000
    start = C.started()
    rows, peaks = [], {}
    for n in args.num_params:
        for mode in args.modes:
            cfg = {"impl": "evojax_lab", "host_devices": mode == "default", "num_params": n,
                   "pop_size": args.pop_size, "generations": args.generations,
                   "reps": args.reps, "chunk_size": args.chunk_size,
                   "table_size": args.table_size}
            print(f"N = {n:,}, {mode} ...", flush=True)
            res = C.run_worker(__file__, cfg, host_devices=None)
            print(f"    peak {res['peak_rss_gb']:.2f} GB, {res['gen_s']:.2f} s/generation",
                  flush=True)
            peaks[(n, mode)] = res["peak_rss_gb"]
            rows.append([f"{n:,}", "host devices, mesh auto" if mode == "default"
                         else "1 device, mesh None", res["devices"], res["peak_rss_gb"],
                         args.pop_size * n * 4 / 1e9, res["gen_s"], res["first_call_s"]])
    table = C.markdown_table(
        ["N", "mode", "devices", "peak RSS GB", "one P x N float32 array GB",
         "s / generation", "first call s (compile + G gens)"], rows)
    checks = []
    big = max(args.num_params)
    for mode in args.modes:
        checks.append((f"peak memory at N = {big:,}, P = {args.pop_size:,} ({mode})",
                       peaks[(big, mode)], "GB", "" if args.quick else "<= 8"))
    settings = {"P": f"{args.pop_size:,}", "chunk_size": args.chunk_size,
                "noise table": f"{args.table_size:,} float32",
                "generations per call": args.generations,
                "timed calls": f"{args.reps} after a warm-up call",
                "fitness": "-||theta||^2 (function task)"}
    notes = ["Peak memory = VmHWM of a process that ran only that configuration (JAX itself "
             "is ~0.3 GB); s / generation is from the timed call(s), informational."]
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    cfg = C.worker_args()
    if cfg is not None:
        es_quadratic.worker(cfg)
    else:
        main()
