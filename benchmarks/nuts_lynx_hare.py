"""NUTS on the lynx–hare Lotka–Volterra posterior (posteriordb
`hudson_lynx_hare-lotka_volterra`): odeinfer (`oi.sample` defaults) against Stan
(pystan 3, where it is installed) in the same run.

Prints min bulk-ESS/s, compile time, time to first draw, wall time and posterior
means/sds of both, and writes `benchmarks/results/nuts_lynx_hare.json`. Also measures
the levers: gradient/value cost ratio, vectorised vs sequential chains, tolerances.

    python benchmarks/nuts_lynx_hare.py [--num-warmup 1000 --num-samples 1000
        --num-chains 4] [--no-stan] [--levers]
"""

import argparse
import json
import pathlib
import time

import jax
import numpy as np

import odeinfer as oi
import odeinfer.benchmarking as oib

HERE = pathlib.Path(__file__).resolve().parent


STAN_CODE = """
functions {
  vector dz_dt(real t, vector z, array[] real theta) {
    vector[2] dz;
    dz[1] = (theta[1] - theta[2] * z[2]) * z[1];
    dz[2] = (-theta[3] + theta[4] * z[1]) * z[2];
    return dz;
  }
}
data {
  int<lower=0> N;
  array[N] real ts;
  array[2] real y_init;
  array[N, 2] real<lower=0> y;
}
parameters {
  array[4] real<lower=0> theta;
  vector<lower=0>[2] z_init;
  array[2] real<lower=0> sigma;
}
transformed parameters {
  array[N] vector[2] z = ode_rk45_tol(dz_dt, z_init, 0, ts, 1e-5, 1e-3, 500, theta);
}
model {
  theta[{1, 3}] ~ normal(1, 0.5);
  theta[{2, 4}] ~ normal(0.05, 0.05);
  sigma ~ lognormal(-1, 1);
  z_init ~ lognormal(log(10), 1);
  for (k in 1:2) {
    y_init[k] ~ lognormal(log(z_init[k]), sigma[k]);
    y[ , k] ~ lognormal(log(z[ , k]), sigma[k]);
  }
}
"""


# posteriordb's model, priors, data and reference posterior: one definition, in the
# package (odeinfer.benchmarking.lynx_hare), shared with the example and the tests.
_BENCH = oib.lynx_hare()
NAMES = _BENCH.names
INIT = _BENCH.init


def load_data():
    return _BENCH.data


def reference_posterior():
    """posteriordb's reference posterior means and their MCSE, keyed by `NAMES`."""
    return _BENCH.reference


def priors():
    return _BENCH.priors


def make_problem(data, rtol=1e-6, atol=1e-6, max_steps=4096):
    """posteriordb's model as an `oi.Problem` (`data` is posteriordb's, always the
    same: kept for the Stan side's symmetry)."""
    return oib.lynx_hare(rtol=rtol, atol=atol, max_steps=max_steps).problem


def run_odeinfer(data, args, *, rtol, atol, **options):
    """`oi.sample` with its defaults, except for `options`."""
    problem = make_problem(data, rtol, atol)
    start = time.perf_counter()
    posterior = oi.sample(
        problem,
        priors(),
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        key=args.seed,
        init=INIT,
        **options,
    )
    wall = time.perf_counter() - start
    ess = posterior.min_bulk_ess()
    table = posterior.summary()
    return {
        "chain_method": posterior.chain_method,
        "dense_mass": posterior.inverse_mass_matrix.ndim == 3,
        "wall_s": wall,
        "compile_s": posterior.timing["compile"],
        "sampling_s": posterior.timing["sampling"],
        # the draws arrive at the end of the chains' programs: the first draw is
        # taken after the setup (checks and compile, overlapped) and the warm-up
        "time_to_first_draw_s": posterior.timing["until_sampling"]
        + posterior.timing["sampling"]
        * args.num_warmup
        / (args.num_warmup + args.num_samples),
        "min_bulk_ess": ess,
        "min_bulk_ess_per_s": ess / wall,
        "min_bulk_ess_per_sampling_s": ess / posterior.timing["sampling"],
        "leapfrog_steps_per_draw": float(posterior.num_steps.mean()),
        "divergences": posterior.num_divergences,
        "solver_failures": posterior.num_failures,
        "mean": posterior.mean(),
        "sd": posterior.std(),
        "mcse_mean": {n: float(table.loc[n, "mcse_mean"]) for n in NAMES},
        "rhat_max": float(table["r_hat"].max()),
    }


