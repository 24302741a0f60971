"""One NS-ES-family configuration on the Hard Maze over several seeds: reached the goal, when,
and how close (shortest-path "breadcrumb" distance) each seed's closest individual came.

The tool behind the "NS-ES configuration sweep" tables of benchmarks/RESULTS.md (issue 5): each
call runs one setting on all seeds in one vmapped program on one device (no sharding, so a
row reproduces bit for bit on the same machine) and prints one JSON line; ``--row`` also prints
the row as it goes into the sweep table. Example::

    python benchmarks/ns_es_sweep.py --pop 500 --sigma 0.05 --lr 0.05 --agents 5 \\
        --evaluations 300000

Every episode counts in the budget (the agents' evaluations included); a seed reaches the goal
when an evaluated individual ends within 10 of it (as in benchmarks/hard_maze.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hard_maze import SUCCESS_DISTANCE, build  # noqa: E402


def run(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el
    from evojax_lab.tasks.breadcrumb import breadcrumb_distance

    task = el.tasks.make("hard_maze")
    policy = el.policies.for_task(task, hidden=tuple(args.hidden))
    template = policy.init(jax.random.PRNGKey(0), jnp.zeros(task.observation_shape))

    def initial(key):
        if args.init == "flax":
            return policy.init(key, jnp.zeros(task.observation_shape))
        return el.policies.reference_init(key, template)

    cfg = {"method": args.method, "evaluations": args.evaluations, "es_pop": args.pop,
           "es_sigma": args.sigma, "es_lr": args.lr, "agents": args.agents, "k": args.k}
    strategy, gens = build(cfg, lambda key, params: initial(key))
    trainer = el.make_train(task, policy, strategy, generations=gens, eval_episodes=0,
                            params=initial, record=("fitness", "behavior"), mesh=None)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in args.seeds])
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(jax.vmap(trainer))(keys))
    seconds = time.perf_counter() - start
    fitness = np.asarray(result.metrics["population_fitness"])  # [S, G, P]
    behavior = np.asarray(result.metrics["population_behavior"])  # [S, G, P, 2]
    per_seed = []
    for i, seed in enumerate(args.seeds):
        hit = np.nonzero(fitness[i].max(axis=1) >= -SUCCESS_DISTANCE)[0]
        xy = behavior[i].reshape(-1, 2)
        crumb = np.asarray(breadcrumb_distance(jnp.asarray(xy[:, 0]), jnp.asarray(xy[:, 1])))
        per_seed.append({"seed": seed, "goal_generation": int(hit[0]) if len(hit) else None,
                         "closest_breadcrumb": round(float(np.nanmin(crumb)), 1)})
    return {"config": {k: v for k, v in vars(args).items() if k != "row"},
            "generations": gens, "seconds": round(seconds, 1),
            "reached": sum(r["goal_generation"] is not None for r in per_seed),
            "per_seed": per_seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="ns_es", choices=("es", "ns_es", "nsr_es", "nsra_es"))
    parser.add_argument("--pop", type=int, default=500)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--init", choices=("flax", "reference"), default="flax")
    parser.add_argument("--evaluations", type=int, default=100_000,
                        help="episodes per run, agent evaluations included")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--row", action="store_true", help="also print a sweep-table row")
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke version (P 20, 2 agents, 1,000 episodes, seeds 0 1)")
    args = parser.parse_args()
    if args.quick:
        args.pop, args.agents, args.evaluations, args.seeds = 20, 2, 1_000, [0, 1]
    out = run(args)
    print(json.dumps(out), flush=True)
    if args.row:
        crumbs = ", ".join(
            f"**{r['closest_breadcrumb']}**" if r["goal_generation"] is not None
            else str(r["closest_breadcrumb"]) for r in out["per_seed"])
        print(f"| {args.sigma:g} | {args.lr:g} | {args.pop} | {args.agents} | {args.init} | "
              f"{args.evaluations // 1000}k | {out['reached']}/{len(args.seeds)} | {crumbs} |")


if __name__ == "__main__":
    main()
