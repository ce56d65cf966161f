import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import odeinfer as oi

DATA = np.array([0.3, 1.2, 2.5, 4.0])
PRED = np.array([0.5, 1.0, 2.0, 5.0])
PARAMS = {"s": jnp.array(0.4), "df": jnp.array(3.5), "r": jnp.array(2.5)}


@pytest.mark.parametrize(
    "noise, expected",
    [
        (oi.Gaussian(0.3), stats.norm.logpdf(DATA, PRED, 0.3)),
        (oi.Gaussian("s"), stats.norm.logpdf(DATA, PRED, 0.4)),
        (oi.Gaussian(proportional=0.2), stats.norm.logpdf(DATA, PRED, 0.2 * PRED)),
        (
            oi.Gaussian(0.3, proportional="s"),
            stats.norm.logpdf(DATA, PRED, np.sqrt(0.09 + (0.4 * PRED) ** 2)),
        ),
        (oi.LogNormal("s"), stats.lognorm.logpdf(DATA, 0.4, scale=PRED)),
        (oi.StudentT("df", 0.3), stats.t.logpdf(DATA, 3.5, PRED, 0.3)),
    ],
)
def test_continuous_noise_matches_scipy(noise, expected):
    np.testing.assert_allclose(noise.log_prob(DATA, PRED, PARAMS), expected, rtol=1e-10)


def test_count_noise_matches_scipy():
    counts = np.array([0.0, 1.0, 3.0, 7.0])
    np.testing.assert_allclose(
        oi.Poisson().log_prob(counts, PRED, PARAMS),
        stats.poisson.logpmf(counts, PRED),
        rtol=1e-10,
    )
    r = 2.5
    np.testing.assert_allclose(
        oi.NegativeBinomial("r").log_prob(counts, PRED, PARAMS),
        stats.nbinom.logpmf(counts, r, r / (r + PRED)),
        rtol=1e-6,  # numpyro's GammaPoisson goes through betaln: ~1e-7 relative
    )


def test_invalid_predictions_give_minus_inf_not_nan():
    pred = jnp.array([-1.0, 0.0, jnp.nan, 1.0])
    for noise in (oi.LogNormal(0.2), oi.Poisson(), oi.NegativeBinomial(2.0)):
        values = noise.log_prob(jnp.ones(4), pred, PARAMS)
        assert not np.isnan(values).any()
        assert np.all(values[:3] == -np.inf) and np.isfinite(values[3])
    # A named scale that went non-positive: -inf, and a finite gradient elsewhere.
    value = oi.Gaussian("s").log_prob(1.0, 1.0, {"s": jnp.array(-0.1)})
    assert value == -np.inf
    grad = jax.grad(lambda m: oi.LogNormal(0.2).log_prob(1.0, m, {}))(0.9)
    assert np.isfinite(grad)


def test_bad_scales():
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="positive"):
            oi.Gaussian(bad)
    with pytest.raises(ValueError, match="positive"):
        oi.NegativeBinomial(0)
    with pytest.raises(TypeError):
        oi.LogNormal([0.1, 0.2, "a"])
    with pytest.raises(ValueError):
        oi.Gaussian()


def test_standardized_residuals():
    r = oi.Gaussian(0.5).standardized(DATA, PRED, {})
    np.testing.assert_allclose(r, (DATA - PRED) / 0.5)
    r = oi.LogNormal(0.5).standardized(DATA, PRED, {})
    np.testing.assert_allclose(r, np.log(DATA / PRED) / 0.5)
    with pytest.raises(TypeError, match="fixed"):
        oi.Gaussian("s").standardized(DATA, PRED, PARAMS)
    with pytest.raises(TypeError):
        oi.Poisson().standardized(DATA, PRED, PARAMS)


# Event-time observations: the contribution given a predicted crossing time.
CROSS = oi.Crossing(lambda t, y, p: y, 0.5)


def test_event_time_exact_right_and_interval_against_scipy():
    exact = oi.EventTimeObservation(CROSS, 1.3, oi.Gaussian(0.1))
    np.testing.assert_allclose(
        exact.log_prob(1.25, True, {}), stats.norm.logpdf(1.3, 1.25, 0.1), rtol=1e-12
    )
    assert exact.log_prob(jnp.inf, False, {}) == -np.inf
    right = oi.EventTimeObservation(
        CROSS, noise=oi.Gaussian(0.1), censoring="right", end_time=2.0
    )
    np.testing.assert_allclose(
        right.log_prob(1.9, True, {}), stats.norm.logsf(2.0, 1.9, 0.1), rtol=1e-12
    )
    assert right.log_prob(jnp.inf, False, {}) == 0.0  # not seen: probability one
    interval = oi.EventTimeObservation(
        CROSS, noise=oi.LogNormal(0.2), censoring="interval", interval=(1.0, 1.5)
    )
    expected = np.log(
        stats.lognorm.cdf(1.5, 0.2, scale=1.2) - stats.lognorm.cdf(1.0, 0.2, scale=1.2)
    )
    np.testing.assert_allclose(interval.log_prob(1.2, True, {}), expected, rtol=1e-10)
    # Far tail: no cancellation to log(0).
    far = interval.log_prob(0.2, True, {})
    assert np.isfinite(far)
    grad = jax.grad(lambda t: right.log_prob(t, True, {}))(1.9)
    np.testing.assert_allclose(
        grad, stats.norm.pdf(2.0, 1.9, 0.1) / stats.norm.sf(2.0, 1.9, 0.1)
    )
    student = oi.EventTimeObservation(
        CROSS, noise=oi.StudentT(4.0, 0.1), censoring="right", end_time=2.0
    )
    np.testing.assert_allclose(
        student.log_prob(1.9, True, {}), stats.t.logsf(2.0, 4.0, 1.9, 0.1), rtol=1e-8
    )


