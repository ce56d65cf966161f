"""`oi.predictive`: quantile bands against the closed-form quantiles of a monotone
prediction."""

import jax.numpy as jnp
import numpy as np
from test_posterior import make_posterior

import odeinfer as oi
from odeinfer import plotting


def test_bands_of_monotone_prediction_are_predictions_at_quantiles():
    post = make_posterior(draws=2000)
    times = np.linspace(0.0, 2.0, 5)

    def simulate(
        p,
    ):  # decreasing in b: the q-band is the prediction at b's (1-q)-quantile
        return {"y": 3.0 * jnp.exp(-p["b"] * times), "t_half": jnp.log(2.0) / p["b"]}

    result = oi.predictive(
        None, post, simulate=simulate, num_draws=None, quantiles=(0.1, 0.5, 0.9)
    )
    b = np.asarray(post.draws["b"]).reshape(-1)
    assert result.draws["y"].shape == (b.size, times.size)
    for i, q in enumerate((0.1, 0.5, 0.9)):
        np.testing.assert_allclose(
            result.bands["y"][i],
            3.0 * np.exp(-np.quantile(b, 1 - q) * times),
            rtol=2e-3,
        )
        np.testing.assert_allclose(
            result.bands["t_half"][i], np.log(2) / np.quantile(b, 1 - q), rtol=2e-3
        )
    assert result.num_failed == 0


def test_subset_of_draws_and_non_finite_event_times():
    post = make_posterior()

    def simulate(p):  # "event not found" (inf) for half the draws
        return jnp.where(p["a"] > 1.0, jnp.inf, p["a"])

    result = oi.predictive(None, post, simulate=simulate, num_draws=100, key=1)
    assert result.draws.shape == (100,)
    a = result.params["a"]
    np.testing.assert_allclose(result.bands[1], np.median(a[a <= 1.0]))


def test_problem_predictive_uses_simulate():
    times = np.linspace(0.5, 2.0, 4)
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y)
    experiment = oi.Experiment(
        times,
        2.0 * np.exp(-0.7 * times),
        observables=lambda t, y, p: y,
        noise=oi.Gaussian(0.1),
        y0=2.0,
    )
    problem = oi.Problem(model, experiment, oi.Parameters({"k": oi.Positive(init=1.0)}))
    rng = np.random.default_rng(0)
    k = rng.lognormal(np.log(0.7), 0.1, size=(2, 50))
    post = oi.Posterior(
        names=("k",),
        draws={"k": k},
        unconstrained=np.log(k)[..., None],
        divergences=np.zeros((2, 50), bool),
        num_steps=np.ones((2, 50)),
        accept_prob=np.ones((2, 50)),
        potential_energy=np.zeros((2, 50)),
        step_size=np.ones(2),
        inverse_mass_matrix=np.ones((2, 1)),
        num_failures=0,
        failed_params=np.zeros((0, 1)),
        kernel="nuts",
        chain_method="vectorized",
        num_warmup=0,
        seed=0,
        timing={},
    )
    result = oi.predictive(problem, post, num_draws=None, quantiles=(0.5,))
    observables = result.draws[0].observables
    assert observables.shape[:2] == (100, times.size)
    np.testing.assert_allclose(
        observables[..., 0], 2.0 * np.exp(-k.reshape(-1, 1) * times), rtol=1e-6
    )


def test_plots_of_bands_and_event_times():
    import matplotlib

    matplotlib.use("Agg")
    times = np.linspace(0.0, 1.0, 4)
    bands = np.stack([times, 2 * times, 3 * times])
    ax = plotting.plot_predictive_bands(times, bands, data=2 * times + 0.1)
    # the median line and the data points carry the given values
    lines = {tuple(np.round(line.get_ydata(), 12)) for line in ax.get_lines()}
    assert tuple(np.round(2 * times, 12)) in lines
    assert tuple(np.round(2 * times + 0.1, 12)) in lines
    event_times = np.array([1.0, 1.5, np.inf, 2.0, np.inf])
    ax = plotting.plot_event_times(event_times, observed=1.2, bins=3)
    assert "2 not found" in ax.get_title()
    heights = np.array([patch.get_height() for patch in ax.patches])
    widths = np.array([patch.get_width() for patch in ax.patches])
    # a density over the 3 finite times: the bars integrate to 1
    np.testing.assert_allclose(np.sum(heights * widths), 1.0)
