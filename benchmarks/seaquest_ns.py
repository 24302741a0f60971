"""Seaquest: OpenAI-ES vs NSR-ES vs NSRA-ES at an equal frame budget, and whether they surface.

The Seaquest effect of the NS-ES paper (Conti et al. 2018, REFERENCE): "plain ES converges to
not surfacing for oxygen; the novelty variants learn to surface and score higher". This script
measures it on ``Seaquest-MinAtar`` (gymnax) and reports what it finds, met or not.

Every method trains the MinAtar CNN (``el.policies.for_task``) with the same population size
``P``, sigma, Adam step size, one episode per member, and the same **frame budget**: a run
stops at the first generation whose cumulative environment steps reach it. The budget is the
trainer's ``steps`` metric, which counts every frame a method uses: the members' episodes and,
for the novelty variants, the agents' own evaluations (the ``M`` initial agents at generation 0,
then the updated agent once per generation; ``tell`` reports them as ``extra_steps``). The
worker checks that ``steps`` equals the recorded member steps plus those agent steps.

* ``openai_es``: ``el.strategies.openai_es(P, sigma, learning_rate=lr)``; solution: the mean;
* ``nsr_es`` / ``nsra_es``: ``el.strategies.nsr_es / nsra_es`` with ``M`` agents (NSRA-ES's
  ``patience``), novelty = mean distance to the 10 nearest archive behaviors; solution
  (``strategy.solution``): the agent whose last evaluation (one episode) scored best.

Every arm starts from flax's default initialization of the CNN (``policy.init``): the ES mean
from the trainer's init key, each novelty agent from its own draw (``agent_init``), so no arm
differs by its starting distribution.

Surfacing: :func:`with_surfacing` counts, per episode, the oxygen refills (surfacing with at
least one diver); the behavior descriptor of the novelty variants is ``[refills, final sub x,
final sub y]``. At fixed fractions of the budget (checkpoints) the current solution plays
``--eval-episodes`` fresh episodes (the same keys for every method and seed; measurement, not
charged to the budget): its mean score, its mean refills per episode and the fraction of
episodes with at least one refill.

One fresh process per method runs all seeds one after another (one compile, on a throw-away
run). Writes a table to ``benchmarks/RESULTS.md`` and a picture (score and refills per episode
vs frames, one line per method, band = min..max over seeds) to ``benchmarks/seaquest_ns.png``.
``--quick`` is a smoke version (1 seed, 3,000 frames, P = 8): about 3 minutes on 2 busy cores,
nearly all of it compilation (one compile per method).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from minatar import _display, _frames, _pm  # noqa: E402

TITLE = "Seaquest-MinAtar: OpenAI-ES vs NSR-ES vs NSRA-ES at equal frames, and surfacing"
GAME = "Seaquest-MinAtar"
METHODS = ("openai_es", "nsr_es", "nsra_es")
LABELS = {"openai_es": "OpenAI-ES", "nsr_es": "NSR-ES", "nsra_es": "NSRA-ES"}
COLORS = {"openai_es": "tab:orange", "nsr_es": "tab:blue", "nsra_es": "tab:green"}
EVAL_SEED = 20_180_523  # evaluation episodes: the same keys for every method and seed
KEPT = ("steps", "best_fitness", "mean_fitness", "agent_fitness", "weight", "mean_novelty")


def with_surfacing(task):
    """``task`` (Seaquest-MinAtar) with its oxygen refills counted.

    Rule: a step is a *refill* when the new state's ``oxygen`` is greater than the previous
    state's and the new state is not terminal (gymnax's ``terminal``: the episode did not end on
    that step). In gymnax's Seaquest the sub surfaces when ``sub_y`` becomes 0 while ``surface``
    is False; with divers aboard this refills oxygen to ``max_oxygen`` (otherwise oxygen only
    falls, by one per step underwater), while surfacing with no diver ends the episode (and
    sets oxygen to the maximum on that very step: not a refill).

    The wrapped state is ``(inner_state, refills)`` (``refills`` an int32 count over the
    episode); ``behavior(obs, state)`` is float32 ``[refills, final sub_x, final sub_y]``
    (``behavior_size`` 3). Everything else is ``task``'s.
    """
    import jax.numpy as jnp

    def reset(key):
        obs, inner = task.reset(key)
        return obs, (inner, jnp.zeros((), jnp.int32))

    def step(key, state, action):
        inner, refills = state
        obs, new, reward, done = task.step(key, inner, action)
        refill = (new.oxygen > inner.oxygen) & ~new.terminal
        return obs, (new, refills + refill.astype(jnp.int32)), reward, done

    def behavior(obs, state):
        del obs
        inner, refills = state
        return jnp.stack([refills, inner.sub_x, inner.sub_y]).astype(jnp.float32)

    return task._replace(reset=reset, step=step, behavior=behavior, behavior_size=3)


# -- worker -----------------------------------------------------------------------------------
def _strategy(el, cfg: dict, task, policy):
    import jax.numpy as jnp

    p, method = cfg["pop_size"], cfg["method"]
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if method == "openai_es":
        return el.strategies.openai_es(p, cfg["sigma"], learning_rate=cfg["lr"])
    zeros = jnp.zeros(task.observation_shape, jnp.float32)
    return getattr(el.strategies, method)(
        p, cfg["sigma"], learning_rate=cfg["lr"], behavior_size=task.behavior_size,
        num_agents=cfg["agents"], archive_capacity=cfg["archive_capacity"],
        patience=cfg["patience"], agent_init=lambda key, _: policy.init(key, zeros))


def worker(cfg: dict) -> None:
    import jax
    import numpy as np

    import evojax_lab as el

    task = with_surfacing(el.tasks.make(GAME, max_steps=cfg["max_steps"]))
    policy = el.policies.for_task(task)
    strategy = _strategy(el, cfg, task, policy)
    trainer = el.make_train(task, policy, strategy, generations=1, episodes=1,
                            eval_episodes=0, mesh="auto", record=("behavior", "steps"))
    devices = 1 if trainer.mesh is None else trainer.mesh.size
    budget = cfg["frames"]
    marks = [budget * (k + 1) / cfg["checkpoints"] for k in range(cfg["checkpoints"])]
    eval_keys = [jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), k) for k in range(len(marks))]

    @jax.jit
    def measure(key, params):
        """Per fresh episode: the solution's return and refills (one el.evaluate per key)."""
        one = jax.tree.map(lambda x: x[None], params)
        ev = jax.vmap(lambda k: el.evaluate(k, task, policy, one, episodes=1))(
            jax.random.split(key, cfg["eval_episodes"]))
        return ev.fitness[:, 0], ev.behavior[:, 0, 0]

    # compile the generation and the measurement once, on a throw-away run
    start = time.perf_counter()
    warm, _ = trainer.run(trainer.init(jax.random.PRNGKey(10**6)), 1)
    jax.block_until_ready(measure(eval_keys[0], strategy.solution(warm.state)))
    compile_s = time.perf_counter() - start

    def measure_point(k, carry):
        returns, refills = map(np.asarray, measure(eval_keys[k], strategy.solution(carry.state)))
        return {"score": float(returns.mean()), "refills": float(refills.mean()),
                "refill_episodes": float((refills >= 1).mean())}

    def keep(metrics):
        gen = {name: float(metrics[name]) for name in KEPT if name in metrics}
        gen["population_refills"] = float(metrics["population_behavior"][:, 0].mean())
        gen["member_frames"] = float(metrics["population_steps"].sum())
        gen["agent_frames"] = float(metrics.get("extra_steps", 0.0))  # novelty agents' episodes
        return gen

    runs = []
    for seed in cfg["seeds"]:
        carry = trainer.init(jax.random.PRNGKey(seed))
        jax.block_until_ready(carry)
        run = C.train_to_frames(trainer, carry, marks, measure_point, keep)
        gens, checkpoints = run["generations"], run["checkpoints"]
        train_s, eval_s = run["train_s"], run["eval_s"]
        member_frames = sum(g.pop("member_frames") for g in gens)
        agent_frames = sum(g.pop("agent_frames") for g in gens)
        frames = gens[-1]["steps"]
        # every frame is in the budget: the trainer's steps = member episodes + agent episodes
        # (at least one step for each of the M initial and the G updated agents' evaluations)
        least = 0 if cfg["method"] == "openai_es" else cfg["agents"] + len(gens)
        if frames != member_frames + agent_frames or agent_frames < least:
            raise RuntimeError(f"frame accounting: steps {frames} vs members {member_frames} "
                               f"+ agents {agent_frames}")
        last = checkpoints[-1]
        print(f"  seed {seed}: {len(gens)} generations, {frames:,.0f} frames "
              f"({agent_frames:,.0f} by agent evaluations), final score {last['score']:.2f}, "
              f"refills/episode {last['refills']:.2f}, {train_s:.1f} s "
              f"({frames / train_s:,.0f} frames/s)", flush=True)
        runs.append({"seed": seed, "train_s": train_s, "eval_s": eval_s,
                     "member_frames": member_frames, "agent_frames": agent_frames,
                     "checkpoints": checkpoints, "generations": gens})
    C.report({"method": cfg["method"], "devices": devices,
              "num_params": el.tree.num_params(trainer.initial_params(jax.random.PRNGKey(0))),
              "compile_s": compile_s, "runs": runs})


