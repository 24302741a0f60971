"""Safe mutations vs plain Gaussian mutation in the Deep GA, on deep and recurrent networks.

The experiment of Lehman et al. (2017), arXiv:1712.06563 (REFERENCE §3), with our truncation
Deep GA as the search: the same GA (population, truncation, one elite, equal evaluations) with
each mutation operator —

* ``plain``: ``w' = w + m * eps``;
* ``sum`` / ``abs`` / ``so``: SM-G-SUM / SM-G-ABS / SM-G-SO, ``delta = m * eps / s`` with the
  sensitivity ``s`` measured on the parent's own experiences (100 observations sampled from one
  extra rollout of each new parent, which the GA's ``tell`` runs through ``evaluate(...,
  experiences=100)``: ``T`` episodes per generation on the maze) — floors 0.01 and clip ±0.2;
* ``r``: SM-R, ``w + x * eps`` with ``x`` chosen so that the mean squared output divergence on
  the experiences equals ``m``.

Domains: the Breadcrumb Hard Maze (fitness ``-B(final position)``, the shortest-path distance
to the goal; a seed succeeds when any evaluated individual ends within 10 units of the goal)
with deep ReLU MLPs of 15 units per layer (``--depths``, default 6 and 32 hidden layers), and
recurrent 4-bit parity with 2 stacked RNN layers of 15 tanh units (a seed succeeds when the
final elite classifies all 16 sequences; the safe mutations measure on the 16 sequences).
Writes a success table to benchmarks/RESULTS.md and the picture benchmarks/safe_mutations.png
(best breadcrumb fitness over evaluations, median over seeds, per depth and operator).

Every (domain, operator) runs in its own worker process (its seeds there, one compilation).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TITLE = "Safe mutations vs plain mutation on deep and recurrent networks (issue 6)"
KINDS = ("plain", "sum", "abs", "so", "r")
LABELS = {"plain": "plain", "sum": "SM-G-SUM", "abs": "SM-G-ABS", "so": "SM-G-SO", "r": "SM-R"}
SUCCESS_DISTANCE = 10.0


def mutation_of(el, kind, apply_fn, *, observation_shape=None, inputs=None, experiences=100):
    if kind == "plain":
        return None
    if inputs is not None:
        return el.mutations.safe_mutation(apply_fn, kind, inputs=inputs)
    return el.mutations.safe_mutation(apply_fn, kind, experiences=experiences,
                                      observation_shape=observation_shape)


def worker(cfg):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el
    from evojax_lab.tasks.hard_maze import HARD_MAZE_GOAL
    from evojax_lab.tasks.parity import parity_data

    kind, pop, gens = cfg["kind"], cfg["pop"], cfg["generations"]
    sigma = {"plain": cfg["plain_sigma"], "r": cfg["r_magnitude"]}.get(kind, cfg["magnitude"])
    if cfg["domain"] == "parity":
        model = el.policies.Recurrent(cell="rnn", hidden=15, layers=2, outputs=2)
        sequences, _ = parity_data()
        task = el.tasks.parity(model.apply)
        policy = None
        template = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((4, 1)))
        template = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
        op = mutation_of(el, kind, model.apply, inputs=jnp.asarray(sequences))
    else:
        task = el.tasks.breadcrumb_hard_maze()
        policy = el.policies.deep_mlp(cfg["depth"], 15, action_dim=2)
        template = jax.eval_shape(policy.init, jax.random.key(0),
                                  jnp.zeros(task.observation_shape))
        template = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
        op = mutation_of(el, kind, policy.apply, observation_shape=task.observation_shape,
                         experiences=cfg["experiences"])
    strategy = el.strategies.deep_ga(pop, sigma, cfg["truncation"], validation_episodes=0,
                                     mutation=op, genome_capacity=0)
    record = ("fitness",) if cfg["domain"] == "parity" else ("fitness", "behavior")
    trainer = el.make_train(task, policy, strategy, generations=gens, eval_episodes=0,
                            params=template, record=record, mesh=None)
    runs = []
    for seed in cfg["seeds"]:
        start = time.perf_counter()
        result = jax.block_until_ready(trainer(jax.random.key(seed)))
        seconds = time.perf_counter() - start
        fitness = np.asarray(result.metrics["population_fitness"])  # [G, P]
        best = np.maximum.accumulate(fitness.max(axis=1))
        run = {"seed": seed, "seconds": seconds, "best_curve": best.tolist(),
               "best_fitness": float(best[-1])}
        if cfg["domain"] == "parity":
            acc = float(el.tasks.parity_accuracy(model.apply, result.solution))
            run["accuracy"] = acc
            run["success"] = acc == 1.0
        else:
            behavior = np.asarray(result.metrics["population_behavior"])  # [G, P, 2]
            dist = np.linalg.norm(behavior - np.asarray(HARD_MAZE_GOAL), axis=-1)
            closest = dist.min(axis=1)
            hit = np.nonzero(closest <= SUCCESS_DISTANCE)[0]
            run["success"] = bool(len(hit))
            run["evaluations_to_success"] = int((hit[0] + 1) * pop) if len(hit) else None
            run["closest"] = float(closest.min())
        print(f"  {cfg['name']} seed {seed}: {'solved' if run['success'] else 'not solved'}, "
              f"best fitness {run['best_fitness']:.3f}, {seconds:.0f} s", file=sys.stderr,
              flush=True)
        runs.append(run)
    C.report({"name": cfg["name"], "runs": runs})


def draw(curves: dict, pop: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    domains = list(curves)
    fig, axes = plt.subplots(1, len(domains), figsize=(4.3 * len(domains), 3.6), squeeze=False)
    for ax, domain in zip(axes[0], domains, strict=True):
        for kind, runs in curves[domain].items():
            best = np.array([r["best_curve"] for r in runs])
            x = (np.arange(best.shape[1]) + 1) * pop
            wins = sum(r["success"] for r in runs)
            ax.plot(x, np.median(best, axis=0), label=f"{LABELS[kind]} ({wins}/{len(runs)})")
            ax.fill_between(x, best.min(axis=0), best.max(axis=0), alpha=0.12)
        ax.set_title(domain, fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best fitness (median, range over seeds)")
        ax.legend(fontsize=7, title="operator (solved seeds)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--depths", type=int, nargs="*", default=[6, 32],
                        help="hidden layers of the maze MLPs (15 units each)")
    parser.add_argument("--no-parity", action="store_true", help="skip recurrent parity")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed ... first-seed + seeds - 1 (to add seeds to "
                        "an earlier run)")
    parser.add_argument("--pop", type=int, default=100)
    parser.add_argument("--truncation", type=int, default=10)
    parser.add_argument("--generations", type=int, default=100,
                        help="maze generations (evaluations = pop x generations)")
    parser.add_argument("--parity-generations", type=int, default=200)
    parser.add_argument("--magnitude", type=float, default=0.03,
                        help="m of SM-G-SUM / ABS / SO")
    parser.add_argument("--r-magnitude", type=float, default=0.2,
                        help="SM-R's target mean squared output divergence (default 0.2: "
                        "best of 0.01 / 0.05 / 0.1 / 0.2 on the 32-layer maze, RESULTS.md; the "
                        "paper's m = 0.01 is its GA's default)")
    parser.add_argument("--plain-sigma", type=float, default=0.1, help="sigma of plain")
    parser.add_argument("--experiences", type=int, default=100)
    parser.add_argument("--picture", type=Path, default=C.HERE / "safe_mutations.png")
    parser.add_argument("--config", help="a committed JSON file of frozen settings (the held-out "
                        "protocol: benchmarks/configs/); no other option may be given with it")
    frozen = C.frozen_config(parser)
    args = parser.parse_args()
    args.picture = Path(args.picture)  # a frozen config gives a string
    if args.quick:
        args.seeds, args.generations, args.parity_generations, args.pop = 1, 3, 3, 16
        args.truncation = 4
    start = C.started()
    domains = [(f"breadcrumb maze, {d} hidden layers", "maze", d) for d in args.depths]
    if not args.no_parity:
        domains.append(("recurrent 4-bit parity (2x15 RNN)", "parity", 0))
    rows, curves = [], {}
    for title, domain, depth in domains:
        curves[title] = {}
        for kind in args.kinds:
            name = f"{domain}{depth or ''}/{kind}"
            print(f"{name} ...", flush=True)
            gens = args.parity_generations if domain == "parity" else args.generations
            cfg = {"name": name, "domain": domain, "depth": depth, "kind": kind,
                   "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
                   "pop": args.pop,
                   "truncation": args.truncation, "generations": gens,
                   "magnitude": args.magnitude, "plain_sigma": args.plain_sigma,
                   "r_magnitude": args.r_magnitude,
                   "experiences": args.experiences}
            res = C.run_worker(__file__, cfg, host_devices=1)
            runs = res["runs"]
            curves[title][kind] = runs
            wins = [r for r in runs if r["success"]]
            detail = (", ".join(f"{r['accuracy']:.2f}" for r in runs) if domain == "parity"
                      else ", ".join(f"{r['closest']:.0f}" for r in runs))
            rows.append([title, LABELS[kind], f"{len(wins)}/{len(runs)}",
                         C.median([r["best_fitness"] for r in runs]), detail,
                         f"{args.pop * gens:,}",
                         f"{sum(r['seconds'] for r in runs) / 60:.1f}"])
            print(f"  -> {len(wins)}/{len(runs)} solved", flush=True)
    if not args.no_save or args.quick:
        draw(curves, args.pop, args.picture)
        print(f"picture: {args.picture}")
    table = C.markdown_table(
        ["domain", "mutation", "solved seeds", "median best fitness",
         "per seed: closest distance to the goal (maze) / final accuracy (parity)",
         "evaluations per run", "minutes (all seeds)"], rows)
    settings = {
        "search": f"truncation Deep GA, P = {args.pop}, T = {args.truncation}, 1 elite, no "
                  "re-evaluation (deterministic tasks), equal population evaluations for every "
                  "operator",
        "magnitudes": f"plain sigma = {args.plain_sigma}; SM-G-* m = {args.magnitude} (floor "
                      f"0.01, clip 0.2); SM-R target divergence {args.r_magnitude}",
        "experiences": f"{args.experiences} observations sampled from one extra rollout of "
                       f"each new parent (maze: {args.truncation} episodes per generation, not "
                       "in the evaluations column); the 16 sequences (parity)",
        "maze": "breadcrumb_hard_maze (400 maze steps, action repeat 3), MLP 11-(15 x depth)-2 "
                "ReLU, reference init; solved = an evaluated individual ends within 10 of "
                "the goal",
        "parity": "Recurrent(rnn, 2 x 15 tanh) -> 2 logits at the last step, fitness -NLL; "
                  "solved = final elite 100% accurate",
        "seeds": f"{args.seeds} ({args.first_seed} to {args.first_seed + args.seeds - 1})",
        "frozen config": (f"{frozen['path']} (committed at {frozen['commit']}, before this run)"
                          if frozen else "none (command line)"),
    }
    notes = [f"Picture: [{args.picture.name}]({args.picture.name})."]
    for title, runs_of in curves.items():
        if "plain" not in runs_of:
            continue
        plain = sum(r["success"] for r in runs_of["plain"])
        for kind, runs in runs_of.items():
            if kind != "plain":
                wins = sum(r["success"] for r in runs)
                p = C.fisher_one_sided(wins, len(runs), plain, len(runs_of["plain"]))
                notes.append(f"{title}: {LABELS[kind]} {wins}/{len(runs)} vs plain {plain}/"
                             f"{len(runs_of['plain'])} solved (one-sided Fisher exact p = "
                             f"{p:.3g}).")
    C.save_section(args, TITLE, start, settings, table, (), notes)


if __name__ == "__main__":
    C.entry(worker, main)
