"""The Hard Maze: ES vs NS-ES / NSR-ES, GA vs GA-NS at equal evaluation budgets, over seeds.

The deceptive maze of Lehman & Stanley (REFERENCE §5): fitness is minus the final distance to
the goal, whose straight-line gradient leads into a dead end. Every method gets the same number
of episodes (the NS-ES agents' evaluations included) and is run on several seeds; a seed
succeeds when any evaluated individual ends within 10 units of the goal (fitness >= -10; the
task's own success flag, "within 10 at any step", is looser). The script writes the success
table (successes, episodes to success, best final distance, wall time per method) to
benchmarks/RESULTS.md and draws the classic picture: the final position of every individual
evaluated during one run per method, on the maze walls (benchmarks/hard_maze.png).

Every method runs in its own worker process, all its seeds vmapped in one program (one
compilation; the seeds' generations run side by side).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TITLE = "Hard Maze: ES vs NS-ES / NSR-ES, GA vs GA-NS (issue 5)"
METHODS = ("es", "ns_es", "nsr_es", "nsra_es", "ga", "ga_ns")
LABELS = {"es": "OpenAI-ES", "ns_es": "NS-ES", "nsr_es": "NSR-ES", "nsra_es": "NSRA-ES",
          "ga": "Deep GA", "ga_ns": "GA-NS"}
SUCCESS_DISTANCE = 10.0


def es_family(method: str) -> bool:
    return method in ("es", "ns_es", "nsr_es", "nsra_es")


def build(cfg, flax_init=None):
    """(strategy, generations) for one method at the configured budget. ``flax_init(key,
    params)`` is the NS-ES agents' initialization when ``--es-init flax``."""
    import evojax_lab as el

    m, budget = cfg["method"], cfg["evaluations"]
    if m in ("es", "ns_es", "nsr_es", "nsra_es"):
        p, sigma, lr = cfg["es_pop"], cfg["es_sigma"], cfg["es_lr"]
        if m == "es":
            return el.strategies.openai_es(p, sigma, learning_rate=lr), budget // p
        factory = getattr(el.strategies, m)
        agents = cfg["agents"]
        # The agents' evaluations count: M at generation 0, then one per generation.
        gens = C.novelty_es_generations(budget, p, agents)
        strategy = factory(p, sigma, learning_rate=lr, behavior_size=2, num_agents=agents,
                           k=cfg.get("k", 10), archive_capacity=gens + agents,
                           agent_init=flax_init)
        return strategy, gens
    p, sigma, t = cfg["ga_pop"], cfg["ga_sigma"], cfg["ga_truncation"]
    gens = budget // p
    if m == "ga":
        # The maze is deterministic: the elite needs no re-evaluation.
        return el.strategies.deep_ga(p, sigma, t, validation_episodes=0,
                                     genome_capacity=gens), gens
    return el.strategies.ga_ns(p, sigma, t, behavior_size=2, genome_capacity=gens,
                               archive_probability=cfg["archive_probability"]), gens


def worker(cfg):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el

    task = el.tasks.make("hard_maze")
    policy = el.policies.for_task(task, hidden=tuple(cfg["hidden"]))
    template = policy.init(jax.random.PRNGKey(0), jnp.zeros(task.observation_shape))
    seeds = cfg["seeds"]
    # One draw per seed of the Deep GA's reference initialization, or for the ES family with
    # --es-init flax of flax's default one (the NS-ES agents draw their own, one per agent).
    # All seeds run in one program (vmapped): one compilation.
    flax = es_family(cfg["method"]) and cfg["es_init"] == "flax"

    def initial_params(key):
        if flax:
            return policy.init(key, jnp.zeros(task.observation_shape))
        return el.policies.reference_init(key, template)

    strategy, gens = build(cfg, (lambda key, params: initial_params(key)) if flax else None)
    # mesh=None: the seeds are vmapped in one program on one device (a trainer sharded over the
    # host devices cannot run inside jax.vmap; the seeds run side by side instead).
    trainer = el.make_train(task, policy, strategy, generations=gens, eval_episodes=0,
                            params=initial_params, record=("fitness", "behavior"), mesh=None)
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(jax.vmap(trainer))(keys))
    seconds = time.perf_counter() - start
    fitness = np.asarray(result.metrics["population_fitness"])  # [S, G, P]
    behavior = np.asarray(result.metrics["population_behavior"])  # [S, G, P, 2]
    steps = np.asarray(result.metrics["steps"])  # [S, G]
    runs = []
    for i, seed in enumerate(seeds):
        per_gen = steps[i] / 400.0  # cumulative episodes (every episode is 400 steps)
        best = fitness[i].max(axis=1)
        hit = np.nonzero(best >= -SUCCESS_DISTANCE)[0]
        runs.append({"seed": seed, "success": bool(len(hit)),
                     "episodes_to_success": float(per_gen[hit[0]]) if len(hit) else None,
                     "best_distance": float(-best.max()), "episodes": float(per_gen[-1])})
    if cfg.get("picture"):
        np.savez_compressed(cfg["picture"], behavior=behavior[0].reshape(-1, 2),
                            generation=np.repeat(np.arange(gens), behavior.shape[2]))
    C.report({"method": cfg["method"], "runs": runs, "generations": gens, "seconds": seconds})


