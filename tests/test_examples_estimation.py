"""The estimation examples, run with tiny settings; each checks its own answer against a
known truth (simulated data) or a closed form."""

import pathlib
import runpy

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def _main(name):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]


@pytest.mark.slow  # compile-heavy: kept out of the default suite's time budget
def test_lynx_hare_fit():
    fit, multi = _main("lynx_hare_fit.py")(["--n-starts", "2", "--sigma", "0.25"])
    assert bool(fit.successful)
    # posteriordb's posterior means are alpha ≈ 0.55, beta ≈ 0.028 (Carpenter 2018).
    assert 0.4 < float(fit.estimates["alpha"]) < 0.7
    assert 0.015 < float(fit.estimates["beta"]) < 0.04
    assert multi.num_converged >= 1


@pytest.mark.slow  # compile-heavy: kept out of the default suite's time budget
def test_spring_event_time_fit():
    fit = _main("spring_event_time_fit.py")(["--heights", "0.7", "0.6"])
    lo, hi = fit.intervals()["k"]
    assert lo <= 30.0 <= hi and hi - lo < 2.0


@pytest.mark.slow
def test_pk_censored_fit():
    fit, censored = _main("pk_censored_fit.py")(
        ["--subjects", "3", "--follow-up", "12"]
    )
    assert censored >= 1 and bool(fit.successful)
    assert abs(float(fit.estimates["ke"]) - 0.15) < 0.05


@pytest.mark.slow  # compile-heavy; its gradient and order-2 checks also run in
# tests/test_integrals.py (default tier)
def test_integral_model_fit():
    fit, gradient_error, orders = _main("integral_model_fit.py")(["--n-times", "8"])
    assert gradient_error < 1e-5
    np.testing.assert_allclose(orders, 2.0, atol=0.05)
    assert abs(float(fit.estimates["a11"]) + 0.5) < 0.05
