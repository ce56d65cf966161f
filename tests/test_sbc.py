"""Simulation-based calibration of `oi.sample` on exponential decay (slow)."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import odeinfer as oi

DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")


def _state(t, y, p):
    return y


@pytest.mark.slow
def test_simulation_based_calibration_decay():
    # k ~ LogNormal(-0.5, 0.3), sigma ~ LogNormal(log 0.1, 0.3); y(t) = 2 exp(-k t)
    # solved by odeinfer, observed with N(0, sigma) noise. The ranks of the true values
    # among (thinned) posterior draws must be uniform (Talts et al. 2018): a chi-square
    # test per parameter. Every data set has the same shape, so one compiled chain
    # serves all the simulations.
    times = np.linspace(0.5, 3.0, 8)
    priors = {
        "k": dist.LogNormal(-0.5, 0.3),
        "sigma": dist.LogNormal(np.log(0.1), 0.3),
    }
    space = oi.Parameters({"k": oi.Positive(init=0.6), "sigma": oi.Positive(init=0.1)})
    n_sims, n_draws, thin, bins = 100, 99, 3, 10
    ranks = {name: [] for name in priors}
    rng = np.random.default_rng(0)
    for i in range(n_sims):
        keys = jax.random.split(jax.random.key(i), len(priors))
        truth = {
            name: float(prior.sample(key))
            for (name, prior), key in zip(priors.items(), keys, strict=True)
        }
        data = 2.0 * np.exp(-truth["k"] * times) + truth["sigma"] * rng.normal(
            size=times.size
        )
        experiment = oi.Experiment(
            times, data, observables=_state, noise=oi.Gaussian("sigma"), y0=2.0
        )
        problem = oi.Problem(DECAY, experiment, space, rtol=1e-8, atol=1e-10)
        post = oi.sample(
            problem,
            priors,
            num_warmup=300,
            num_samples=n_draws * thin,
            num_chains=1,
            key=i,
        )
        assert post.num_divergences == 0
        for name in priors:
            thinned = post.draws[name][0, ::thin]
            ranks[name].append(int(np.sum(thinned < truth[name])))
    for name, r in ranks.items():
        counts = np.bincount(np.asarray(r) * bins // (n_draws + 1), minlength=bins)
        pvalue = stats.chisquare(counts).pvalue
        print(f"SBC {name}: rank counts {counts.tolist()}, chi-square p = {pvalue:.3f}")
        assert pvalue > 0.001, (name, counts)
