"""NS-ES generation time against OpenAI-ES generation time on a function task (Engine v2).

What a generation of NS-ES costs on top of the OpenAI-ES generation it contains: the same
population (P perturbations of N parameters, mirrored, the same sigma and the default noise
source) evaluated on the same function, plus NS-ES's own work (the current agent's parameters
and optimizer state taken from and written back to the ``M``-agent arrays, the k-NN novelty of
the P behaviors against the archive, one evaluation of the updated agent, its archive insert
and the draw of the next agent). Both run through ``make_train(task, None, strategy,
params=x0, eval_episodes=0)`` with default arguments otherwise (NS-ES: 5 agents, k = 10,
archive of 4,096 rows, agents from the reference initialization).

Task: ``el.tasks.function``, fitness ``-sum(x^2)``, behavior ``x[:2]`` (``behavior_size=2``),
the same task for both (OpenAI-ES ignores the behavior). Both strategies run in one process on
JAX's default device (``--rounds`` fresh processes): one warm-up call each of the jitted
G-generation run (it compiles; it also runs NS-ES's generation 0, where the initial agents are
evaluated to seed the archive), then ``--reps`` timed calls of G more generations each, the two
strategies' calls alternating (A B, B A, ...) so that a change of the shared machine's load hits
both alike. Time per generation = call / G (medians reported); the ratio is the median of the
per-pair ratios. ``traces`` counts JAX's trace events of the run calls (1: the timed calls
reused the warm-up's compilation). ``--parts`` also times the pieces of one generation (ask,
evaluation, tell), each jitted alone, to show where a difference goes.

Run ``python benchmarks/ns_es_overhead.py`` (seconds to a minute on 2 cores; ``--quick``:
N = 2,000, a smoke test). Target: NS-ES generation <= 1.3 x OpenAI-ES generation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "NS-ES vs OpenAI-ES generation time on a function task"
IMPLS = ("openai_es", "ns_es")
LABELS = {"openai_es": "OpenAI-ES", "ns_es": "NS-ES (behavior_size 2)"}
TARGET = 1.3


def _strategy(el, cfg: dict):
    p, sigma = cfg["pop_size"], cfg["sigma"]
    if cfg["impl"] == "openai_es":
        return el.strategies.openai_es(p, sigma)
    if cfg["impl"] == "ns_es":
        return el.strategies.ns_es(p, sigma, behavior_size=2)
    raise ValueError(f"unknown impl {cfg['impl']!r}")


def _parts(jax, trainer, carry) -> dict:
    """Zero-argument calls of one generation's ask, evaluation and tell, each jitted alone,
    with the keys ``make_train`` uses (tell's extra evaluations: ``el.evaluate`` on the same
    task), compiled by a first call."""
    import evojax_lab as el

    strategy, task = trainer.strategy, trainer.task

    def extra(key, population, *, episodes=1, experiences=0):
        del experiences  # a function task records none
        return el.evaluate(key, task, None, population, episodes=episodes)

    ask = jax.jit(strategy.ask)
    evaluate = jax.jit(lambda k, pop: el.evaluate(k, task, None, pop))
    tell = jax.jit(lambda k, pop, ev, s: strategy.tell(k, pop, ev, s, evaluate=extra))
    gen_key = jax.random.fold_in(carry.key, carry.generation)
    ask_key, eval_key, _ = jax.random.split(gen_key, 3)
    tell_key = jax.random.fold_in(gen_key, el.train.TELL_KEY)
    population, state = jax.block_until_ready(ask(ask_key, carry.state))
    evaluation = jax.block_until_ready(evaluate(eval_key, population))
    jax.block_until_ready(tell(tell_key, population, evaluation, state))
    return {"ask": lambda: ask(ask_key, carry.state),
            "evaluate": lambda: evaluate(eval_key, population),
            "tell": lambda: tell(tell_key, population, evaluation, state)}


def worker(cfg: dict) -> None:
    """Both strategies in this process, their timed calls interleaved (A B, then B A, ...), so
    a change of the machine's load hits both alike; every pair gives one ratio."""
    import jax
    import jax.numpy as jnp

    import evojax_lab as el
    from evojax_lab.core.compiles import count_compilations

    n, g, reps = cfg["num_params"], cfg["generations"], cfg["reps"]
    task = el.tasks.function(lambda key, x: (-jnp.sum(jnp.square(x)), x[:2]), behavior_size=2)
    x0 = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32)
    trainers = {impl: el.make_train(task, None, _strategy(el, {**cfg, "impl": impl}),
                                    params=x0, generations=g, eval_episodes=0)
                for impl in IMPLS}
    carries = {impl: jax.block_until_ready(t.init(jax.random.PRNGKey(1)))
               for impl, t in trainers.items()}
    traces = {impl: 0 for impl in IMPLS}
    metrics = {}

    def call(impl):
        def run():
            with count_compilations() as seen:  # JAX's trace events of the run call alone
                carries[impl], metrics[impl] = trainers[impl].run(carries[impl], g)
            traces[impl] += seen.traces
            return carries[impl]
        return run

    # compile + G generations (NS-ES: generation 0 evaluates the initial agents)
    first = {impl: C.timed(call(impl)) for impl in IMPLS}
    times = {impl: [] for impl in IMPLS}
    for i in range(reps):
        for impl in IMPLS if i % 2 == 0 else IMPLS[::-1]:
            times[impl].append(C.timed(call(impl)) / g)
    result = {
        "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
        "devices": {impl: 1 if t.mesh is None else t.mesh.size for impl, t in trainers.items()},
        "first_call_s": first, "gen_s_all": times, "traces": traces,
        "ratio_all": [b / a for a, b in zip(times["openai_es"], times["ns_es"], strict=True)],
        "mean_fitness": {impl: float(m["mean_fitness"][-1]) for impl, m in metrics.items()},
    }
    if cfg["parts"]:
        parts = {impl: _parts(jax, t, carries[impl]) for impl, t in trainers.items()}
        seconds = {impl: {name: [] for name in parts[impl]} for impl in IMPLS}
        for i in range(reps):
            for impl in IMPLS if i % 2 == 0 else IMPLS[::-1]:
                for name, fn in parts[impl].items():
                    seconds[impl][name].append(C.timed(fn))
        result["parts_s"] = {impl: {name: C.median(v) for name, v in d.items()}
                             for impl, d in seconds.items()}
    C.report(result)


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--num-params", type=int, default=100_000)
    parser.add_argument("--pop-size", type=int, default=256)
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--generations", type=int, default=10,
                        help="generations per timed call (default 10)")
    parser.add_argument("--reps", type=int, default=7,
                        help="timed calls per strategy and process (interleaved)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="fresh processes (medians over all timed calls and pairs)")
    parser.add_argument("--parts", action="store_true",
                        help="also time ask / evaluation / tell of one generation alone")
    parser.add_argument("--out-json", type=Path, default=None,
                        help="also write the settings and every measurement here")
    args = parser.parse_args()
    if args.quick:
        args.num_params, args.pop_size, args.generations, args.reps, args.rounds = \
            2_000, 32, 3, 2, 1
    start = C.started()
    cfg = {"num_params": args.num_params, "pop_size": args.pop_size, "sigma": args.sigma,
           "generations": args.generations, "reps": args.reps, "parts": args.parts}
    runs = []
    for r in range(args.rounds):
        print(f"[round {r + 1}/{args.rounds}] both strategies, interleaved ...", flush=True)
        res = C.run_worker(__file__, cfg, host_devices=None)
        print("    " + ", ".join(f"{LABELS[impl]} {1e3 * C.median(res['gen_s_all'][impl]):.1f}"
                                  for impl in IMPLS) + " ms/generation", flush=True)
        runs.append(res)

    gen_ms = {impl: 1e3 * C.median([t for r in runs for t in r["gen_s_all"][impl]])
              for impl in IMPLS}
    ratio = C.median([x for r in runs for x in r["ratio_all"]])
    rows = []
    for impl in IMPLS:
        all_ms = [1e3 * t for r in runs for t in r["gen_s_all"][impl]]
        row = [LABELS[impl], gen_ms[impl], min(all_ms), max(all_ms),
               C.median([r["first_call_s"][impl] for r in runs]),
               max(r["traces"][impl] for r in runs)]
        if args.parts:
            row += [1e3 * C.median([r["parts_s"][impl][part] for r in runs])
                    for part in ("ask", "evaluate", "tell")]
        rows.append(row)
    headers = ["strategy", "ms / generation (median)", "min", "max",
               "first call s (compile + G gens)", "traces"]
    if args.parts:
        headers += ["ask ms (alone)", "evaluation ms (alone)", "tell ms (alone)"]
    table = C.markdown_table(headers, rows)
    first = runs[0]
    settings = {"N": f"{args.num_params:,}", "P": args.pop_size, "sigma": args.sigma,
                "task": "el.tasks.function, fitness -sum(x^2), behavior x[:2]",
                "generations per timed call": args.generations,
                "timed calls": f"{args.reps} per strategy x {args.rounds} process(es), "
                               "interleaved",
                "device": f"{first['device_kind']} x {first['devices']['openai_es']} "
                          "(JAX's default)",
                "jax": first["jax"],
                "both": "make_train(eval_episodes=0), mirrored, centered ranks (NS-ES: of the "
                        "novelty), Adam(0.01), L2 0.005, default noise",
                "NS-ES": "5 agents, k = 10, archive 4,096, one evaluation of the updated agent "
                         "per generation"}
    checks = [("NS-ES / OpenAI-ES time per generation (median of interleaved pairs)", ratio,
               "x", "" if args.quick else f"<= {TARGET}"),
              ("ratio of the medians", gen_ms["ns_es"] / gen_ms["openai_es"], "x", "")]
    notes = ["Time per generation = timed call of the jitted G-generation run (after a warm-up "
             "call that compiles and runs generation 0) / G; the two strategies' calls "
             "alternate in one process, and each pair gives one ratio.",
             "Command: `" + " ".join(["python benchmarks/ns_es_overhead.py", *sys.argv[1:]])
             + "`"]
    C.save_section(args, TITLE, start, settings, table, checks, notes)
    if args.out_json:
        args.out_json.write_text(json.dumps({
            "settings": {**cfg, "quick": args.quick, "rounds": args.rounds},
            "device_kind": first["device_kind"], "jax": first["jax"],
            "machine": C.machine(), "versions": C.versions(), "revision": C.git_revision(),
            "ms_per_generation": gen_ms, "ratio": ratio, "target": TARGET,
            "meets_target": ratio <= TARGET, "runs": runs,
        }, indent=1))
        print(f"(written to {args.out_json})")


if __name__ == "__main__":
    C.entry(worker, main)