def run_stan(data, args):
    import stan  # pystan 3: an optional peer, never a dependency

    if not args.stan_warm:
        # httpstan keeps compiled models between runs: delete this one, so that Stan's
        # compile time is a cold compile, like odeinfer's.
        import httpstan.cache
        import httpstan.models

        name = httpstan.models.calculate_model_name(STAN_CODE)
        try:
            httpstan.cache.delete_model_directory(name)
        except (FileNotFoundError, KeyError):
            pass
    start = time.perf_counter()
    model = stan.build(STAN_CODE, data=data, random_seed=args.seed)
    compile_s = time.perf_counter() - start
    start_sampling = time.perf_counter()
    fit = model.sample(
        num_chains=args.num_chains,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        init=[
            {
                "theta": [0.55, 0.028, 0.8, 0.024],
                "z_init": [33.0, 6.0],
                "sigma": [0.25, 0.25],
            }
        ]
        * args.num_chains,
    )
    sampling_s = time.perf_counter() - start_sampling
    import arviz as az

    idata = az.from_pystan(posterior=fit)
    draws = {}
    for i in range(4):
        draws[f"theta{i + 1}"] = idata.posterior["theta"].values[..., i]
    for i in range(2):
        draws[f"z{i + 1}"] = idata.posterior["z_init"].values[..., i]
        draws[f"sigma{i + 1}"] = idata.posterior["sigma"].values[..., i]
    ess = min(float(az.ess(draws[n], method="bulk")) for n in NAMES)
    wall = compile_s + sampling_s
    return {
        "wall_s": wall,
        "compile_s": compile_s,
        "sampling_s": sampling_s,
        "time_to_first_draw_s": compile_s
        + sampling_s * args.num_warmup / (args.num_warmup + args.num_samples),
        "min_bulk_ess": ess,
        "min_bulk_ess_per_s": ess / wall,
        "min_bulk_ess_per_sampling_s": ess / sampling_s,
        "divergences": int(np.sum(idata.sample_stats["diverging"].values)),
        "mean": {n: float(draws[n].mean()) for n in NAMES},
        "sd": {n: float(draws[n].std(ddof=1)) for n in NAMES},
        "mcse_mean": {n: float(az.mcse(draws[n], method="mean")) for n in NAMES},
    }


