"""ES vs SGD on the digits classifier (Zhang, Clune & Stanley 2017; issue 7).

1. **Correlation curve**: the cosine between the ES gradient estimate and the true minibatch
   gradient (``jax.grad``) of an MLP 64-64-10 classifier (d = 4,810) at its initialization, vs
   the number of mirrored pairs n (population 2n), for raw fitness differences and for the
   library's centered-rank estimate (``el.analysis.gradient_correlation``), against the
   linear-objective law ``sqrt(n / (n + d - 1))``.
2. **SGD proxy**: test accuracy over steps of (a) SGD with the exact minibatch gradient, (b) the
   SGD proxy whose gradient is degraded to the cosine that ES measured at population P (part 1,
   centered ranks), (c) OpenAI-ES with that population P. All three use Adam and the same
   minibatch size.

Writes ``benchmarks/es_vs_sgd.png`` and a section of RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "ES vs SGD on digits: gradient correlation and the SGD proxy (issue 7)"
SIGMA, BATCH, HIDDEN = 0.05, 200, 64


def worker(cfg: dict) -> None:
    import time

    import evojax_lab as el

    el.parallel.use_host_devices()
    import jax
    import jax.numpy as jnp
    import optax

    from evojax_lab.tasks.supervised import accuracy, load_digits, supervised

    data = load_digits(0)
    model = el.policies.MLP(10, hidden=(HIDDEN,), head="linear")
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(64))
    task = supervised(model.apply, data.x_train, data.y_train, batch_size=BATCH)
    batch_key = jax.random.PRNGKey(42)
    fn = lambda p: task.fn(batch_key, p)

    t0 = time.perf_counter()
    curves = {}
    for label, shaping in (("raw differences", None),
                           ("centered ranks", el.shaping.centered_rank)):
        res = el.analysis.gradient_correlation(
            jax.random.PRNGKey(1), fn, params, cfg["pairs"], sigma=SIGMA,
            num_trials=cfg["trials"], shaping=shaping)
        curves[label] = {"mean": res.mean.tolist(), "std": res.std.tolist()}
    law = res.expected.tolist()
    corr_s = time.perf_counter() - t0

    # part 2: SGD, SGD proxy at the ES cosine of population P, ES with population P
    n = cfg["proxy_pairs"]
    c = curves["centered ranks"]["mean"][cfg["pairs"].index(n)]
    test_acc = jax.jit(lambda p: accuracy(model.apply, p, data.x_test, data.y_test))
    steps, block = cfg["steps"], cfg["block"]
    runs = {}
    for label, cosine in (("SGD (exact gradient)", None), (f"SGD proxy (cos = {c:.3f})", c)):
        trainer = el.analysis.sgd_proxy(task.fn, optax.adam(cfg["sgd_lr"]), cosine=cosine)

        @jax.jit
        def run(state, trainer=trainer):
            return jax.lax.scan(lambda s, _: trainer.update(jax.random.PRNGKey(5), s), state,
                                None, length=block)[0]

        state, accs = trainer.init(params), []
        for _ in range(steps // block):
            state = run(state)
            accs.append(float(test_acc(state.params)))
        runs[label] = accs
    strategy = el.strategies.openai_es(2 * n, sigma=SIGMA, learning_rate=cfg["es_lr"],
                                       noise=el.noise.table(2_000_000))
    trainer = el.make_train(task, None, strategy, params=params, generations=steps,
                            eval_episodes=0)
    carry, accs = trainer.init(jax.random.PRNGKey(6)), []
    for _ in range(steps // block):
        carry, _ = trainer.run(carry, block)
        accs.append(float(test_acc(strategy.solution(carry.state))))
    runs[f"OpenAI-ES (P = {2 * n})"] = accs
    C.report({"pairs": cfg["pairs"], "curves": curves, "law": law, "dim": res.dim,
              "corr_s": corr_s, "runs": runs, "block": block, "proxy_cosine": c,
              "init_acc": float(test_acc(params))})


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    n = np.asarray(res["pairs"])
    for label, cur in res["curves"].items():
        ax[0].errorbar(n, cur["mean"], yerr=cur["std"], marker="o", ms=3, capsize=2,
                       label=f"ES estimate, {label}")
    ax[0].plot(n, res["law"], "k--", label=f"linear law sqrt(n/(n+d-1)), d = {res['dim']}")
    ax[0].set_xscale("log")
    ax[0].set_xlabel("mirrored pairs n (population 2n)")
    ax[0].set_ylabel("cosine to the true minibatch gradient")
    ax[0].set_title("digits MLP at initialization")
    ax[0].legend(fontsize=7)
    ax[0].grid(alpha=0.3)
    for label, accs in res["runs"].items():
        steps = res["block"] * np.arange(1, len(accs) + 1)
        ax[1].plot(steps, accs, label=label)
    ax[1].set_xlabel("steps / generations (minibatch of 200)")
    ax[1].set_ylabel("test accuracy")
    ax[1].set_ylim(0.5, 1.0)
    ax[1].set_title("SGD, the SGD proxy at the ES cosine, and ES")
    ax[1].legend(fontsize=7)
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = C.base_parser(__doc__)
    args = parser.parse_args()
    start = C.started()
    cfg = {"pairs": [1, 10, 100, 1000], "trials": 10, "proxy_pairs": 100,
           "steps": 500, "block": 50, "sgd_lr": 0.01, "es_lr": 0.03}
    if args.quick:
        cfg.update(pairs=[1, 10], trials=2, proxy_pairs=10, steps=20, block=10)
    res = C.run_worker(__file__, cfg, host_devices=None)
    rows = [(n, f"{res['curves']['raw differences']['mean'][i]:.3f}",
             f"{res['curves']['centered ranks']['mean'][i]:.3f}", f"{res['law'][i]:.3f}")
            for i, n in enumerate(res["pairs"])]
    table = C.markdown_table(["pairs n (P = 2n)", "cosine, raw differences",
                              "cosine, centered ranks", "linear law"], rows)
    table += "\n\n" + C.markdown_table(
        ["method", *[f"test acc @ {res['block'] * (i + 1)}"
                     for i in range(0, len(next(iter(res["runs"].values()))), 2)]],
        [(label, *[f"{a:.3f}" for a in accs[::2]]) for label, accs in res["runs"].items()])
    if not args.no_save:
        plot(res, C.HERE / "es_vs_sgd.png")
    notes = ["Machine: 2-core CPU, shared.",
             f"Correlation: minibatch of {BATCH} fixed, sigma = {SIGMA}, {cfg['trials']} "
             f"trials per n, computed in {res['corr_s']:.0f} s; the initial test accuracy is "
             f"{res['init_acc']:.3f}.",
             f"SGD proxy: every step's gradient replaced by one with cosine "
             f"{res['proxy_cosine']:.3f} to the exact minibatch gradient (the centered-rank ES "
             f"cosine at n = {cfg['proxy_pairs']}) and the same norm; Adam lr {cfg['sgd_lr']} "
             f"for both SGD runs; OpenAI-ES Adam lr {cfg['es_lr']}, sigma {SIGMA}.",
             "Plot: benchmarks/es_vs_sgd.png."]
    settings = {"model": f"MLP 64-{HIDDEN}-10 tanh", "data": "digits, load_digits(0)",
                "steps": cfg["steps"]}
    C.save_section(args, TITLE, start, settings, table, (), notes)


if __name__ == "__main__":
    C.entry(worker, main)
