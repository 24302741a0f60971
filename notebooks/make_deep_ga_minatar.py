"""Writes notebooks/deep_ga_minatar.ipynb; `python notebooks/execute.py` then runs it in place."""

import nbformat as nbf
from _notebook import write

cells = [
    nbf.v4.new_markdown_cell(
        "# The Deep GA on MinAtar, with compact genomes\n\n"
        "The Deep GA of Such et al. (2017, arXiv:1712.06567) is a mutation-only truncation GA: "
        "the top `T` individuals are the parents, every offspring is `parent + sigma * eps`, and "
        "the elite is copied unmodified (chosen by re-evaluating a few candidates on extra "
        "episodes). Every individual is a **chain of seeds**: `theta = init(s0) + sum_j "
        "sigma_j * noise(s_j)`, so the elite can be stored in a few bytes and rebuilt bit for "
        "bit.\n\n"
        "**Settings here are tiny** (a CPU notebook that runs in about a minute): Breakout-MinAtar "
        "with episodes cut at 500 steps, population 32, truncation 8, 25 generations (about 15k "
        "frames), the elite chosen among 4 candidates re-evaluated on 3 episodes. "
        "`benchmarks/minatar.py` runs the CPU-sized comparison (P = 64, 200k frames, 3 seeds: "
        "Deep GA 5.8 ± 0.8 vs random search 3.0 and OpenAI-ES 2.5 on Breakout); the paper's "
        "Atari settings are P = 1,000, T = 20, sigma = 0.002 for up to billions of frames."
    ),
    nbf.v4.new_code_cell(
        "import time\n\n"
        "import jax\n"
        "import jax.numpy as jnp\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n\n"
        "import evojax_lab as el\n\n"
        'task = el.tasks.make("Breakout-MinAtar", max_steps=500)\n'
        "policy = el.policies.for_task(task)     # MinAtarCNN: conv 16 3x3, FC 128, argmax\n"
        "template = policy.init(jax.random.PRNGKey(0), jnp.zeros(task.observation_shape))\n"
        "num_params = el.tree.num_params(template)\n"
        'print(type(policy).__name__, f"{num_params:,} parameters", task.observation_shape)'
    ),
    nbf.v4.new_markdown_cell(
        "## Train\n"
        "`genome_capacity` is the longest seed chain a genome can hold: one mutation per "
        "generation, so the number of generations keeps every individual decodable. The elite "
        "validation happens inside `tell`: `make_train` passes it an `evaluate` function, `tell` "
        "re-evaluates the candidates with it and reports the frames spent as the metric "
        "`extra_steps`, which count in the frame budget (`steps`)."
    ),
    nbf.v4.new_code_cell(
        "GENERATIONS = 25\n"
        "strategy = el.strategies.deep_ga(\n"
        "    32, sigma=0.002, truncation=8, elites=1,\n"
        "    validation_episodes=3, validation_candidates=4,\n"
        "    genome_capacity=GENERATIONS,\n"
        ")\n"
        "train = el.make_train(task, policy, strategy, generations=GENERATIONS,\n"
        "                      eval_episodes=0)\n\n"
        "t = time.perf_counter()\n"
        "result = jax.block_until_ready(train(jax.random.PRNGKey(0)))\n"
        'm = {k: np.asarray(v) for k, v in result.metrics.items()}\n'
        'print(f"compile + {GENERATIONS} generations: {time.perf_counter() - t:.1f} s, "\n'
        "      f\"{m['steps'][-1]:,.0f} frames, {m['extra_steps'].sum():,.0f} of them \"\n"
        "      \"re-evaluating elite candidates\")\n"
        "print(\"elite's validated score:\", m[\"elite_fitness\"].round(2))"
    ),
    nbf.v4.new_code_cell(
        "fig, ax = plt.subplots(figsize=(6.5, 3.5))\n"
        'ax.plot(m["steps"], m["best_fitness"], ".", alpha=0.5,\n'
        '        label="best of generation (1 ep.)")\n'
        'ax.plot(m["steps"], m["mean_fitness"], "--", label="population mean")\n'
        'ax.plot(m["steps"], m["elite_fitness"], lw=2, label="elite (validated, 3 ep.)")\n'
        'ax.set_xlabel("environment frames (validation included)")\n'
        'ax.set_ylabel("Breakout-MinAtar return")\n'
        'ax.set_title("Deep GA, P = 32, T = 8 (tiny CPU settings)")\n'
        "ax.legend(fontsize=8)\n"
        "ax.grid(alpha=0.3)\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## The elite as a compact genome\n"
        "`el.strategies.elite_genome(state)` is the elite's seed chain. `el.genome.to_bytes` "
        "writes it without pickle: a 32-byte header (magic, version, counts, CRC-32) and 8 bytes "
        "per generation (a `uint32` seed and a `float32` sigma), with optional JSON metadata."
    ),
    nbf.v4.new_code_cell(
        "genome = el.strategies.elite_genome(result.state)\n"
        "n = int(genome.length)\n"
        'print("initial seed:", int(genome.init_seed))\n'
        'print("mutation seeds:", np.asarray(genome.seeds[:n]))\n'
        'print("sigmas:", np.asarray(genome.sigmas[:n]))\n\n'
        "data = el.genome.to_bytes(genome, num_params=num_params,\n"
        '                          metadata={"task": "Breakout-MinAtar"})\n'
        'print(f"genome: {len(data)} bytes; float32 weights: {4 * num_params:,} bytes; "\n'
        '      f"{4 * num_params / len(data):,.0f}x smaller")\n'
        'print("header:", el.genome.info(data))\n\n'
        "# The same format for the Deep GA's Atari network after 1,000 generations:\n"
        "nature = 4_052_658  # parameters of el.policies.NatureCNN, 18 actions, 84x84x4\n"
        'print(f"Nature CNN, 1,000 generations: {el.genome.HEADER_SIZE + 8 * 1000:,} bytes vs "\n'
        '      f"{4 * nature / 1e6:.1f} MB of weights")'
    ),
    nbf.v4.new_markdown_cell(
        "## Decoding is bit-exact\n"
        "`el.genome.decode` replays the chain (`init(s0)`, then each mutation in order) and gives "
        "back exactly the parameters the GA evaluated — compared here as raw bits, not with a "
        "tolerance. (Noise samples and sigmas are rounded to 12 significant bits so that "
        "`sigma * eps` is exact in float32 and no fused multiply-add can change a rounding; see "
        "the `el.genome` docstring.)"
    ),
    nbf.v4.new_code_cell(
        "decoded = el.genome.decode(data, template)           # from the bytes\n\n\n"
        "def same_bits(a, b):\n"
        "    return all(\n"
        "        np.array_equal(np.asarray(x).view(np.uint32), np.asarray(y).view(np.uint32))\n"
        "        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)\n"
        "    )\n\n\n"
        'print("decode(bytes) == the elite, bit for bit:", same_bits(decoded, result.solution))\n'
        "flipped = bytearray(data)\n"
        "flipped[40] ^= 1\n"
        "try:\n"
        "    el.genome.decode(bytes(flipped), template)\n"
        "except ValueError as err:\n"
        '    print("a corrupted genome is refused:", err)'
    ),
    nbf.v4.new_markdown_cell(
        "Every member has a genome, not only the elite: `el.strategies.member_genome(state, i)` "
        "is a plain function of the state `ask` returned (that state records the ask key the "
        "seeds come from). Here the next generation is drawn from the final state; member 0 is "
        "the elite, copied unmodified, and member 5 one of its offspring."
    ),
    nbf.v4.new_code_cell(
        "population, asked = jax.jit(strategy.ask)(jax.random.PRNGKey(7), result.state)\n"
        "for i in (0, 5):\n"
        "    member = jax.tree.map(lambda x, i=i: x[i], population)\n"
        "    genome_i = el.strategies.member_genome(asked, i)\n"
        '    print(f"member {i}: {int(genome_i.length)} mutations, decode(genome) == member "\n'
        '          f"bit for bit: {same_bits(el.genome.decode(genome_i, template), member)}")'
    ),
    nbf.v4.new_markdown_cell(
        "## Replay the decoded elite\n"
        "The decoded elite and a fresh random network (the generation-0 initialization of another "
        "seed) are scored on the same 20 fresh episodes."
    ),
    nbf.v4.new_code_cell(
        "random_net = el.policies.reference_init(jnp.uint32(12345), template)\n"
        "pair = jax.tree.map(lambda a, b: jnp.stack([a, b]), decoded, random_net)\n"
        "scores = el.evaluate(jax.random.PRNGKey(2024), task, policy, pair, episodes=20)\n"
        "elite_score, random_score = np.asarray(scores.fitness)\n"
        'print(f"decoded elite: {elite_score:.2f}   random network: {random_score:.2f}   "\n'
        '      "(mean return over 20 episodes)")\n\n'
        "fig, ax = plt.subplots(figsize=(4, 3))\n"
        'ax.bar(["random network", "Deep GA elite\\n(decoded from bytes)"],\n'
        '       [random_score, elite_score], color=["tab:gray", "tab:blue"])\n'
        'ax.set_ylabel("mean return, 20 episodes")\n'
        "ax.grid(axis=\"y\", alpha=0.3)\n"
        "plt.show()"
    ),
]
write(cells, "deep_ga_minatar.ipynb")
