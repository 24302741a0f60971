"""Writes notebooks/quickstart.ipynb; `python notebooks/execute.py` then runs it in place."""

import nbformat as nbf
from _notebook import write

cells = [
    nbf.v4.new_markdown_cell(
        "# evojax_lab quickstart: OpenAI-ES on CartPole\n\n"
        "A strategy is four pure functions; `make_train` fuses it with a vmapped evaluation into "
        "one jit-compiled run. This notebook runs OpenAI-ES on CartPole, shows that the whole "
        "run is one compiled program, composes a strategy from parts and drives it by hand, "
        "sweeps a hyperparameter without recompiling, and vmaps several seeds.\n\n"
        "Settings are small so the notebook runs in about a minute on a 2-core CPU; the "
        "`evojax-lab train` preset for CartPole uses a population of 256 for 50 generations."
    ),
    nbf.v4.new_code_cell(
        "import time\n\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import optax\n\n"
        "import evojax_lab as el\n\n"
        "print(jax.__version__, jax.devices())"
    ),
    nbf.v4.new_markdown_cell(
        "## A task, a policy, a strategy\n"
        "Any gymnax id works with `el.tasks.make`; `for_task` picks the policy head from the "
        "action space. The strategy takes any optax optimizer."
    ),
    nbf.v4.new_code_cell(
        'task = el.tasks.make("CartPole-v1")\n'
        "policy = el.policies.for_task(task, hidden=(32, 32))\n"
        "strategy = el.strategies.openai_es(\n"
        "    128, sigma=0.05,\n"
        "    optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=0.03),\n"
        ")\n"
        "train = el.make_train(task, policy, strategy, generations=30, eval_episodes=5)\n\n"
        "t = time.perf_counter()\n"
        "result = train(jax.random.PRNGKey(0))\n"
        "jax.block_until_ready(result)\n"
        'print(f"compile + 30 generations: {time.perf_counter() - t:.1f} s")\n'
        'print("solution score per generation:", result.metrics["solution_fitness"].round(1))'
    ),
    nbf.v4.new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
        'ax.plot(result.metrics["best_fitness"], label="best of population")\n'
        'ax.plot(result.metrics["mean_fitness"], "--", label="population mean")\n'
        'ax.plot(result.metrics["solution_fitness"], label="solution (ES mean)")\n'
        'ax.set_xlabel("generation")\n'
        'ax.set_ylabel("return")\n'
        "ax.legend()\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## The whole run is one jitted program\n"
        "`train` is a `jax.jit` of `init` + a `lax.scan` over generations (ask, evaluate, tell, "
        "score the solution). A second call with another key reuses the compiled program. "
        "`count_compilations` counts JAX's own trace and compile events inside a block: 0 "
        "traces means nothing was traced again."
    ),
    nbf.v4.new_code_cell(
        "from evojax_lab.core.compiles import count_compilations\n\n"
        "t = time.perf_counter()\n"
        "with count_compilations() as seen:\n"
        "    again = jax.block_until_ready(train(jax.random.PRNGKey(1)))\n"
        'print(f"second call: {time.perf_counter() - t:.2f} s, traced again: {seen.traces} "\n'
        '      f"times, compiled: {seen.compiles} times")\n'
        "# the same key gives the same run, bit for bit\n"
        "same = train(jax.random.PRNGKey(0))\n"
        'print("same key, same run:", bool(jnp.array_equal(same.metrics["mean_fitness"],\n'
        '                                                  result.metrics["mean_fitness"])))'
    ),
    nbf.v4.new_markdown_cell(
        "## Composing a strategy, and driving it by hand\n"
        "A strategy is `Strategy(init, ask, tell, solution, pop_size, member)`: pure functions, "
        "like an optax transformation (`docs/design.md` states the protocol). Its parts are "
        "plain values: any optax transformation (here gradient clipping chained with SGD + "
        "momentum), any fitness shaping function (here z-scores instead of centered ranks), a "
        "noise source (here the ES paper's shared noise table instead of fold-in keys).\n\n"
        "Without `make_train`, one generation is the evosax-style loop `ask` → `el.evaluate` → "
        "`tell`, and we jit it ourselves. `ask` returns the population **and** the state it was "
        "drawn from, which records the ask key: `tell` regenerates the perturbations from that "
        "state (they are never stored), so `tell` takes a fresh key of its own, used only for "
        "its own randomness. A strategy that needs extra episodes inside `tell` (the Deep GA's "
        "elite validation, the NS-ES agents) also takes `tell(..., evaluate=...)`, a function "
        "`evaluate(key, population, *, episodes=1, experiences=0)`; OpenAI-ES needs none."
    ),
    nbf.v4.new_code_cell(
        "composed = el.strategies.openai_es(\n"
        "    64, sigma=0.1,\n"
        "    optimizer=optax.chain(optax.clip_by_global_norm(1.0),\n"
        "                          optax.sgd(0.5, momentum=0.9)),\n"
        "    fitness_shaping=el.shaping.z_score,\n"
        "    noise=el.noise.table(size=100_000),\n"
        "    weight_decay=0.0,\n"
        ")\n"
        "params = policy.init(jax.random.PRNGKey(0), jnp.zeros(task.observation_shape))\n"
        "state = composed.init(jax.random.PRNGKey(0), params)\n\n\n"
        "@jax.jit\n"
        "def generation(key, state):\n"
        "    ask_key, eval_key, tell_key = jax.random.split(key, 3)\n"
        "    population, state = composed.ask(ask_key, state)   # [64, ...] param pytree\n"
        "    evaluation = el.evaluate(eval_key, task, policy, population)\n"
        "    state, metrics = composed.tell(tell_key, population, evaluation, state)\n"
        "    return state, metrics\n\n\n"
        "by_hand = []\n"
        "for g in range(30):\n"
        "    state, metrics = generation(jax.random.PRNGKey(100 + g), state)\n"
        '    by_hand.append(float(metrics["mean_fitness"]))\n'
        'print("population mean return:", [round(x) for x in by_hand[::3]])\n'
        "solution = composed.solution(state)       # the ES mean: what we would deploy\n"
        "score = el.evaluate(jax.random.PRNGKey(7), task, policy,\n"
        "                    jax.tree.map(lambda x: x[None], solution), episodes=10)\n"
        'print("solution mean return over 10 episodes:", float(score.fitness[0]))'
    ),
    nbf.v4.new_markdown_cell(
        "## Sweep sigma in one program\n"
        "sigma and the learning rate live in the strategy state, so new values reuse the "
        "compiled program; `train.sweep` vmaps whole runs over them. The first sweep compiles "
        "the vmapped run; a second one with other values (of the same shape) traces nothing."
    ),
    nbf.v4.new_code_cell(
        "sigmas = jnp.array([0.01, 0.05, 0.2])\n"
        "with count_compilations() as first:\n"
        '    sweep = train.sweep(jax.random.PRNGKey(0), {"sigma": sigmas})\n'
        'for s, curve in zip(sigmas, sweep.metrics["solution_fitness"], strict=True):\n'
        '    print(f"sigma={float(s):.2f}: final solution score {float(curve[-1]):.1f}")\n'
        "with count_compilations() as second:\n"
        '    other = train.sweep(jax.random.PRNGKey(0), {"sigma": jnp.array([0.02, 0.1, 0.3])})\n'
        "    jax.block_until_ready(other)\n"
        'print(f"traces: first sweep {first.traces}, second sweep (new values) {second.traces}")'
    ),
    nbf.v4.new_markdown_cell(
        "## Several seeds at once\n`jax.vmap` over keys runs independent seeds side by side, "
        "in one program. Inside a `jit`/`vmap` of your own the trainer cannot set its device "
        "mesh itself: `el.train.mesh_context(train.mesh)` sets it around the transformation "
        "(with several devices the seeds then run sharded; on one device `train.mesh` is "
        "`None` and it does nothing)."
    ),
    nbf.v4.new_code_cell(
        "keys = jax.random.split(jax.random.PRNGKey(1), 4)\n"
        "with el.train.mesh_context(train.mesh):\n"
        "    seeds = jax.jit(jax.vmap(train))(keys)\n"
        'print("final solution score per seed:", seeds.metrics["solution_fitness"][:, -1])\n\n'
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
        'for i, curve in enumerate(seeds.metrics["mean_fitness"]):\n'
        '    ax.plot(curve, label=f"seed {i}")\n'
        'ax.plot(by_hand, "k--", label="composed strategy, by hand")\n'
        'ax.set_xlabel("generation")\n'
        'ax.set_ylabel("population mean return")\n'
        "ax.legend(fontsize=8)\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()"
    ),
]
write(cells, "quickstart.ipynb")
