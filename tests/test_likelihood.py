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
SPACE = oi.Parameters({"k": oi.Positive(0.5), "A": oi.Real(1.0), "sigma": oi.Positive(0.01)})
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
            jax.scipy.stats.norm.logpdf(DATA, p["A"] * jnp.exp(-p["k"] * TIMES), p["sigma"])
        )
    )(PARAMS)
    for name in PARAMS:
        assert np.isclose(grad[name], closed[name], rtol=1e-6), name


def test_failed_solve_gives_minus_inf(problem):
    value, ok = oi.log_likelihood(problem, {**PARAMS, "k": 1e7}, with_status=True)
    assert value == -jnp.inf and not bool(ok.all())


def test_vmap_over_unconstrained(problem):
    u = SPACE.to_unconstrained(PARAMS)
    us = jnp.stack([u, u + 0.1])
    values = jax.vmap(lambda u_: oi.log_likelihood(problem, SPACE.from_unconstrained(u_)))(us)
    for row, u_ in zip(values, us):
        p = {k: float(v) for k, v in SPACE.from_unconstrained(u_).items()}
        assert np.isclose(row, stats.norm.logpdf(DATA, _exact(p), p["sigma"]).sum(), rtol=1e-7)


def test_residuals_and_forward_hessian():
    experiment = oi.Experiment(TIMES, DATA, noise=oi.Gaussian(0.01), y0=2.0)
    problem = oi.Problem(
        DECAY, experiment, {"k": oi.Positive(0.5)}, adjoint=diffrax.ForwardMode()
    )
    r = oi.residuals(problem, {"k": 0.7})
    np.testing.assert_allclose(r, (DATA - 2.0 * np.exp(-0.7 * TIMES)) / 0.01, atol=1e-5)

    def closed(k):
        return jnp.sum(jax.scipy.stats.norm.logpdf(DATA, 2.0 * jnp.exp(-k * TIMES), 0.01))

    hess = jax.jacfwd(jax.jacfwd(lambda k: oi.log_likelihood(problem, {"k": k})))(0.7)
    assert np.isclose(hess, jax.hessian(closed)(0.7), rtol=1e-5)


def test_unknown_and_missing_names(problem):
    with pytest.raises(ValueError, match="unknown"):
        oi.log_likelihood(problem, {**PARAMS, "kk": 1.0})
    with pytest.raises(ValueError, match="missing"):
        oi.log_likelihood(problem, {"k": 0.7, "A": 2.0})