# -- driver -----------------------------------------------------------------------------------
def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    panels = (("score", "solution score (mean return, fresh episodes)"),
              ("refills", "solution's oxygen refills per episode"))
    for ax, (field, ylabel) in zip(axes, panels, strict=True):
        for method, res in results.items():
            values = np.array([[c[field] for c in r["checkpoints"]] for r in res["runs"]])
            frames = np.array([[c["frames"] for c in r["checkpoints"]] for r in res["runs"]])
            x = frames.mean(axis=0)
            ax.plot(x, values.mean(axis=0), marker="o", ms=3, color=COLORS[method],
                    label=f"{LABELS[method]} (mean of {len(res['runs'])})")
            ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=COLORS[method],
                            alpha=0.2, lw=0)
        ax.set_xlabel("environment frames (agent evaluations included)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _finals(res: dict, field: str = "score") -> list[float]:
    return [r["checkpoints"][-1][field] for r in res["runs"]]


def _surfacing_seeds(res: dict) -> int:
    """Seeds whose final solution refills at least once per episode on average."""
    return sum(v >= 1 for v in _finals(res, "refills"))


def _finding(results: dict) -> str:
    """A plain sentence: the paper's claim, read off the final solutions. Read as met when
    OpenAI-ES's final solution refills at least once per episode (on average) in at most half
    of its seeds, and each novelty variant's does in more than half of its seeds with a higher
    mean final score than OpenAI-ES."""
    es = results.get("openai_es")
    if es is None:
        return "OpenAI-ES was not run: the paper's comparison cannot be read."
    es_score, es_surfaces = statistics.fmean(_finals(es)), _surfacing_seeds(es)
    es_no_surface = 2 * es_surfaces <= len(es["runs"])
    parts, verdicts = [], {}
    for method, res in results.items():
        parts.append(f"{LABELS[method]} {_surfacing_seeds(res)}/{len(res['runs'])} "
                     f"({_pm(_finals(res, 'refills'), 2)} refills per episode, score "
                     f"{_pm(_finals(res), 2)})")
        if method != "openai_es":
            verdicts[method] = (2 * _surfacing_seeds(res) > len(res["runs"])
                                and statistics.fmean(_finals(res)) > es_score)
    text = ("Seeds whose final solution refills at least once per episode on average: "
            + "; ".join(parts) + ".")
    if not verdicts:
        return text + " No novelty variant was run."
    met = es_no_surface and all(verdicts.values())
    reading = "met" if met else "NOT met"
    return (text + f" The paper's claim (ES converges to not surfacing; the novelty variants "
            f"surface and score higher) is **{reading}** here: OpenAI-ES "
            + ("surfaces in at most half of its seeds; " if es_no_surface
               else "surfaces in most of its seeds; ")
            + "; ".join(f"{LABELS[m]} " + ("surfaces in most seeds and scores higher" if ok
                                          else "does not both surface in most seeds and "
                                          "score higher") for m, ok in verdicts.items())
            + ".")


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first, first+1, ...")
    parser.add_argument("--frames", type=float, default=500_000,
                        help="frame budget per run (env steps, agent evaluations included)")
    parser.add_argument("--pop-size", type=int, default=64, help="population size (all)")
    parser.add_argument("--sigma", type=float, default=0.02, help="perturbation std (all)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam step size (all)")
    parser.add_argument("--agents", type=int, default=3, help="NSR-ES / NSRA-ES agents M")
    parser.add_argument("--patience", type=int, default=10,
                        help="NSRA-ES: generations without improvement before w falls")
    parser.add_argument("--max-steps", type=int, default=1000,
                        help="episode cutoff (gymnax's own is 1,000)")
    parser.add_argument("--checkpoints", type=int, default=8,
                        help="evenly spaced points of the budget where the solution is scored")
    parser.add_argument("--eval-episodes", type=int, default=30,
                        help="fresh episodes scoring the solution at each checkpoint")
    parser.add_argument("--host-devices", type=int, default=None,
                        help="CPU host devices per worker (default: all cores)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="plot file (default: benchmarks/seaquest_ns.png for a saved full "
                             "run; none for --quick or --no-save unless given)")
    parser.add_argument("--config", help="a committed JSON file of frozen settings (the held-out "
                        "protocol: benchmarks/configs/); no other option may be given with it")
    frozen = C.frozen_config(parser)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.frames, args.pop_size = 1, 3_000, 8
        args.checkpoints, args.eval_episodes = 2, 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown methods {sorted(unknown)}")
    if args.plot is None and not args.quick and not args.no_save:
        args.plot = C.HERE / "seaquest_ns.png"
    host_devices = args.host_devices or C.machine()["cores"] or 1
    start = C.started()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    # Every episode takes at least one step, so a run has at most ceil(frames / (P + 1))
    # novelty generations; the archive then holds M + G behaviors and never overwrites one.
    max_gens = int(args.frames // (args.pop_size + 1)) + 1
    base = {"seeds": seeds, "frames": args.frames, "pop_size": args.pop_size,
            "sigma": args.sigma, "lr": args.lr, "agents": args.agents,
            "patience": args.patience, "max_steps": args.max_steps,
            "checkpoints": args.checkpoints, "eval_episodes": args.eval_episodes,
            "archive_capacity": max_gens + args.agents}
    results = {}
    for method in methods:
        print(f"[{GAME}] {LABELS[method]}, {args.seeds} seed(s), "
              f"{args.frames:,.0f} frames each ...", flush=True)
        res = C.run_worker(__file__, {**base, "method": method}, host_devices=host_devices,
                           timeout=4 * 3600)
        results[method] = res
        print(f"    final score {_pm(_finals(res), 2)}, refills/episode "
              f"{_pm(_finals(res, 'refills'), 2)}; compile {res['compile_s']:.1f} s, "
              f"train {statistics.fmean(r['train_s'] for r in res['runs']):.1f} s/seed",
              flush=True)

    marks = [args.frames * (k + 1) / args.checkpoints for k in range(args.checkpoints)]
    shown = sorted({0, args.checkpoints // 4 - 1, args.checkpoints // 2 - 1,
                    args.checkpoints - 1} - {-1})
    headers = (["method"] + [f"score @ {_frames(marks[k])}" for k in shown[:-1]]
               + ["final score (mean ± std)", "per seed", "final refills / episode",
                  "final episodes with a refill", "seeds refilling ≥ 1 / episode",
                  "generations", "frames (mean)", "agent frames (mean)", "train s / seed",
                  "frames / s", "scoring s / seed", "compile s", "worker min",
                  "peak RSS GB"])
    rows = []
    for method, res in results.items():
        runs = res["runs"]
        frames = statistics.fmean(r["generations"][-1]["steps"] for r in runs)
        train_s = statistics.fmean(r["train_s"] for r in runs)
        rows.append([LABELS[method],
                     *(_pm([r["checkpoints"][k]["score"] for r in runs]) for k in shown[:-1]),
                     f"**{_pm(_finals(res), 2)}**",
                     " / ".join(f"{s:.1f}" for s in _finals(res)),
                     _pm(_finals(res, "refills"), 2), _pm(_finals(res, "refill_episodes"), 2),
                     f"{_surfacing_seeds(res)}/{len(runs)}",
                     f"{statistics.fmean(len(r['generations']) for r in runs):.0f}",
                     f"{frames:,.0f}",
                     f"{statistics.fmean(r['agent_frames'] for r in runs):,.0f}",
                     f"{train_s:.0f}", f"{frames / train_s:,.0f}",
                     f"{statistics.fmean(r['eval_s'] for r in runs):.0f}",
                     f"{res['compile_s']:.0f}", f"{res['process_wall_s'] / 60:.1f}",
                     f"{res['peak_rss_gb']:.2f}"])
    table = C.markdown_table(headers, rows)

    checks, notes = [], [_finding(results)]
    if "openai_es" in results:
        es = _finals(results["openai_es"])
        for method in ("nsr_es", "nsra_es"):
            if method not in results:
                continue
            other = _finals(results[method])
            if statistics.fmean(es) > 0:
                checks.append((f"final score, {LABELS[method]} / OpenAI-ES",
                               statistics.fmean(other) / statistics.fmean(es), "x", ""))
            if len(es) > 1 and len(other) > 1:
                low, high = C.bootstrap_mean_difference(other, es)
                notes.append(f"Final score, {LABELS[method]} minus OpenAI-ES: 95% bootstrap "
                             f"interval [{low:.2f}, {high:.2f}] over {len(other)} vs "
                             f"{len(es)} seeds.")
    settings = {
        "game": GAME, "seeds": f"{seeds[0]}-{seeds[-1]}",
        "frozen config": (f"{frozen['path']} (committed at {frozen['commit']}, before this run)"
                          if frozen else "none (settings from the command line)"),
        "frame budget per run": f"{args.frames:,.0f} env steps (members' episodes and the "
                                "novelty agents' evaluations; a run stops at the first "
                                "generation reaching it)",
        "population (all methods)": args.pop_size, "episodes per member": 1,
        "sigma / Adam lr (all)": f"{args.sigma} / {args.lr} (antithetic, centered ranks, "
                                 "weight decay 0.005: library defaults)",
        "episode cutoff": args.max_steps,
        "policy": "MinAtar CNN (conv 16 3x3 VALID, FC 128, argmax), flax default init for "
                  "every arm",
        "NSR-ES / NSRA-ES": f"{args.agents} agents, k = 10, archive capacity "
                            f"{base['archive_capacity']:,}, 1 episode per agent evaluation; "
                            f"NSRA w from 1.0, delta 0.05, patience {args.patience}",
        "behavior (novelty)": "[oxygen refills, final sub x, final sub y]",
        "score": f"solution's mean return on {args.eval_episodes} fresh episodes at "
                 f"{args.checkpoints} evenly spaced checkpoints (same episode keys for all), "
                 "with its refills per episode",
        "host devices per worker": host_devices,
    }
    notes += [
        "Refill: a step where the sub's oxygen rises and the episode does not end (surfacing "
        "with at least one diver aboard; surfacing with none ends the episode). Final refills "
        "/ episode: the final solution's mean over the fresh episodes (mean ± std over seeds); "
        "final episodes with a refill: the fraction of those episodes with at least one; "
        "seeds refilling ≥ 1 / episode: seeds whose final solution refills at least once per "
        "episode on average.",
        "Solution: OpenAI-ES's mean; NSR-ES's and NSRA-ES's agent with the best last "
        "evaluation (one episode), as strategy.solution returns it.",
        "Frames: the trainer's steps, every member episode plus the novelty agents' "
        "evaluations (the initial agents at generation 0, then the updated agent every "
        "generation); agent frames (mean): that share (the worker checks steps = recorded "
        "member steps + agent steps). The agent's batch is padded with copies to two per "
        "device; the copies' steps are dropped, not used and not counted.",
        "score @ F: the score at the first generation whose cumulative frames reach F (mean ± "
        "std over seeds); frames (mean): frames actually used.",
        "train s / seed: wall time of the generations only (compile, on a throw-away "
        "generation, and checkpoint scoring excluded); frames / s = frames (mean) / train s; "
        "scoring s / seed: the checkpoints' fresh episodes; worker min: the method's whole "
        "process (every seed, compile included); the machine may be shared (see load).",
    ]
    if args.plot is not None:
        plot(results, args.plot,
             f"{GAME}, equal frame budget, P = {args.pop_size}, {args.seeds} seed(s) "
             "(band: min..max over seeds)")
        notes.append(f"Plot: `{_display(args.plot)}` (score and refills per episode vs frames, "
                     "band = min..max over seeds).")
        print(f"(plot written to {args.plot})")
    C.save_section(args, TITLE, start, settings, table, checks, notes)
    if any(not math.isfinite(s) for res in results.values() for s in _finals(res)):
        print("WARNING: a non-finite score")


if __name__ == "__main__":
    C.entry(worker, main)
