"""Rollout throughput: evojax_lab's default evaluation vs a hand-written ceiling and evosax.

Two tasks, the same population on every row (P members, one episode each, common random
numbers, a fixed key per timed call):

* ``CartPole-v1``: the 4-32-32-2 tanh MLP (argmax head) around the balancing controller of
  ``_common.cartpole_params`` (OpenAI-ES's ``ask`` with sigma 0.02), cutoff 500: every episode
  takes all 500 steps (checked);
* ``Breakout-MinAtar``: the MinAtar CNN of ``el.policies.for_task`` (conv 16 3x3, FC 128; the
  network ``benchmarks/minatar.py`` trains), cutoff 1,000, members drawn by OpenAI-ES's ``ask``
  (sigma 0.02) around the flax initialization (``--breakout-start init``: what a run evaluates
  first; short episodes of varied length) or around a hand-set ball-tracking controller
  (``tracking``, sigma 0.0005: some members keep the ball in play for all 1,000 steps, the rest
  lose it early).

Rows:

* ``evojax_lab default``: one jitted ``el.evaluate(key, task, policy, population)`` with default
  arguments, in a 1-device process and in a process with 2 host devices (population sharded
  over ``el.parallel.make_mesh()`` of all devices, as ``scaling.py`` does);
* ``hand-written ceiling``: ``lax.map`` over chunks of members, ``vmap`` over a chunk, and per
  member a loop of gymnax's ``step_env`` (no auto-reset, no done mask, no cutoff test, no key
  splitting: neither environment's ``step_env`` draws from its key; every member starts from
  the library's first state of the episode, one reset that XLA hoists out of the loop since
  the key is common) over a fixed number of steps: the cutoff when every episode runs to it
  (CartPole), else the longest episode of the chunk's members (their lengths taken from the
  library's evaluation with the same key: an oracle no real rollout has), so the ceiling
  executes the same steps as a done-masked loop over that chunk but pays nothing for masking;
  the best of the chunk sizes ``--chunks`` (the winner and the whole sweep are reported);
* ``process on 1 core`` (CPU only): the 1-device library row again, in a process pinned to
  one core: what one device does without the second core, the yardstick that separates what
  the split over host devices adds from what one device's own threads already take;
* ``evosax``: ``GymnaxProblem.eval`` (its fixed-length scan over gymnax's auto-resetting
  ``step``, every member all ``episode_length`` = cutoff steps), no observation normalization.

Throughput is env-steps/s: steps actually taken (episode lengths, the terminating step
included; the ceiling is credited with the library's lengths, evosax with its own episodes'
lengths) / wall time of one jitted call, median over timed calls after a warm-up call. The
library's 1-device row and the ceiling run in the same process with their timed calls
interleaved (library, chunk a, chunk b, ..., the order rotating from call to call), and their
ratio is the median of the ratios of adjacent calls, so it sees the same load;
the 2-device row runs in its own processes, alternating with the 1-device one over
``--rounds``. Timings on a shared machine move with its load: run it on a quiet one.

Run ``python benchmarks/rollout_ceiling.py`` (a few minutes on 2 cores); ``--quick`` is a
small smoke version.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "Rollout throughput: evojax_lab default vs a hand-written ceiling and evosax"
TASKS = {"cartpole": "CartPole-v1", "breakout": "Breakout-MinAtar"}
SIGMA = {"balanced": 0.02, "init": 0.02, "tracking": 0.0005}
CHUNKS = {"cartpole": [16, 32, 64, 128, 256, 512, 2048], "breakout": [1, 2, 4, 8, 16, 32, 64]}


# -- worker -----------------------------------------------------------------------------------
def breakout_tracking_params(params):
    """MinAtar CNN parameters (``conv_0`` 3x3 VALID, ``dense_0``, ``output``; noop, left, right)
    of a controller that moves the paddle toward where the ball goes next, ``2 x ball_x -
    trail_x``, on top of 0.01 x ``params`` (small random weights elsewhere).

    Ten filters of ``conv_0`` copy the ball, the trail and the paddle channels at kernel
    offsets whose 8x8 VALID outputs together cover every cell; ``dense_0``'s first two units
    are ``relu(target_x - paddle_x)`` and ``relu(paddle_x - target_x)``; the head pushes right
    or left by 3 x those units against a constant 0.5 for no-op.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    p = jax.tree.map(lambda x: np.array(0.01 * np.asarray(x)), params)["params"]
    conv, dense, out = p["conv_0"], p["dense_0"], p["output"]
    offsets = [(0, 0), (2, 0), (0, 2), (2, 2)]  # (row, column) of the cell a filter reads
    for f, (r, c) in enumerate(offsets):
        conv["kernel"][r, c, 1, f] = 1.0  # ball
        conv["kernel"][r, c, 2, 4 + f] = 1.0  # trail (the ball's last cell)
    conv["kernel"][2, 0, 0, 8] = conv["kernel"][2, 2, 0, 9] = 1.0  # paddle, bottom row
    conv["bias"][:10] = 0.0
    width = conv["kernel"].shape[-1]

    def unit(y, x, f):  # row of dense_0's kernel: the flattened [8, 8, width] conv output
        return (y * 8 + x) * width + f

    for y in range(10):
        for x in range(10):
            r, c = (0 if y < 8 else 2), (0 if x < 8 else 2)
            f = offsets.index((r, c))
            for first, coef in ((f, 2.0), (4 + f, -1.0)):
                dense["kernel"][unit(y - r, x - c, first), 0] += coef * x
                dense["kernel"][unit(y - r, x - c, first), 1] -= coef * x
    for x in range(10):
        row = unit(7, x, 8) if x < 8 else unit(7, x - 2, 9)
        dense["kernel"][row, 0] -= x
        dense["kernel"][row, 1] += x
    dense["bias"][:2] = 0.0
    out["kernel"][0, 2] = out["kernel"][1, 1] = 3.0
    out["bias"][:] = [0.5, 0.0, 0.0]
    return jax.tree.map(jnp.asarray, {"params": p})


