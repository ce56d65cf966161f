import numpy as np
import odeinfer as oi
import pytest
from _decay import TIMES, closed_form_log_likelihood, noisy_data, problem
from scipy import optimize


@pytest.fixture(scope="module")
def profiled():
    data = noisy_data(3)
    p = problem(data)
    result = oi.fit(p)
    return data, p, result, oi.profile(p, result, "k", n_points=8)


def test_profile_interval_close_to_laplace_on_near_gaussian_case(profiled):
    _, _, result, prof = profiled
    lo, hi = prof.interval
    wald_lo, wald_hi = result.intervals(0.95)["k"]
    width = wald_hi - wald_lo
    assert abs(lo - wald_lo) < 0.05 * width and abs(hi - wald_hi) < 0.05 * width
    assert lo < float(result.estimates["k"]) < hi
    assert prof.threshold == pytest.approx(3.841458820694124)


def test_profile_values_match_closed_form_profile(profiled):
    data, _, result, prof = profiled
    assert np.all(np.diff(prof.values) > 0)
    assert np.all(prof.converged)
    for k, value in zip(prof.values[::4], prof.log_objective[::4], strict=True):
        # Profile out `a` for this k with scipy on the closed-form likelihood.
        best = optimize.minimize_scalar(
            lambda a, k=k: -closed_form_log_likelihood(a, k, data),
            bounds=(0.01, 4.99), method="bounded", options=dict(xatol=1e-10),
        )
        assert value == pytest.approx(-best.fun, abs=1e-6)
    assert np.all(prof.deviance >= -1e-9)
    assert prof.values[np.argmin(prof.deviance)] == pytest.approx(float(result.estimates["k"]))
    assert "likelihood-ratio interval" in prof.summary()
    del TIMES


def test_interval_ends_are_at_the_threshold(profiled):
    data, _, _, prof = profiled
    for end in prof.interval:
        best = optimize.minimize_scalar(
            lambda a: -closed_form_log_likelihood(a, end, data),
            bounds=(0.01, 4.99), method="bounded", options=dict(xatol=1e-10),
        )
        deviance = 2 * (prof.max_log_objective + best.fun)
        assert deviance == pytest.approx(prof.threshold, abs=2e-3)


def test_bad_input(profiled):
    _, p, result, _ = profiled
    with pytest.raises(ValueError, match="free parameter"):
        oi.profile(p, result, "b")
    with pytest.raises(ValueError, match="level"):
        oi.profile(p, result, "k", level=1.5)
    with pytest.raises(ValueError, match="priors"):
        import numpyro.distributions as dist

        oi.profile(p, result, "k", priors={"k": dist.LogNormal(0.0, 1.0)})
