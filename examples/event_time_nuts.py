"""NUTS with event-time data and right censoring.

Each subject's quantity decays as dy/dt = -k y from its own y0; we observe the time it
falls through a threshold (with Gaussian timing noise), or only that it had not yet
crossed by the end of follow-up (right-censored). The event times are found by
`oi.first_crossing` inside the likelihood, differentiably.

    python examples/event_time_nuts.py --num-warmup 300 --num-samples 500
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import odeinfer as oi

MODEL = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
THRESHOLD = oi.Crossing(lambda t, y, p: y, 0.3, direction="falling")
FOLLOW_UP = 2.5
TIMING_SD = 0.1


def make_data(k=0.8, n=12, seed=0):
    rng = np.random.default_rng(seed)
    y0 = rng.uniform(0.5, 3.0, n)
    true_times = np.log(y0 / 0.3) / k
    observed = true_times + TIMING_SD * rng.normal(size=n)
    censored = observed > FOLLOW_UP
    return y0, np.where(censored, FOLLOW_UP, observed), censored


def make_log_likelihood(y0, times, censored):
    y0, times, censored = map(jnp.asarray, (y0, times, censored))

    def crossing_time(y0_i, p):
        found = oi.first_crossing(
            MODEL,
            y0_i,
            p,
            THRESHOLD,
            t0=0.0,
            t1=3 * FOLLOW_UP,
            rtol=1e-8,
            atol=1e-10,
            throw=False,
        )
        return found.time, found.result == oi.RESULTS.successful

    def log_likelihood(p):
        predicted, ok = jax.vmap(crossing_time, in_axes=(0, None))(y0, p)
        # a crossing not found before 3x follow-up counts as far beyond it
        predicted = jnp.where(jnp.isfinite(predicted), predicted, 3 * FOLLOW_UP)
        observed = dist.Normal(predicted, TIMING_SD).log_prob(times)
        # censored: P(T > follow-up)
        survived = jax.scipy.stats.norm.logsf(FOLLOW_UP, predicted, TIMING_SD)
        return jnp.sum(jnp.where(censored, survived, observed)), jnp.all(ok)

    return log_likelihood


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    y0, times, censored = make_data()
    print(
        f"{int(censored.sum())} of {censored.size} subjects censored at t={FOLLOW_UP}"
    )
    posterior = oi.sample(
        make_log_likelihood(y0, times, censored),
        {"k": dist.LogNormal(0.0, 1.0)},
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        key=args.seed,
        init={"k": 1.0},
    )
    print(posterior.summary()[["mean", "sd", "q5", "q95", "ess_bulk", "r_hat"]])
    print("true k = 0.8")
    return posterior


if __name__ == "__main__":
    main()