def draw(pictures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from evojax_lab.tasks.hard_maze import draw_maze

    methods = list(pictures)
    cols = min(len(methods), 3)
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m in zip(axes.ravel(), methods, strict=False):
        data = np.load(pictures[m])
        b, g = data["behavior"], data["generation"]
        ax.axis("on")
        ax.scatter(b[:, 0], b[:, 1], c=g, s=0.5, alpha=0.25, cmap="viridis", rasterized=True)
        draw_maze(ax)
        ax.set_title(f"{LABELS[m]}: final positions ({len(b):,} episodes)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Hard Maze, first seed: where every evaluated individual ended "
                 "(colour: generation)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS,
                        default=["es", "ns_es", "nsr_es", "ga", "ga_ns"])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first_seed, first_seed + 1, ... (held-out runs: 100)")
    parser.add_argument("--config", help="a committed JSON file of frozen settings (the held-out "
                        "protocol: benchmarks/configs/); no other option may be given with it")
    parser.add_argument("--evaluations", type=int, default=100_000,
                        help="episodes per run, the same for every method (default 100,000)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--es-pop", type=int, default=50)
    parser.add_argument("--es-sigma", type=float, default=0.2)
    parser.add_argument("--es-init", choices=("reference", "flax"), default="reference",
                        help="ES-family initialization: the Deep GA's reference one (output "
                        "kernel scale 0.025) or flax's default (LeCun normal on every layer)")
    parser.add_argument("--es-lr", type=float, default=0.05)
    parser.add_argument("--agents", type=int, default=8, help="NS-ES meta-population size")
    parser.add_argument("--ga-pop", type=int, default=200)
    parser.add_argument("--ga-sigma", type=float, default=0.1)
    parser.add_argument("--ga-truncation", type=int, default=20)
    parser.add_argument("--archive-probability", type=float, default=0.05)
    parser.add_argument("--picture", type=Path, default=C.HERE / "hard_maze.png")
    frozen = C.frozen_config(parser)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.evaluations = 1, 4_000
    start = C.started()
    tmp = Path(tempfile.mkdtemp(prefix="hard-maze-"))
    rows, pictures, successes = [], {}, {}
    for m in args.methods:
        print(f"{LABELS[m]} ...", flush=True)
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        cfg = {"method": m, "seeds": seeds, "evaluations": args.evaluations,
               "hidden": args.hidden, "es_pop": args.es_pop, "es_sigma": args.es_sigma,
               "es_lr": args.es_lr, "es_init": args.es_init, "agents": args.agents,
               "ga_pop": args.ga_pop,
               "ga_sigma": args.ga_sigma, "ga_truncation": args.ga_truncation,
               "archive_probability": args.archive_probability,
               "picture": str(tmp / f"{m}.npz")}
        res = C.run_worker(__file__, cfg, host_devices=os.cpu_count())
        pictures[m] = cfg["picture"]
        runs = res["runs"]
        wins = [r for r in runs if r["success"]]
        to_goal = sorted(r["episodes_to_success"] for r in wins)
        for r in runs:
            print(f"  seed {r['seed']}: {'reached the goal' if r['success'] else 'trapped'}, "
                  f"best final distance {r['best_distance']:.1f}", flush=True)
        successes[m] = (len(wins), len(runs))
        rows.append([
            LABELS[m], f"{len(wins)}/{len(runs)}",
            ", ".join(f"{x:,.0f}" for x in to_goal) or "-",
            ", ".join(f"{r['best_distance']:.1f}" for r in runs),
            f"{runs[0]['episodes']:,.0f}", res["generations"],
            f"{res['seconds'] / 60:.1f}",
        ])
    if not args.no_save or args.quick:
        draw(pictures, args.picture)
        print(f"picture: {args.picture}")
    table = C.markdown_table(
        ["method", "reached the goal", "episodes to the goal (successful seeds)",
         "best final distance per seed", "episodes per run", "generations",
         "minutes (all seeds, one vmapped program, compilation included)"], rows)
    settings = {
        "task": "hard_maze (400 steps, fitness = -final distance to the goal)",
        "success": f"an evaluated individual ends within {SUCCESS_DISTANCE:g} of the goal",
        "seeds": f"{args.first_seed}-{args.first_seed + args.seeds - 1}",
        "frozen config": (f"{frozen['path']} (committed at {frozen['commit']}, before this run)"
                          if frozen else "none (settings from the command line)"),
        "episodes per run": f"{args.evaluations:,} for every method",
        "policy": f"MLP 11-{'-'.join(map(str, args.hidden))}-2 tanh; init: GA family the "
                  f"Deep GA's reference one, ES family {args.es_init}",
        "ES family": f"P = {args.es_pop}, sigma = {args.es_sigma}, Adam lr {args.es_lr}, "
                     f"L2 0.005, mirrored; NS-ES/NSR-ES: {args.agents} agents, k = 10, the "
                     f"{args.agents} initial agents evaluated at generation 0 and the updated "
                     "agent once per generation (counted)",
        "GA family": f"P = {args.ga_pop}, sigma = {args.ga_sigma}, T = {args.ga_truncation}, "
                     f"1 elite, no re-evaluation (deterministic task); GA-NS: k = 10 over "
                     f"archive + generation, archive add probability {args.archive_probability}",
    }
    notes = [f"Picture: [{args.picture.name}]({args.picture.name}) — final positions of every "
             "individual evaluated in the first seed's run of each method, on the maze."]
    for novelty, fitness in (("ga_ns", "ga"), ("ns_es", "es"), ("nsr_es", "es")):
        if novelty in successes and fitness in successes:
            p = C.fisher_one_sided(*successes[novelty], *successes[fitness])
            notes.append(f"{LABELS[novelty]} {successes[novelty][0]}/{successes[novelty][1]} vs "
                         f"{LABELS[fitness]} {successes[fitness][0]}/{successes[fitness][1]}: "
                         f"one-sided Fisher exact p = {p:.3g}")
    C.save_section(args, TITLE, start, settings, table, (), notes)


if __name__ == "__main__":
    C.entry(worker, main)
