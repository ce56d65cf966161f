"""A custom callable likelihood: posteriordb's SIR model of a cholera outbreak.

Model (posteriordb `sir-sir`, after Codeço 2001): susceptible S, infected I, recovered R
and the concentration B of bacteria in the water,

    dS/dt = -beta B / (B + kappa) S          dR/dt = gamma I
    dI/dt =  beta B / (B + kappa) S - gamma I     dB/dt = xi I - delta B,

kappa = 1e6, y(0) = (10000, 0, 0, 10000), weekly data for 20 weeks (shipped next to this
file in `data/sir.json`, a copy of posteriordb's data). The new cases of week n are
Poisson with mean S(t_{n-1}) - S(t_n), a *difference of the state at two times*, and the
measured B is log-normal around B(t_n) with log-scale sd 0.15; half-Cauchy priors with
scales 2.5, 1, 25 and 1 on beta, gamma, xi and delta.

Neither observation is one of `Experiment`'s noise models, so the log-likelihood is a
plain function of a parameter dict, `fn(params) -> (value, ok)`, written with
`jax.numpy` around one `oi.solve`; `oi.fit(fn, parameters=..., priors=...)` finds the
posterior mode (MAP) and `oi.sample(fn, priors, init=...)` runs NUTS from it.

    python examples/sir_custom_likelihood.py              # MAP fit only (seconds)
    python examples/sir_custom_likelihood.py --nuts       # + 4 NUTS chains from the MAP
"""

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

import odeinfer as oi

DATA = json.loads((pathlib.Path(__file__).parent / "data" / "sir.json").read_text())
TIMES = jnp.asarray(DATA["t"], float)
Y0 = jnp.asarray(DATA["y0"], float)
NEW_CASES = jnp.asarray(DATA["stoi_hat"], float)
BACTERIA = jnp.asarray(DATA["B_hat"], float)
KAPPA = 1e6  # C50 of the infection rate, fixed in posteriordb's model

PRIORS = {
    "beta": dist.HalfCauchy(2.5),
    "gamma": dist.HalfCauchy(1.0),
    "xi": dist.HalfCauchy(25.0),
    "delta": dist.HalfCauchy(1.0),
}


def vector_field(t, y, p):
    s, i, _, b = y[0], y[1], y[2], y[3]
    infection = p["beta"] * b / (b + KAPPA) * s
    return jnp.stack(
        [
            -infection,
            infection - p["gamma"] * i,
            p["gamma"] * i,
            p["xi"] * i - p["delta"] * b,
        ]
    )


MODEL = oi.ODEModel(vector_field, name="sir_cholera")


def log_likelihood(p, solver=oi.FusedDopri5()):
    """log p(data | p) and whether the solve succeeded (`ok` False -> -inf in NUTS).

    `oi.FusedDopri5()` by default: `fit` differentiates forward (its Hessian, forward
    over forward) and NUTS in reverse, and the fused solver's sensitivities serve both;
    its programs compile in about half the time of `diffrax.Tsit5()` with
    `diffrax.DirectAdjoint()` (the fit: 6.4 against 11.3 s of CPU, cold).
    `benchmarks/nuts_init.py` passes `solver=diffrax.Tsit5()` (reverse mode only).
    """
    sol = oi.solve(
        MODEL,
        Y0,
        p,
        t0=0.0,
        t1=TIMES[-1],
        saveat=TIMES,
        rtol=1e-8,
        atol=1e-8,
        max_steps=1024,
        throw=False,
        solver=solver,
    )
    susceptible = jnp.concatenate([Y0[:1], sol.ys[:, 0]])
    # Weekly new cases: the drop of S over each week. Clipped at a tiny positive mean
    # because the solver's error can make a flat S decrease by -1e-9.
    new_cases = jnp.maximum(susceptible[:-1] - susceptible[1:], 1e-12)
    cases = dist.Poisson(new_cases).log_prob(NEW_CASES).sum()
    bacteria = dist.LogNormal(jnp.log(sol.ys[:, 3]), 0.15).log_prob(BACTERIA).sum()
    return cases + bacteria, sol.successful


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nuts", action="store_true", help="sample with NUTS too")
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    parameters = {
        "beta": oi.Positive(init=1.0),
        "gamma": oi.Positive(init=0.5),
        "xi": oi.Positive(init=10.0),
        "delta": oi.Positive(init=0.5),
    }
    fit = oi.fit(log_likelihood, parameters=parameters, priors=PRIORS, max_steps=500)
    print(fit.summary())
    if not args.nuts:
        return fit, None
    posterior = oi.sample(
        log_likelihood,
        PRIORS,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        key=jax.random.key(args.seed),
        init={name: float(value) for name, value in fit.params.items()},
    )
    print(posterior.summary())
    return fit, posterior


if __name__ == "__main__":
    main()
