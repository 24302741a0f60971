"""OpenAI-ES trains a digits classifier (issue 7): test accuracy over wall time.

The data is the embedded scikit-learn digits set (8x8, 1,438 train / 359 test, fixed split
``el.tasks.load_digits(split_seed=0)``). The classifier is an MLP 64-H-10 (tanh, linear head);
its parameters are the ES population (``el.tasks.supervised``: fitness = minus the cross-entropy
on a minibatch drawn from the generation's key, shared by all members). OpenAI-ES with mirrored
sampling, centered ranks, the shared noise table and Adam whose step size decays (cosine) over
the run; ``make_train`` drives it in blocks and the ES mean is scored on the test set after every
block (scoring time excluded from the training clock, compile time included in it).

Run ``python benchmarks/digits_es.py`` (``--quick`` for a smoke run); writes
``benchmarks/digits_es.png`` and appends a section to RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "ES on the digits classifier (issue 7)"
TARGET = 0.97
BUDGET_S = 15 * 60


def worker(cfg: dict) -> None:
    import time

    import evojax_lab as el

    el.parallel.use_host_devices()
    import jax
    import jax.numpy as jnp
    import optax

    from evojax_lab.tasks.supervised import accuracy, load_digits, supervised

    data = load_digits(0)
    model = el.policies.MLP(10, hidden=(cfg["hidden"],), head="linear")
    params = model.init(jax.random.PRNGKey(cfg["seed"]), jnp.zeros(64))
    task = supervised(model.apply, data.x_train, data.y_train, batch_size=cfg["batch"])
    gens, block = cfg["generations"], cfg["block"]
    opt = optax.adam(optax.cosine_decay_schedule(cfg["lr"], gens, alpha=cfg["lr_floor"]))
    strategy = el.strategies.openai_es(cfg["pop"], sigma=cfg["sigma"], optimizer=opt,
                                       weight_decay=cfg["weight_decay"],
                                       noise=el.noise.table(cfg["table"]))
    trainer = el.make_train(task, None, strategy, params=params, generations=gens,
                            eval_episodes=0)
    test_acc = jax.jit(lambda p: accuracy(model.apply, p, data.x_test, data.y_test))
    train_acc = jax.jit(lambda p: accuracy(model.apply, p, data.x_train, data.y_train))
    start = time.perf_counter()
    carry = trainer.init(jax.random.PRNGKey(cfg["seed"] + 1))
    curve, clock, cpu, reached = [], 0.0, 0.0, None
    for _ in range(gens // block):
        t0, c0 = time.perf_counter(), time.process_time()
        carry, metrics = trainer.run(carry, block)
        jax.block_until_ready(carry)
        clock += time.perf_counter() - t0
        cpu += time.process_time() - c0
        sol = strategy.solution(carry.state)
        acc = float(test_acc(sol))
        curve.append({"generation": int(carry.generation), "seconds": clock, "cpu_seconds": cpu,
                      "test_accuracy": acc, "train_accuracy": float(train_acc(sol)),
                      "minibatch_loss": -float(metrics["mean_fitness"][-1])})
        print(curve[-1], flush=True)
        if reached is None and acc >= TARGET:
            reached = curve[-1]
        if clock > cfg["max_seconds"]:
            break
    C.report({"curve": curve, "reached": reached, "num_params": el.tree.num_params(params),
              "devices": jax.device_count(), "wall_s": time.perf_counter() - start})


def plot(curve, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    secs = [c["seconds"] / 60 for c in curve]
    gens = [c["generation"] for c in curve]
    for a, x, label in ((ax[0], secs, "training wall time (min, 2-core CPU, shared)"),
                        (ax[1], gens, "generation")):
        a.plot(x, [c["test_accuracy"] for c in curve], label="test")
        a.plot(x, [c["train_accuracy"] for c in curve], label="train", alpha=0.6)
        a.axhline(TARGET, color="k", ls=":", lw=1, label="97%")
        a.set_xlabel(label)
        a.set_ylim(0.85, 1.0)
        a.grid(alpha=0.3)
    ax[0].set_ylabel("accuracy of the ES mean")
    ax[0].legend(loc="lower right")
    fig.suptitle("OpenAI-ES on scikit-learn digits (MLP classifier)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = C.base_parser(__doc__)
    parser.add_argument("--pop", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = C.started()
    cfg = {"pop": args.pop, "hidden": args.hidden, "batch": args.batch, "sigma": args.sigma,
           "lr": args.lr, "lr_floor": 0.05, "weight_decay": 0.005, "table": 2_000_000,
           "generations": args.generations, "block": 50, "seed": args.seed,
           "max_seconds": 2 * BUDGET_S}
    if args.quick:
        cfg.update(pop=100, generations=40, block=20)
    res = C.run_worker(__file__, cfg, host_devices=None)
    curve, reached = res["curve"], res["reached"]
    rows = [(c["generation"], round(c["seconds"], 1), round(c["cpu_seconds"], 1),
             round(c["minibatch_loss"], 4), f"{c['train_accuracy']:.4f}",
             f"{c['test_accuracy']:.4f}")
            for i, c in enumerate(curve) if i % 2 == 1 or i == len(curve) - 1]
    table = C.markdown_table(["generation", "train wall s", "train CPU s", "minibatch loss",
                              "train acc", "test acc"], rows)
    png = C.HERE / "digits_es.png"
    if not args.no_save:
        plot(curve, png)
    best = max(c["test_accuracy"] for c in curve)
    checks = [("final test accuracy", 100 * curve[-1]["test_accuracy"], "%", ">= 97"),
              ("best test accuracy (any block)", 100 * best, "%", "")]
    if reached is not None:
        checks.append(("training wall seconds to the first block at >= 97%",
                       reached["seconds"], "s", f"<= {BUDGET_S}"))
        checks.append(("CPU seconds / 2 cores to the first block at >= 97% (idle-machine "
                       "estimate)", reached["cpu_seconds"] / 2, "s", f"<= {BUDGET_S}"))
    notes = [
        "Machine: 2-core CPU, shared with other jobs (see the load averages): wall times are "
        "upper bounds of what an idle machine does; the process's CPU time / 2 estimates the "
        "wall time of an idle 2-core machine.",
        f"Parameters: {res['num_params']}; host devices: {res['devices']}; the training "
        "clock includes compilation and excludes the test scoring between blocks.",
        "Plot: benchmarks/digits_es.png (test and train accuracy of the ES mean vs wall time "
        "and vs generation).",
    ]
    if reached is None:
        notes.append("97% test accuracy was NOT reached in this run.")
    settings = {k: cfg[k] for k in ("pop", "hidden", "batch", "sigma", "lr", "generations",
                                    "weight_decay", "seed")}
    settings.update(optimizer=f"Adam, cosine decay to {cfg['lr_floor']} x lr",
                    noise=f"table of {cfg['table']:,}", split="load_digits(split_seed=0)")
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    C.entry(worker, main)