def measure_levers(data, args):
    """Per-evaluation cost of the log density and of its gradient, at several
    tolerances (after compilation; median of repeats)."""
    from odeinfer._density import log_density, masked_potential

    out = {}
    for rtol, atol in ((1e-6, 1e-6), (1e-5, 1e-3), (1e-8, 1e-8)):
        density = log_density(make_problem(data, rtol, atol), priors())
        u = density.parameters.to_unconstrained(INIT)

        def potential(u, density=density):
            return masked_potential(density, u)

        value = jax.jit(potential)
        grad = jax.jit(jax.value_and_grad(potential))
        jax.block_until_ready(value(u))
        jax.block_until_ready(grad(u))

        def timeit(f, n=200, u=u):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(n):
                    r = f(u)
                jax.block_until_ready(r)
                times.append((time.perf_counter() - t) / n)
            return float(np.median(times))

        tv, tg = timeit(value), timeit(grad)
        out[f"rtol={rtol:g},atol={atol:g}"] = {
            "value_us": 1e6 * tv,
            "value_and_grad_us": 1e6 * tg,
            "ratio": tg / tv,
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--no-stan", action="store_true")
    parser.add_argument(
        "--stan-warm",
        action="store_true",
        help="reuse httpstan's cached compiled model (default: compile cold)",
    )
    parser.add_argument(
        "--levers",
        action="store_true",
        help="also time value/gradient and sequential chains",
    )
    parser.add_argument(
        "--output", default=str(HERE / "results" / "nuts_lynx_hare.json")
    )
    args = parser.parse_args()
    data = load_data()

    results = {"config": vars(args)}
    tolerances = dict(rtol=args.rtol, atol=args.atol)
    # odeinfer's defaults (threaded chains on a CPU, dense metric for 8 parameters),
    # then Stan's metric (diagonal) for a like-for-like sampler.
    results["odeinfer"] = run_odeinfer(data, args, **tolerances)
    results["odeinfer_diag"] = run_odeinfer(data, args, **tolerances, dense_mass=False)
    if args.levers:
        results["levers"] = measure_levers(data, args)
        for method in ("vectorized", "sequential"):
            results[f"odeinfer_{method}"] = run_odeinfer(
                data, args, **tolerances, chain_method=method
            )
    if not args.no_stan:
        try:
            results["stan"] = run_stan(data, args)
        except ImportError:
            print("pystan is not installed (pip install pystan); Stan skipped")

    rows = [
        k
        for k in (
            "odeinfer",
            "odeinfer_diag",
            "odeinfer_vectorized",
            "odeinfer_sequential",
            "stan",
        )
        if k in results
    ]
    print(f"{'':28s}" + "".join(f"{r:>20s}" for r in rows))
    for key in (
        "compile_s",
        "sampling_s",
        "wall_s",
        "time_to_first_draw_s",
        "min_bulk_ess",
        "min_bulk_ess_per_s",
        "min_bulk_ess_per_sampling_s",
        "leapfrog_steps_per_draw",
        "divergences",
    ):
        print(
            f"{key:28s}"
            + "".join(f"{results[r].get(key, float('nan')):20.2f}" for r in rows)
        )
    print("posterior mean (sd):")
    for n in NAMES:
        print(
            f"  {n:8s}"
            + "".join(
                f"  {results[r]['mean'][n]:9.4f} ({results[r]['sd'][n]:.4f})"
                for r in rows
            )
        )
    # Every run against posteriordb's reference posterior: mean differences in units
    # of their combined Monte Carlo standard error.
    reference = reference_posterior()
    results["reference_difference_z"] = {}
    for r in rows:
        z = {
            n: (results[r]["mean"][n] - reference["mean"][n])
            / np.hypot(results[r]["mcse_mean"][n], reference["mcse_mean"][n])
            for n in NAMES
        }
        results["reference_difference_z"][r] = z
        print(
            f"{r} vs posteriordb reference means: max |difference| "
            f"{max(abs(v) for v in z.values()):.2f} MCSE"
        )
    if "stan" in results:
        s = results["stan"]
        ratios, z = {}, {}
        for r in rows[:-1]:
            o = results[r]
            ratios[r] = {
                "ess_per_wall_s": o["min_bulk_ess_per_s"] / s["min_bulk_ess_per_s"],
                "ess_per_sampling_s": o["min_bulk_ess_per_sampling_s"]
                / s["min_bulk_ess_per_sampling_s"],
            }
            # difference of the means in units of its Monte Carlo standard error
            z[r] = {
                n: (o["mean"][n] - s["mean"][n])
                / np.hypot(
                    s["sd"][n] / np.sqrt(s["min_bulk_ess"]),
                    o["sd"][n] / np.sqrt(o["min_bulk_ess"]),
                )
                for n in NAMES
            }
        results["ratio_to_stan"] = ratios
        results["mean_difference_z"] = z
        for r in rows[:-1]:
            print(
                f"{r}/Stan min bulk-ESS per wall second {ratios[r]['ess_per_wall_s']:.2f}, "
                f"per sampling second {ratios[r]['ess_per_sampling_s']:.2f}; "
                f"max |mean difference| {max(abs(v) for v in z[r].values()):.2f} MCSE"
            )
        o = results["odeinfer"]
        print(
            f"odeinfer time to first draw {o['time_to_first_draw_s']:.1f} s vs Stan "
            f"compile {s['compile_s']:.1f} s"
        )
    if "levers" in results:
        print("levers (per evaluation):")
        for k, v in results["levers"].items():
            print(
                f"  {k:24s} value {v['value_us']:8.1f} us  value+grad {v['value_and_grad_us']:8.1f} us  ratio {v['ratio']:.1f}"
            )
    pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.output).write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
