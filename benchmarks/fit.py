"""Lynx–hare maximum-likelihood fit: odeinfer against scipy.

Same problem for both: Lotka–Volterra with the initial state estimated, log-normal
noise with fixed sigma = 0.25 (so the MLE is a least-squares problem on the log
residuals), parameters optimised on the log scale from the same starting point, ODE
tolerances rtol = atol = 1e-8.

- odeinfer: `oi.fit` (Levenberg–Marquardt, forward-mode Jacobians through the solve,
  Tsit5); compile time measured apart (first call), then the median of repeated calls;
  and `oi.multistart` with 100 starts in one vmapped call.
- scipy: `scipy.optimize.least_squares` (trust-region reflective) over
  `scipy.integrate.solve_ivp` (RK45), finite-difference Jacobian.

Targets: odeinfer >= 20x faster than scipy for the single fit; 100 starts <= 10x one
fit. Writes benchmarks/results/fit.json.

    python benchmarks/fit.py [--repeats 3] [--n-starts 100]
"""

import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np
from scipy import integrate, optimize

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "examples"))
import lynx_hare_fit as lh  # noqa: E402

import odeinfer as oi  # noqa: E402

SIGMA = 0.25
RTOL = ATOL = 1e-8
ORDER = ("alpha", "beta", "gamma", "delta", "hare0", "lynx0")


def scipy_fit(problem):
    experiment = problem.experiments[0]
    ts = np.asarray(experiment.times)
    log_data = np.log(np.asarray(experiment.data))
    init = problem.parameters.initial()
    x0 = np.log([float(init[n]) for n in ORDER])
    calls = {"n": 0}

    def residuals(x):
        calls["n"] += 1
        a, b, g, d, u0, v0 = np.exp(x)

        def rhs(t, z):
            return [(a - b * z[1]) * z[0], (-g + d * z[0]) * z[1]]

        sol = integrate.solve_ivp(
            rhs, (0.0, ts[-1]), [u0, v0], t_eval=ts, rtol=RTOL, atol=ATOL
        )
        if not sol.success or sol.y.shape[1] != ts.size or np.any(sol.y <= 0):
            return np.full(2 * ts.size, 1e3)
        return ((log_data - np.log(sol.y.T)) / SIGMA).ravel()

    start = time.perf_counter()
    out = optimize.least_squares(residuals, x0, method="trf", xtol=1e-8, ftol=1e-8)
    elapsed = time.perf_counter() - start
    n = log_data.size
    loglik = (
        -0.5 * np.sum(out.fun**2)
        - n * np.log(SIGMA * np.sqrt(2 * np.pi))
        - np.sum(log_data)
    )
    return dict(
        time_s=elapsed,
        evaluations=calls["n"],
        log_likelihood=float(loglik),
        estimates=dict(zip(ORDER, np.exp(out.x).tolist(), strict=True)),
    )


def timed(fn, repeats):
    start = time.perf_counter()
    result = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(result))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        jax.block_until_ready(jax.tree_util.tree_leaves(result))
        times.append(time.perf_counter() - start)
    run = float(np.median(times))
    return result, run, first - run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-starts", type=int, default=100)
    args = parser.parse_args(argv)

    problem = lh.make_problem(SIGMA)
    fit, fit_time, fit_compile = timed(lambda: oi.fit(problem), args.repeats)
    multi, multi_time, multi_compile = timed(
        lambda: oi.multistart(
            problem, args.n_starts, key=jax.random.key(0), spread=0.5, throw=False
        ),
        args.repeats,
    )
    reference = scipy_fit(problem)
    rows = {
        "odeinfer fit (LM)": dict(
            time_s=fit_time,
            compile_s=fit_compile,
            evaluations=int(fit.num_steps),
            log_likelihood=float(fit.log_likelihood),
        ),
        f"odeinfer multistart ({args.n_starts})": dict(
            time_s=multi_time,
            compile_s=multi_compile,
            evaluations=int(np.sum(np.asarray(multi.num_steps))),
            log_likelihood=float(multi.best.log_likelihood),
            converged=multi.num_converged,
        ),
        "scipy least_squares + solve_ivp": reference,
    }
    speedup = reference["time_s"] / fit_time
    ratio = multi_time / fit_time
    print(
        f"{'method':<34} {'time [s]':>10} {'compile [s]':>12} {'evals':>8} {'loglik':>14}"
    )
    for name, row in rows.items():
        print(
            f"{name:<34} {row['time_s']:>10.4f} {row.get('compile_s', 0.0):>12.2f} "
            f"{row['evaluations']:>8d} {row['log_likelihood']:>14.6f}"
        )
    print(
        f"speed-up over scipy (single fit): {speedup:.1f}x (target >= 20x: "
        f"{'met' if speedup >= 20 else 'NOT met'})"
    )
    print(
        f"{args.n_starts}-start multistart / one fit: {ratio:.1f}x (target <= 10x: "
        f"{'met' if ratio <= 10 else 'NOT met'})"
    )
    print(
        "odeinfer evaluations are optimiser steps (each one forward-mode solve);"
        " scipy's are solve_ivp calls (FD Jacobians included)."
    )
    out = dict(
        rows=rows,
        speedup_vs_scipy=speedup,
        multistart_over_fit=ratio,
        targets=dict(speedup=20, multistart_ratio=10),
        note="wall-clock on the development machine, shared with other jobs",
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "fit.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
