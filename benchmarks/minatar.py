"""(f) MinAtar: Deep GA vs OpenAI-ES vs random search at an equal frame budget (CPU-sized).

Every method trains the MinAtar CNN (``el.policies.for_task``: conv 16 3x3, FC 128; Young &
Tian 2019) on the same games with the same population size and the same **frame budget**: a run
stops at the first generation whose cumulative environment steps (the trainer's ``steps``
metric: every member's episode plus the GA's and random search's validation episodes) reach the
budget. At fixed fractions of the budget (checkpoints) the current solution -- the validated
elite of the GA and of random search, the mean of OpenAI-ES -- is scored on fresh episodes with
``el.evaluate`` (the same evaluation keys for every method and seed; these steps are measurement
and are not charged to the budget).

* ``deep_ga``: ``el.strategies.deep_ga(P, sigma, truncation)``, one elite;
* ``random_search``: ``el.strategies.random_search(P)``: the same loop, every non-elite member a
  fresh random network each generation; same elites and the same validation as the GA;
* ``openai_es``: ``el.strategies.openai_es(P, sigma, learning_rate)`` (antithetic, centered
  ranks, Adam); no validation (its solution is the mean).

The GA and random search re-evaluate ``validation_candidates`` candidates on
``validation_episodes`` extra episodes per generation to pick the elite; those steps count in
the budget. One fresh process per (game, method) runs all seeds one after another (one compile);
the first generation of a throw-away run compiles the program before the timed runs.

Writes a table (score at checkpoints, final score mean +- std over seeds, wall time) to
``benchmarks/RESULTS.md`` and a plot of score vs frames (one panel per game, one line per
method, band = min..max over seeds) to ``benchmarks/minatar.png``.

Run ``python benchmarks/minatar.py`` (about 20-30 minutes on 2 cores); ``--quick`` is a
one-to-two-minute smoke version.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "(f) MinAtar: Deep GA vs OpenAI-ES vs random search at equal frames"
METHODS = ("deep_ga", "openai_es", "random_search")
LABELS = {"deep_ga": "Deep GA", "openai_es": "OpenAI-ES", "random_search": "random search"}
COLORS = {"deep_ga": "tab:blue", "openai_es": "tab:orange", "random_search": "tab:gray"}
EVAL_SEED = 20_191_103  # evaluation episodes: the same keys for every method and seed


# -- worker -----------------------------------------------------------------------------------
def _strategy(el, cfg: dict):
    p, method = cfg["pop_size"], cfg["method"]
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if method == "openai_es":
        return el.strategies.make(method, pop_size=p, sigma=cfg["es_sigma"],
                                  learning_rate=cfg["es_lr"])
    config = dict(pop_size=p, elites=1, validation_episodes=cfg["validation_episodes"],
                  validation_candidates=cfg["validation_candidates"])
    if method == "deep_ga":
        config.update(sigma=cfg["ga_sigma"], truncation=cfg["truncation"],
                      genome_capacity=cfg["genome_capacity"])
    return el.strategies.make(method, **config)


def worker(cfg: dict) -> None:
    import jax

    import evojax_lab as el

    task = el.tasks.make(cfg["game"], max_steps=cfg["max_steps"])
    policy = el.policies.for_task(task)
    strategy = _strategy(el, cfg)
    trainer = el.make_train(task, policy, strategy, generations=1, episodes=1,
                            eval_episodes=0, mesh="auto")
    devices = 1 if trainer.mesh is None else trainer.mesh.size
    budget = cfg["frames"]
    marks = [budget * (k + 1) / cfg["checkpoints"] for k in range(cfg["checkpoints"])]
    eval_keys = [jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), k) for k in range(len(marks))]
    score = jax.jit(lambda key, params: el.evaluate(
        key, task, policy, jax.tree.map(lambda x: x[None], params),
        episodes=cfg["eval_episodes"]).fitness[0])

    # compile the generation and the evaluation once, on a throw-away run
    start = time.perf_counter()
    warm, _ = trainer.run(trainer.init(jax.random.PRNGKey(10**6)), 1)
    jax.block_until_ready(score(eval_keys[0], strategy.solution(warm.state)))
    compile_s = time.perf_counter() - start

    runs = []
    for seed in cfg["seeds"]:
        carry = trainer.init(jax.random.PRNGKey(seed))
        jax.block_until_ready(carry)
        run = C.train_to_frames(
            trainer, carry, marks,
            measure=lambda k, carry: {"score": float(score(eval_keys[k],
                                                           strategy.solution(carry.state)))},
            keep=lambda metrics: {name: float(metrics[name]) for name in
                                  ("steps", "best_fitness", "mean_fitness", "elite_fitness")
                                  if name in metrics})
        gens, checkpoints = run["generations"], run["checkpoints"]
        print(f"  seed {seed}: {len(gens)} generations, {gens[-1]['steps']:,.0f} frames, "
              f"final score {checkpoints[-1]['score']:.2f}, {run['train_s']:.1f} s", flush=True)
        runs.append({"seed": seed, "train_s": run["train_s"], "eval_s": run["eval_s"],
                     "checkpoints": checkpoints, "generations": gens})
    C.report({"game": cfg["game"], "method": cfg["method"], "devices": devices,
              "num_params": el.tree.num_params(trainer.initial_params(jax.random.PRNGKey(0))),
              "compile_s": compile_s, "runs": runs})


# -- driver -----------------------------------------------------------------------------------
def _mean_std(values) -> tuple[float, float]:
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pm(values, digits: int = 1) -> str:
    mean, std = _mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _frames(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def plot(results: dict, games, methods, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(games), figsize=(5.5 * len(games), 4), squeeze=False,
                             constrained_layout=True)
    for ax, game in zip(axes[0], games, strict=True):
        for method in methods:
            res = results[(game, method)]
            scores = np.array([[c["score"] for c in r["checkpoints"]] for r in res["runs"]])
            frames = np.array([[c["frames"] for c in r["checkpoints"]] for r in res["runs"]])
            x = frames.mean(axis=0)
            ax.plot(x, scores.mean(axis=0), marker="o", ms=3, color=COLORS[method],
                    label=f"{LABELS[method]} (mean of {len(res['runs'])})")
            ax.fill_between(x, scores.min(axis=0), scores.max(axis=0), color=COLORS[method],
                            alpha=0.2, lw=0)
        ax.set_title(game)
        ax.set_xlabel("environment frames (validation included)")
        ax.set_ylabel("solution score (mean return, fresh episodes)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--games", default="Breakout-MinAtar,SpaceInvaders-MinAtar",
                        help="comma-separated MinAtar games")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per (game, method)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first, first+1, ...")
    parser.add_argument("--frames", type=float, default=200_000,
                        help="frame budget per run (env steps, validation included)")
    parser.add_argument("--pop-size", type=int, default=64, help="population size (all)")
    parser.add_argument("--max-steps", type=int, default=1000,
                        help="episode cutoff (gymnax's own is 1,000 for these games)")
    parser.add_argument("--checkpoints", type=int, default=8,
                        help="evenly spaced points of the budget where the solution is scored")
    parser.add_argument("--eval-episodes", type=int, default=30,
                        help="fresh episodes scoring the solution at each checkpoint")
    parser.add_argument("--validation-episodes", type=int, default=5,
                        help="GA and random search: episodes re-evaluating each candidate")
    parser.add_argument("--validation-candidates", type=int, default=5,
                        help="GA and random search: candidates re-evaluated per generation")
    parser.add_argument("--ga-sigma", type=float, default=0.002,
                        help="GA mutation strength (the Deep GA paper's and the library's default)")
    parser.add_argument("--truncation", type=int, default=10, help="GA parents per generation")
    parser.add_argument("--es-sigma", type=float, default=0.02, help="OpenAI-ES sigma")
    parser.add_argument("--es-lr", type=float, default=0.01, help="OpenAI-ES Adam step size")
    parser.add_argument("--host-devices", type=int, default=None,
                        help="CPU host devices per worker (default: all cores)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="plot file (default: benchmarks/minatar.png for a saved full run; "
                             "none for --quick or --no-save unless given)")
    parser.add_argument("--config", help="a committed JSON file of frozen settings (the held-out "
                        "protocol: benchmarks/configs/); no other option may be given with it")
    frozen = C.frozen_config(parser)
    args = parser.parse_args()
    if args.quick:
        args.games, args.seeds, args.frames, args.pop_size = "Breakout-MinAtar", 2, 4_000, 16
        args.checkpoints, args.eval_episodes, args.truncation = 2, 4, 4
        args.validation_episodes, args.validation_candidates = 2, 2
    games = [g.strip() for g in args.games.split(",") if g.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown methods {sorted(unknown)}")
    if args.plot is None and not args.quick and not args.no_save:
        args.plot = C.HERE / "minatar.png"
    host_devices = args.host_devices or C.machine()["cores"] or 1
    start = C.started()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    base = {"seeds": seeds, "frames": args.frames, "pop_size": args.pop_size,
            "max_steps": args.max_steps, "checkpoints": args.checkpoints,
            "eval_episodes": args.eval_episodes, "validation_episodes": args.validation_episodes,
            "validation_candidates": args.validation_candidates, "ga_sigma": args.ga_sigma,
            "truncation": args.truncation, "es_sigma": args.es_sigma, "es_lr": args.es_lr,
            # the GA's genomes grow by one mutation per generation: room for the longest run
            "genome_capacity": int(args.frames // args.pop_size) + 1}
    results = {}
    for game in games:
        for method in methods:
            print(f"[{game}] {LABELS[method]}, {args.seeds} seed(s), "
                  f"{args.frames:,.0f} frames each ...", flush=True)
            res = C.run_worker(__file__, {**base, "game": game, "method": method},
                               host_devices=host_devices, timeout=3600)
            results[(game, method)] = res
            finals = [r["checkpoints"][-1]["score"] for r in res["runs"]]
            print(f"    final score {_pm(finals, 2)}; compile {res['compile_s']:.1f} s, "
                  f"train {statistics.fmean(r['train_s'] for r in res['runs']):.1f} s/seed",
                  flush=True)

    marks = [args.frames * (k + 1) / args.checkpoints for k in range(args.checkpoints)]
    shown = sorted({0, args.checkpoints // 4 - 1, args.checkpoints // 2 - 1,
                    args.checkpoints - 1} - {-1})
    headers = (["game", "method"] + [f"score @ {_frames(marks[k])}" for k in shown[:-1]]
               + ["final score (mean ± std)", "per seed", "generations", "frames (mean)",
                  "train s / seed", "compile s", "peak RSS GB"])
    rows = []
    for (game, method), res in results.items():
        runs = res["runs"]
        finals = [r["checkpoints"][-1]["score"] for r in runs]
        rows.append([game, LABELS[method],
                     *(_pm([r["checkpoints"][k]["score"] for r in runs]) for k in shown[:-1]),
                     f"**{_pm(finals, 2)}**", " / ".join(f"{s:.1f}" for s in finals),
                     f"{statistics.fmean(len(r['generations']) for r in runs):.0f}",
                     f"{statistics.fmean(r['generations'][-1]['steps'] for r in runs):,.0f}",
                     f"{statistics.fmean(r['train_s'] for r in runs):.0f}",
                     f"{res['compile_s']:.0f}", f"{res['peak_rss_gb']:.2f}"])
    table = C.markdown_table(headers, rows)

    checks, notes = [], []
    for game in games:
        if (game, "deep_ga") not in results or (game, "random_search") not in results:
            continue
        ga = [r["checkpoints"][-1]["score"] for r in results[(game, "deep_ga")]["runs"]]
        rs = [r["checkpoints"][-1]["score"] for r in results[(game, "random_search")]["runs"]]
        ga_auc = statistics.fmean(c["score"] for r in results[(game, "deep_ga")]["runs"]
                                  for c in r["checkpoints"])
        rs_auc = statistics.fmean(c["score"] for r in results[(game, "random_search")]["runs"]
                                  for c in r["checkpoints"])
        if statistics.fmean(rs) > 0:
            target = ">= 1" if game == "Breakout-MinAtar" and not args.quick else ""
            checks.append((f"[{game}] final score, Deep GA / random search",
                           statistics.fmean(ga) / statistics.fmean(rs), "x", target))
        beats = statistics.fmean(ga) > statistics.fmean(rs)
        notes.append(f"{game}: Deep GA {_pm(ga, 2)} vs random search {_pm(rs, 2)} at "
                     f"{_frames(args.frames)} frames: the GA is "
                     f"{'ahead' if beats else 'NOT ahead'} on the mean; seeds where the GA "
                     f"beats every random-search seed: {sum(g > max(rs) for g in ga)}/{len(ga)}; "
                     f"mean score over all checkpoints {ga_auc:.2f} vs {rs_auc:.2f}.")
        if len(ga) > 1 and len(rs) > 1:
            low, high = C.bootstrap_mean_difference(ga, rs)
            notes.append(f"{game}: final score, Deep GA minus random search: 95% bootstrap "
                         f"interval [{low:.2f}, {high:.2f}] over {len(ga)} vs {len(rs)} seeds.")
    settings = {
        "games": ", ".join(games), "seeds": f"{seeds[0]}-{seeds[-1]}",
        "frozen config": (f"{frozen['path']} (committed at {frozen['commit']}, before this run)"
                          if frozen else "none (settings from the command line)"),
        "frame budget per run": f"{args.frames:,.0f} env steps (validation included; a run "
                                "stops at the first generation reaching it)",
        "population (all methods)": args.pop_size, "episodes per member": 1,
        "episode cutoff": args.max_steps,
        "policy": "MinAtar CNN (conv 16 3x3 VALID, FC 128, argmax)",
        "Deep GA": f"sigma {args.ga_sigma}, truncation {args.truncation}, 1 elite",
        "random search": "1 elite",
        "GA / random search validation": f"{args.validation_candidates} candidates x "
                                         f"{args.validation_episodes} episodes per generation",
        "OpenAI-ES": f"sigma {args.es_sigma}, Adam lr {args.es_lr}, antithetic, centered "
                     "ranks, weight decay 0.005 (library defaults)",
        "score": f"solution's mean return on {args.eval_episodes} fresh episodes at "
                 f"{args.checkpoints} evenly spaced checkpoints (same episode keys for all)",
        "host devices per worker": host_devices,
    }
    notes += [
        "score @ F: the score at the first generation whose cumulative frames reach F (mean ± "
        "std over seeds); frames (mean): frames actually used (a run ends at the first "
        "generation at or past the budget).",
        "train s / seed: wall time of the generations only (compile, done on a throw-away "
        "generation, and checkpoint scoring excluded); the machine may be shared (see load).",
    ]
    if args.plot is not None:
        plot(results, games, methods, args.plot,
             f"MinAtar, equal frame budget, P = {args.pop_size}, {args.seeds} seeds "
             "(band: min..max over seeds)")
        notes.append(f"Plot: `{_display(args.plot)}` (score vs frames, band = min..max over "
                     "seeds).")
        print(f"(plot written to {args.plot})")
    C.save_section(args, TITLE, start, settings, table, checks, notes)
    if any(not math.isfinite(r["checkpoints"][-1]["score"])
           for res in results.values() for r in res["runs"]):
        print("WARNING: a non-finite score")


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(C.ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    C.entry(worker, main)
