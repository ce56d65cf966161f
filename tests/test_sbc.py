"""Simulation-based calibration of `oi.sample` on exponential decay (slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import odeinfer as oi


@pytest.mark.slow
def test_simulation_based_calibration_decay():
    # k ~ LogNormal(-0.5, 0.3); y(t) = 2 exp(-k t) solved by odeinfer; noise sd 0.1.
    # Ranks of the true k among posterior draws must be uniform (Talts et al. 2018).
    times = jnp.linspace(0.5, 3.0, 5)
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y)
    prior = dist.LogNormal(-0.5, 0.3)
    rng = np.random.default_rng(0)
    n_sims, n_draws, bins = 60, 99, 10
    ranks = []
    for i in range(n_sims):
        k_true = float(prior.sample(jax.random.key(i)))
        data = 2.0 * np.exp(-k_true * np.asarray(times)) + 0.1 * rng.normal(
            size=times.size
        )

        def ll(p, data=data):
            sol = oi.solve(
                model,
                jnp.array(2.0),
                p,
                t0=0.0,
                t1=3.0,
                saveat=times,
                throw=False,
                max_steps=256,
            )
            return jnp.sum(dist.Normal(sol.ys, 0.1).log_prob(data)), sol.successful

        post = oi.sample(
            ll,
            {"k": prior},
            num_warmup=200,
            num_samples=n_draws * 3,
            num_chains=1,
            seed=i,
            init={"k": 0.6},
        )
        thinned = post.draws["k"][0, ::3]
        ranks.append(int(np.sum(thinned < k_true)))
    counts = np.bincount(np.asarray(ranks) * bins // (n_draws + 1), minlength=bins)
    assert stats.chisquare(counts).pvalue > 0.001
