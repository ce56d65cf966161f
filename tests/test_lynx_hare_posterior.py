"""The lynx–hare posterior from `oi.sample`'s defaults against posteriordb's published
reference posterior (Stan; means and Monte Carlo standard errors shipped in
`odeinfer/data/`)."""

import _lynx_hare as bench
import numpy as np

import odeinfer as oi


def test_lynx_hare_posterior_means_match_posteriordb_reference():
    posterior = oi.sample(
        bench.make_problem(bench.load_data()),
        bench.priors(),
        num_warmup=500,
        num_samples=1000,
        key=3,
    )
    reference = bench.reference_posterior()
    table = posterior.summary()
    assert posterior.num_divergences == 0
    assert table["r_hat"].max() < 1.01
    for name in bench.NAMES:
        mcse = np.hypot(table.loc[name, "mcse_mean"], reference["mcse_mean"][name])
        difference = table.loc[name, "mean"] - reference["mean"][name]
        assert abs(difference) < 4 * mcse, (name, difference, mcse)
