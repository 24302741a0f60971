"""The deceptive U-trap for the ant: OpenAI-ES vs NSR-ES vs NSRA-ES on a CPU (issue 8).

``brax/ant_trap`` is brax's ant (reward: forward velocity + alive bonus - control cost) facing a
U of walls that opens toward it (front wall face at x = 4.9, side walls at y = +-2 from x = 2 to
5; evojax_lab.tasks.brax_tasks.ANT_TRAP_WALLS). Walking straight ahead is the deceptive local
optimum: the ant gets stuck at the front wall. The walls touch only the ant's feet (its only
collision geometry), so an ant pressing against the front wall from inside the U can push its
torso through the wall by up to a foot's reach (1.1 m from the torso centre): torso x ~ 6.0. A
run *escapes* when an ant ends at final torso x > 6.5, reachable only around the U. Behavior =
final torso (x, y).

Every method gets the same number of episodes per seed (the novelty agents' evaluations count),
the same policy (MLP 32-32 tanh), observation normalization and sigma. The script prints and
appends a table (escapes per method, best final x, where each run's solution ends) to
benchmarks/RESULTS.md and draws the final position of every evaluated individual of one seed per
method over the walls, with the solution's (benchmarks/ant_trap.png). A method's seeds run in
one vmapped program (one compilation).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

METHODS = ("es", "nsr_es", "nsra_es")
LABELS = {"es": "OpenAI-ES", "nsr_es": "NSR-ES", "nsra_es": "NSRA-ES"}
ESCAPE_X = 6.5  # front face 4.9 + foot reach 1.1 + foot radius and a margin


def build(method, args):
    import evojax_lab as el

    budget = args.episodes
    if method == "es":
        return el.strategies.openai_es(args.pop, args.sigma, learning_rate=args.lr), \
            budget // args.pop
    # The agents' evaluations count: M at generation 0, then one per generation.
    gens = C.novelty_es_generations(budget, args.pop, args.agents)
    factory = getattr(el.strategies, method)
    return factory(args.pop, args.sigma, learning_rate=args.lr, behavior_size=2,
                   num_agents=args.agents, archive_capacity=gens + args.agents,
                   patience=args.patience), gens


def run_method(method, args):
    """All seeds of one method in one vmapped program (one compilation); per seed, the final
    positions of every evaluated ant and of the run's solution (the ES mean, the novelty
    variants' fittest agent) deployed after training on ``--deploy-episodes`` fresh episodes
    with the run's observation statistics, plus the novelty agents' last evaluated positions.
    The solution escaped when its mean final x over those episodes is past ``ESCAPE_X``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el

    task = el.tasks.make("brax/ant_trap", backend=args.backend, max_steps=args.max_steps)
    policy = el.policies.for_task(task, hidden=tuple(args.hidden))
    strategy, gens = build(method, args)
    trainer = el.make_train(task, policy, strategy, generations=gens, eval_episodes=1,
                            obs_norm=True, record=("behavior", "fitness"), mesh=None)

    def run(key):
        result = trainer(key)
        deploy_keys = jax.random.split(jax.random.fold_in(key, 1), args.deploy_episodes)
        _, _, solution_xy = jax.vmap(lambda k: el.rollout(
            k, task, policy, result.solution, obs_norm=result.obs_stats))(deploy_keys)
        agents_xy = getattr(result.state, "behaviors", solution_xy[:1])
        return result.metrics, solution_xy, agents_xy

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
    t0 = time.perf_counter()
    metrics, solution_xy, agents_xy = jax.block_until_ready(jax.jit(jax.vmap(run))(keys))
    wall = time.perf_counter() - t0
    metrics = jax.tree.map(np.asarray, metrics)
    solution_xy, agents_xy = np.asarray(solution_xy), np.asarray(agents_xy)
    out = []
    for i, seed in enumerate(seeds):
        xy = metrics["population_behavior"][i]  # [G, P, 2]
        final_x = xy[..., 0]
        best = float(np.nanmax(final_x))
        last = xy[-1]
        out.append({
            "seed": seed, "generations": gens, "wall_s": wall / len(seeds),
            "steps": float(metrics["steps"][i][-1]),
            "best_x": best, "escaped_any": bool(best > ESCAPE_X),
            "last_gen_best_x": float(np.nanmax(last[:, 0])),
            "best_xy": xy.reshape(-1, 2)[np.nanargmax(final_x.reshape(-1))].tolist(),
            "final_mean_x": float(np.nanmean(last[:, 0])),
            "solution_fitness": float(metrics["solution_fitness"][i][-1]),
            "solution_xy": solution_xy[i].mean(axis=0).tolist(),
            "solution_episodes_past": int((solution_xy[i][:, 0] > ESCAPE_X).sum()),
            "solution_escaped": bool(solution_xy[i][:, 0].mean() > ESCAPE_X),
            "agents_xy": agents_xy[i].tolist(),
            "xy": xy.reshape(-1, 2).tolist() if i == 0 else None,
        })
        r = out[-1]
        print(f"{method} seed {seed}: {gens} gens, best x {best:.2f}, solution ends at "
              f"({r['solution_xy'][0]:.2f}, {r['solution_xy'][1]:.2f}) on average, "
              f"{r['solution_episodes_past']}/{args.deploy_episodes} episodes past x = "
              f"{ESCAPE_X}, escaped (any ant) "
              f"{r['escaped_any']}, solution escaped {r['solution_escaped']}", flush=True)
    print(f"{method}: {len(seeds)} seeds in {wall / 60:.1f} min (one vmapped program)",
          flush=True)
    return out


