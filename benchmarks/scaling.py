"""(c) CartPole-v1 evaluation throughput on 1 vs 2 (or more) CPU host devices.

Each device count runs in its own process (``--xla_force_host_platform_device_count`` must be
set before JAX starts). The population (P members of the 4-32-32-2 MLP around the balancing
controller of ``_common.cartpole_params``, so every episode runs the full 500 steps) is sharded
over a ``make_mesh()`` of all devices and scored by one jitted ``el.evaluate``; throughput =
env steps actually taken / wall time, median over ``--reps`` calls after a warm-up call.

Rows: the default evaluation (``chunk_size=None``: cache-sized chunks per device on CPU) and,
for comparison, the whole local population in one batch (``chunk_size=P``).
Run ``python benchmarks/scaling.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "(c) CartPole-v1 evaluation throughput vs host device count"


def worker(cfg: dict) -> None:
    import contextlib
    import os

    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el
    from evojax_lab.core.sharding import constrain_population

    p = cfg["pop_size"]
    task = el.tasks.make("CartPole-v1", max_steps=cfg["max_steps"])
    policy = el.policies.MLP(2, hidden=C.CARTPOLE_HIDDEN)
    strategy = el.strategies.openai_es(p, sigma=0.02)
    state = strategy.init(jax.random.PRNGKey(0), C.cartpole_params(cfg["start"]))
    mesh = el.parallel.make_mesh(pop_size=p)
    devices = 1 if mesh is None else mesh.size
    chunk = None if cfg["chunk"] == "auto" else p
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        population = jax.jit(lambda k, s: constrain_population(strategy.ask(k, s)[0]))(
            jax.random.PRNGKey(1), state)
        evaluate = jax.jit(lambda k, pop: el.evaluate(k, task, policy, pop, chunk_size=chunk))
        key = jax.random.PRNGKey(2)
        first = C.timed(lambda: evaluate(key, population))
        times, steps, cpu = [], [], []
        for i in range(cfg["reps"]):
            k = jax.random.fold_in(key, i)
            t0 = os.times()
            times.append(C.timed(lambda k=k: evaluate(k, population)))
            t1 = os.times()
            cpu.append((t1.user - t0.user + t1.system - t0.system) / times[-1])
            steps.append(float(jnp.sum(evaluate(k, population).steps)))
    C.report({"devices": devices, "first_call_s": first, "eval_s_all": times,
              "steps_per_s_all": [s / t for s, t in zip(steps, times, strict=True)],
              "mean_episode_length": float(np.mean(steps)) / p,
              "cpu_per_wall": float(np.median(cpu))})


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--pop-size", type=int, default=2048)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2],
                        help="host device counts to compare (default: 1 2)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=2,
                        help="run every configuration in this many fresh processes, "
                             "alternating device counts")
    parser.add_argument("--start", choices=["balanced", "init"], default="balanced")
    parser.add_argument("--no-one-batch", action="store_true",
                        help="skip the chunk_size=P comparison rows")
    args = parser.parse_args()
    if args.quick:
        args.pop_size, args.max_steps, args.reps, args.rounds = 64, 50, 2, 1
    start = C.started()
    chunks = ["auto"] if args.no_one_batch else ["auto", "one batch"]
    results = {(c, d): [] for c in chunks for d in args.devices}
    for r in range(args.rounds):
        for chunk in chunks:
            for d in args.devices:
                print(f"[round {r + 1}/{args.rounds}] {d} device(s), chunks {chunk} ...",
                      flush=True)
                res = C.run_worker(__file__, {"pop_size": args.pop_size, "max_steps":
                                              args.max_steps, "reps": args.reps, "chunk": chunk,
                                              "start": args.start}, host_devices=d)
                if res["devices"] != d:
                    raise RuntimeError(f"asked for {d} devices, the worker used "
                                       f"{res['devices']}")
                print(f"    {C.median(res['steps_per_s_all']):,.0f} env-steps/s, "
                      f"CPU time / wall time {res['cpu_per_wall']:.2f}", flush=True)
                results[(chunk, d)].append(res)
    rows, sps = [], {}
    for chunk in chunks:
        for d in args.devices:
            rs = results[(chunk, d)]
            sps[(chunk, d)] = C.median([x for r in rs for x in r["steps_per_s_all"]])
            rows.append([d, "auto (default)" if chunk == "auto" else f"one batch "
                         f"(chunk_size={args.pop_size})",
                         C.median([x for r in rs for x in r["eval_s_all"]]),
                         f"{sps[(chunk, d)]:,.0f}", sps[(chunk, d)] / sps[(chunk, args.devices[0])],
                         C.median([r["cpu_per_wall"] for r in rs]),
                         C.median([r["mean_episode_length"] for r in rs]),
                         max(r["peak_rss_gb"] for r in rs)])
    table = C.markdown_table(
        ["host devices", "chunks per device", "s / evaluation (median)", "env-steps/s (median)",
         f"speed-up vs {args.devices[0]}", "CPU time / wall", "mean episode length",
         "peak RSS GB"], rows)
    checks = []
    if 1 in args.devices and 2 in args.devices:
        checks.append(("evaluation throughput, 2 vs 1 host devices (default chunks)",
                       sps[("auto", 2)] / sps[("auto", 1)], "x", "" if args.quick else ">= 1.7"))
        if "one batch" in chunks:
            checks.append(("evaluation throughput, 2 vs 1 host devices (one batch)",
                           sps[("one batch", 2)] / sps[("one batch", 1)], "x", ""))
            checks.append(("default chunks vs one batch, 1 device",
                           sps[("auto", 1)] / sps[("one batch", 1)], "x", ""))
    settings = {"P": f"{args.pop_size:,}", "episode cutoff": args.max_steps, "start": args.start,
                "policy": "MLP 4-32-32-2 tanh, argmax", "timed calls":
                f"{args.reps} x {args.rounds} process(es) per row"}
    notes = ["One jitted el.evaluate of the whole population (sharded over a mesh of all the "
             "process's devices), env-steps/s = steps actually taken / wall time.",
             "CPU time / wall: user+system CPU seconds of the process per wall second during "
             "the timed calls (2.0 = both cores busy)."]
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    C.entry(worker, main)
