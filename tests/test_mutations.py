"""Safe mutations (Lehman et al. 2017, arXiv:1712.06563): sensitivities against hand values and
explicit per-example Jacobians (NumPy), floors and clipping, SM-R's divergence, the toy domains,
jit / vmap equality, memory of SM-G-SUM, and errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import evojax_lab as el

M = el.mutations
T = el.mutations.toy


class MLP(nn.Module):
    sizes: tuple = (5, 2)

    @nn.compact
    def __call__(self, x):
        for size in self.sizes[:-1]:
            x = jnp.tanh(nn.Dense(size)(x))
        return nn.Dense(self.sizes[-1])(x)


class RNNNet(nn.Module):
    """A SimpleCell RNN over a whole sequence [T, 2] with a Dense read-out at every step."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.RNN(nn.SimpleCell(4))(x))


def make_mlp(seed, sizes=(5, 2), k=6, n_in=3):
    net = MLP(sizes)
    kp, kx = jax.random.split(jax.random.key(seed))
    inputs = jax.random.normal(kx, (k, n_in))
    return net, net.init(kp, inputs[0]), inputs


def explicit_jacobians(apply_fn, params, inputs):
    """[K, O, N] float64 per-example Jacobians: jacrev of each example's flattened output (an
    independent path: full Jacobians, no vector products)."""
    flat, unravel = ravel_pytree(params)
    jac = jax.jacrev(lambda w, x: jnp.ravel(apply_fn(unravel(w), x)))
    return np.asarray(jax.jit(jax.vmap(jac, (None, 0)))(flat, inputs), np.float64)


def all_sensitivities(apply_fn, params, inputs, direction, chunk_size=None):
    """The three kinds in one compiled program (compilation dominates these tests)."""
    return jax.jit(lambda p, x, d: {
        kind: M.sensitivity(apply_fn, p, x, kind, direction=d if kind == "so" else None,
                            chunk_size=chunk_size)
        for kind in ("sum", "abs", "so")
    })(params, inputs, direction)


def reference_sensitivities(jacs, d=None):
    """The REFERENCE §3 formulas in NumPy from explicit Jacobians J[k, o, j]."""
    k = jacs.shape[0]
    out = {
        "sum": np.sqrt(np.sum(jacs.mean(0) ** 2, axis=0)),
        "abs": np.sqrt(np.sum(np.abs(jacs).mean(0) ** 2, axis=0)),
    }
    if d is not None:
        h = (2.0 / k) * np.einsum("koi,koj->ij", jacs, jacs)
        out["so"] = np.sqrt(np.abs(h @ d))
    return out


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0], np.float64)


# -- the toy domains, by hand ------------------------------------------------------------------
# y = [100 w0 x0, 0.1 w1 x1]: dy0/dw0 = 100 x0, dy1/dw1 = 0.1 x1, cross terms 0; K = O = 2.
# washout X = [[1,1],[-1,-1]]:
#   sum: mean_k dy0/dw0 = 100 (1 - 1)/2 = 0, mean_k dy1/dw1 = 0.1 (1 - 1)/2 = 0  -> (0, 0)
#   abs: mean_k |dy0/dw0| = 100, mean_k |dy1/dw1| = 0.1 (other output adds 0)  -> (100, 0.1)
# medium X = [[1,0],[0,1]]: dy0/dw0 = (100, 0), dy1/dw1 = (0, 0.1) over k; all >= 0, so
#   sum = abs = (100/2, 0.1/2) = (50, 0.05)
# easy X = [[0,1],[0,1]]: dy0/dw0 = (0, 0) -> 0; dy1/dw1 = (0.1, 0.1) -> 0.1: both (0, 0.1)
# SO with d = (0.6, 0.8): H = (2/K) sum_k J_k^T J_k = diag(sum_k (100 x0)^2, sum_k (0.1 x1)^2):
#   washout diag(2e4, 0.02) -> s = (sqrt(1.2e4), sqrt(0.016))
#   medium  diag(1e4, 0.01) -> s = (sqrt(6e3),   sqrt(0.008))
#   easy    diag(0,   0.02) -> s = (0,           sqrt(0.016))
TOY_EXPECTED = {
    "washout": {"sum": (0.0, 0.0), "abs": (100.0, 0.1), "so": (1.2e4**0.5, 0.016**0.5)},
    "medium": {"sum": (50.0, 0.05), "abs": (50.0, 0.05), "so": (6e3**0.5, 0.008**0.5)},
    "easy": {"sum": (0.0, 0.1), "abs": (0.0, 0.1), "so": (0.0, 0.016**0.5)},
}