def test_event_time_bad_input():
    with pytest.raises(ValueError, match="end_time"):
        oi.EventTimeObservation(CROSS, noise=oi.Gaussian(0.1), censoring="right")
    with pytest.raises(ValueError, match="interval"):
        oi.EventTimeObservation(CROSS, noise=oi.Gaussian(0.1), censoring="interval")
    with pytest.raises(ValueError, match="time"):
        oi.EventTimeObservation(CROSS, noise=oi.Gaussian(0.1))
    with pytest.raises(TypeError, match="continuous"):
        oi.EventTimeObservation(CROSS, 1.0, oi.Poisson())
    with pytest.raises(ValueError, match="censoring"):
        oi.EventTimeObservation(CROSS, 1.0, oi.Gaussian(0.1), censoring="left")


# Experiments.
TIMES = np.array([0.0, 1.0, 2.0])


def test_experiment_shapes_and_masks():
    two = {"a": lambda t, y, p: y[0], "b": lambda t, y, p: y[1]}
    e = oi.Experiment(
        TIMES, np.ones((3, 2)), observables=two, noise=oi.Gaussian(1.0), y0=[1.0, 2.0]
    )
    assert e.n_observables == 2 and e.observable_names == ("a", "b")
    with pytest.raises(ValueError, match="column"):
        oi.Experiment(
            TIMES,
            np.ones((3, 3)),
            observables=two,
            noise=oi.Gaussian(1.0),
            y0=[1.0, 2.0],
        )
    with pytest.raises(ValueError, match="n_times"):
        oi.Experiment(TIMES, np.ones(4), noise=oi.Gaussian(1.0), y0=1.0)
    with pytest.raises(ValueError, match="mask"):
        oi.Experiment(TIMES, [1.0, np.nan, 2.0], noise=oi.Gaussian(1.0), y0=1.0)
    with pytest.raises(ValueError, match="mask"):
        oi.Experiment(
            TIMES, [1.0, 2.0, 2.0], noise=oi.Gaussian(1.0), y0=1.0, mask=[True, False]
        )
    with pytest.raises(ValueError, match="sorted"):
        oi.Experiment(TIMES[::-1], [1.0, 2.0, 2.0], noise=oi.Gaussian(1.0), y0=1.0)
    with pytest.raises(ValueError, match="before t0"):
        oi.Experiment(TIMES, [1.0, 2.0, 2.0], noise=oi.Gaussian(1.0), y0=1.0, t0=0.5)
    with pytest.raises(ValueError, match="y0"):
        oi.Experiment(TIMES, [1.0, 2.0, 2.0], noise=oi.Gaussian(1.0))
    with pytest.raises(TypeError, match="noise"):
        oi.Experiment(TIMES, [1.0, 2.0, 2.0], noise=0.1, y0=1.0)
    masked = oi.Experiment(
        TIMES,
        [1.0, np.nan, 2.0],
        noise=oi.Gaussian(1.0),
        y0=1.0,
        mask=[True, False, True],
    )
    assert masked.mask.tolist() == [[True], [False], [True]]
    assert np.isfinite(masked.data).all()  # placeholder, never used
    with pytest.raises(ValueError, match="non-finite"):
        oi.Experiment(
            TIMES,
            [1.0, np.nan, 2.0],
            noise=oi.Gaussian(1.0),
            y0=1.0,
            mask=[True, True, True],
        )


def test_dataframe_path_masks_missing_values():
    frame = pd.DataFrame(
        {
            "experiment": ["A", "A", "A", "B", "B", "B"],
            "time": [0.0, 1.0, 1.0, 0.5, 1.5, 2.5],
            "observable": ["x", "x", "v", "x", "v", "x"],
            "value": [1.0, 0.5, 0.2, 0.9, np.nan, 0.1],
        }
    )
    obs = {"x": lambda t, y, p: y[0], "v": lambda t, y, p: y[1]}
    experiments = oi.experiments_from_dataframe(
        frame,
        observables=obs,
        noise=oi.Gaussian(0.1),
        y0={"A": jnp.array([1.0, 0.0]), "B": jnp.array([2.0, 0.0])},
    )
    a, b = experiments
    assert (a.name, b.name) == ("A", "B")
    np.testing.assert_allclose(a.times, [0.0, 1.0])
    assert a.mask.tolist() == [[True, False], [True, True]]
    np.testing.assert_allclose(a.data[a.mask], [1.0, 0.5, 0.2])
    np.testing.assert_allclose(b.times, [0.5, 1.5, 2.5])
    assert b.mask.tolist() == [[True, False], [False, False], [True, False]]
    np.testing.assert_allclose(b.y0, [2.0, 0.0])
    single = oi.Experiment(
        data=frame[frame.experiment == "A"][["time", "observable", "value"]],
        observables=obs,
        noise=oi.Gaussian(0.1),
        y0=[1.0, 0.0],
    )
    np.testing.assert_allclose(single.data, a.data)
    with pytest.raises(ValueError, match="repeated"):
        oi.experiments_from_dataframe(
            pd.concat([frame, frame.iloc[:1]]),
            observables=obs,
            noise=oi.Gaussian(0.1),
            y0=[1.0, 0.0],
        )
    with pytest.raises(ValueError, match="not among"):
        oi.experiments_from_dataframe(
            frame, observables={"x": obs["x"]}, noise=oi.Gaussian(0.1), y0=[1.0, 0.0]
        )
    with pytest.raises(ValueError, match="lacks"):
        oi.experiments_from_dataframe(
            frame.drop(columns="value"),
            observables=obs,
            noise=oi.Gaussian(0.1),
            y0=[1.0, 0.0],
        )
