"""Which initial points should `oi.sample` use by default? NUTS from three kinds of
random start, on three posteriordb posteriors, by max split R-hat, min bulk ESS and wall
time (4 chains, the same seed for every start).

- `prior`: each chain starts at a draw from the priors;
- `uniform`: uniform(-2, 2) on the unconstrained scale (Stan's and numpyro's default);
- `optimize`: a uniform(-2, 2) draw followed by up to 10 BFGS steps on the log
    density (the same density NUTS samples, Jacobian included).

Posteriors (data from posteriordb: `$POSTERIORDB_DIR`, or the copies shipped with
odeinfer and its examples):

- `sir-sir`: cholera SIR with bacteria (Codeço 2001), the callable likelihood of
    `examples/sir_custom_likelihood.py`: Poisson on weekly drops of S, log-normal
    (sd 0.15) on B; half-Cauchy priors with scales 2.5, 1, 25, 1 on beta, gamma, xi,
    delta.
- `one_comp_mm_elim_abs`: one compartment, first-order absorption, Michaelis–Menten
    elimination, a callable likelihood: log-normal on C; half-Cauchy(1) priors on
    k_a, K_m, V_m, sigma.
- `hudson_lynx_hare-lotka_volterra`: an `oi.Problem` (`odeinfer.benchmarking.lynx_hare`).

    python benchmarks/nuts_init.py [--num-warmup 500 --num-samples 500]
        [--models sir one_comp lynx_hare] [--inits prior uniform optimize]

Prints a table and writes `benchmarks/results/nuts_init.json`.
"""

import argparse
import functools
import json
import os
import pathlib
import sys
import time
import warnings

import diffrax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import odeinfer as oi
import odeinfer.benchmarking as oib

HERE = pathlib.Path(__file__).resolve().parent
# posteriordb's data files (`<posterior>.json`): set POSTERIORDB_DIR for one_comp; the
# SIR and lynx–hare data ship with odeinfer's example and package.
POSTERIORDB = pathlib.Path(os.environ.get("POSTERIORDB_DIR", HERE / "posteriordb"))


def _data(name: str) -> dict:
    path = POSTERIORDB / name
    if not path.exists():
        raise SystemExit(f"{name} not found: set POSTERIORDB_DIR to posteriordb's data")
    return json.loads(path.read_text())


# ---- SIR ------------------------------------------------------------------------
# The model, data and priors of examples/sir_custom_likelihood.py (one definition),
# differentiated in reverse mode only, so with diffrax's Tsit5 and its default adjoint
# (as when these numbers were measured).


def sir():
    sys.path.insert(0, str(HERE.parent / "examples"))
    import sir_custom_likelihood as example

    return (
        functools.partial(example.log_likelihood, solver=diffrax.Tsit5()),
        example.PRIORS,
    )


# ---- one compartment, Michaelis–Menten elimination --------------------------------

PK: dict = {}


def _pk_data() -> dict:
    if not PK:
        PK.update(_data("one_comp_mm_elim_abs-one_comp_mm_elim_abs.json"))
    return PK


def _pk_field(t, y, p):
    dose_amount, volume = float(PK["D"]), float(PK["V"])
    dose = jnp.exp(-p["k_a"] * t) * dose_amount * p["k_a"] / volume
    elimination = (p["V_m"] / volume) * y[0] / (p["K_m"] + y[0])
    return jnp.stack([dose - elimination])


PK_MODEL = oi.ODEModel(_pk_field, name="one_comp_mm_elim_abs")
PK_PRIORS = {n: dist.HalfCauchy(1.0) for n in ("k_a", "K_m", "V_m", "sigma")}


def pk_log_likelihood(p):
    times = jnp.asarray(PK["times"], float)
    sol = oi.solve(
        PK_MODEL,
        jnp.zeros(1),
        p,
        t0=float(PK["t0"]),
        t1=times[-1],
        saveat=times,
        rtol=1e-8,
        atol=1e-8,
        max_steps=2048,
        throw=False,
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
    )
    concentration = sol.ys[:, 0]
    value = (
        dist.LogNormal(jnp.log(concentration), p["sigma"])
        .log_prob(jnp.asarray(PK["C_hat"], float))
        .sum()
    )
    return value, sol.successful & jnp.all(concentration > 0)


# ---- lynx–hare --------------------------------------------------------------------


def lynx_hare():
    bench = oib.lynx_hare()
    return bench.problem, bench.priors


def run(problem, priors, args, **options):
    """One `oi.sample` run (`options` passed on, e.g. `init=`, `dense_mass=`) and its
    diagnostics; also used by `benchmarks/dense_metric.py`."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        posterior = oi.sample(
            problem,
            priors,
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            key=args.seed,
            **options,
        )
    wall = time.perf_counter() - start
    table = posterior.summary()
    ess = float(posterior.min_bulk_ess())
    sampling = float(posterior.timing["sampling"])
    return {
        "dimensions": int(posterior.unconstrained.shape[-1]),
        "rhat_max": float(table["r_hat"].max()),
        "min_bulk_ess": ess,
        "wall_s": wall,
        "sampling_s": sampling,
        "ess_per_s": ess / sampling,
        "leapfrog_steps_per_draw": float(np.mean(posterior.num_steps)),
        "ess_per_1000_steps": 1000 * ess / float(np.sum(posterior.num_steps)),
        "divergences": int(posterior.num_divergences),
        "failures": int(posterior.num_failures),
        "mean": posterior.mean(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["sir", "one_comp", "lynx_hare"])
    parser.add_argument("--inits", nargs="+", default=["prior", "uniform", "optimize"])
    parser.add_argument("--output", default=str(HERE / "results" / "nuts_init.json"))
    args = parser.parse_args()
    models = {
        "sir": sir,
        "one_comp": lambda: (_pk_data() and pk_log_likelihood, PK_PRIORS),
        "lynx_hare": lynx_hare,
    }
    results = {"config": vars(args)}
    print(
        f"{'model':10s} {'init':9s} {'R-hat':>7s} {'min ESS':>8s} {'wall s':>8s} "
        f"{'steps/draw':>10s} {'div':>5s} {'fail':>5s}",
        flush=True,
    )
    for name in args.models:
        problem, priors = models[name]()
        for init in args.inits:
            row = run(problem, priors, args, init=init)
            results.setdefault(name, {})[init] = row
            print(
                f"{name:10s} {init:9s} {row['rhat_max']:7.3f} {row['min_bulk_ess']:8.0f} "
                f"{row['wall_s']:8.1f} {row['leapfrog_steps_per_draw']:10.1f} "
                f"{row['divergences']:5d} {row['failures']:5d}",
                flush=True,
            )
            pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(args.output).write_text(
                json.dumps(results, indent=2, default=float)
            )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
