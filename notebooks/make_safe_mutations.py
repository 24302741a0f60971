"""Writes notebooks/safe_mutations.ipynb; `python notebooks/execute.py` then runs it in place."""

import nbformat as nbf
from _notebook import write

cells = [
    nbf.v4.new_markdown_cell(
        "# Safe mutations through output gradients\n\n"
        "Lehman et al. (2017, arXiv:1712.06563): a plain mutation `w + m * eps` treats every "
        "weight alike, but in a deep or recurrent network some weights move the outputs far "
        "more than others. Safe mutations measure, on a batch of the parent's own inputs, how "
        "sensitive the outputs are to each weight and scale the perturbation per weight:\n\n"
        "* **SM-G-SUM** `s_j = sqrt(sum_o (mean_k dy_ko/dw_j)^2)` (signed gradients, can cancel),\n"
        "* **SM-G-ABS** the same with `|dy_ko/dw_j|` per example (no cancellation),\n"
        "* **SM-G-SO** from the Hessian of the output divergence along the mutation direction,\n"
        "* **SM-R** rescales the whole mutation so the mean squared output change hits a "
        "target.\n\n"
        "`el.mutations.sensitivity` returns the raw `s` (a pytree like the parameters); "
        "`el.mutations.safe_mutate` floors it (0 → 1, below 0.01 → 0.01), divides, clips to ±0.2 "
        "(or does SM-R); `el.mutations.safe_mutation` packages it as a mutation operator for "
        "the Deep GA. This notebook shows them on the paper's two-weight toy domains, on a "
        "deep network, on a recurrent network for 4-bit parity, and in a tiny GA run. Settings "
        "are small (a few minutes on a CPU); the GA experiments of the paper (Breadcrumb Hard "
        "Maze with deep networks, recurrent parity) are the job of "
        "`benchmarks/safe_mutations.py`."
    ),
    nbf.v4.new_code_cell(
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n\n"
        "import evojax_lab as el\n"
        "from evojax_lab.mutations import toy\n"
        "from evojax_lab.tasks.parity import PARITY_SEQUENCES\n\n"
        "M = el.mutations"
    ),
    nbf.v4.new_markdown_cell(
        "## The toy domains\n"
        "Two weights, two outputs on very different scales: `y = [100 w0 x0, 0.1 w1 x1]`, "
        "fitness `-sum (y - x)^2`. On *washout* the two examples `x = (1, 1)` and `(-1, -1)` "
        "have opposite gradients, so the signed sum (SM-G-SUM) cancels to 0 and falls back to a "
        "plain mutation, while SM-G-ABS sees the true scales `(100, 0.1)`."
    ),
    nbf.v4.new_code_cell(
        "for name, x in toy.TOY_DOMAINS.items():\n"
        "    s = {kind: np.asarray(M.sensitivity(toy.toy_apply, toy.toy_init(), x, kind)[\"w\"])\n"
        '         for kind in ("sum", "abs")}\n'
        '    print(f"{name:8s} inputs {x.tolist()}:  SM-G-SUM s = {s[\'sum\']},  "\n'
        "          f\"SM-G-ABS s = {s['abs']}\")"
    ),
    nbf.v4.new_markdown_cell(
        "A (1+1) hill climber (2,000 mutations, keep strict improvements) from `w = (0, 0)` on "
        "washout, magnitude `m = 0.01` (the paper's default), 4 seeds per operator. A plain "
        "step moves `y0` by about 1 but `y1` by only 0.001, so once `w0` is close, nearly every "
        "plain child spoils `y0` and `w1` never gets far."
    ),
    nbf.v4.new_code_cell(
        "x = toy.TOY_DOMAINS[\"washout\"]\n"
        "m = 0.01\n"
        "operators = {\n"
        '    "plain": lambda k, p, inp: M.gaussian(k, p, m),\n'
        '    "SM-G-SUM": lambda k, p, inp: M.safe_mutate(k, p, toy.toy_apply, inp, m, "sum"),\n'
        '    "SM-G-ABS": lambda k, p, inp: M.safe_mutate(k, p, toy.toy_apply, inp, m, "abs"),\n'
        '    "SM-G-SO": lambda k, p, inp: M.safe_mutate(k, p, toy.toy_apply, inp, m, "so"),\n'
        '    "SM-R": lambda k, p, inp: M.safe_mutate(k, p, toy.toy_apply, inp, m, "r"),\n'
        "}\n"
        "keys = jax.random.split(jax.random.key(0), 4)\n\n\n"
        "@jax.jit\n"
        "def climb_all(keys):\n"
        "    return {name: jax.vmap(lambda k, f=f: toy.hill_climb(k, toy.toy_init(), x, f))(keys)\n"
        "            for name, f in operators.items()}\n\n\n"
        "climbs = climb_all(keys)\n"
        "fig, ax = plt.subplots(figsize=(6.5, 3.5))\n"
        "for name, r in climbs.items():\n"
        "    ax.plot(np.median(-np.asarray(r.history), axis=0), label=name)\n"
        '    print(f"{name:9s} final fitness per seed: {np.asarray(r.fitness).round(4)}")\n'
        'ax.set_yscale("log")\n'
        'ax.set_xlabel("mutation")\n'
        'ax.set_ylabel("-fitness (median of 4 seeds)")\n'
        'ax.set_title("Toy washout domain, (1+1) hill climber, m = 0.01")\n'
        "ax.legend(fontsize=8)\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## A deep network\n"
        "`el.policies.deep_mlp(16, 15, ...)`: 16 hidden layers of 15 units (the paper's "
        "Breadcrumb Hard Maze network has 6; its deepest go past 100), here with tanh units and "
        "a linear head, weights drawn by the Deep GA's reference initialization with "
        "`std = 1.5`. The sensitivity batch is 100 observations from the parent's own 400-step "
        "episode in the Hard Maze."
    ),
    nbf.v4.new_code_cell(
        'task = el.tasks.make("hard_maze")\n'
        "DEPTH = 16\n"
        'net = el.policies.deep_mlp(DEPTH, 15, action_dim=2, activation="tanh", head="linear")\n'
        "template = jax.eval_shape(net.init, jax.random.key(0),\n"
        "                          jnp.zeros(task.observation_shape))\n"
        "parent = el.policies.reference_init(jnp.uint32(1), template, std=1.5,\n"
        "                                    output_std=1.0)\n\n\n"
        "@jax.jit\n"
        "def own_observations(params):\n"
        "    obs, state = task.reset(jax.random.key(0))\n\n"
        "    def step(carry, key):\n"
        "        obs, state = carry\n"
        "        next_obs, state, _, _ = task.step(key, state, net.apply(params, obs))\n"
        "        return (next_obs, state), obs\n\n"
        "    _, seen = jax.lax.scan(step, (obs, state), jax.random.split(jax.random.key(1), 400))\n"
        "    return seen[::4]                        # 100 experiences\n\n\n"
        "X = own_observations(parent)\n"
        'sens = jax.jit(lambda p: M.sensitivity(net.apply, p, X, "sum"))(parent)\n'
        'kernels = [f"Dense_{i}" for i in range(DEPTH + 1)]\n'
        'print(f"{el.tree.num_params(parent):,} parameters; inputs {X.shape}")'
    ),
    nbf.v4.new_markdown_cell(
        "### The sensitivity histogram\n"
        "Per-weight sensitivities of the kernels, by depth: they span several orders of "
        "magnitude within and across layers, so one mutation size cannot suit every weight. "
        "(A weight with `s = 0` exactly — it does not influence the outputs on these inputs — "
        "is mutated as if `s = 1`; values below the floor 0.01 are raised to it.)"
    ),
    nbf.v4.new_code_cell(
        "groups = {\"layers 0-5\": kernels[:6], \"layers 6-11\": kernels[6:12],\n"
        '          f"layers 12-{DEPTH} (output)": kernels[12:]}\n'
        "fig, ax = plt.subplots(figsize=(6.5, 3.5))\n"
        "bins = np.linspace(-6, 1, 36)\n"
        "for label, names in groups.items():\n"
        '    s = np.concatenate([np.ravel(sens["params"][n]["kernel"]) for n in names])\n'
        "    ax.hist(np.log10(s[s > 0]), bins=bins, alpha=0.5,\n"
        '            label=f"{label}: {np.mean(s == 0):.0%} exactly 0")\n'
        'ax.axvline(-2, color="k", ls=":", label="floor 0.01")\n'
        'ax.set_xlabel("log10 sensitivity s_j (SM-G-SUM)")\n'
        'ax.set_ylabel("weights")\n'
        "ax.legend(fontsize=8)\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "### Output divergence, layer by layer\n"
        "For 50 mutations we perturb **one layer at a time** (the mutation restricted to that "
        "layer's weights and bias) and measure the mean squared change of the outputs on the "
        "100 inputs (`el.mutations.output_divergence`). A plain mutation of a fixed size moves "
        "the outputs by amounts that differ by more than an order of magnitude from layer to "
        "layer; SM-G-SUM (default floor and clip) divides each weight's step by its "
        "sensitivity, and every layer then moves the outputs by a similar amount."
    ),
    nbf.v4.new_code_cell(
        "m = 0.01\n"
        'masks = [jax.tree_util.tree_map_with_path(lambda path, a, n=n: jnp.full(a.shape, n in\n'
        "          jax.tree_util.keystr(path).split(\"'\")), parent) for n in kernels]\n"
        "masks = jax.tree.map(lambda *a: jnp.stack(a), *masks)        # [layers, ...]\n\n\n"
        "@jax.jit\n"
        "def layer_divergences(key):\n"
        "    deltas = {\n"
        '        "plain": M.gaussian(key, parent, m),\n'
        '        "SM-G-SUM": M.safe_mutate(key, parent, net.apply, X, m, "sum"),\n'
        "    }\n\n"
        "    def per_layer(child):\n"
        "        delta = jax.tree.map(jnp.subtract, child, parent)\n"
        "        def masked(mask):\n"
        "            child = jax.tree.map(lambda p, d, k: p + d * k, parent, delta, mask)\n"
        "            return M.output_divergence(net.apply, parent, child, X)\n\n"
        "        return jax.vmap(masked)(masks)\n\n"
        "    return {name: per_layer(child) for name, child in deltas.items()}\n\n\n"
        "divergences = jax.vmap(layer_divergences)(jax.random.split(jax.random.key(2), 50))\n"
        "fig, ax = plt.subplots(figsize=(6.5, 3.8))\n"
        "layers = np.arange(DEPTH + 1)\n"
        "for name, d in divergences.items():\n"
        "    d = np.asarray(d)\n"
        "    med = np.median(d, axis=0)\n"
        '    ax.plot(layers, med, marker="o", ms=3, label=f"{name} (m = {m})")\n'
        "    ax.fill_between(layers, np.percentile(d, 10, axis=0), np.percentile(d, 90, axis=0),\n"
        "                    alpha=0.2)\n"
        '    print(f"{name:9s} median divergence, most / least affected layer: "\n'
        '          f"{med.max() / med.min():,.0f}x")\n'
        'ax.set_yscale("log")\n'
        'ax.set_xlabel(f"mutated layer ({DEPTH} = output layer)")\n'
        'ax.set_ylabel("output divergence")\n'
        'ax.set_title("One layer mutated at a time: median and 10-90% of 50 mutations",\n'
        "             fontsize=10)\n"
        "ax.legend(fontsize=8)\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## A recurrent network: 4-bit parity\n"
        "`el.policies.Recurrent`: 2 stacked RNN layers of 15 tanh units reading one bit per "
        "step, a 2-way output; `el.tasks.parity` scores minus the NLL of the parity after the "
        "4th bit over all 16 sequences. The sensitivity batch is the 16 whole sequences: the "
        "output layer is orders of magnitude more sensitive than the recurrent weights."
    ),
    nbf.v4.new_code_cell(
        'rnn = el.policies.Recurrent(cell="rnn", hidden=15, layers=2, outputs=2)\n'
        "seqs = jnp.asarray(PARITY_SEQUENCES)                 # [16, 4, 1]\n"
        "parity = el.tasks.parity(rnn.apply)\n"
        "rnn_template = rnn.init(jax.random.key(0), seqs[0])\n"
        "rnn_parent = el.policies.reference_init(jnp.uint32(0), rnn_template)\n"
        'rnn_sens = M.sensitivity(rnn.apply, rnn_parent, seqs, "sum")\n'
        "for path, s in jax.tree_util.tree_flatten_with_path(rnn_sens)[0]:\n"
        '    print(f"{jax.tree_util.keystr(path):40s} {str(s.shape):9s} median s = "\n'
        '          f"{float(jnp.median(s)):.4f}")'
    ),
    nbf.v4.new_markdown_cell(
        "The same (1+1) hill climber on parity for 600 mutations (4 seeds): a plain mutation "
        "with `sigma = 0.1`, SM-G-SUM with `m = 0.1` and SM-R with a target divergence of "
        "0.01. (A small search: the paper's experiments use a steady-state GA over up to "
        "100,000 evaluations.)"
    ),
    nbf.v4.new_code_cell(
        "def parity_fitness(params, inputs):\n"
        "    return parity.fn(None, params)[0]          # -mean NLL, maximized\n\n\n"
        "rnn_ops = {\n"
        '    "plain, sigma 0.1": lambda k, p, inp: M.gaussian(k, p, 0.1),\n'
        '    "SM-G-SUM, m 0.1":\n'
        '        lambda k, p, inp: M.safe_mutate(k, p, rnn.apply, inp, 0.1, "sum"),\n'
        '    "SM-R, target 0.01":\n'
        '        lambda k, p, inp: M.safe_mutate(k, p, rnn.apply, inp, 0.01, "r"),\n'
        "}\n\n\n"
        "@jax.jit\n"
        "def climb_parity(keys):\n"
        "    out = {}\n"
        "    for name, f in rnn_ops.items():\n"
        "        r = jax.vmap(lambda k, f=f: toy.hill_climb(k, rnn_parent, seqs, f, 600,\n"
        "                                                   fitness_fn=parity_fitness))(keys)\n"
        "        acc = jax.vmap(lambda p: el.tasks.parity_accuracy(rnn.apply, p))(r.params)\n"
        "        out[name] = (r.history, acc)\n"
        "    return out\n\n\n"
        "parity_runs = climb_parity(jax.random.split(jax.random.key(1), 4))\n"
        "fig, ax = plt.subplots(figsize=(6.5, 3.5))\n"
        "for name, (history, acc) in parity_runs.items():\n"
        "    ax.plot(np.median(-np.asarray(history), axis=0), label=name)\n"
        '    print(f"{name:18s} final accuracy per seed: {np.asarray(acc)}")\n'
        'ax.axhline(np.log(2), color="gray", ls=":", label="chance (ln 2)")\n'
        'ax.set_xlabel("mutation")\n'
        'ax.set_ylabel("NLL (median of 4 seeds)")\n'
        'ax.set_title("Recurrent 4-bit parity, (1+1) hill climber")\n'
        "ax.legend(fontsize=8)\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## Safe mutations in the Deep GA\n"
        "A GA takes its mutation as a value, `el.mutations.Mutation`, which declares what it "
        "needs: `experiences` (how many of the parent's own observations), `decodable` (whether "
        "seed-chain genomes rebuild its results bit for bit). `el.mutations.gaussian` is one "
        "(the Deep GA's default, decodable); `el.mutations.safe_mutation(policy, kind, ...)` "
        "builds one from a network, either on fixed `inputs` (the toy batch, parity's "
        "sequences) or on `experiences=K` observations of each parent's own rollout. Called as "
        "`op(key, params, magnitude, experiences=None)`, it is exactly `safe_mutate`."
    ),
    nbf.v4.new_code_cell(
        'toy_op = M.safe_mutation(toy.toy_apply, "abs", inputs=x)     # fixed inputs\n'
        'maze_op = M.safe_mutation(net, "sum", experiences=50,\n'
        "                          observation_shape=task.observation_shape)\n"
        "for op in (M.gaussian, toy_op, maze_op):\n"
        '    print(f"{op.name:9s} experiences {op.experiences:3d}, decodable {op.decodable}")\n'
        "k = jax.random.key(3)\n"
        'by_op = toy_op(k, toy.toy_init(), 0.01)["w"]\n'
        'by_hand = M.safe_mutate(k, toy.toy_init(), toy.toy_apply, x, 0.01, "abs")["w"]\n'
        'print("toy_op(key, params, m) == safe_mutate(...):",\n'
        "      bool(jnp.array_equal(by_op, by_hand)))"
    ),
    nbf.v4.new_markdown_cell(
        "A safe mutation measures the network's outputs. A discrete policy acts by the argmax "
        "of its logits, which has no gradient, so it is measured through its logits: "
        "`el.policies.output_fn(policy)` is the function `safe_mutation` differentiates (the "
        "logits for a discrete head, the actions otherwise)."
    ),
    nbf.v4.new_code_cell(
        'discrete = el.policies.MLP(3, hidden=(8,), head="discrete")\n'
        "d_params = discrete.init(jax.random.key(0), X[0])\n"
        "logits = el.policies.output_fn(discrete)\n"
        'print("action:", discrete.apply(d_params, X[0]), "  logits:", logits(d_params, X[0]))\n'
        'd_sens = el.tree.ravel(M.sensitivity(logits, d_params, X, "sum"))[0]\n'
        'print(f"weights with a nonzero sensitivity through the logits: {np.mean(d_sens > 0):.0%}")'
    ),
    nbf.v4.new_markdown_cell(
        "`deep_ga(..., mutation=maze_op)` runs the GA with it. Each generation `tell` rolls out "
        "every new parent once, through the `evaluate` function `make_train` passes it, to "
        "record its 50 observations (kept in the state with the parents); those rollouts are "
        "reported as `extra_steps` and count in `steps`. A tiny run on the Hard Maze with the "
        "16-layer network (population 16, 4 parents, 5 generations): every generation costs "
        "16 + 4 episodes of 400 steps. A safe mutation is not decodable, so these genomes are a "
        "lineage record only."
    ),
    nbf.v4.new_code_cell(
        "ga = el.strategies.deep_ga(16, sigma=0.01, truncation=4, validation_episodes=0,\n"
        "                           mutation=maze_op, genome_capacity=5)\n"
        "ga_train = el.make_train(\n"
        "    task, net, ga, generations=5, eval_episodes=0,\n"
        "    params=lambda k: el.policies.reference_init(k, template, std=1.5, output_std=1.0))\n"
        "ga_run = jax.block_until_ready(ga_train(jax.random.key(0)))\n"
        "for name in (\"best_fitness\", \"extra_steps\", \"steps\"):\n"
        '    print(f"{name:13s}", np.asarray(ga_run.metrics[name]))\n'
        'print("parents\' experiences in the state:", ga_run.state.parent_experiences.shape)'
    ),
    nbf.v4.new_markdown_cell(
        "What to read from these small runs: on the washout toy SM-G-ABS and SM-G-SO reach the "
        "optimum while SM-G-SUM behaves exactly like a plain mutation (its signed gradients "
        "cancel), as in the paper; in the deep network SM-G-SUM evens out how much each layer "
        "moves the outputs. The parity climb is a single small search whose operators' "
        "magnitudes are not calibrated against each other, so it is an illustration, not a "
        "ranking of the operators."
    ),
]
write(cells, "safe_mutations.ipynb")