@pytest.mark.parametrize("domain", sorted(TOY_EXPECTED))
def test_toy_sensitivities_match_hand_values(domain):
    params = {"w": jnp.array([0.3, -2.0])}  # linear in w: the values do not depend on w
    inputs = T.TOY_DOMAINS[domain]
    for kind, expected in TOY_EXPECTED[domain].items():
        direction = {"w": jnp.array([0.6, 0.8])} if kind == "so" else None
        s = M.sensitivity(T.toy_apply, params, inputs, kind, direction=direction)
        np.testing.assert_allclose(np.asarray(s["w"]), expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{domain}/{kind}")


def test_toy_fitness_by_hand():
    # washout at w = (0.01, 10): y = +-[1, 1] = targets -> 0; at w = (0, 0): -sum x^2 = -4
    x = T.TOY_DOMAINS["washout"]
    assert float(T.toy_fitness({"w": jnp.array([0.01, 10.0])}, x)) == pytest.approx(0, abs=1e-8)
    assert float(T.toy_fitness(T.toy_init(), x)) == -4.0
    # medium at w = (0.02, 0): y_1 = [2, 0] vs [1, 0], y_2 = [0, 0] vs [0, 1] -> -(1 + 1)
    assert float(T.toy_fitness({"w": jnp.array([0.02, 0.0])}, T.TOY_DOMAINS["medium"])) == -2.0


# -- against explicit Jacobians ----------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(5, 2), (4, 4, 3)])
def test_mlp_sensitivities_match_explicit_jacobians(sizes):
    net, params, inputs = make_mlp(1, sizes)
    jacs = explicit_jacobians(net.apply, params, inputs)
    d = np.random.default_rng(0).normal(size=jacs.shape[2])
    d /= np.linalg.norm(d)
    _, unravel = ravel_pytree(params)
    ref = reference_sensitivities(jacs, d)
    direction = unravel(jnp.asarray(d, jnp.float32))
    # default chunks (all outputs at once) and one output per chunk (the lax.scan path)
    for chunk_size in (None, 1):
        got = all_sensitivities(net.apply, params, inputs, direction, chunk_size)
        for kind in ("sum", "abs", "so"):
            assert jax.tree.structure(got[kind]) == jax.tree.structure(params)
            np.testing.assert_allclose(flat(got[kind]), ref[kind], atol=1e-5, rtol=1e-5,
                                       err_msg=f"{kind} chunk_size={chunk_size}")


def test_recurrent_network_every_kind():
    net = RNNNet()
    inputs = jax.random.normal(jax.random.key(3), (4, 5, 2))  # K = 4 sequences of 5 steps
    params = net.init(jax.random.key(4), inputs[0])
    jacs = explicit_jacobians(net.apply, params, inputs)  # O = 5 steps x 2 outputs
    assert jacs.shape[1] == 10
    d = np.random.default_rng(1).normal(size=jacs.shape[2])
    d /= np.linalg.norm(d)
    _, unravel = ravel_pytree(params)
    direction = unravel(jnp.asarray(d, jnp.float32))
    ref = reference_sensitivities(jacs, d)
    got = all_sensitivities(net.apply, params, inputs, direction, chunk_size=3)
    for kind in ("sum", "abs", "so"):
        np.testing.assert_allclose(flat(got[kind]), ref[kind], atol=1e-5, rtol=1e-5,
                                   err_msg=kind)
    # SM-R over whole sequences (its divergence is checked independently on MLPs below).
    x, div = jax.jit(lambda p, inp, dd: M.rescale_factor(net.apply, p, inp, dd, 0.05))(
        params, inputs, direction)
    child = jax.tree.map(lambda w, v: w + x * v, params, direction)
    y0, y1 = (np.asarray(jax.vmap(net.apply, (None, 0))(p, inputs), np.float64)
              for p in (params, child))
    assert np.mean((y1 - y0) ** 2) == pytest.approx(0.05, rel=0.05)
    assert float(div) == pytest.approx(0.05, rel=0.05)


def test_safe_mutate_so_uses_the_normalized_noise_direction():
    net, params, inputs = make_mlp(2)
    key = jax.random.key(11)
    eps = np.asarray(jax.random.normal(key, (flat(params).size,)), np.float64)  # the noise spec
    jacs = explicit_jacobians(net.apply, params, inputs)
    s = reference_sensitivities(jacs, eps / np.linalg.norm(eps))["so"]
    s = np.where(s == 0, 1.0, np.maximum(s, 0.01))
    expected = flat(params) + np.clip(0.05 * eps / s, -0.2, 0.2)
    got = M.safe_mutate(key, params, net.apply, inputs, 0.05, "so")
    np.testing.assert_allclose(flat(got), expected, atol=1e-5, rtol=1e-5)


# -- floors and clipping -----------------------------------------------------------------------

SCALES = np.array([1.0, 1e-4, 0.0, 5.0], np.float32)


def scaled_apply(params, x):
    """y_j = c_j w_j x: s_j = |c_j| |x| = (1, 1e-4, 0, 5) on inputs x = +-1 (no cancellation
    for 'abs'; for 'sum' the inputs are all +1)."""
    return jnp.asarray(SCALES) * params["w"] * x[0]


@pytest.mark.parametrize("kind", ["sum", "abs"])
def test_floors_and_clip_against_numpy(kind):
    params = {"w": jnp.array([0.5, -1.0, 2.0, 0.1], jnp.float32)}
    inputs = jnp.ones((3, 1)) if kind == "sum" else jnp.array([[1.0], [-1.0], [1.0]])
    np.testing.assert_allclose(
        np.asarray(M.sensitivity(scaled_apply, params, inputs, kind)["w"]), SCALES, rtol=1e-6
    )
    key = jax.random.key(7)
    eps = np.asarray(jax.random.normal(key, (4,)), np.float64)  # the noise spec
    m = 0.01
    # s = (1, 1e-4, 0, 5) -> floored (1, 0.01, 1, 5): weight 2 has no effect and gets the plain
    # Gaussian delta m eps; weight 1 is amplified 100x (not 1e4x) by the 0.01 floor.
    s_used = np.array([1.0, 0.01, 1.0, 5.0])
    unclipped = m * eps / s_used
    got = M.safe_mutate(key, params, scaled_apply, inputs, m, kind, clip=None)
    np.testing.assert_allclose(np.asarray(got["w"]) - params["w"], unclipped, rtol=1e-5,
                               atol=1e-7)
    assert abs(unclipped[1]) > 0.2  # this key's eps_1 is large enough for the clip to bite
    clipped = M.safe_mutate(key, params, scaled_apply, inputs, m, kind)  # clip=0.2 default
    np.testing.assert_allclose(np.asarray(clipped["w"]) - params["w"],
                               np.clip(unclipped, -0.2, 0.2), rtol=1e-5, atol=1e-7)
    # floor and clip may be traced: one compiled function for several values.
    f = jax.jit(lambda fl, c: M.safe_mutate(key, params, scaled_apply, inputs, m, kind,
                                            clip=c, floor=fl))
    for fl, c in ((0.01, 0.2), (0.001, 0.5)):
        s_used = np.array([1.0, max(1e-4, fl), 1.0, 5.0])
        np.testing.assert_allclose(np.asarray(f(fl, c)["w"]) - params["w"],
                                   np.clip(m * eps / s_used, -c, c), rtol=1e-5, atol=1e-7)


# -- SM-R --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(8, 3), (8, 8, 2)])
def test_sm_r_hits_the_target_divergence(sizes):
    net = MLP(sizes)
    outputs = jax.jit(jax.vmap(net.apply, (None, 0)))
    mutate = jax.jit(lambda k, p, x, t: M.safe_mutate(k, p, net.apply, x, t, "r"))
    rescale = jax.jit(lambda p, x, d, t: M.rescale_factor(net.apply, p, x, d, t))
    for seed in range(3):
        _, params, inputs = make_mlp(seed, sizes, k=10)
        _, unravel = ravel_pytree(params)
        y0 = np.asarray(outputs(params, inputs), np.float64)
        for target in (0.01, 0.1):
            key = jax.random.key(100 + seed)
            child = mutate(key, params, inputs, target)
            achieved = np.mean((np.asarray(outputs(child, inputs), np.float64) - y0) ** 2)
            assert achieved == pytest.approx(target, rel=0.05), (sizes, seed, target)
            # w' = w + x eps with x > 0 along the key's noise, and rescale_factor agrees.
            eps = np.asarray(jax.random.normal(key, (flat(params).size,)), np.float64)
            delta = flat(child) - flat(params)
            x = float(delta @ eps / (eps @ eps))
            assert x > 0
            np.testing.assert_allclose(delta, x * eps, atol=1e-5 * max(1.0, x))
            x2, div = rescale(params, inputs, unravel(jnp.asarray(eps, jnp.float32)), target)
            assert float(x2) == pytest.approx(x, rel=1e-3)
            assert float(div) == pytest.approx(achieved, rel=1e-3)


def test_rescale_factor_zero_target_and_unreachable_target():
    net, params, inputs = make_mlp(0, (4, 2))
    d = jax.tree.map(jnp.ones_like, params)
    x, div = M.rescale_factor(net.apply, params, inputs, d, 0.0)
    assert float(x) == 0.0 and float(div) == 0.0
    # A direction the outputs ignore: nothing to bracket; finite result, divergence 0.
    x, div = M.rescale_factor(scaled_apply, {"w": jnp.ones(4)}, jnp.ones((2, 1)),
                              {"w": jnp.array([0.0, 0.0, 1.0, 0.0])}, 0.1)
    assert np.isfinite(float(x)) and float(div) == 0.0


# -- the toy search ----------------------------------------------------------------------------


@pytest.mark.slow
def test_hill_climber_on_washout_abs_and_so_solve_gaussian_and_sum_do_not():
    """m = 0.01 (the paper's default). Fitness = -2 [(100 w0 - 1)^2 + (0.1 w1 - 1)^2], start
    w = (0, 0) at -4. A plain step moves y0 by ~100 m = 1 (as much as its whole error) but y1 by
    only 0.1 m = 0.001: once w0 is near 0.01 nearly every plain child spoils y0 and is
    rejected, so w1 never gets far from 0 in 2,000 steps (fitness stays near -2). SUM cancels
    on washout (s = 0 -> 1: plain mutation). ABS (s = (100, 0.1)) and SO rescale the steps to
    ~0.01 in both outputs and reach the optimum: threshold -0.01 = every output within ~0.07
    of its target."""
    x = T.TOY_DOMAINS["washout"]
    m = 0.01
    mutations = {
        "gaussian": lambda k, p, inp: M.gaussian(k, p, m),
        **{kind: (lambda k, p, inp, kind=kind: M.safe_mutate(k, p, T.toy_apply, inp, m, kind))
           for kind in ("sum", "abs", "so")},
    }
    keys = jax.random.split(jax.random.key(0), 5)
    for name, mutate in mutations.items():
        run = jax.jit(jax.vmap(lambda k, mutate=mutate: T.hill_climb(k, T.toy_init(), x, mutate)))
        result = run(keys)
        fitness = np.asarray(result.fitness)
        assert fitness.shape == (5,) and result.history.shape == (5, 2000)
        np.testing.assert_array_equal(np.asarray(result.history[:, -1]), fitness)
        if name in ("abs", "so"):
            assert np.all(fitness > -0.01), (name, fitness)
        else:
            assert np.all(fitness < -1.0), (name, fitness)


# -- jit, vmap, tracing --------------------------------------------------------------------------


def test_jit_equals_eager_and_vmap_equals_loop():
    net, params, inputs = make_mlp(4, (6, 3), k=5)
    keys = jax.random.split(jax.random.key(9), 3)

    def mutate_all(k):  # every kind in one program: compilation dominates these tests
        return {kind: M.safe_mutate(k, params, net.apply, inputs, 0.05, kind)
                for kind in M.MUTATION_KINDS}

    eager = mutate_all(keys[0])
    jitted = jax.jit(mutate_all)
    loop = [jitted(k) for k in keys]
    batched = jax.jit(jax.vmap(mutate_all))(keys)
    for kind in M.MUTATION_KINDS:
        tol = 1e-3 if kind == "r" else 1e-5  # the SM-R search may stop one step apart
        np.testing.assert_allclose(flat(eager[kind]), flat(loop[0][kind]), rtol=tol,
                                   atol=tol / 10, err_msg=kind)
        for i in range(3):
            np.testing.assert_allclose(flat(el.tree.take(batched[kind], i)),
                                       flat(loop[i][kind]), rtol=tol, atol=tol / 10,
                                       err_msg=kind)
        assert not np.allclose(flat(loop[0][kind]), flat(loop[1][kind]))  # keys differ


def test_magnitude_is_traced_no_recompile():
    net, params, inputs = make_mlp(5)
    traces = []

    @jax.jit
    def mutate(k, m):
        traces.append(1)
        return M.safe_mutate(k, params, net.apply, inputs, m, "abs", clip=None)

    key = jax.random.key(1)
    a, b = flat(mutate(key, 0.01)), flat(mutate(key, 0.02))
    assert len(traces) == 1
    np.testing.assert_allclose(b - flat(params), 2 * (a - flat(params)), rtol=1e-5, atol=1e-7)


def test_sum_does_not_build_a_k_by_n_array():
    """SM-G-SUM on a ~1M-parameter MLP with K = 100 inputs: the compiled program's scratch memory
    stays well below one K x N float32 array / 4 (K N bytes); an explicit Jacobian needs
    > K N 4 bytes (measured ~1.7 GB here vs ~17 MB for ours)."""
    net = MLP((1024, 960, 2))
    k = 100
    inputs = jax.ShapeDtypeStruct((k, 64), jnp.float32)
    params = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros(64)))
    n = el.tree.num_params(params)
    assert n > 1_000_000
    compiled = jax.jit(lambda p, x: M.sensitivity(net.apply, p, x, "sum")).lower(
        params, inputs).compile()
    analysis = compiled.memory_analysis()
    if analysis is None or not hasattr(analysis, "temp_size_in_bytes"):
        pytest.skip("no compiled memory analysis on this backend")
    assert analysis.temp_size_in_bytes < k * n * 4 / 4, analysis.temp_size_in_bytes


