import numpy as np
import numpyro.distributions as dist
import pytest
from _decay import closed_form_log_likelihood, noisy_data, problem
from scipy import optimize

import odeinfer as oi


def test_profile_likelihood_and_interval():
    # One test (not several sharing a fixture) so that pytest-xdist compiles once.
    data = noisy_data(3)
    p = problem(data)
    result = oi.fit(p)
    prof = oi.profile(p, result, "k", n_points=8)
    _check_close_to_laplace(result, prof)
    _check_matches_closed_form_profile(data, result, prof)
    _check_interval_ends_at_threshold(data, prof)
    with pytest.raises(ValueError, match="free parameter"):
        oi.profile(p, result, "b")
    with pytest.raises(ValueError, match="level"):
        oi.profile(p, result, "k", level=1.5)
    with pytest.raises(ValueError, match="priors"):
        oi.profile(p, result, "k", priors={"k": dist.LogNormal(0.0, 1.0)})


def _check_close_to_laplace(result, prof):
    # Near-Gaussian case (40 points, small noise): LR and Wald intervals nearly agree.
    lo, hi = prof.interval
    wald_lo, wald_hi = result.intervals(0.95)["k"]
    width = wald_hi - wald_lo
    assert abs(lo - wald_lo) < 0.05 * width and abs(hi - wald_hi) < 0.05 * width
    assert lo < float(result.estimates["k"]) < hi
    assert prof.threshold == pytest.approx(3.841458820694124)


def _check_matches_closed_form_profile(data, result, prof):
    assert np.all(np.diff(prof.values) > 0)
    assert np.all(prof.converged)
    for k, value in zip(prof.values[::4], prof.log_objective[::4], strict=True):
        # Profile out `a` for this k with scipy on the closed-form likelihood.
        best = optimize.minimize_scalar(
            lambda a, k=k: -closed_form_log_likelihood(a, k, data),
            bounds=(0.01, 4.99),
            method="bounded",
            options=dict(xatol=1e-10),
        )
        assert value == pytest.approx(-best.fun, abs=1e-6)
    assert np.all(prof.deviance >= -1e-9)
    assert prof.values[np.argmin(prof.deviance)] == pytest.approx(
        float(result.estimates["k"])
    )
    assert "likelihood-ratio interval" in prof.summary()


def _check_interval_ends_at_threshold(data, prof):
    for end in prof.interval:
        best = optimize.minimize_scalar(
            lambda a, end=end: -closed_form_log_likelihood(a, end, data),
            bounds=(0.01, 4.99),
            method="bounded",
            options=dict(xatol=1e-10),
        )
        deviance = 2 * (prof.max_log_objective + best.fun)
        assert deviance == pytest.approx(prof.threshold, abs=2e-3)
