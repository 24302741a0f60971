"""(b) CartPole-v1 OpenAI-ES generation time and env-steps/s: evojax_lab vs evosax.

Same work on both sides: P members, one episode each (cutoff 500 steps), the policy a 4-32-32-2
tanh MLP with an argmax head (identical parameter pytree), antithetic OpenAI-ES with centered
ranks, Adam(lr 0.01) and sigma 0.02, all generations in one jitted ``lax.scan``.

* ``evojax_lab (default)``: ``el.parallel.use_host_devices()`` before JAX starts (all cores as
  host devices), ``make_train(task, policy, openai_es(P), mesh="auto")``;
* ``evojax_lab (1 device, mesh None)``: the same process set-up, no sharding;
* ``evojax_lab (1-device process)``: a process without host devices, ``mesh=None``;
* ``evosax``: ``Open_ES`` + ``GymnaxProblem`` (``use_normalize_obs=False`` since evojax_lab
  does not normalize either; ``episode_length=500``), ask / eval / tell in a jitted scan.

Env steps are counted the same way for both: steps actually taken until each episode ends
(CartPole pays reward 1 per step taken, so an episode's return is its length; evojax_lab's own
step counter gives the same number). evosax's rollout scans all 500 steps whatever happens and
evojax_lab's stops when every member is done, so the two starts differ:

* ``balanced`` (the acceptance case): the mean starts at a controller that balances for all 500
  steps, so every member runs a full episode on both sides: pure throughput;
* ``init``: the mean starts at the flax initialization (short episodes): what a fresh run sees.

Run ``python benchmarks/cartpole_es.py`` (``--start balanced|init|both``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "(b) CartPole-v1 OpenAI-ES: evojax_lab vs evosax Open_ES + GymnaxProblem"
LR, SIGMA = 0.01, 0.02


def worker(cfg: dict) -> None:
    import evojax_lab as el

    if cfg["host_devices"]:
        el.parallel.use_host_devices()  # before JAX creates its backends
    import jax
    import jax.numpy as jnp
    import numpy as np

    from evojax_lab.core.compiles import count_compilations

    p, g, max_steps = cfg["pop_size"], cfg["generations"], cfg["max_steps"]
    params0 = C.cartpole_params(cfg["start"])
    if cfg["impl"] == "evojax_lab":
        task = el.tasks.make("CartPole-v1", max_steps=max_steps)
        policy = el.policies.MLP(2, hidden=C.CARTPOLE_HIDDEN)
        strategy = el.strategies.openai_es(p, sigma=SIGMA, learning_rate=LR, weight_decay=0.0)
        trainer = el.make_train(task, policy, strategy, params=params0, generations=g,
                                eval_episodes=0, mesh="auto" if cfg["mesh"] else None)
        devices = 1 if trainer.mesh is None else trainer.mesh.size
        carry = trainer.init(jax.random.PRNGKey(1))
        traces = [0]

        def step(carry):
            with count_compilations() as seen:  # JAX's trace events of the run call alone
                new, metrics = trainer.run(carry, g)
            traces[0] += seen.traces
            # steps actually taken (the library's counter) and the sum of returns
            return new, new.steps - carry.steps, jnp.sum(metrics["mean_fitness"]) * p

        num_traces = lambda: traces[0]
    else:
        import optax
        from evosax.algorithms import Open_ES
        problem = C.evosax_gymnax_problem("CartPole-v1", max_steps)
        es = Open_ES(p, params0, use_antithetic_sampling=True, optimizer=optax.adam(LR),
                     std_schedule=optax.constant_schedule(SIGMA))
        es_params = es.default_params
        devices = 1
        traces = [0]

        def generation(carry, _):
            key, state, pstate = carry
            key, ask_key, eval_key, tell_key = jax.random.split(key, 4)
            population, state = es.ask(ask_key, state, es_params)
            returns, pstate, _ = problem.eval(eval_key, population, pstate)
            state, _ = es.tell(tell_key, population, -returns, state, es_params)  # minimizes
            # CartPole: reward 1 per step until done, so the return is the steps taken
            return C.strong(carry, (key, state, pstate)), jnp.sum(returns)

        def run_impl(carry):
            traces[0] += 1
            return jax.lax.scan(generation, carry, None, length=g)

        run = jax.jit(run_impl)
        carry = (jax.random.PRNGKey(2), es.init(jax.random.PRNGKey(1), params0, es_params),
                 problem.init(jax.random.PRNGKey(3)))
        carry = C.strong(carry, carry)

        def step(carry):
            new, steps = run(carry)
            return new, jnp.sum(steps), jnp.sum(steps)

        num_traces = lambda: traces[0]

    jax.block_until_ready(carry)
    out = {"carry": carry}

    def call():
        out["carry"], out["steps"], out["returns"] = step(out["carry"])
        return out["carry"]

    first = C.timed(call)  # compile + G generations
    times, steps, returns = [], [], []
    for _ in range(cfg["reps"]):
        times.append(C.timed(call))
        steps.append(float(out["steps"]))
        returns.append(float(out["returns"]))
    C.report({
        "impl": cfg["impl"], "devices": devices, "first_call_s": first,
        "gen_s_all": [t / g for t in times],
        "steps_per_s_all": [s / t for s, t in zip(steps, times, strict=True)],
        "mean_episode_length": float(np.mean(steps)) / (g * p),
        "returns_equal_steps": bool(np.allclose(steps, returns)),
        "traces": num_traces(),
    })


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--pop-size", type=int, default=2048)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--generations", type=int, default=3,
                        help="generations per timed call (default 3)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every configuration in this many fresh processes")
    parser.add_argument("--start", choices=["balanced", "init", "both"], default="both")
    parser.add_argument("--skip-evosax", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.pop_size, args.max_steps, args.generations, args.reps = 64, 50, 2, 2
        args.start = "balanced" if args.start == "both" else args.start
    start = C.started()
    base = {"pop_size": args.pop_size, "max_steps": args.max_steps,
            "generations": args.generations, "reps": args.reps}
    configs = [("evojax_lab (default: host devices, mesh auto)",
                {"impl": "evojax_lab", "host_devices": True, "mesh": True}),
               ("evojax_lab (host devices on, mesh None: 1 device)",
                {"impl": "evojax_lab", "host_devices": True, "mesh": False}),
               ("evojax_lab (1-device process, mesh None)",
                {"impl": "evojax_lab", "host_devices": False, "mesh": False})]
    if not args.skip_evosax:
        configs.append(("evosax Open_ES + GymnaxProblem",
                        {"impl": "evosax", "host_devices": False, "mesh": False}))
    starts = ["balanced", "init"] if args.start == "both" else [args.start]
    rows, checks = [], []
    for start_kind in starts:
        summary = {}
        for name, cfg in configs:
            rs = []
            for r in range(args.rounds):
                print(f"[{start_kind}, round {r + 1}/{args.rounds}] {name} ...", flush=True)
                res = C.run_worker(__file__, {**base, **cfg, "start": start_kind},
                                   host_devices=None)
                print(f"    {C.median(res['gen_s_all']):.3f} s/generation, "
                      f"{C.median(res['steps_per_s_all']):,.0f} env-steps/s", flush=True)
                rs.append(res)
            gen = C.median([t for r in rs for t in r["gen_s_all"]])
            sps = C.median([t for r in rs for t in r["steps_per_s_all"]])
            summary[name] = sps
            rows.append([start_kind, name, rs[0]["devices"], gen, f"{sps:,.0f}",
                         C.median([r["mean_episode_length"] for r in rs]),
                         C.median([r["first_call_s"] for r in rs]),
                         max(r["peak_rss_gb"] for r in rs), max(r["traces"] for r in rs)])
            if cfg["impl"] == "evojax_lab" and not all(r["returns_equal_steps"] for r in rs):
                print("WARNING: evojax_lab's step counter differs from the sum of returns")
        if not args.skip_evosax:
            peer = summary["evosax Open_ES + GymnaxProblem"]
            main_case = start_kind == "balanced" and not args.quick
            checks += [
                (f"[{start_kind}] env-steps/s, evojax_lab default vs evosax",
                 summary[configs[0][0]] / peer, "x", ">= 2" if main_case else ""),
                (f"[{start_kind}] env-steps/s, evojax_lab 1 device (mesh None) vs evosax",
                 summary[configs[1][0]] / peer, "x", ">= 1.2" if main_case else ""),
                (f"[{start_kind}] env-steps/s, evojax_lab 1-device process vs evosax",
                 summary[configs[2][0]] / peer, "x", ">= 1.2" if main_case else ""),
            ]
    table = C.markdown_table(
        ["start", "configuration", "devices", "s / generation (median)", "env-steps/s (median)",
         "mean episode length", "first call s (compile + G gens)", "peak RSS GB", "traces"],
        rows)
    settings = {"P": f"{args.pop_size:,}", "episode cutoff": args.max_steps,
                "policy": "MLP 4-32-32-2 tanh, argmax", "generations per timed call":
                args.generations, "timed calls": f"{args.reps} x {args.rounds} process(es)",
                "both": "antithetic OpenAI-ES, centered ranks, Adam(0.01), sigma 0.02, one "
                        "episode per member, no weight decay, no solution re-evaluation "
                        "(eval_episodes=0), no observation normalization"}
    notes = ["env-steps/s = steps actually taken (episode lengths, done step included) / "
             "wall time of the timed jitted G-generation call; medians over timed calls.",
             "evosax's rollout is a fixed-length scan with gymnax's auto-resetting step, so it "
             "always executes P x 500 steps; on the `init` start most of them are after done "
             "and do not count."]
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    C.entry(worker, main)