# -- API and errors ------------------------------------------------------------------------------


def test_gaussian_is_the_genome_mutation():
    assert M.gaussian is el.genome.gaussian


def test_bad_inputs_raise():
    params, x = {"w": jnp.ones(2)}, T.TOY_DOMAINS["washout"]
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="'sum', 'abs', 'so', 'r'"):
        M.safe_mutate(key, params, T.toy_apply, x, 0.01, "bogus")
    with pytest.raises(ValueError, match="'sum', 'abs', 'so'"):
        M.sensitivity(T.toy_apply, params, x, "r")
    with pytest.raises(ValueError, match="magnitude must be finite and >= 0"):
        M.safe_mutate(key, params, T.toy_apply, x, -0.01, "abs")
    with pytest.raises(ValueError, match="direction"):
        M.sensitivity(T.toy_apply, params, x, "so")
    with pytest.raises(ValueError, match="direction"):
        M.sensitivity(T.toy_apply, params, x, "sum", direction=params)
    with pytest.raises(ValueError, match="target must be finite and >= 0"):
        M.rescale_factor(T.toy_apply, params, x, params, -1.0)
    with pytest.raises(ValueError, match="leading"):
        M.sensitivity(T.toy_apply, params, {"a": jnp.ones((2, 2)), "b": jnp.ones((3, 2))})
