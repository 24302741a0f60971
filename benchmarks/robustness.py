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

Run ``python benchmarks/robustness.py`` (``--quick`` for a smoke run).
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
    import jax.numpy as jnp
    import numpy as np
    import optax

    task = point_mass()
    policy = el.policies.MLP(2, hidden=(32, 32), head="continuous")
    params0 = policy.init(jax.random.PRNGKey(0), jnp.zeros(4))

    def differentiable_return(params, key):
        obs, state = task.reset(key)

        def body(carry, _):
            obs, state = carry
            obs, state, reward, _ = task.step(None, state, policy.apply(params, obs))
            return (obs, state), reward

        _, rewards = jax.lax.scan(body, (obs, state), None, length=STEPS)
        return rewards.sum()

    eval_keys = jax.random.split(jax.random.PRNGKey(123), 512)
    score = jax.jit(lambda p: jax.vmap(lambda k: differentiable_return(p, k))(eval_keys).mean())

    # ES
    t0 = time.perf_counter()
    strategy = el.strategies.openai_es(cfg["pop"], sigma=cfg["es_sigma"], learning_rate=0.01)
    trainer = el.make_train(task, policy, strategy, params=params0,
                            generations=cfg["es_generations"], episodes=8, eval_episodes=0)
    es_params = trainer(jax.random.PRNGKey(1)).solution
    es_return = float(score(es_params))
    es_s = time.perf_counter() - t0

    # gradient (BPTT)
    t0 = time.perf_counter()
    opt = optax.adam(3e-3)

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

    params, opt_state = params0, opt.init(params0)
    checkpoints = []
    for i in range(cfg["grad_steps"] // 10):
        params, opt_state = grad_block(params, opt_state, jax.random.PRNGKey(1000 + i))
        checkpoints.append((float(score(params)), (i + 1) * 10, params))
    gd_return, gd_steps, gd_params = min(checkpoints, key=lambda c: abs(c[0] - es_return))
    gd_s = time.perf_counter() - t0
    best_gd = max(c[0] for c in checkpoints)

    rows = []
    for sigma in (0.0, *cfg["sigmas"]):
        row = {"sigma": sigma}
        for name, p in (("es", es_params), ("gd", gd_params)):
            r = np.asarray(el.analysis.robustness(jax.random.PRNGKey(7), task, policy, p, sigma,
                                                  cfg["samples"], episodes=16))
            row[name] = {"mean": float(r.mean()), "median": float(np.median(r)),
                         "p10": float(np.percentile(r, 10))}
        rows.append(row)
    C.report({"es_return": es_return, "gd_return": gd_return, "gd_steps": gd_steps,
              "best_gd_return": best_gd, "es_s": es_s, "gd_s": gd_s,
              "init_return": float(score(params0)), "rows": rows})


def main() -> None:
    parser = C.base_parser(__doc__)
    parser.add_argument("--es-sigma", type=float, default=0.02,
                        help="the ES training sigma (robustness is measured at all SIGMAS)")
    args = parser.parse_args()
    start = C.started()
    cfg = {"pop": 256, "es_generations": 300, "grad_steps": 600, "samples": 200,
           "sigmas": list(SIGMAS), "es_sigma": args.es_sigma}
    if args.quick:
        cfg.update(pop=32, es_generations=10, grad_steps=20, samples=10)
    res = C.run_worker(__file__, cfg, host_devices=None)
    table_rows = []
    for row in res["rows"]:
        es, gd = row["es"], row["gd"]
        table_rows.append((row["sigma"], f"{es['mean']:.2f}", f"{gd['mean']:.2f}",
                           f"{res['rows'][0]['es']['mean'] - es['mean']:.2f}",
                           f"{res['rows'][0]['gd']['mean'] - gd['mean']:.2f}",
                           f"{es['p10']:.2f}", f"{gd['p10']:.2f}"))
    table = C.markdown_table(
        ["sigma", "ES mean return", "gradient mean return", "ES drop", "gradient drop",
         "ES 10th pct", "gradient 10th pct"], table_rows)
    r = res["rows"]
    drops = [(x["sigma"], r[0]["es"]["mean"] - x["es"]["mean"],
              r[0]["gd"]["mean"] - x["gd"]["mean"]) for x in r[1:]]
    more = sum(es_d < gd_d for _, es_d, gd_d in drops)
    notes = [
        "Machine: 2-core CPU, shared.",
        f"Unperturbed returns on 512 fixed starts: ES {res['es_return']:.2f} "
        f"({res['es_s']:.0f} s of training incl. compile), gradient {res['gd_return']:.2f} "
        f"(checkpoint at {res['gd_steps']} Adam steps, chosen as the closest to ES; the best "
        f"gradient checkpoint reached {res['best_gd_return']:.2f}; {res['gd_s']:.0f} s); the "
        f"initial policy {res['init_return']:.2f}.",
        "Drop = mean return of the sigma = 0 row minus that of the perturbed copies (same "
        "starts; returns are negative costs; a smaller drop is more robust).",
        f"ES kept more of its return than the gradient-trained policy at {more} of "
        f"{len(drops)} noise levels.",
    ]
    settings = {"task": "point mass (this script), 50 steps", "policy": "MLP 4-32-32-2 tanh",
                "ES": f"openai_es P = {cfg['pop']}, sigma {cfg['es_sigma']}, Adam 0.01, "
                      f"{cfg['es_generations']} generations, 8 episodes per member",
                "gradient": f"Adam 3e-3 through the rollout, 64 starts per step, up to "
                            f"{cfg['grad_steps']} steps",
                "robustness": f"{cfg['samples']} copies x 16 episodes per sigma"}
    C.save_section(args, TITLE, start, settings, table, (), notes)


if __name__ == "__main__":
    C.entry(worker, main)
