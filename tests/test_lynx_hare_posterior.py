"""The lynx–hare posterior from `oi.sample`'s defaults against posteriordb's published
reference posterior (Stan; means and Monte Carlo standard errors shipped in
`odeinfer/data/`, read by `odeinfer.benchmarking.lynx_hare`)."""

import numpy as np

import odeinfer as oi
import odeinfer.benchmarking as oib


def test_lynx_hare_posterior_means_match_posteriordb_reference():
    bench = oib.lynx_hare()
    posterior = oi.sample(
        bench.problem,
        bench.priors,
        num_warmup=500,
        num_samples=1000,
        key=3,
    )
    table = posterior.summary()
    assert posterior.num_divergences == 0
    assert table["r_hat"].max() < 1.01
    for name in bench.names:
        mcse = np.hypot(
            table.loc[name, "mcse_mean"], bench.reference["mcse_mean"][name]
        )
        difference = table.loc[name, "mean"] - bench.reference["mean"][name]
        assert abs(difference) < 4 * mcse, (name, difference, mcse)
