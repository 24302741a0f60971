"""OpenAI-ES on brax hopper (and ant) on a CPU budget, with a learning curve (issue 8).

The ES paper's MuJoCo recipe at CPU size: observation normalization (running statistics shared
by the population, updated between generations), action noise 0.01 in training rollouts,
mirrored sampling, centered ranks, Adam lr 0.01, L2 0.005, sigma 0.02; a tanh MLP policy
(64-64 by default instead of the paper's 256-256, to fit a CPU). The run is driven in blocks of
generations until the wall-clock budget (compilation included) is spent; the initial policy is
scored on the same number of episodes as the solution. The script writes the curve
(benchmarks/brax_hopper.png, or --png) and appends a section to benchmarks/RESULTS.md.

    python benchmarks/brax_hopper.py                  # hopper, 20 minutes
    python benchmarks/brax_hopper.py --env ant --minutes 20 --png benchmarks/brax_ant.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def run(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el
    from evojax_lab.evaluate import rollout

    t0 = time.perf_counter()
    task = el.tasks.make(f"brax/{args.env}", backend=args.backend, max_steps=args.max_steps)
    policy = el.policies.for_task(task, hidden=tuple(args.hidden))
    strategy = el.strategies.openai_es(args.pop, args.sigma, learning_rate=args.lr)
    trainer = el.make_train(task, policy, strategy, generations=args.block,
                            eval_episodes=args.eval_episodes, obs_norm=True,
                            action_noise=args.action_noise, mesh=None)
    key = jax.random.PRNGKey(args.seed)
    carry = trainer.init(key)
    # the initial policy, scored like the solution (no action noise, empty statistics)
    score = jax.jit(lambda params, stats, k: jax.vmap(
        lambda kk: rollout(kk, task, policy, params, obs_norm=stats)[0]
    )(jax.random.split(k, args.eval_episodes)).mean())
    initial = float(score(strategy.solution(carry.state), carry.obs_stats,
                          jax.random.PRNGKey(args.seed + 1000)))
    setup = time.perf_counter() - t0
    print(f"initial policy return {initial:.1f} ({setup:.0f} s)", flush=True)
    t0 = time.perf_counter()  # the training budget starts here (compilation of the run included)
    c0 = time.process_time()
    rows = []
    budget = args.minutes * 60.0
    while True:
        carry, m = trainer.run(carry, args.block)
        m = jax.tree.map(np.asarray, m)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        for i in range(len(m["generation"])):
            rows.append({"generation": int(m["generation"][i]), "steps": float(m["steps"][i]),
                         "wall_s": wall, "cpu_s": cpu,
                         "solution": float(m["solution_fitness"][i]),
                         "mean": float(m["mean_fitness"][i]), "best": float(m["best_fitness"][i])})
        last = rows[-1]
        print(f"gen {last['generation']:4d}  {wall:6.0f} s  cpu {cpu:6.0f} s  "
              f"steps {last['steps']:.3g}  "
              f"solution {last['solution']:8.1f}  mean {last['mean']:8.1f}  "
              f"best {last['best']:8.1f}", flush=True)
        # Two budgets, whichever ends first: wall time, and process CPU time (all threads) for
        # a shared machine loaded by other jobs (on an idle machine a process that keeps at
        # least one core busy spends its CPU budget in at most as many wall-clock minutes).
        if cpu >= budget or wall >= args.wall_minutes * 60.0:
            break
    del jnp
    return {"initial": initial, "rows": rows, "obs_count": float(carry.obs_stats.count),
            "setup_s": setup}


def plot(path, out, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["rows"]
    minutes = [r["cpu_s"] / 60 for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for a, x, label in ((ax[0], minutes, "process CPU time (minutes, compile included)"),
                        (ax[1], [r["steps"] / 1e6 for r in rows], "environment steps (M)")):
        a.plot(x, [r["solution"] for r in rows], label="solution (mean of "
               f"{args.eval_episodes} episodes, no action noise)")
        a.plot(x, [r["mean"] for r in rows], alpha=0.6, label="population mean")
        a.axhline(out["initial"], color="gray", ls="--", label="initial policy")
        a.axhline(3 * out["initial"], color="red", ls=":", label="3x initial")
        a.set_xlabel(label)
        a.set_ylabel("episode return")
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=8)
    fig.suptitle(f"OpenAI-ES on brax/{args.env} ({args.backend}), P = {args.pop}, "
                 f"MLP {'-'.join(map(str, args.hidden))}, obs norm, action noise "
                 f"{args.action_noise}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--backend", default="spring")
    parser.add_argument("--minutes", type=float, default=20.0, help="CPU-time budget")
    parser.add_argument("--wall-minutes", type=float, default=20.0, help="wall-clock budget")
    parser.add_argument("--pop", type=int, default=64)
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--action-noise", type=float, default=0.01)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.wall_minutes, args.pop, args.max_steps, args.block = \
            0.1, 0.1, 8, 50, 2
        args.hidden, args.eval_episodes = [8], 1
    png = args.png or (C.HERE / f"brax_{args.env}.png")
    start = C.started()
    out = run(args)
    if not args.quick:
        plot(png, out, args)
    rows = out["rows"]
    final = sum(r["solution"] for r in rows[-5:]) / len(rows[-5:])
    best = max(r["solution"] for r in rows)
    first_3x = next((r for r in rows if r["solution"] >= 3 * out["initial"]), None)
    table = C.markdown_table(
        ["generation", "CPU minutes", "wall minutes", "env steps", "solution return",
         "population mean"],
        [[r["generation"], round(r["cpu_s"] / 60, 1), round(r["wall_s"] / 60, 1),
          f"{r['steps']:.3g}",
          round(r["solution"], 1), round(r["mean"], 1)]
         for r in C.thinned(rows)],
    )
    checks = [("final solution return (mean of the last 5 generations) / initial",
               final / out["initial"], "x", "" if args.quick else ">= 3"),
              ("best solution return / initial", best / out["initial"], "x", "")]
    notes = [f"Initial policy return {out['initial']:.1f}; final {final:.1f}; best {best:.1f}; "
             f"{len(rows)} generations, {rows[-1]['steps']:.3g} environment steps, "
             f"{rows[-1]['cpu_s'] / 60:.1f} min of process CPU time and "
             f"{rows[-1]['wall_s'] / 60:.1f} min wall clock of training on the shared, loaded "
             f"machine (compilation included; scoring the initial policy took "
             f"{out['setup_s']:.0f} s wall more). The run stops at whichever budget ends "
             "first; see the load average above.",
             ("First generation at >= 3x the initial return: "
              f"{first_3x['generation']} after {first_3x['cpu_s'] / 60:.1f} CPU min "
              f"({first_3x['wall_s'] / 60:.1f} wall min)."
              if first_3x else "The solution never reached 3x the initial return."),
             f"Curve: {png.name}."]
    C.save_section(
        args, f"OpenAI-ES on brax/{args.env}, CPU budget (issue 8)", start,
        {"backend": args.backend, "P": args.pop, "sigma": args.sigma, "Adam lr": args.lr,
         "MLP": "-".join(map(str, args.hidden)) + " tanh", "max_steps": args.max_steps,
         "obs norm": "on", "action noise": args.action_noise,
         "solution episodes": args.eval_episodes, "CPU budget min": args.minutes,
         "wall budget min": args.wall_minutes,
         "seed": args.seed},
        table, checks, notes)


if __name__ == "__main__":
    main()