def plot(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    from evojax_lab.tasks.brax_tasks import ANT_TRAP_WALLS

    drawn = np.concatenate([np.asarray(runs[0]["xy"]) for runs in results.values()])
    x_extent = max(9.0, float(np.nanmax(np.abs(drawn[:, 0]))) + 1)  # same scale in every panel
    y_extent = max(6.0, float(np.nanmax(np.abs(drawn[:, 1]))) + 1)
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 5.8), squeeze=False)
    for ax, (method, runs) in zip(axes[0], results.items(), strict=True):
        xy = np.asarray(runs[0]["xy"])
        g = np.repeat(np.arange(len(xy)), 1)
        ax.scatter(xy[:, 0], xy[:, 1], c=g, s=4, cmap="viridis", alpha=0.6)
        for wall in ANT_TRAP_WALLS:
            (cx, cy, _), (hx, hy, _) = wall.center, wall.half_size
            ax.add_patch(Rectangle((cx - hx, cy - hy), 2 * hx, 2 * hy, color="firebrick"))
        ax.plot([0], [0], "k*", ms=10)
        if "solution_xy" in runs[0]:
            sx, sy = runs[0]["solution_xy"]
            ax.plot([sx], [sy], "o", mfc="none", mec="black", ms=12, mew=2,
                    label="solution after training")
            ax.legend(loc="lower left", fontsize=8)
        ax.axvline(ESCAPE_X, color="gray", ls="--", lw=1)
        escaped = sum(r["escaped_any"] for r in runs)
        ax.set_title(f"{LABELS[method]} (seed {runs[0]['seed']}); "
                     f"escaped {escaped}/{len(runs)} seeds")
        ax.set_xlim(-x_extent, x_extent)
        ax.set_ylim(-y_extent, y_extent)
        ax.set_aspect("equal")
        ax.set_xlabel("final torso x")
        ax.set_ylabel("final torso y")
        ax.grid(alpha=0.3)
    wrap = "\n" if len(results) == 1 else " "  # one panel: too narrow for one line
    fig.suptitle(f"brax/ant_trap: final positions of every evaluated ant{wrap}"
                 "(colour = generation)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed, first-seed + 1, ... (the picture draws the "
                             "first)")
    parser.add_argument("--episodes", type=int, default=12_800,
                        help="episodes per seed and method (the budget; default 12,800: about "
                             "200 generations, 22 min per method for 3 seeds on 2 CPU cores)")
    parser.add_argument("--pop", type=int, default=64)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--max-steps", type=int, default=250)
    parser.add_argument("--backend", default="spring")
    parser.add_argument("--png", type=Path, default=C.HERE / "ant_trap.png")
    parser.add_argument("--out-json", type=Path, default=None,
                        help="also write every run's results here as they finish (so a long "
                             "run split over several invocations loses nothing)")
    parser.add_argument("--load", type=Path, nargs="+", default=None,
                        help="run nothing: build the table and picture from --out-json files "
                             "(settings are taken from the command line: pass the same ones)")
    parser.add_argument("--deploy-episodes", type=int, default=10,
                        help="fresh episodes the trained solution is played on; it escaped "
                             f"when its mean final x is past {ESCAPE_X}")
    parser.add_argument("--config", help="a committed JSON file of frozen settings (the held-out "
                        "protocol: benchmarks/configs/); no other option may be given with it")
    frozen = C.frozen_config(parser)
    args = parser.parse_args()
    args.png = Path(args.png)  # a frozen config gives strings
    args.out_json = Path(args.out_json) if args.out_json else None
    if args.quick:
        args.seeds, args.episodes, args.pop, args.max_steps, args.agents = 1, 24, 4, 20, 2
        args.hidden, args.deploy_episodes = [4], 2
    start = C.started()
    runs_started = {}
    if args.load:
        results = {}
        for path in args.load:
            saved = json.loads(path.read_text())
            runs_started.update(saved.pop("_started", {}))
            results.update(saved)
        results = {m: results[m] for m in METHODS if m in results}
        for runs in results.values():  # the escape threshold is this script's, not the run's
            for r in runs:
                r["escaped_any"] = bool(r["best_x"] > ESCAPE_X)
    else:
        results = {}
        for m in args.methods:
            runs_started[m] = f"{C.started()['date']} (load {C.load_average()})"
            results[m] = run_method(m, args)
            if args.out_json:
                args.out_json.write_text(json.dumps({**results, "_started": runs_started}))
    if not args.quick:
        plot(args.png, results)
    rows = []
    for m, runs in results.items():
        rows.append([
            LABELS[m], runs[0]["generations"],
            f"{sum(r['escaped_any'] for r in runs)}/{len(runs)}",
            (f"{sum(r['solution_escaped'] for r in runs)}/{len(runs)}"
             if all("solution_escaped" in r for r in runs) else "-"),
            ", ".join(f"({r['solution_xy'][0]:.2f}, {r['solution_xy'][1]:.2f})"
                      if "solution_xy" in r else "-" for r in runs),
            ", ".join(str(r.get("solution_episodes_past", "-")) for r in runs),
            ", ".join(f"{r['last_gen_best_x']:.2f}" if "last_gen_best_x" in r else "-"
                      for r in runs),
            ", ".join(f"({r['best_xy'][0]:.2f}, {r['best_xy'][1]:.2f})" if "best_xy" in r
                      else f"{r['best_x']:.2f}" for r in runs),
            ", ".join(f"{r['final_mean_x']:.2f}" for r in runs),
            round(sum(r["wall_s"] for r in runs) / len(runs) / 60, 1),
        ])
    table = C.markdown_table(
        ["method", "generations", f"escaped (an ant ended at x > {ESCAPE_X})",
         "solution escaped (mean final x)", "solution's mean final (x, y) per seed",
         f"solution's episodes past x = {ESCAPE_X} per seed",
         "best final x in the last generation per seed",
         "best final x per seed (with y where recorded)", "last-gen mean final x per seed",
         "minutes per seed"],
        rows)
    notes = [f"Escape = an evaluated ant's final torso x > {ESCAPE_X}: the front wall's face is "
             "at x = 4.9 and the walls touch only the feet, so from inside the U the torso can "
             "be pushed through the wall by up to a foot's reach (1.1 m), to x ~ 6.0; beyond "
             f"{ESCAPE_X} only an ant that went around the U ends. Picture: "
             f"{args.png.name} (seed 0 of each method).",
             "The solution is the run's deployed policy after training (the ES mean; the "
             "novelty variants' agent with the best last evaluation), played on "
             f"{args.deploy_episodes} fresh episodes with the run's observation statistics; it "
             f"escaped when its mean final x over them is past {ESCAPE_X}.",
             "Minutes per seed: a method's wall time over its seeds (one vmapped program, "
             "compilation included) divided by the number of seeds."]
    if "es" in results:
        base = results["es"]
        for m in ("nsr_es", "nsra_es"):
            if m in results and all("solution_escaped" in r for r in results[m] + base):
                wins = sum(r["solution_escaped"] for r in results[m])
                es_wins = sum(r["solution_escaped"] for r in base)
                p = C.fisher_one_sided(wins, len(results[m]), es_wins, len(base))
                notes.append(f"{LABELS[m]} vs OpenAI-ES, solution escaped: {wins}/"
                             f"{len(results[m])} vs {es_wins}/{len(base)} (one-sided Fisher "
                             f"exact p = {p:.3g}).")
    if args.load:
        notes.append("Assembled with --load from runs made by separate invocations (the date "
                     "and duration above are the assembly's); each method's runs started at: "
                     + "; ".join(f"{LABELS[m]} {when}" for m, when in runs_started.items()
                                 if m in results) + ".")
    C.save_section(
        args, "Ant U-trap: OpenAI-ES vs NSR-ES vs NSRA-ES, CPU budget (issue 8)", start,
        {"episodes per seed": args.episodes, "P": args.pop, "agents (NS)": args.agents,
         "NSRA patience": args.patience, "sigma": args.sigma, "Adam lr": args.lr,
         "MLP": "-".join(map(str, args.hidden)) + " tanh", "max_steps": args.max_steps,
         "backend": args.backend, "obs norm": "on",
         "seeds": f"{args.seeds} ({args.first_seed}-{args.first_seed + args.seeds - 1})",
         "deployed solution": f"{args.deploy_episodes} episodes",
         "frozen config": (f"{frozen['path']} (committed at {frozen['commit']}, before this "
                           "run)" if frozen else "none (command line)")},
        table, (), notes)


if __name__ == "__main__":
    main()