def _setup(cfg: dict):
    """Task, policy and population of a task (the same in every worker)."""
    import jax
    import jax.numpy as jnp

    import evojax_lab as el

    p, name, start = cfg["pop_size"], TASKS[cfg["task"]], cfg["start"]
    task = el.tasks.make(name, max_steps=cfg["max_steps"])
    if cfg["task"] == "cartpole":
        policy = el.policies.MLP(2, hidden=C.CARTPOLE_HIDDEN)
        center = C.cartpole_params(start)
    else:
        policy = el.policies.for_task(task)
        center = policy.init(jax.random.PRNGKey(0), jnp.zeros(task.observation_shape))
        if start == "tracking":
            center = breakout_tracking_params(center)
    strategy = el.strategies.openai_es(p, sigma=SIGMA[start])
    state = strategy.init(jax.random.PRNGKey(0), center)
    return task, policy, strategy, state


def _keys(cfg: dict):
    import jax

    return [jax.random.fold_in(jax.random.PRNGKey(2), i) for i in range(cfg["reps"])]


def _ceiling(cfg: dict, task, policy, chunk: int, fixed: bool):
    """The hand-written rollout: ``f(key, population, lengths) -> (returns, behaviors)``."""
    import gymnax
    import jax
    import jax.numpy as jnp

    p, cutoff = cfg["pop_size"], task.max_steps
    env, env_params = gymnax.make(TASKS[cfg["task"]])
    env_params = env_params.replace(max_steps_in_episode=cutoff)

    def member(params, key, length):
        # the library's start: episode key split(key, 1)[0], reset key split(episode key)[1]
        reset_key = jax.random.split(jax.random.split(key, 1)[0])[1]
        obs, state = env.reset_env(reset_key, env_params)

        def step(carry):
            obs, state, ret = carry
            action = policy.apply(params, obs)
            obs, state, reward, _, _ = env.step_env(key, state, action, env_params)
            return obs, state, ret + reward

        carry = (obs, state, jnp.zeros((), jnp.float32))
        if fixed:
            carry = jax.lax.scan(lambda c, _: (step(c), None), carry, None, length=cutoff)[0]
        else:
            carry = jax.lax.fori_loop(0, length, lambda _, c: step(c), carry)
        obs, state, ret = carry
        return ret, task.behavior(obs, state)

    def run(key, population, lengths):
        n = p // chunk
        per_chunk = lengths.reshape(n, chunk).max(axis=1)
        if chunk == 1:  # a batch of one made in the loop (a [P, 1, ...] reshape of the
            members = population  # population costs XLA:CPU a copy of all of it)
            batch = lambda m: jax.tree.map(lambda x: x[None], m)  # noqa: E731
        else:
            members = jax.tree.map(lambda x: x.reshape(n, chunk, *x.shape[1:]), population)
            batch = lambda m: m  # noqa: E731
        out = jax.lax.map(
            lambda a: jax.vmap(lambda m: member(m, key, a[1]))(batch(a[0])), (members, per_chunk))
        return jax.tree.map(lambda y: y.reshape(p, *y.shape[2:]), out)

    return jax.jit(run)


