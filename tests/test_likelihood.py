import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import odeinfer as oi

DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
TIMES = np.linspace(0.5, 4.0, 8)
DATA = 2.0 * np.exp(-0.7 * TIMES) + 0.01 * np.random.default_rng(0).normal(size=8)
SPACE = oi.Parameters(
    {"k": oi.Positive(0.5), "A": oi.Real(1.0), "sigma": oi.Positive(0.01)}
)
PARAMS = {"k": 0.7, "A": 2.0, "sigma": 0.02}


def _exact(p):
    return p["A"] * np.exp(-p["k"] * TIMES)


@pytest.fixture(scope="module")
def problem():
    experiment = oi.Experiment(
        TIMES, DATA, noise=oi.Gaussian("sigma"), y0=lambda p: p["A"], name="decay"
    )
    return oi.Problem(DECAY, experiment, SPACE)


def test_value_matches_scipy(problem):
    value = oi.log_likelihood(problem, PARAMS)
    expected = stats.norm.logpdf(DATA, _exact(PARAMS), PARAMS["sigma"]).sum()
    assert np.isclose(value, expected, rtol=1e-7)


def test_gradient_matches_closed_form(problem):
    grad = jax.grad(lambda p: oi.log_likelihood(problem, p))(PARAMS)
    closed = jax.grad(
        lambda p: jnp.sum(
            jax.scipy.stats.norm.logpdf(
                DATA, p["A"] * jnp.exp(-p["k"] * TIMES), p["sigma"]
            )
        )
    )(PARAMS)
    for name in PARAMS:
        assert np.isclose(grad[name], closed[name], rtol=1e-6), name


def test_failed_solve_gives_minus_inf(problem):
    """k = 1e7 makes the decay stiff: the explicit solver runs out of steps (-inf,
    not ok); the default FusedAuto switches to Rodas5P and gets the closed form."""
    explicit = oi.Problem(DECAY, problem.experiments, SPACE, solver=oi.FusedDopri5())
    value = oi.log_likelihood(explicit, {**PARAMS, "k": 1e7})
    (simulation,) = oi.simulate(explicit, {**PARAMS, "k": 1e7})
    assert value == -jnp.inf and not bool(simulation.ok)
    assert simulation.result == oi.RESULTS.looks_stiff  # the reason, as a code
    value = oi.log_likelihood(problem, {**PARAMS, "k": 1e7})
    ok = jnp.stack([s.ok for s in oi.simulate(problem, {**PARAMS, "k": 1e7})])
    expected = stats.norm.logpdf(DATA, _exact({**PARAMS, "k": 1e7}), 0.02).sum()
    assert bool(ok.all()) and np.isclose(value, expected, rtol=1e-9)


def test_vmap_over_unconstrained(problem):
    u = SPACE.to_unconstrained(PARAMS)
    us = jnp.stack([u, u + 0.1])
    values = jax.vmap(
        lambda u_: oi.log_likelihood(problem, SPACE.from_unconstrained(u_))
    )(us)
    for row, u_ in zip(values, us, strict=True):
        p = {k: float(v) for k, v in SPACE.from_unconstrained(u_).items()}
        assert np.isclose(
            row, stats.norm.logpdf(DATA, _exact(p), p["sigma"]).sum(), rtol=1e-7
        )


def test_residuals_and_forward_hessian():
    experiment = oi.Experiment(TIMES, DATA, noise=oi.Gaussian(0.01), y0=2.0)
    problem = oi.Problem(
        DECAY, experiment, {"k": oi.Positive(0.5)}, adjoint=diffrax.ForwardMode()
    )
    r = oi.residuals(problem, {"k": 0.7})
    np.testing.assert_allclose(r, (DATA - 2.0 * np.exp(-0.7 * TIMES)) / 0.01, atol=1e-5)

    def closed(k):
        return jnp.sum(
            jax.scipy.stats.norm.logpdf(DATA, 2.0 * jnp.exp(-k * TIMES), 0.01)
        )

    hess = jax.jacfwd(jax.jacfwd(lambda k: oi.log_likelihood(problem, {"k": k})))(0.7)
    assert np.isclose(hess, jax.hessian(closed)(0.7), rtol=1e-5)


def test_unknown_and_missing_names(problem):
    with pytest.raises(ValueError, match="unknown"):
        oi.log_likelihood(problem, {**PARAMS, "kk": 1.0})
    with pytest.raises(ValueError, match="missing"):
        oi.log_likelihood(problem, {"k": 0.7, "A": 2.0})


