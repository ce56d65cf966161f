import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optimistix as optx
import pytest
from _decay import TRUE, clean_data, closed_form_log_likelihood, noisy_data, problem
from scipy import optimize

import odeinfer as oi


@pytest.fixture(scope="module")
def noisy():
    data = noisy_data(0)
    return data, oi.fit(problem(data))


def _fd_hessian(f, x, h=1e-4):
    """Central finite-difference Hessian in float64."""
    n = len(x)
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            ei, ej = np.eye(n)[i] * h, np.eye(n)[j] * h
            hess[i, j] = (
                f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            ) / (4 * h * h)
    return hess


def test_noise_free_recovery():
    result = oi.fit(problem(clean_data()))
    assert bool(result.successful)
    assert result.solver == "LevenbergMarquardt"
    for name, value in TRUE.items():
        assert abs(float(result.estimates[name]) - value) < 1e-6


def test_log_likelihood_matches_scipy_optimum(noisy):
    data, result = noisy
    reference = optimize.minimize(
        lambda x: -closed_form_log_likelihood(x[0], x[1], data),
        x0=[1.0, 1.0],
        method="Nelder-Mead",
        options=dict(xatol=1e-10, fatol=1e-12, maxiter=4000),
    )
    assert float(result.log_likelihood) == pytest.approx(-reference.fun, abs=1e-6)
    np.testing.assert_allclose(
        [float(result.estimates["a"]), float(result.estimates["k"])],
        reference.x,
        rtol=1e-5,
    )
    assert float(result.log_likelihood) == pytest.approx(
        closed_form_log_likelihood(
            float(result.estimates["a"]), float(result.estimates["k"]), data
        ),
        abs=1e-7,
    )


def test_laplace_standard_errors_match_finite_difference_hessian(noisy):
    data, result = noisy
    x = np.array([float(result.estimates["a"]), float(result.estimates["k"])])
    hess = _fd_hessian(lambda z: -closed_form_log_likelihood(z[0], z[1], data), x)
    cov = np.linalg.inv(hess)
    np.testing.assert_allclose(np.asarray(result.covariance), cov, rtol=1e-4)
    se = np.sqrt(np.diag(cov))
    assert float(result.standard_errors["a"]) == pytest.approx(se[0], rel=1e-4)
    assert float(result.standard_errors["k"]) == pytest.approx(se[1], rel=1e-4)
    corr = cov[0, 1] / (se[0] * se[1])
    assert float(result.correlation[0, 1]) == pytest.approx(corr, rel=1e-4)
    assert np.all(np.abs(np.asarray(result.gradient)) < 1e-4)
    assert "std. error" in result.summary()


def test_fisher_information_is_gauss_newton(noisy):
    data, _ = noisy
    result = oi.fit(problem(data), information="fisher")
    a, k = float(result.estimates["a"]), float(result.estimates["k"])
    t = problem(data).experiments[0].times
    t = np.asarray(t)
    # Jacobian of the standardised residuals (data - a e^{-kt}) / sigma, closed form.
    jac = -np.stack([np.exp(-k * t), -a * t * np.exp(-k * t)], axis=1) / 0.05
    cov = np.linalg.inv(jac.T @ jac)
    np.testing.assert_allclose(np.asarray(result.covariance), cov, rtol=1e-6)


def test_map_with_priors_matches_scipy(noisy):
    data, _ = noisy
    priors = {"k": dist.LogNormal(jnp.log(0.3), 0.1)}
    result = oi.fit(problem(data), priors=priors)
    assert result.method == "map" and result.solver == "BFGS"

    def negative_log_posterior(x):
        a, k = x
        if k <= 0:
            return np.inf
        prior = float(dist.LogNormal(np.log(0.3), 0.1).log_prob(k))
        return -closed_form_log_likelihood(a, k, data) - prior

    reference = optimize.minimize(
        negative_log_posterior,
        x0=[2.0, 0.5],
        method="Nelder-Mead",
        options=dict(xatol=1e-10, fatol=1e-12, maxiter=4000),
    )
    np.testing.assert_allclose(
        [float(result.estimates["a"]), float(result.estimates["k"])],
        reference.x,
        rtol=1e-5,
    )
    assert float(result.log_posterior) == pytest.approx(-reference.fun, abs=1e-6)


def _coverage(seeds):
    hits = {name: 0 for name in TRUE}
    for seed in seeds:
        result = oi.fit(problem(noisy_data(seed)))
        for name, (lo, hi) in result.intervals(0.95).items():
            hits[name] += lo <= TRUE[name] <= hi
    return {name: count / len(seeds) for name, count in hits.items()}


def test_interval_coverage_few_seeds():
    coverage = _coverage(range(1, 7))
    assert all(c >= 4 / 6 for c in coverage.values()), coverage


@pytest.mark.slow
def test_interval_coverage_many_seeds():
    coverage = _coverage(range(100, 200))
    # Binomial(100, 0.95): 0.89 is about 2.8 standard deviations below.
    assert all(0.89 <= c <= 1.0 for c in coverage.values()), coverage


def test_bad_input():
    p = problem(clean_data())
    with pytest.raises(ValueError, match="outside the support"):
        oi.fit(p, init={"a": 7.0})
    with pytest.raises(ValueError, match="outside the support"):
        oi.fit(p, init={"k": -1.0})
    with pytest.raises(ValueError, match="unknown or fixed"):
        oi.fit(p, init={"b": 1.0})
    with pytest.raises(ValueError, match="unknown or fixed"):
        oi.fit(p, priors={"b": dist.Normal(0, 1)})
    with pytest.raises(TypeError, match="log_prob"):
        oi.fit(p, priors={"k": 3.0})
    with pytest.raises(TypeError, match="optimistix"):
        oi.fit(p, solver="lm")
    with pytest.raises(ValueError, match="priors"):
        oi.fit(
            p,
            priors={"k": dist.LogNormal(0, 1)},
            solver=optx.LevenbergMarquardt(1e-8, 1e-8),
        )
    with pytest.raises(ValueError, match="information"):
        oi.fit(p, information="observed")
