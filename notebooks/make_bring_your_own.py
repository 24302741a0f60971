"""Writes notebooks/bring_your_own.ipynb; `python notebooks/execute.py` then runs it in place."""

import nbformat as nbf
from _notebook import write

cells = [
    nbf.v4.new_markdown_cell(
        "# Bring your own environment and strategy\n\n"
        "evojax_lab trains anything that follows two small protocols: a **task** (`reset`, "
        "`step`, a behavior descriptor, static shapes; [docs/tasks.md](../docs/tasks.md)) and a "
        "**strategy** (`init`, `ask`, `tell`, `solution`). This notebook writes a small JAX "
        "environment from scratch, trains it with OpenAI-ES, the Deep GA and an evosax CMA-ES "
        "through the same `make_train`, and compares them; then it wraps a gymnax environment "
        "instance whose parameters are data, so a sweep over them is one compiled program.\n\n"
        "About a minute on a 2-core CPU."
    ),
    nbf.v4.new_code_cell(
        "import time\n\n"
        "import evosax.algorithms\n"
        "import gymnax\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n\n"
        "import evojax_lab as el\n\n"
        "print(jax.__version__, jax.devices())"
    ),
    nbf.v4.new_markdown_cell(
        "## An environment in twenty lines\n"
        "A point on the plane must reach a goal drawn at random each episode. The observation is "
        "the point and the goal; the action a bounded velocity; every step costs the distance "
        "left, and reaching the goal ends the episode. Everything that changes lives in the "
        "state, all randomness comes from the keys, and the shapes and the cutoff are Python "
        "values. The behavior descriptor (what novelty search would compare) is the final "
        "position."
    ),
    nbf.v4.new_code_cell(
        "def reach(max_steps=40, speed=0.1):\n"
        "    def observe(state):\n"
        "        return jnp.concatenate(state)  # (x, y, goal_x, goal_y)\n\n"
        "    def reset(key):\n"
        "        start, goal = jax.random.uniform(key, (2, 2), minval=-1.0, maxval=1.0)\n"
        "        state = (start, goal)\n"
        "        return observe(state), state\n\n"
        "    def step(key, state, action):\n"
        "        position, goal = state\n"
        "        position = position + speed * jnp.clip(action, -1.0, 1.0)\n"
        "        distance = jnp.linalg.norm(position - goal)\n"
        "        state = (position, goal)\n"
        "        return observe(state), state, -distance, distance < 0.05\n\n"
        "    return el.tasks.Task(\n"
        '        name="reach", reset=reset, step=step,\n'
        "        behavior=lambda obs, state: state[0],  # the final position\n"
        "        observation_shape=(4,),\n"
        '        action_space=el.tasks.ActionSpace("continuous", shape=(2,), low=-1.0, '
        "high=1.0),\n"
        "        max_steps=max_steps, behavior_size=2,\n"
        "    )\n\n\n"
        "task = reach()\n"
        "policy = el.policies.for_task(task, hidden=(16,))\n"
        "params = policy.init(jax.random.key(0), jnp.zeros(task.observation_shape))\n"
        'print("parameters:", el.tree.num_params(params))'
    ),
    nbf.v4.new_markdown_cell(
        "## Three strategies, one `make_train`\n"
        "OpenAI-ES and the Deep GA come from evojax_lab; CMA-ES is evosax's own, built the way "
        "an evosax user builds it and wrapped with `el.strategies.from_evosax` (evosax "
        "minimizes, evojax_lab maximizes: the wrapper hands evosax `-fitness`). Each run is one "
        "jit-compiled program, sharded over this machine's devices, with the same episodes per "
        "member (two) and the same budget of 40 × 64 × 2 episodes."
    ),
    nbf.v4.new_code_cell(
        "P, G = 64, 40\n"
        "strategies = {\n"
        '    "OpenAI-ES": el.strategies.openai_es(P, sigma=0.05, learning_rate=0.03),\n'
        '    "Deep GA": el.strategies.make("deep_ga", pop_size=P, sigma=0.05, truncation=10,\n'
        "                                   elites=1, validation_episodes=0, generations=G),\n"
        '    "CMA-ES (evosax)": el.strategies.from_evosax(\n'
        "        evosax.algorithms.CMA_ES(population_size=P, solution=params)),\n"
        "}\n"
        "results = {}\n"
        "for name, strategy in strategies.items():\n"
        "    train = el.make_train(task, policy, strategy, generations=G, episodes=2,\n"
        "                          eval_episodes=20, params=params)\n"
        "    start = time.perf_counter()\n"
        "    results[name] = train(jax.random.key(1))\n"
        "    score = float(results[name].metrics['solution_fitness'][-1])\n"
        '    print(f"{name:16s} {time.perf_counter() - start:5.1f} s   final solution score '
        '{score:7.2f}")'
    ),
    nbf.v4.new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
        "for name, result in results.items():\n"
        '    ax.plot(result.metrics["solution_fitness"], label=name)\n'
        'ax.set_xlabel("generation")\n'
        'ax.set_ylabel("solution return (20 episodes)")\n'
        'ax.set_title("reach: one environment, three strategies")\n'
        "ax.legend()\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "For scale (a NumPy simulation of 20,000 episodes): a policy that stays put scores "
        "about -42, one that heads straight for the goal at full speed about -5. The scores "
        "above are one seed of one untuned setting each, not a comparison of the algorithms."
        "\n\n"
        "## A gymnax environment instance, its parameters as data\n"
        "`el.tasks.from_gymnax(env, env_params)` wraps any gymnax environment instance (yours or "
        "gymnax's). Its parameters are JAX data: build the task inside a `vmap` and one program "
        "evaluates a policy on several settings, here three pole lengths of CartPole (the "
        "cutoff and the shapes stay the static defaults)."
    ),
    nbf.v4.new_code_cell(
        'env, env_params = gymnax.make("CartPole-v1")\n'
        "cartpole = el.tasks.from_gymnax(env, env_params)\n"
        "cart_policy = el.policies.for_task(cartpole, hidden=(16,))\n"
        "solved = el.make_train(cartpole, cart_policy, el.strategies.openai_es(64, sigma=0.05),\n"
        "                       generations=20)(jax.random.key(2)).solution\n"
        "one = jax.tree.map(lambda x: x[None], solved)  # a population of one\n\n"
        "lengths = jnp.array([0.25, 0.5, 1.0])  # gymnax's default is 0.5\n"
        "scores = jax.jit(jax.vmap(lambda length: el.evaluate(\n"
        "    jax.random.key(3), el.tasks.from_gymnax(env, env_params.replace(length=length)),\n"
        "    cart_policy, one, episodes=10).fitness[0]))(lengths)\n"
        "for length, score in zip(lengths, scores, strict=True):\n"
        '    print(f"pole half-length {float(length):.2f}: mean return {float(score):6.1f}")'
    ),
]

write(cells, "bring_your_own.ipynb", "evosax")
