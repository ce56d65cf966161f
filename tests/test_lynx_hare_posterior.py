"""The lynx–hare posterior from `oi.sample`'s defaults against posteriordb's published
reference posterior (Stan; means and Monte Carlo standard errors shipped in
`odeinfer/data/`)."""

import importlib.util
import pathlib

import numpy as np

BENCHMARK = (
    pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "nuts_lynx_hare.py"
)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("nuts_lynx_hare", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lynx_hare_posterior_means_match_posteriordb_reference():
    bench = load_benchmark()
    import odeinfer as oi

    posterior = oi.sample(
        bench.make_problem(bench.load_data()),
        bench.priors(),
        num_warmup=500,
        num_samples=1000,
        seed=3,
    )
    reference = bench.reference_posterior()
    table = posterior.summary()
    assert posterior.num_divergences == 0
    assert table["r_hat"].max() < 1.01
    for name in bench.NAMES:
        mcse = np.hypot(table.loc[name, "mcse_mean"], reference["mcse_mean"][name])
        difference = table.loc[name, "mean"] - reference["mean"][name]
        assert abs(difference) < 4 * mcse, (name, difference, mcse)
