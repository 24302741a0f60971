"""ES vs finite differences on the two 2-D landscapes of issue 7 (``el.tasks.landscapes``).

Three optimizers with the same plain gradient-ascent update ``x <- x + lr g`` (lr 0.01, 400
steps) from 10 jittered starts each (x +- 0.2, y +- 0.02 around ``(-1, 0)``):

* FD: central finite differences, h = 1e-4 (``el.analysis.fd_ascent``);
* ES, small sigma (0.02): ``el.analysis.es_ascent``, 10 mirrored pairs, raw differences;
* ES, large sigma (0.3 on the gap, 0.5 on the narrowing path).

Success: reaching ``x >= goal_x`` (0.5 on the gap: past the trench; 2.0 on the path: past the
narrow part). Writes ``benchmarks/landscapes.png`` (trajectories on the fitness maps) and a
section of RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "ES vs finite differences on 2-D landscapes (issue 7)"
STEPS, LR, PAIRS, SEEDS = 400, 0.01, 10, 10
LARGE = {"gap": 0.3, "narrowing": 0.5}
SMALL = 0.02


def worker(cfg: dict) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import evojax_lab as el

    out = {}
    for land in (el.tasks.gap_landscape(), el.tasks.narrowing_landscape()):
        x0 = []
        for seed in range(cfg["seeds"]):
            u = np.random.default_rng(seed).uniform(-1, 1, 2)
            x0.append(np.array(land.start) + u * np.array([0.2, 0.02]))
        x0 = jnp.asarray(np.stack(x0), jnp.float32)
        keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(cfg["seeds"]))
        runs = {"FD (h = 1e-4)": jax.vmap(lambda x, f=land.fn: el.analysis.fd_ascent(
            f, x, steps=cfg["steps"], learning_rate=LR))(x0)}
        for label, sigma in ((f"ES, sigma = {SMALL}", SMALL),
                             (f"ES, sigma = {LARGE[land.name]}", LARGE[land.name])):
            runs[label] = jax.vmap(lambda k, x, f=land.fn, s=sigma: el.analysis.es_ascent(
                k, f, x, steps=cfg["steps"], learning_rate=LR, sigma=s, num_pairs=PAIRS))(
                keys, x0)
        out[land.name] = {k: np.asarray(v).tolist() for k, v in runs.items()}
    C.report({"trajectories": out})


def plot(trajs, path):
    import matplotlib

    matplotlib.use("Agg")
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    import evojax_lab as el

    lands = {"gap": el.tasks.gap_landscape(), "narrowing": el.tasks.narrowing_landscape()}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = ["tab:red", "tab:orange", "tab:cyan"]
    for ax, (name, land) in zip(axes, lands.items(), strict=True):
        x0, x1, y0, y1 = land.extent
        xs, ys = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 250))
        f = np.asarray(land.fn(jnp.stack([jnp.asarray(xs), jnp.asarray(ys)], -1)))
        ax.contourf(xs, ys, f, levels=40, cmap="Greys_r")
        for (label, runs), color in zip(trajs[name].items(), colors, strict=True):
            for i, t in enumerate(np.asarray(runs)):
                fd = label.startswith("FD")
                ax.plot(t[:, 0], t[:, 1], color=color, lw=1.6 if fd else 0.8, alpha=0.8,
                        zorder=3 if fd else 2, label=label if i == 0 else None)
                ax.plot(t[-1, 0], t[-1, 1], "o", color=color, ms=3)
        ax.axvline(land.goal_x, color="g", ls="--", lw=1, label="goal")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"{name}: " + ("narrow trench at x = 0" if name == "gap"
                                    else "path narrows around x = 0.75"))
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle("ES vs finite differences (10 starts each; lighter = higher fitness)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = C.base_parser(__doc__)
    args = parser.parse_args()
    start = C.started()
    cfg = {"steps": 40 if args.quick else STEPS, "seeds": 3 if args.quick else SEEDS}
    res = C.run_worker(__file__, cfg, host_devices=None)
    goals = {"gap": 0.5, "narrowing": 2.0}
    rows = []
    for name, runs in res["trajectories"].items():
        for label, trajs in runs.items():
            finals = [t[-1][0] for t in trajs]
            reached = sum(max(p[0] for p in t) >= goals[name] for t in trajs)
            rows.append((name, label, f"{reached}/{len(trajs)}",
                         f"{min(finals):.2f} .. {max(finals):.2f}"))
    table = C.markdown_table(["landscape", "optimizer", f"reached x >= goal ({cfg['steps']} "
                              "steps)", "final x (min .. max)"], rows)
    if not args.no_save:
        plot(res["trajectories"], C.HERE / "landscapes.png")
    notes = ["Machine: 2-core CPU, shared.",
             "Formulas: el.tasks.landscapes module docstring (gap: x - 0.5 y^2 - 2 exp(-x^2 / "
             "(2 * 0.05^2)); path: x - 4 (1 - exp(-(y / w(x))^4)), w from 1 to 0.15 around "
             "x = 0.75).",
             "Plot: benchmarks/landscapes.png (every trajectory on the fitness map)."]
    settings = {"update": f"x <- x + {LR} g", "steps": cfg["steps"], "seeds": cfg["seeds"],
                "ES pairs": PAIRS, "goal x": "gap 0.5, narrowing 2.0"}
    C.save_section(args, TITLE, start, settings, table, (), notes)


if __name__ == "__main__":
    C.entry(worker, main)
