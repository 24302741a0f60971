"""Safe-mutation sensitivity cost: time and peak memory for a ~1M-parameter MLP with K = 100.

One fresh process per configuration builds a flax MLP (``el.policies.MLP``, input 64, hidden
(1024, 1024), tanh, O = 8 linear outputs: N = 1,124,360 parameters), draws K = 100 random inputs
and jits either ``el.mutations.sensitivity(..., kind)`` for ``kind`` in ``"sum"``, ``"abs"``,
``"so"``, or ``el.mutations.safe_mutate(..., kind="r")`` (SM-R). It reports the first call
(trace + compile + one run), the median of the timed calls, the peak resident memory of the
process (``VmHWM``) and XLA's compiled temporary buffer size (``memory_analysis()``), next to the
sizes the method avoids: a K x N float32 Jacobian (SUM, SO), the O x N Jacobian and the
K x chunk x N per-chunk array of ABS. A reference ``naive`` configuration builds the full
per-example Jacobian with ``jax.vmap(jax.jacrev(...))`` (K x O x N floats) and derives SM-G-SUM
from it; it is skipped if that array alone would exceed ``--naive-limit-gb``.
Run ``python benchmarks/sensitivity.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

TITLE = "Safe-mutation sensitivity cost (issue 6)"
KINDS = ["sum", "abs", "so", "r", "naive"]


def num_params(d_in: int, hidden: list[int], d_out: int) -> int:
    sizes = [d_in, *hidden, d_out]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def worker(cfg: dict) -> None:
    import jax
    import jax.numpy as jnp

    import evojax_lab as el
    from evojax_lab.core.tree import ravel

    k, d_in, o = cfg["k"], cfg["d_in"], cfg["o"]
    policy = el.policies.MLP(action_dim=o, hidden=tuple(cfg["hidden"]), head="linear")
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((d_in,), jnp.float32))
    n = int(ravel(params)[0].shape[0])
    inputs = jax.random.normal(jax.random.PRNGKey(1), (k, d_in), jnp.float32)
    apply_fn = policy.apply
    kind = cfg["kind"]

    if kind == "r":
        def fn(p, x, key):
            return el.mutations.safe_mutate(key, p, apply_fn, x, 0.01, "r")

        args = (params, inputs, jax.random.PRNGKey(2))
    elif kind == "so":
        def fn(p, x, d):
            return el.mutations.sensitivity(apply_fn, p, x, "so", direction=d)

        flat, unravel = ravel(params)
        eps = jax.random.normal(jax.random.PRNGKey(2), flat.shape, flat.dtype)
        args = (params, inputs, unravel(eps / jnp.linalg.norm(eps)))
    elif kind == "naive":
        def fn(p, x):
            flat, unravel = ravel(p)
            jac = jax.vmap(jax.jacrev(lambda w, xi: apply_fn(unravel(w), xi)),
                           in_axes=(None, 0))(flat, x)  # [K, O, N]
            return jnp.sqrt(jnp.sum(jnp.square(jnp.mean(jac, axis=0)), axis=0))

        args = (params, inputs)
    else:
        def fn(p, x):
            return el.mutations.sensitivity(apply_fn, p, x, kind)

        args = (params, inputs)

    jitted = jax.jit(fn)
    first = C.timed(lambda: jitted(*args))
    times = [C.timed(lambda: jitted(*args)) for _ in range(cfg["reps"])]
    temp = None
    try:
        stats = jax.jit(fn).lower(*args).compile().memory_analysis()
        if stats is not None and getattr(stats, "temp_size_in_bytes", None) is not None:
            temp = stats.temp_size_in_bytes / 1e9
    except Exception:  # noqa: BLE001 - not every backend/version reports it
        temp = None
    C.report({"kind": kind, "n": n, "first_call_s": first, "median_s": C.median(times),
              "temp_gb": temp})


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=100, help="experiences K")
    parser.add_argument("--d-in", type=int, default=64)
    parser.add_argument("--outputs", type=int, default=8, help="outputs O")
    parser.add_argument("--hidden", type=int, nargs="+", default=[1024, 1024])
    parser.add_argument("--reps", type=int, default=3, help="timed calls after the first")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS)
    parser.add_argument("--naive-limit-gb", type=float, default=6.0,
                        help="skip the naive K x O x N Jacobian above this size")
    args = parser.parse_args()
    if args.quick:
        args.hidden = [192, 192]
    start = C.started()
    n = num_params(args.d_in, args.hidden, args.outputs)
    k, o = args.k, args.outputs
    kn_gb = k * n * 4 / 1e9
    on_gb = o * n * 4 / 1e9
    kon_gb = k * o * n * 4 / 1e9
    # ABS: chunk of outputs as chosen by safe.py's _auto_chunk (CHUNK_ELEMENTS = 2^22 floats).
    abs_chunk = max(1, min(o, (1 << 22) // max(1, k * n)))
    sum_chunk = max(1, min(o, (1 << 22) // max(1, n)))
    avoided = {
        "sum": f"K x N {kn_gb:.3g} GB; O x N {on_gb:.3g} GB (chunk {sum_chunk} x N kept)",
        "abs": f"O x N {on_gb:.3g} GB; holds K x {abs_chunk} x N = "
               f"{k * abs_chunk * n * 4 / 1e9:.3g} GB per chunk",
        "so": f"K x N {kn_gb:.3g} GB (one jvp + one vjp)",
        "r": "no gradient array (forward passes only)",
        "naive": f"builds K x O x N = {kon_gb:.3g} GB",
    }
    labels = {"sum": "sensitivity SM-G-SUM", "abs": "sensitivity SM-G-ABS",
              "so": "sensitivity SM-G-SO", "r": "safe_mutate SM-R",
              "naive": "naive vmap(jacrev) -> SUM"}
    rows, res_by, notes = [], {}, []
    for kind in args.kinds:
        if kind == "naive" and kon_gb > args.naive_limit_gb:
            notes.append(f"naive reference skipped: its K x O x N Jacobian alone would be "
                         f"{kon_gb:.2f} GB (> {args.naive_limit_gb} GB).")
            continue
        cfg = {"kind": kind, "k": k, "d_in": args.d_in, "o": o, "hidden": args.hidden,
               "reps": args.reps}
        print(f"{kind} ...", flush=True)
        t = time.perf_counter()
        res = C.run_worker(__file__, cfg, host_devices=None)
        print(f"    {res['median_s']:.3f} s, peak {res['peak_rss_gb']:.2f} GB "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        assert res["n"] == n, (res["n"], n)
        res_by[kind] = res
        temp = res["temp_gb"]
        rows.append([labels[kind], res["first_call_s"], res["median_s"], res["peak_rss_gb"],
                     "n/a" if temp is None else f"{temp:.3g}", avoided[kind]])
    table = C.markdown_table(
        ["configuration", "first call s (compile + run)", f"median s ({args.reps} calls)",
         "peak RSS GB", "XLA temp GB", "avoided / held (float32)"], rows)
    checks = []
    for kind in ("sum", "so"):
        r = res_by.get(kind)
        if r and r["temp_gb"] is not None:
            checks.append((f"{kind}: XLA temp memory (a K x N Jacobian is {kn_gb * 1e3:.0f} MB)",
                           r["temp_gb"] * 1e3, "MB",
                           "" if args.quick else f"<= {kn_gb * 1e3:.0f}"))
    if "naive" in res_by:
        for kind in ("sum", "so"):
            if kind in res_by:
                checks.append((f"naive peak RSS / {kind} peak RSS",
                               res_by["naive"]["peak_rss_gb"] / res_by[kind]["peak_rss_gb"],
                               "x", ""))
                checks.append((f"naive time / {kind} time",
                               res_by["naive"]["median_s"] / res_by[kind]["median_s"], "x", ""))
    settings = {"MLP": f"{args.d_in}-{'-'.join(map(str, args.hidden))}-{o} tanh, linear head",
                "N": f"{n:,}", "K": k, "O": o, "inputs": "N(0, 1)",
                "SM-R magnitude": 0.01, "timed calls": f"{args.reps} after the first",
                "chunk_size": "auto (CHUNK_ELEMENTS = 2^22 floats)"}
    notes += ["Peak RSS = VmHWM of a process that ran only that configuration (JAX and the "
              "parameters included, ~0.3 GB baseline); XLA temp = temp_size_in_bytes of the "
              "compiled program (memory_analysis), n/a if not reported.",
              "SO and SM-R include their direction / key as arguments; SM-R is the whole "
              "mutation (bracketing + regula-falsi search, forward passes only)."]
    C.save_section(args, TITLE, start, settings, table, checks, notes)


if __name__ == "__main__":
    C.entry(worker, main)