def _evosax(cfg: dict, task, policy):
    """evosax's GymnaxProblem evaluation: ``f(key, population) -> (returns, lengths)``."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    cutoff = task.max_steps
    if cfg["task"] == "cartpole":  # evosax's own MLP: the same parameter pytree
        module = None
        wrap = lambda population: population  # noqa: E731
    else:  # our CNN behind evosax's (obs, key) call

        class Keyed(nn.Module):
            inner: nn.Module

            def __call__(self, obs, key=None):
                return self.inner(obs)

        module = Keyed(policy)
        wrap = lambda population: {"params": {"inner": population["params"]}}  # noqa: E731
    problem = C.evosax_gymnax_problem(TASKS[cfg["task"]], cutoff, module)
    problem_state = problem.init(jax.random.PRNGKey(3))

    def run(key, population):
        returns, _, metrics = problem.eval(key, wrap(population), problem_state)
        # gymnax's step auto-resets at done (the state's step counter restarts at 0): an
        # episode's length is the first such step + 1, or the whole scan
        time = metrics["env_states"][1].time  # [P, rollouts, steps]
        restarted = time == 0
        length = jnp.where(restarted.any(-1), jnp.argmax(restarted, -1) + 1, time.shape[-1])
        return returns, length.sum()

    return jax.jit(run)


def worker(cfg: dict) -> None:
    import contextlib
    import os

    if cfg["role"] == "one_core":  # before JAX starts its threads
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el
    from evojax_lab.core.sharding import constrain_population

    task, policy, strategy, state = _setup(cfg)
    p, keys = cfg["pop_size"], _keys(cfg)
    ask = jax.jit(lambda k, s: constrain_population(strategy.ask(k, s)[0]))
    out = {"task": cfg["task"], "role": cfg["role"]}
    if cfg["role"] == "evosax":
        population = ask(jax.random.PRNGKey(1), state)
        run = _evosax(cfg, task, policy)
        out["first_call_s"] = C.timed(lambda: run(keys[0], population))
        times, steps, result = [], [], {}

        def call(k):
            result["out"] = run(k, population)
            return result["out"]

        for k in keys:
            times.append(C.timed(lambda k=k: call(k)))
            steps.append(float(result["out"][1]))
        out.update(devices=1, eval_s_all=times,
                   steps_per_s_all=[s / t for s, t in zip(steps, times, strict=True)],
                   mean_episode_length=float(np.mean(steps)) / p)
        C.report(out)
        return

    mesh = el.parallel.make_mesh(pop_size=p) if cfg["role"] == "library" else None
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        population = ask(jax.random.PRNGKey(1), state)
        library = jax.jit(lambda k, pop: el.evaluate(k, task, policy, pop))
        out["devices"] = 1 if mesh is None else mesh.size
        out["first_call_s"] = C.timed(lambda: library(keys[0], population))
        evaluations = [library(k, population) for k in keys]
        lengths = [np.asarray(e.steps) for e in evaluations]
        steps = [float(s.sum()) for s in lengths]
        fns = {"library": lambda i: library(keys[i], population)}
        fixed = all((s == task.max_steps).all() for s in lengths)
        if cfg["role"] == "main":  # the ceiling, timed interleaved with the library
            out["ceiling_mode"] = "fixed" if fixed else "longest episode of the chunk"
            out["executed_per_taken"], out["ceiling_matches"] = {}, {}
            for c in [c for c in cfg["chunks"] if p % c == 0]:
                f = _ceiling(cfg, task, policy, c, fixed)
                lens = [jnp.asarray(s) for s in lengths]
                fns[c] = lambda i, f=f, lens=lens: f(keys[i], population, lens[i])
                executed = sum(float(np.repeat(s.reshape(-1, c).max(1), c).sum())
                               for s in lengths)
                out["executed_per_taken"][c] = executed / sum(steps)
                # sanity: members whose episode is the longest of their chunk did exactly the
                # library's steps, so their returns must match
                ret, _ = jax.block_until_ready(fns[c](0))
                full = np.repeat(lengths[0].reshape(-1, c).max(1), c) == lengths[0]
                out["ceiling_matches"][c] = bool(np.allclose(
                    np.asarray(ret)[full], np.asarray(evaluations[0].fitness)[full]))
        times = {name: [] for name in fns}
        names = list(fns)
        for i in range(len(keys)):  # the order rotates: no configuration always runs first
            for name in names[i % len(names):] + names[:i % len(names)]:
                times[name].append(C.timed(lambda name=name, i=i: fns[name](i)))
    out["eval_s_all"] = times.pop("library")
    out["steps_per_s_all"] = [s / t for s, t in zip(steps, out["eval_s_all"], strict=True)]
    out["ceiling_steps_per_s_all"] = {
        c: [s / t for s, t in zip(steps, ts, strict=True)] for c, ts in times.items()}
    out["ceiling_eval_s_all"] = times
    out["mean_episode_length"] = float(np.mean(steps)) / p
    out["all_at_cutoff"] = bool(fixed)
    C.report(out)


# -- driver -----------------------------------------------------------------------------------
def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["cartpole",
                                                                            "breakout"])
    parser.add_argument("--pop-size", type=int, default=2048)
    parser.add_argument("--cartpole-max-steps", type=int, default=500)
    parser.add_argument("--breakout-max-steps", type=int, default=1000)
    parser.add_argument("--breakout-start", choices=["init", "tracking"], default="init")
    parser.add_argument("--evosax-breakout-pop", type=int, default=64,
                        help="evosax's Breakout population (it always scans the whole cutoff: "
                             "P x 1,000 CNN steps per call)")
    parser.add_argument("--chunks", type=int, nargs="+", default=None,
                        help="ceiling chunk sizes (default on a CPU, per task: "
                             + "; ".join(f"{t} {v}" for t, v in CHUNKS.items())
                             + "; on an accelerator P/16, P/4 and P)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=2,
                        help="fresh processes per configuration, alternating")
    parser.add_argument("--skip-evosax", action="store_true")
    args = parser.parse_args()
    max_steps = {"cartpole": args.cartpole_max_steps, "breakout": args.breakout_max_steps}
    if args.quick:
        args.pop_size, args.reps, args.rounds, args.evosax_breakout_pop = 64, 2, 1, 16
        max_steps["cartpole"] = 50
    cpu = C.probe_device()["platform"] == "cpu"
    if args.chunks is not None:
        chunks = {t: args.chunks for t in TASKS}
    elif args.quick:
        chunks = {"cartpole": [16, 64], "breakout": [2, 8]}
    elif cpu:
        chunks = dict(CHUNKS)
    else:  # an accelerator wants large batches
        one = sorted({max(args.pop_size // 16, 1), max(args.pop_size // 4, 1), args.pop_size})
        chunks = {t: one for t in TASKS}
    device_counts = [1, 2] if cpu else [1]  # host devices mean nothing on an accelerator
    start = C.started()
    starts = {"cartpole": "balanced", "breakout": args.breakout_start}
    rows, checks, notes = [], [], []
    for name in args.tasks:
        base = {"task": name, "pop_size": args.pop_size, "max_steps": max_steps[name],
                "start": starts[name], "reps": args.reps, "chunks": chunks[name]}
        runs = {"main": [], "library": [], "one_core": []}
        for r in range(args.rounds):
            roles = [("main", 1)] + [("library", d) for d in device_counts[1:]]
            if cpu:  # what one device does on one core: the yardstick of the device split
                roles.append(("one_core", 1))
            for role, d in roles:
                print(f"[{name}, round {r + 1}/{args.rounds}] {role}, {d} device(s) ...",
                      flush=True)
                res = C.run_worker(__file__, {**base, "role": role}, host_devices=d)
                if res["devices"] != d:
                    raise RuntimeError(f"asked for {d} devices, the worker used "
                                       f"{res['devices']}")
                line = f"    library {C.median(res['steps_per_s_all']):,.0f} env-steps/s"
                for c, v in res["ceiling_steps_per_s_all"].items():
                    line += f"; chunk {c}: {C.median(v):,.0f}"
                print(line, flush=True)
                runs[role].append(res)
        evosax = None
        if not args.skip_evosax:
            p_evosax = args.pop_size if name == "cartpole" else min(args.pop_size,
                                                                    args.evosax_breakout_pop)
            print(f"[{name}] evosax GymnaxProblem, P = {p_evosax} ...", flush=True)
            evosax = C.run_worker(__file__, {**base, "role": "evosax", "pop_size": p_evosax},
                                  host_devices=1)
            evosax["pop_size"] = p_evosax
        main_runs = runs["main"]
        lib1 = C.median([x for r in main_runs for x in r["steps_per_s_all"]])
        sweep = {c: C.median([x for r in main_runs for x in r["ceiling_steps_per_s_all"][c]])
                 for c in main_runs[0]["ceiling_steps_per_s_all"]}
        best = max(sweep, key=sweep.get)
        # ratios from measurements taken side by side: per timed call (library vs the best
        # chunk, same process, adjacent calls) and per round (2 vs 1 devices, adjacent
        # processes), then the median
        vs_ceiling = C.median([a / b for r in main_runs for a, b in zip(
            r["steps_per_s_all"], r["ceiling_steps_per_s_all"][best], strict=True)])
        length = C.median([r["mean_episode_length"] for r in main_runs])
        label = f"{TASKS[name]} ({starts[name]})"
        rows.append([label, "evojax_lab default (el.evaluate)", 1, "auto", args.pop_size,
                     C.median([x for r in main_runs for x in r["eval_s_all"]]), f"{lib1:,.0f}",
                     vs_ceiling, length, max(r["peak_rss_gb"] for r in main_runs)])
        checks.append((f"{TASKS[name]}: evojax_lab default vs the hand-written ceiling, 1 device",
                       vs_ceiling, "x", "" if args.quick else ">= 0.9"))
        if runs["library"]:
            rs, d = runs["library"], device_counts[-1]
            sps = C.median([x for r in rs for x in r["steps_per_s_all"]])
            rows.append([label, "evojax_lab default (el.evaluate)", d, "auto", args.pop_size,
                         C.median([x for r in rs for x in r["eval_s_all"]]), f"{sps:,.0f}",
                         sps / sweep[best], length, max(r["peak_rss_gb"] for r in rs)])
            per_round = [C.median(a["steps_per_s_all"]) / C.median(b["steps_per_s_all"])
                         for a, b in zip(rs, main_runs, strict=True)]
            checks.append((f"{TASKS[name]}: evojax_lab default, {d} vs 1 host devices",
                           C.median(per_round), "x", "" if args.quick else ">= 1.8"))
        if runs["one_core"]:
            rs = runs["one_core"]
            sps = C.median([x for r in rs for x in r["steps_per_s_all"]])
            rows.append([label, "evojax_lab default (el.evaluate), process on 1 core", 1,
                         "auto", args.pop_size, C.median([x for r in rs for x in r["eval_s_all"]]),
                         f"{sps:,.0f}", sps / sweep[best], length,
                         max(r["peak_rss_gb"] for r in rs)])
            one = [C.median(a["steps_per_s_all"]) for a in rs]
            checks.append((f"{TASKS[name]}: 1 device on 2 cores vs on 1 core (what one device's "
                           "own threads add)", C.median([C.median(b["steps_per_s_all"]) / o for b, o
                                                         in zip(main_runs, one, strict=True)]),
                           "x", ""))
            if runs["library"]:
                checks.append((f"{TASKS[name]}: {d} host devices vs {d} x 1 device on 1 core "
                               "(the device split alone)", C.median(
                                   [C.median(a["steps_per_s_all"]) / (d * o)
                                    for a, o in zip(runs["library"], one, strict=True)]), "x", ""))
        rows.append([label, "hand-written ceiling (best chunk)", 1, best, args.pop_size,
                     C.median([x for r in main_runs for x in r["ceiling_eval_s_all"][best]]),
                     f"{sweep[best]:,.0f}", 1.0, length, ""])
        if evosax is not None:
            sps = C.median(evosax["steps_per_s_all"])
            rows.append([label, "evosax GymnaxProblem", 1, "-", evosax["pop_size"],
                         C.median(evosax["eval_s_all"]), f"{sps:,.0f}", sps / sweep[best],
                         evosax["mean_episode_length"], evosax["peak_rss_gb"]])
        first = main_runs[0]
        notes.append(
            f"{label}: ceiling by chunk size (env-steps/s, steps executed / steps taken): "
            + ", ".join(f"{c}: {v:,.0f} ({first['executed_per_taken'][c]:.2f})"
                        for c, v in sweep.items())
            + f"; best {best}; loop length: {first['ceiling_mode']}; every episode at the "
            f"cutoff: {first['all_at_cutoff']}; ceiling returns equal the library's where a "
            f"member ran exactly its own episode: "
            f"{all(all(r['ceiling_matches'].values()) for r in main_runs)}.")
    table = C.markdown_table(
        ["task (start)", "implementation", "devices", "chunk", "P", "s / evaluation (median)",
         "env-steps/s (median)", "vs ceiling", "mean episode length", "peak RSS GB"], rows)
    settings = {"P": f"{args.pop_size:,}",
                "cutoffs": ", ".join(f"{TASKS[t]} {max_steps[t]}" for t in args.tasks),
                "sigma": ", ".join(f"{TASKS[t]} {SIGMA[starts[t]]}" for t in args.tasks),
                "timed calls": f"{args.reps} per process x {args.rounds} process(es)"}
    notes = [
        "Ratios: library vs ceiling = median over timed calls of the ratio of adjacent calls "
        "(library vs the best chunk, same process); 2 vs 1 devices = median over rounds of "
        "the ratio of the two processes' medians; the table's `vs ceiling` column of the other "
        "rows divides medians.",
        "env-steps/s = steps actually taken (the library's episode lengths; evosax: its own "
        "episodes' lengths) / wall time of one jitted call; medians over timed calls.",
        "The ceiling executes, per chunk, the longest episode of its members (or the fixed "
        "cutoff where every episode reaches it) with no done mask; the executed / taken ratio "
        "is what masking by chunk costs any rollout that stops a chunk when its last member "
        "is done (the library's loop stops at the same step).",
        "evosax scans the whole cutoff for every member whatever happens; on Breakout only "
        "the steps up to the first done count.",
        "`process on 1 core`: the 1-device library row in a process pinned to one core "
        "(`os.sched_setaffinity`), its own process in every round. One device's program can use "
        "the second core by itself (XLA:CPU runs some kernels on several threads); the 2 vs 1 "
        "devices target then asks for more than the split can add, and 2 devices against twice "
        "the 1-core figure shows what the split itself does.",
        *notes]
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    C.entry(worker, main)
