"""OpenAI-ES on brax's humanoid, sized for one GPU (issue 8); ``--tiny`` runs it on a CPU.

The ES paper's humanoid recipe: population 10,000 (5,000 mirrored pairs), MLP 256-256 tanh,
sigma 0.02, Adam lr 0.01, L2 0.005, centered ranks, observation normalization (statistics
shared by the population, updated between generations) and action noise 0.01 in training
rollouts, episodes of up to 1,000 steps. brax's humanoid observes 244 numbers (the paper's
MuJoCo humanoid 376: brax leaves out the contact forces), so the policy has 132,881
parameters (166,673 with 376 inputs). ``--trap`` runs the deceptive humanoid trap instead
(REFERENCE §6 walls; behavior = final centre of mass).

    python benchmarks/humanoid_es.py                       # one GPU: P = 10,000
    python benchmarks/humanoid_es.py --chunk-size 2500     # bounded memory per device
    python benchmarks/humanoid_es.py --tiny --no-save      # a CPU smoke run (minutes: compile)

Progress is printed every block of generations; at the end a section is appended to
benchmarks/RESULTS.md unless ``--no-save``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main():
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="CPU-sized smoke run: P = 8, MLP 16-16, 20-step episodes, 2 gens")
    parser.add_argument("--trap", action="store_true", help="brax/humanoid_trap")
    parser.add_argument("--backend", default="generalized")
    parser.add_argument("--pop", type=int, default=10_000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--action-noise", type=float, default=0.01)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.tiny or args.quick:
        args.quick = True
        args.backend, args.pop, args.hidden, args.max_steps = "spring", 8, [16, 16], 20
        args.generations, args.block, args.eval_episodes = 2, 1, 1

    import jax
    import numpy as np

    import evojax_lab as el

    start = C.started()
    name = "brax/humanoid_trap" if args.trap else "brax/humanoid"
    task = el.tasks.make(name, backend=args.backend, max_steps=args.max_steps)
    policy = el.policies.for_task(task, hidden=tuple(args.hidden))
    strategy = el.strategies.openai_es(args.pop, args.sigma, learning_rate=args.lr,
                                       chunk_size=args.chunk_size)
    trainer = el.make_train(task, policy, strategy, generations=args.block,
                            eval_episodes=args.eval_episodes, chunk_size=args.chunk_size,
                            obs_norm=True, action_noise=args.action_noise)
    params = jax.eval_shape(policy.init, jax.random.PRNGKey(0), np.zeros(task.observation_shape,
                                                                          np.float32))
    num_params = int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
    print(f"{name} ({args.backend}): obs {task.observation_shape}, actions "
          f"{task.action_space.shape}, policy parameters {num_params:,}, devices "
          f"{jax.devices()}", flush=True)
    t0 = time.perf_counter()
    carry = trainer.init(jax.random.PRNGKey(args.seed))
    rows = []
    while len(rows) < args.generations:
        carry, m = trainer.run(carry, args.block)
        m = jax.tree.map(np.asarray, m)
        wall = time.perf_counter() - t0
        for i in range(len(m["generation"])):
            rows.append([int(m["generation"][i]), round(wall / 60, 2), f"{m['steps'][i]:.3g}",
                         round(float(m["solution_fitness"][i]), 1),
                         round(float(m["mean_fitness"][i]), 1),
                         round(float(m["best_fitness"][i]), 1)])
        print("gen {} {:.1f} min steps {} solution {} mean {} best {}".format(*rows[-1]),
              flush=True)
    table = C.markdown_table(["generation", "minutes", "env steps", "solution return",
                              "population mean", "population best"],
                             C.thinned(rows))
    C.save_section(
        args, f"OpenAI-ES on {name} (issue 8)", start,
        {"backend": args.backend, "P": args.pop, "MLP": "-".join(map(str, args.hidden))
         + " tanh", "parameters": f"{num_params:,}", "sigma": args.sigma, "Adam lr": args.lr,
         "max_steps": args.max_steps, "obs norm": "on", "action noise": args.action_noise,
         "chunk_size": args.chunk_size, "devices": len(jax.devices())},
        table, (), [f"{len(rows)} generations in {rows[-1][1]} min (compilation included)."])


if __name__ == "__main__":
    main()
