"""Robustness to parameter noise: an ES-trained policy vs a gradient-trained one (issue 7).

Control task (defined here, JAX-native, differentiable): a 2-D point mass. State: position
``p`` and velocity ``v``; start ``p ~ U(-1, 1)^2``, ``v = 0``; action ``a in [-1, 1]^2`` (tanh
head); ``v <- 0.95 v + 0.1 a``, ``p <- p + 0.1 v``; reward ``-(|p|^2 + 0.01 |a|^2)`` per step;
50 steps. Policy: MLP 4-32-32-2 tanh.

* ES: ``el.strategies.openai_es`` (P = 256, sigma = 0.02 or ``--es-sigma``, Adam lr 0.01, 8
  episodes per member, 300 generations) through ``make_train``.
* Gradient: Adam (lr 3e-3) on the mean return of 64 random starts per step, differentiated
  through the whole 50-step rollout with ``jax.grad`` (backpropagation through time). A
  checkpoint is kept every 10 steps; the one whose return is closest to the ES solution's is
  compared ("similar return").

Both solutions are scored on the same 512 starts, then ``el.analysis.robustness`` perturbs each
with ``N(0, sigma^2)`` noise (200 copies x 16 episodes, common starts) for several sigma.

Seeds: seed ``s`` draws everything from ``PRNGKey(s)``: the ES run (and its initial network,
where the gradient arm starts too), the gradient minibatches, the 512 scoring starts and the
perturbations. With several seeds the section gives each seed's drops and, at every noise
level, the seeds where ES dropped less and a 95% bootstrap interval of the mean (gradient drop
- ES drop) over seeds.

Run ``python benchmarks/robustness.py`` (``--quick`` for a smoke run); the held-out run is
``--config benchmarks/configs/robustness_held_out.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "Robustness to parameter noise: ES vs gradient-trained policy (issue 7)"
SIGMAS = (0.01, 0.02, 0.05, 0.1)
STEPS, DT, DAMP, ACTION_COST = 50, 0.1, 0.95, 0.01


def point_mass():
    """The point-mass task as an ``el.tasks.Task``."""
    import jax
    import jax.numpy as jnp

    import evojax_lab as el

    def reset(key):
        p = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        state = (p, jnp.zeros(2), jnp.zeros((), jnp.int32))
        return jnp.concatenate([p, jnp.zeros(2)]), state

    def step(key, state, action):
        del key
        p, v, t = state
        a = jnp.clip(jnp.asarray(action, jnp.float32).reshape(2), -1.0, 1.0)
        v = DAMP * v + DT * a
        p = p + DT * v
        reward = -(jnp.sum(p**2) + ACTION_COST * jnp.sum(a**2))
        t = t + 1
        return jnp.concatenate([p, v]), (p, v, t), reward, t >= STEPS

    return el.tasks.Task(
        name="point_mass", reset=reset, step=step,
        behavior=lambda obs, state: obs[:2], observation_shape=(4,),
        action_space=el.tasks.ActionSpace("continuous", shape=(2,), low=-1.0, high=1.0),
        max_steps=STEPS, behavior_size=2,
    )


def worker(cfg: dict) -> None:
    import time

    import evojax_lab as el

    el.parallel.use_host_devices()
    import jax
    import numpy as np
    import optax

    task = point_mass()
    policy = el.policies.MLP(2, hidden=(32, 32), head="continuous")

    def differentiable_return(params, key):
        obs, state = task.reset(key)

        def body(carry, _):
            obs, state = carry
            obs, state, reward, _ = task.step(None, state, policy.apply(params, obs))
            return (obs, state), reward

        _, rewards = jax.lax.scan(body, (obs, state), None, length=STEPS)
        return rewards.sum()

    score = jax.jit(lambda p, keys: jax.vmap(lambda k: differentiable_return(p, k))(keys).mean())
    strategy = el.strategies.openai_es(cfg["pop"], sigma=cfg["es_sigma"], learning_rate=0.01)
    trainer = el.make_train(task, policy, strategy, generations=cfg["es_generations"],
                            episodes=8, eval_episodes=0)
    opt = optax.adam(cfg["grad_lr"])

    @jax.jit
    def grad_block(params, opt_state, key):
        def one(carry, k):
            params, opt_state = carry
            loss = lambda p: -jax.vmap(lambda kk: differentiable_return(p, kk))(
                jax.random.split(k, 64)).mean()
            g = jax.grad(loss)(params)
            updates, opt_state = opt.update(g, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(one, (params, opt_state),
                                              jax.random.split(key, 10))
        return params, opt_state

    def one_seed(seed):
        es_key, grad_key, score_key, noise_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        # the ES run's own starting network (make_train's init key); the gradient arm starts there
        params0 = trainer.initial_params(jax.random.split(es_key, 3)[0])
        eval_keys = jax.random.split(score_key, 512)

        t0 = time.perf_counter()
        es_params = trainer(es_key).solution
        es_return = float(score(es_params, eval_keys))
        es_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        params, opt_state = params0, opt.init(params0)
        checkpoints = []
        for i in range(cfg["grad_steps"] // 10):
            params, opt_state = grad_block(params, opt_state, jax.random.fold_in(grad_key, i))
            checkpoints.append((float(score(params, eval_keys)), (i + 1) * 10, params))
        gd_return, gd_steps, gd_params = min(checkpoints, key=lambda c: abs(c[0] - es_return))
        gd_s = time.perf_counter() - t0

        rows = []
        for sigma in (0.0, *cfg["sigmas"]):
            row = {"sigma": sigma}
            for name, p in (("es", es_params), ("gd", gd_params)):
                r = np.asarray(el.analysis.robustness(noise_key, task, policy, p, sigma,
                                                      cfg["samples"], episodes=16))
                row[name] = {"mean": float(r.mean()), "median": float(np.median(r)),
                             "p10": float(np.percentile(r, 10))}
            rows.append(row)
        print(f"  seed {seed}: ES {es_return:.2f} ({es_s:.0f} s), gradient {gd_return:.2f} at "
              f"{gd_steps} steps ({gd_s:.0f} s)", file=sys.stderr, flush=True)
        return {"seed": seed, "es_return": es_return, "gd_return": gd_return,
                "gd_steps": gd_steps, "best_gd_return": max(c[0] for c in checkpoints),
                "es_s": es_s, "gd_s": gd_s, "init_return": float(score(params0, eval_keys)),
                "rows": rows}

    C.report({"seeds": [one_seed(seed) for seed in cfg["seeds"]]})


def drops(run: dict) -> list[tuple[float, float, float]]:
    """``(sigma, ES drop, gradient drop)`` per noise level: the unperturbed mean return minus
    the perturbed copies' (returns are negative costs; a smaller drop is more robust)."""
    r = run["rows"]
    return [(x["sigma"], r[0]["es"]["mean"] - x["es"]["mean"],
             r[0]["gd"]["mean"] - x["gd"]["mean"]) for x in r[1:]]


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--es-sigma", type=float, default=0.02,
                        help="the ES training sigma (robustness is measured at all SIGMAS)")
    parser.add_argument("--grad-lr", type=float, default=3e-3,
                        help="Adam step size of the gradient-trained arm")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first, first+1, ...")
    parser.add_argument("--config", help="a committed JSON file of frozen settings (the held-out "
                        "protocol: benchmarks/configs/); no other option may be given with it")
    frozen = C.frozen_config(parser)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    start = C.started()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    cfg = {"pop": 256, "es_generations": 300, "grad_steps": 600, "samples": 200,
           "sigmas": list(SIGMAS), "es_sigma": args.es_sigma, "grad_lr": args.grad_lr,
           "seeds": seeds}
    if args.quick:
        cfg.update(pop=32, es_generations=10, grad_steps=20, samples=10)
    runs = C.run_worker(__file__, cfg, host_devices=None)["seeds"]
    table_rows = []
    for run in runs:
        for (sigma, es_drop, gd_drop), row in zip(drops(run), run["rows"][1:], strict=True):
            table_rows.append((run["seed"], sigma, f"{row['es']['mean']:.2f}",
                               f"{row['gd']['mean']:.2f}", f"{es_drop:.3f}", f"{gd_drop:.3f}",
                               f"{row['es']['p10']:.2f}", f"{row['gd']['p10']:.2f}"))
    table = C.markdown_table(
        ["seed", "sigma", "ES mean return", "gradient mean return", "ES drop", "gradient drop",
         "ES 10th pct", "gradient 10th pct"], table_rows)
    notes = [
        "Unperturbed returns on each seed's 512 scoring starts: " + "; ".join(
            f"seed {r['seed']}: ES {r['es_return']:.2f} ({r['es_s']:.0f} s incl. compile), "
            f"gradient {r['gd_return']:.2f} (checkpoint at {r['gd_steps']} Adam steps, the "
            f"closest to ES; best {r['best_gd_return']:.2f}), initial {r['init_return']:.2f}"
            for r in runs) + ".",
        "Drop = mean return of the unperturbed policy minus that of its perturbed copies (same "
        "starts; returns are negative costs; a smaller drop is more robust).",
    ]
    for k, sigma in enumerate(SIGMAS):
        gaps = [drops(r)[k][2] - drops(r)[k][1] for r in runs]
        line = (f"sigma = {sigma}: ES dropped less in {sum(g > 0 for g in gaps)}/{len(runs)} "
                f"seeds; mean (gradient drop - ES drop) {sum(gaps) / len(gaps):+.3f}")
        if len(runs) > 1:
            low, high = C.bootstrap_mean_difference(gaps, [0.0] * len(gaps))
            line += f", 95% bootstrap interval over seeds [{low:+.3f}, {high:+.3f}]"
        notes.append(line + ".")
    settings = {"task": "point mass (this script), 50 steps", "policy": "MLP 4-32-32-2 tanh",
                "ES": f"openai_es P = {cfg['pop']}, sigma {cfg['es_sigma']}, Adam 0.01, "
                      f"{cfg['es_generations']} generations, 8 episodes per member",
                "gradient": f"Adam {cfg['grad_lr']} through the rollout, 64 starts per step, "
                            f"up to {cfg['grad_steps']} steps",
                "robustness": f"{cfg['samples']} copies x 16 episodes per sigma",
                "seeds": f"{seeds[0]}-{seeds[-1]}",
                "frozen config": (f"{frozen['path']} (committed at {frozen['commit']}, before "
                                  "this run)" if frozen else "none (command line)")}
    C.save_section(args, TITLE, start, settings, table, (), notes)


if __name__ == "__main__":
    C.entry(worker, main)
