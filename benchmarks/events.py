"""Event-time benchmark: odeinfer (vmapped, jitted) against scipy `solve_ivp` in a loop.

Two problems from issue 2:

- **logistic**: dy/dt = k y (1 - y), y(0) = 0.5; the time y reaches 0.8, whose closed form
  is ln 4 / k, for `--n-logistic` values of k in [0.005, 0.05].
- **spring**: the 3-D spring (F = |r|, r'' = (1/F - 1) 250 r - 10 e_z) on 0 < t < 5, every
  crossing of F = 0.85, for `--n-spring` initial states with z(0), x'(0), y'(0) perturbed.

odeinfer runs all problems in one `jax.jit(jax.vmap(...))` call (`throw=False`); scipy
(RK45, DOP853, LSODA) runs a Python loop over a subset and its per-problem throughput is
extrapolated. All solvers use the same rtol/atol; the accuracy column is the max error
against a reference (closed form for the logistic, scipy DOP853 at rtol = atol = 1e-13 for
the spring on the scipy subset) so that throughput is compared at visible accuracy.

Also measured: the event-time gradient (reverse mode `jax.grad`, forward mode `jax.jacfwd`
with `diffrax.ForwardMode()`, and `jax.jacrev` of all spring crossing times) relative to the
forward solve, and the first-call (trace + compile + run) time.

Run `python benchmarks/events.py` (full) or `--quick` (tiny sizes, for a smoke test).
Writes `benchmarks/results/events.json`.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import odeinfer as oi

RESULTS_DIR = Path(__file__).parent / "results"
REVERSE = diffrax.RecursiveCheckpointAdjoint()
SCIPY_METHODS = ("RK45", "DOP853", "LSODA")

# ---------------------------------------------------------------- the two problems

logistic = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y), name="logistic")
reach_08 = oi.Crossing(lambda t, y, p: y, 0.8, direction="rising", name="y=0.8")
LOGISTIC_T1 = 400.0  # t* = ln 4 / k <= 277.3 for k >= 0.005


def spring_field(t, s, p):
    x, y, z, vx, vy, vz = s
    c = (1 / jnp.sqrt(x**2 + y**2 + z**2) - 1) * p["k"]
    return jnp.stack([vx, vy, vz, c * x, c * y, c * z - p["g"]])


spring = oi.ODEModel(spring_field, name="spring")
length_085 = oi.Crossing(
    lambda t, s, p: jnp.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2), 0.85
)
SPRING_Y0 = np.array([0.0, 0.0, 0.7, 0.1, 1.5, 0.0])
SPRING_PARAMS = {"k": 250.0, "g": 10.0}
SPRING_T1 = 5.0


def scipy_logistic(k, method, rtol, atol):
    def event(t, y):
        return y[0] - 0.8

    event.terminal, event.direction = True, 1
    sol = solve_ivp(
        lambda t, y: k * y * (1 - y),
        (0.0, LOGISTIC_T1),
        [0.5],
        method=method,
        rtol=rtol,
        atol=atol,
        events=event,
    )
    return sol.t_events[0][0] if sol.t_events[0].size else np.inf


def scipy_spring(y0, method, rtol, atol):
    def field(t, s):
        x, y, z, vx, vy, vz = s
        c = (1 / np.sqrt(x * x + y * y + z * z) - 1) * 250.0
        return [vx, vy, vz, c * x, c * y, c * z - 10.0]

    def event(t, s):
        return np.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2) - 0.85

    sol = solve_ivp(
        field, (0.0, SPRING_T1), y0, method=method, rtol=rtol, atol=atol, events=event
    )
    return sol.t_events[0]


# ---------------------------------------------------------------- timing helpers


def block(tree):
    return jax.tree_util.tree_map(lambda x: x.block_until_ready(), tree)


def time_jax(fn, *args, repeats):
    """First call (trace + compile + run) and the best of `repeats` later calls."""
    start = time.perf_counter()
    out = block(fn(*args))
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = block(fn(*args))
        best = min(best, time.perf_counter() - start)
    return out, first, best


def time_scipy(fn, items):
    start = time.perf_counter()
    out = [fn(item) for item in items]
    return out, time.perf_counter() - start


def spring_time_error(times_a, times_b):
    """Max |difference| of crossing times; inf when the counts differ."""
    if len(times_a) != len(times_b):
        return np.inf
    return float(np.max(np.abs(np.asarray(times_a) - np.asarray(times_b)), initial=0.0))


# ---------------------------------------------------------------- benchmarks


def bench_logistic(n, n_scipy, rtol, atol, repeats):
    ks = jnp.linspace(0.005, 0.05, n)
    exact = np.log(4.0) / np.asarray(ks)

    def t_star(k, adjoint=REVERSE):
        hit = oi.first_crossing(
            logistic,
            0.5,
            {"k": k},
            reach_08,
            t0=0.0,
            t1=LOGISTIC_T1,
            rtol=rtol,
            atol=atol,
            adjoint=adjoint,
            throw=False,
            max_steps=1024,
        )
        return hit.time

    forward = jax.jit(jax.vmap(t_star))
    grad = jax.jit(jax.vmap(jax.grad(t_star)))
    jvp = jax.jit(jax.vmap(jax.jacfwd(lambda k: t_star(k, diffrax.ForwardMode()))))
    times, first, run = time_jax(forward, ks, repeats=repeats)
    grads, grad_first, grad_run = time_jax(grad, ks, repeats=repeats)
    fwd_grads, jvp_first, jvp_run = time_jax(jvp, ks, repeats=repeats)
    exact_grad = -np.log(4.0) / np.asarray(ks) ** 2
    rows = [
        dict(
            problem="logistic",
            method="odeinfer Tsit5 (vmap)",
            n=n,
            n_timed=n,
            seconds=run,
            per_problem_s=run / n,
            first_call_s=first,
            compile_s=first - run,
            max_error=float(np.max(np.abs(np.asarray(times) - exact))),
        )
    ]
    subset = np.asarray(ks)[np.linspace(0, n - 1, n_scipy).astype(int)]
    for method in SCIPY_METHODS:
        out, seconds = time_scipy(
            lambda k, method=method: scipy_logistic(k, method, rtol, atol), subset
        )
        rows.append(
            dict(
                problem="logistic",
                method=f"scipy {method} (loop)",
                n=n,
                n_timed=n_scipy,
                seconds=seconds * n / n_scipy,
                per_problem_s=seconds / n_scipy,
                first_call_s=None,
                compile_s=None,
                max_error=float(np.max(np.abs(np.asarray(out) - np.log(4.0) / subset))),
            )
        )
    gradient = dict(
        problem="logistic",
        n=n,
        forward_s=run,
        grad_s=grad_run,
        grad_ratio=grad_run / run,
        grad_first_call_s=grad_first,
        grad_max_rel_error=float(np.max(np.abs(np.asarray(grads) / exact_grad - 1))),
        jacfwd_s=jvp_run,
        jacfwd_ratio=jvp_run / run,
        jacfwd_first_call_s=jvp_first,
        jacfwd_max_rel_error=float(
            np.max(np.abs(np.asarray(fwd_grads) / exact_grad - 1))
        ),
    )
    return rows, gradient


def bench_spring(n, n_scipy, rtol, atol, repeats, max_events, seed):
    rng = np.random.default_rng(seed)
    y0s = np.tile(SPRING_Y0, (n, 1))
    y0s[:, 2] += 0.01 * rng.standard_normal(n)  # z(0)
    y0s[:, 3] += 0.01 * rng.standard_normal(n)  # x'(0)
    y0s[:, 4] += 0.01 * rng.standard_normal(n)  # y'(0)
    y0s_jax = jnp.asarray(y0s)
    params = {k: jnp.asarray(v) for k, v in SPRING_PARAMS.items()}

    def crossings(y0, params, adjoint=REVERSE):
        return oi.all_crossings(
            spring,
            y0,
            params,
            length_085,
            t0=0.0,
            t1=SPRING_T1,
            rtol=rtol,
            atol=atol,
            max_events=max_events,
            adjoint=adjoint,
            throw=False,
            max_steps=1024,
        )

    def sum_of_times(y0, params):
        found = crossings(y0, params)
        return jnp.sum(jnp.where(found.mask, found.times, 0.0))

    def times_of_z0(z0, y0, params, adjoint):
        found = crossings(y0.at[2].set(z0), params, adjoint)
        return jnp.where(found.mask, found.times, 0.0)

    forward = jax.jit(jax.vmap(crossings, in_axes=(0, None)))
    grad = jax.jit(jax.vmap(jax.grad(sum_of_times, argnums=(0, 1)), in_axes=(0, None)))
    jac_fwd = jax.jit(
        jax.vmap(
            lambda y0, p: jax.jacfwd(times_of_z0)(y0[2], y0, p, diffrax.ForwardMode()),
            in_axes=(0, None),
        )
    )
    jac_rev = jax.jit(
        jax.vmap(
            lambda y0, p: jax.jacrev(times_of_z0)(
                y0[2], y0, p, diffrax.RecursiveCheckpointAdjoint()
            ),
            in_axes=(0, None),
        )
    )
    found, first, run = time_jax(forward, y0s_jax, params, repeats=repeats)
    _, grad_first, grad_run = time_jax(grad, y0s_jax, params, repeats=repeats)
    jf, jf_first, jf_run = time_jax(jac_fwd, y0s_jax, params, repeats=repeats)
    # jacrev: one reverse pass per buffer slot; timed on the scipy subset only.
    n_rev = min(n, n_scipy)
    jr, jr_first, jr_run = time_jax(jac_rev, y0s_jax[:n_rev], params, repeats=1)
    jacobian_mismatch = float(np.max(np.abs(np.asarray(jf)[:n_rev] - np.asarray(jr))))

    n_failed = int(np.sum(~np.asarray(oi.is_successful(found.result))))
    index = np.linspace(0, n - 1, n_scipy).astype(int)
    reference = [scipy_spring(y0s[i], "DOP853", 1e-13, 1e-13) for i in index]
    ours = [np.asarray(found.times[i])[np.asarray(found.mask[i])] for i in index]
    rows = [
        dict(
            problem="spring",
            method="odeinfer Tsit5 (vmap)",
            n=n,
            n_timed=n,
            seconds=run,
            per_problem_s=run / n,
            first_call_s=first,
            compile_s=first - run,
            max_error=max(
                spring_time_error(a, b) for a, b in zip(ours, reference, strict=True)
            ),
            failed=n_failed,
            mean_crossings=float(np.mean(np.asarray(found.count))),
        )
    ]
    for method in SCIPY_METHODS:
        out, seconds = time_scipy(
            lambda i, method=method: scipy_spring(y0s[i], method, rtol, atol), index
        )
        rows.append(
            dict(
                problem="spring",
                method=f"scipy {method} (loop)",
                n=n,
                n_timed=n_scipy,
                seconds=seconds * n / n_scipy,
                per_problem_s=seconds / n_scipy,
                first_call_s=None,
                compile_s=None,
                max_error=max(
                    spring_time_error(a, b) for a, b in zip(out, reference, strict=True)
                ),
            )
        )
    gradient = dict(
        problem="spring",
        n=n,
        forward_s=run,
        grad_s=grad_run,
        grad_ratio=grad_run / run,
        grad_first_call_s=grad_first,
        jacfwd_s=jf_run,
        jacfwd_ratio=jf_run / run,
        jacfwd_first_call_s=jf_first,
        jacrev_n=n_rev,
        jacrev_s=jr_run,
        jacrev_ratio=(jr_run / n_rev) / (run / n),
        jacrev_first_call_s=jr_first,
        max_events=max_events,
        jacfwd_vs_jacrev_max_abs_diff=jacobian_mismatch,
    )
    return rows, gradient


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--n-logistic", type=int, default=10_000)
    parser.add_argument("--n-spring", type=int, default=1_000)
    parser.add_argument("--n-scipy-logistic", type=int, default=200)
    parser.add_argument("--n-scipy-spring", type=int, default=50)
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--atol", type=float, default=1e-10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-events", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "events.json")
    args = parser.parse_args()
    if args.quick:
        args.n_logistic, args.n_spring = 50, 8
        args.n_scipy_logistic, args.n_scipy_spring = 10, 4
        args.repeats = 1

    log_rows, log_grad = bench_logistic(
        args.n_logistic, args.n_scipy_logistic, args.rtol, args.atol, args.repeats
    )
    spr_rows, spr_grad = bench_spring(
        args.n_spring,
        args.n_scipy_spring,
        args.rtol,
        args.atol,
        args.repeats,
        args.max_events,
        args.seed,
    )
    rows = log_rows + spr_rows
    for problem in ("logistic", "spring"):
        ours = next(
            r for r in rows if r["problem"] == problem and "odeinfer" in r["method"]
        )
        for row in rows:
            if row["problem"] == problem:
                row["speedup_vs_this"] = row["per_problem_s"] / ours["per_problem_s"]

    print(
        f"\nrtol={args.rtol:g}, atol={args.atol:g}; scipy timed on a subset "
        "(n_timed) and extrapolated to n problems."
    )
    header = (
        f"{'problem':9} {'method':24} {'n':>6} {'n_timed':>7} {'total s':>9} "
        f"{'per prob':>10} {'odeinfer x':>10} {'max err':>9} {'1st call s':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        first = "" if r["first_call_s"] is None else f"{r['first_call_s']:.2f}"
        print(
            f"{r['problem']:9} {r['method']:24} {r['n']:>6} {r['n_timed']:>7} "
            f"{r['seconds']:>9.3f} {r['per_problem_s']:>10.2e} "
            f"{r['speedup_vs_this']:>10.1f} {r['max_error']:>9.1e} {first:>10}"
        )
    print("\n('odeinfer x' = scipy time per problem / odeinfer time per problem.)")
    print("\nGradient cost relative to the forward solve (same batch, vmapped):")
    print(
        f"  logistic  grad dt*/dk (reverse):    {log_grad['grad_ratio']:.2f}x "
        f"(max rel err vs -ln4/k^2: {log_grad['grad_max_rel_error']:.1e})"
    )
    print(
        f"  logistic  jacfwd dt*/dk (ForwardMode): {log_grad['jacfwd_ratio']:.2f}x "
        f"(max rel err: {log_grad['jacfwd_max_rel_error']:.1e})"
    )
    print(
        f"  spring    grad of sum(times) wrt (y0, params), reverse: "
        f"{spr_grad['grad_ratio']:.2f}x"
    )
    print(
        f"  spring    jacfwd times wrt z0 (ForwardMode):           "
        f"{spr_grad['jacfwd_ratio']:.2f}x"
    )
    print(
        f"  spring    jacrev times wrt z0 ({args.max_events} rows, n={spr_grad['jacrev_n']}): "
        f"{spr_grad['jacrev_ratio']:.2f}x per problem "
        f"(|jacfwd - jacrev| <= {spr_grad['jacfwd_vs_jacrev_max_abs_diff']:.1e})"
    )

    best_scipy = {
        p: min(
            r["per_problem_s"]
            for r in rows
            if r["problem"] == p and "scipy" in r["method"]
        )
        for p in ("logistic", "spring")
    }
    ours = {
        p: next(r for r in rows if r["problem"] == p and "odeinfer" in r["method"])
        for p in ("logistic", "spring")
    }
    targets = {
        f"{p} throughput >= 500x fastest scipy": best_scipy[p]
        / ours[p]["per_problem_s"]
        >= 500
        for p in ("logistic", "spring")
    }
    targets["logistic grad <= 3x forward"] = log_grad["grad_ratio"] <= 3
    targets["spring grad <= 3x forward"] = spr_grad["grad_ratio"] <= 3
    for p in ("logistic", "spring"):
        targets[f"{p} first call <= 5 s"] = ours[p]["first_call_s"] <= 5
    print("\nTargets (issue 2):")
    for name, met in targets.items():
        print(f"  {'met    ' if met else 'NOT met'}  {name}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = dict(
        settings={
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
        machine=dict(
            platform=platform.platform(),
            processor=platform.processor(),
            jax_backend=jax.default_backend(),
            jax=jax.__version__,
            devices=[str(d) for d in jax.devices()],
        ),
        rows=rows,
        gradients=[log_grad, spr_grad],
        targets=targets,
    )
    args.output.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
