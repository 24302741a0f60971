"""Writes notebooks/novelty_hard_maze.ipynb; `python notebooks/execute.py` then runs it in place."""

import nbformat as nbf
from _notebook import write

cells = [
    nbf.v4.new_markdown_cell(
        "# Novelty search on the Hard Maze: GA vs GA-NS\n\n"
        "The Hard Maze (Lehman & Stanley) is deceptive: fitness is minus the robot's final "
        "distance to the goal, and the straight line toward the goal ends in a dead end about "
        "39 units away from it. A fitness-driven search climbs into that trap; novelty search "
        "ignores fitness and selects the individuals whose behavior (here the final `(x, y)`) is "
        "far from what was seen before, and so keeps exploring until it stumbles on the goal.\n\n"
        "We run the Deep GA (selection by fitness) and GA-NS (the same GA selecting by the mean "
        "distance to the k = 10 nearest behaviors in an archive plus the current generation; "
        "Such et al. 2017, arXiv:1712.06567) with the same budget and draw where every evaluated "
        "individual ended.\n\n"
        "**Settings here are small**: population 200, 40 generations (8,000 episodes) per method, "
        "one seed, chosen as one where GA-NS finds the goal within this budget (it does not on "
        "every seed). `benchmarks/hard_maze.py` runs the full comparison: 100,000 episodes per "
        "run over 5 seeds, where the GA is trapped in 5/5 seeds and GA-NS reaches the goal in "
        "4/5. NS-ES (novelty search driving an evolution strategy) is also in the library "
        "(`el.strategies.ns_es`, `nsr_es`, `nsra_es`), but on this maze our NS-ES reached the "
        "goal in at most 3 of 5 seeds in every one of about 30 settings we tried (populations "
        "of 20 to 1,000, 100,000 and 300,000 episodes) and NSR-ES in 0/5 (see "
        "`benchmarks/RESULTS.md`), so this notebook shows the GA family."
    ),
    nbf.v4.new_code_cell(
        "import time\n\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n\n"
        "import evojax_lab as el\n"
        "from evojax_lab.tasks.hard_maze import draw_maze\n\n"
        'task = el.tasks.make("hard_maze")     # 400 steps, 11 sensors, behavior = final (x, y)\n'
        "policy = el.policies.for_task(task, hidden=(16, 16))\n"
        "template = policy.init(jax.random.PRNGKey(0), jnp.zeros(task.observation_shape))\n"
        'print(task.observation_shape, task.action_space.kind, "behavior size", '
        "task.behavior_size)"
    ),
    nbf.v4.new_markdown_cell(
        "## Novelty in three lines\n"
        "`el.novelty` is a fixed-capacity archive (a pytree) and a k-nearest-neighbour novelty, "
        "both pure and jittable."
    ),
    nbf.v4.new_code_cell(
        "archive = el.novelty.init(capacity=100, behavior_size=2)\n"
        "archive = el.novelty.add(archive, jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))\n"
        "queries = jnp.array([[0.1, 0.1], [5.0, 5.0]])\n"
        'print("novelty (mean distance to the 2 nearest):", el.novelty.knn(queries, archive, k=2))'
    ),
    nbf.v4.new_markdown_cell(
        "## Two runs with the same budget\n"
        "Both start from the same network (the Deep GA's reference initialization) and record "
        "every individual's fitness and final position (`record=(\"fitness\", \"behavior\")`). "
        "The maze is deterministic, so the GA's elite needs no re-evaluation."
    ),
    nbf.v4.new_code_cell(
        "SEED, POP, GENERATIONS = 3, 200, 40\n"
        "key = jax.random.PRNGKey(SEED)\n"
        "params = el.policies.reference_init(jax.random.fold_in(key, 1), template)\n"
        "strategies = {\n"
        '    "Deep GA": el.strategies.deep_ga(POP, sigma=0.1, truncation=20,\n'
        "                                     validation_episodes=0,\n"
        "                                     genome_capacity=GENERATIONS),\n"
        '    "GA-NS": el.strategies.ga_ns(POP, sigma=0.1, truncation=20, behavior_size=2, k=10,\n'
        "                                 archive_probability=0.05,\n"
        "                                 genome_capacity=GENERATIONS),\n"
        "}\n"
        "runs = {}\n"
        "for name, strategy in strategies.items():\n"
        "    train = el.make_train(task, policy, strategy, generations=GENERATIONS,\n"
        "                          eval_episodes=0, params=params,\n"
        '                          record=("fitness", "behavior"))\n'
        "    t = time.perf_counter()\n"
        "    result = jax.block_until_ready(train(key))\n"
        "    runs[name] = result\n"
        '    fitness = np.asarray(result.metrics["population_fitness"])      # [G, P]\n'
        "    best = -fitness.max(axis=1)           # closest final distance per generation\n"
        "    hit = np.nonzero(best <= 10.0)[0]\n"
        "    where = (f\"reached the goal at generation {hit[0]} \"\n"
        "             f\"({(hit[0] + 1) * POP:,} episodes)\" if len(hit) else \"trapped\")\n"
        '    print(f"{name:8s} {time.perf_counter() - t:5.1f} s   closest final distance "\n'
        '          f"{best.min():5.1f}   {where}")'
    ),
    nbf.v4.new_markdown_cell(
        "## Where every individual ended\n"
        "The classic picture: the final position of every individual each method evaluated, "
        "coloured by generation. The GA piles up against the wall below the goal (the trap); "
        "GA-NS spreads through the corridors."
    ),
    nbf.v4.new_code_cell(
        "fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))\n"
        "for ax, (name, result) in zip(axes, runs.items(), strict=True):\n"
        '    b = np.asarray(result.metrics["population_behavior"]).reshape(-1, 2)\n'
        "    g = np.repeat(np.arange(GENERATIONS), POP)\n"
        '    ax.scatter(b[:, 0], b[:, 1], c=g, s=2, alpha=0.4, cmap="viridis")\n'
        "    draw_maze(ax)\n"
        '    ax.set_title(f"{name}: {len(b):,} final positions", fontsize=10)\n'
        "    ax.set_xticks([])\n"
        "    ax.set_yticks([])\n"
        'fig.suptitle("Hard Maze: final (x, y) of every evaluated individual "\n'
        '             "(colour: generation)", fontsize=10)\n'
        "fig.tight_layout()\n"
        "plt.show()"
    ),
    nbf.v4.new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 3.3))\n"
        "for name, result in runs.items():\n"
        '    fitness = np.asarray(result.metrics["population_fitness"])\n'
        "    ax.plot(np.arange(1, GENERATIONS + 1) * POP, -np.maximum.accumulate(fitness.max(1)),\n"
        "            label=name)\n"
        'ax.axhline(10, color="tab:red", ls=":", label="success radius")\n'
        'ax.set_xlabel("episodes")\n'
        'ax.set_ylabel("closest final distance so far")\n'
        'ax.set_yscale("log")\n'
        "ax.legend()\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()\n"
        'ns = runs["GA-NS"]\n'
        'print("GA-NS archive size:", int(ns.metrics["archive_size"][-1]),\n'
        '      "| best-ever fitness kept as its solution:", float(ns.state.best_fitness))'
    ),
    nbf.v4.new_markdown_cell(
        "GA-NS keeps the best-fitness individual it ever evaluated as its `solution` (and its "
        "genome as `el.strategies.elite_genome(state)`), since novelty selection itself ignores "
        "reward. From the command line: `evojax-lab train --task hard_maze --strategy ga_ns` "
        "(or `deep_ga`, `ns_es`, `nsr_es`, `nsra_es`)."
    ),
]
write(cells, "novelty_hard_maze.ipynb")