def test_experiments_overrides_masks_and_lognormal():
    data2 = np.array([1.5, 0.9, np.nan, 0.35])
    times2 = np.array([0.5, 1.0, 2.0, 3.0])
    first = oi.Experiment(TIMES, DATA, noise=oi.Gaussian("sigma"), y0=lambda p: p["A"])
    second = oi.Experiment(
        times2,
        data2,
        noise=oi.LogNormal(0.1),
        y0=3.0,
        overrides={"k": "k2"},
        mask=np.isfinite(data2),
        name="second",
    )
    space = oi.Parameters({**SPACE.specs, "k2": oi.Positive(0.4)})
    problem = oi.Problem(DECAY, [first, second], space)
    params = {**PARAMS, "k2": 0.5}
    value = oi.log_likelihood(problem, params)
    ok = jnp.stack([s.ok for s in oi.simulate(problem, params)])
    seen = np.isfinite(data2)
    expected = (
        stats.norm.logpdf(DATA, _exact(PARAMS), 0.02).sum()
        + stats.lognorm.logpdf(
            data2[seen], 0.1, scale=3.0 * np.exp(-0.5 * times2[seen])
        ).sum()
    )
    assert (
        np.isclose(value, expected, rtol=1e-7) and ok.shape == (2,) and bool(ok.all())
    )
    simulations = oi.simulate(problem, params)
    np.testing.assert_allclose(
        simulations[1].observables[:, 0], 3.0 * np.exp(-0.5 * times2), rtol=1e-7
    )


SPRING = oi.ODEModel(lambda t, y, p: jnp.stack([y[1], -p["k"] * y[0]]), name="spring")


def _spring_time(level, k):
    return np.arccos(level) / np.sqrt(k)  # first crossing of y0 = cos(sqrt(k) t)


@pytest.fixture(scope="module")
def spring_problem():
    position = lambda t, y, p: y[0]  # noqa: E731
    events = [
        oi.EventTimeObservation(oi.Crossing(position, 0.5), 0.50, oi.Gaussian(0.01)),
        oi.EventTimeObservation(
            oi.Crossing(position, -0.5),
            noise=oi.Gaussian("tau"),
            censoring="right",
            end_time=1.0,
        ),
    ]
    experiment = oi.Experiment(
        [0.2, 0.4],
        [0.9, 0.7],
        observables=position,
        noise=oi.Gaussian(0.05),
        y0=jnp.array([1.0, 0.0]),
        event_times=events,
        name="spring",
    )
    space = oi.Parameters({"k": oi.Positive(3.0), "tau": oi.Positive(0.05)})
    # Forward mode: cheaper to compile than reverse mode through several solves.
    return oi.Problem(SPRING, experiment, space, adjoint=diffrax.ForwardMode())


def test_event_time_likelihood_against_scipy_and_gradients(spring_problem):
    params = {"k": 4.2, "tau": 0.05}
    k = params["k"]
    expected = (
        stats.norm.logpdf(
            [0.9, 0.7], np.cos(np.sqrt(k) * np.array([0.2, 0.4])), 0.05
        ).sum()
        + stats.norm.logpdf(0.50, _spring_time(0.5, k), 0.01)
        + stats.norm.logsf(1.0, _spring_time(-0.5, k), 0.05)
    )
    value = oi.log_likelihood(spring_problem, params)
    assert np.isclose(value, expected, rtol=1e-7)
    # Autodiff through the event times against central finite differences.
    report = oi.check_gradients(
        lambda p: oi.log_likelihood(spring_problem, p),
        params,
        mode="forward",
        jit=False,
    )
    assert report.ok, str(report)
    assert np.all(report.error < 1e-6)


def test_problem_bad_input():
    experiment = oi.Experiment(TIMES, DATA, noise=oi.Gaussian("noise_sd"), y0=2.0)
    with pytest.raises(ValueError, match="noise_sd"):
        oi.Problem(DECAY, experiment, {"k": oi.Positive(1.0)})
    with pytest.raises(ValueError, match="positive"):
        oi.Problem(
            DECAY, experiment, {"k": oi.Positive(1.0), "noise_sd": oi.Fixed(0.0)}
        )
    two_columns = oi.Experiment(
        TIMES,
        np.ones((8, 2)),
        observables=lambda t, y, p: y,
        noise=oi.Gaussian(0.1),
        y0=2.0,
    )
    with pytest.raises(ValueError, match="data columns"):
        oi.Problem(DECAY, two_columns, {"k": oi.Positive(1.0)})
    override = oi.Experiment(
        TIMES, DATA, noise=oi.Gaussian(0.1), y0=2.0, overrides={"k": "kk"}
    )
    with pytest.raises(ValueError, match="kk"):
        oi.Problem(DECAY, override, {"k": oi.Positive(1.0)})
    with pytest.raises(TypeError, match="residuals"):
        oi.residuals(
            oi.Problem(DECAY, experiment, {"k": 1.0, "noise_sd": oi.Positive(0.1)}),
            {"noise_sd": 0.1},
        )
