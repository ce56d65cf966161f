"""`Posterior`: immutability, summary against direct computation, arviz conversion,
lossless save/load."""

import numpy as np
import pytest

import odeinfer as oi


def make_posterior(seed=0, chains=3, draws=500):
    rng = np.random.default_rng(seed)
    a = rng.normal(1.0, 2.0, size=(chains, draws))
    b = rng.lognormal(0.0, 0.5, size=(chains, draws))
    return oi.Posterior(
        names=("a", "b"),
        draws={"a": a, "b": b},
        unconstrained=np.stack([a, np.log(b)], axis=-1),
        divergences=rng.random((chains, draws)) < 0.01,
        num_steps=rng.integers(1, 16, (chains, draws)),
        accept_prob=rng.random((chains, draws)),
        potential_energy=rng.normal(size=(chains, draws)),
        step_size=rng.random(chains),
        inverse_mass_matrix=rng.random((chains, 2)),
        num_failures=3,
        failed_params=rng.normal(size=(3, 2)),
        kernel="nuts",
        chain_method="vectorized",
        num_warmup=100,
        seed=seed,
        timing={"compile": 1.0, "sampling": 2.0, "total": 3.0},
    )


def test_posterior_is_immutable():
    post = make_posterior()
    with pytest.raises(AttributeError):
        post.num_failures = 0
    with pytest.raises(ValueError):
        post.draws["a"][0, 0] = 0.0
    with pytest.raises(TypeError):
        post.draws["c"] = np.zeros(3)


def test_summary_against_direct_computation():
    post = make_posterior()
    table = post.summary()
    a = post.draws["a"]
    # unrounded: the table holds the full-precision statistics
    np.testing.assert_allclose(table.loc["a", "mean"], a.mean(), rtol=1e-12)
    np.testing.assert_allclose(table.loc["a", "sd"], a.std(ddof=1), rtol=1e-12)
    np.testing.assert_allclose(table.loc["a", "q5"], np.quantile(a, 0.05))
    # iid draws: R-hat ~ 1 and bulk ESS ~ the number of draws
    assert abs(table.loc["a", "r_hat"] - 1) < 0.02
    assert 0.8 * a.size < table.loc["a", "ess_bulk"] < 1.2 * a.size
    # MCSE of the mean of iid draws = sd / sqrt(n)
    np.testing.assert_allclose(
        table.loc["a", "mcse_mean"], a.std() / np.sqrt(a.size), rtol=0.2
    )
    assert post.num_divergences == int(post.divergences.sum())


def test_to_arviz_keeps_draws():
    idata = make_posterior().to_arviz()
    post = make_posterior()
    np.testing.assert_array_equal(idata.posterior["a"].values, post.draws["a"])
    np.testing.assert_array_equal(
        idata.sample_stats["diverging"].values, post.divergences
    )


def test_save_load_round_trip_is_bit_exact(tmp_path):
    post = make_posterior()
    path = tmp_path / "post.npz"
    post.save(path)
    loaded = oi.load_posterior(path)
    assert loaded.names == post.names
    for n in post.names:
        np.testing.assert_array_equal(loaded.draws[n], post.draws[n])
        assert loaded.draws[n].dtype == post.draws[n].dtype
    for field in (
        "unconstrained",
        "divergences",
        "num_steps",
        "accept_prob",
        "potential_energy",
        "step_size",
        "inverse_mass_matrix",
        "failed_params",
    ):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(post, field))
    assert loaded.num_failures == post.num_failures
    assert dict(loaded.timing) == dict(post.timing)
    assert (loaded.kernel, loaded.chain_method, loaded.num_warmup, loaded.seed) == (
        post.kernel,
        post.chain_method,
        post.num_warmup,
        post.seed,
    )


def test_trace_and_rank_plots():
    import matplotlib

    matplotlib.use("Agg")
    post = make_posterior()
    assert post.plot_trace() is not None
    assert post.plot_rank() is not None
