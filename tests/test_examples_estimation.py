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


def _sir_log_likelihood_scipy(params: dict) -> float:
    """posteriordb's SIR log-likelihood, independently: scipy LSODA at rtol 1e-11 and
    scipy.stats densities (the example uses odeinfer's solve and numpyro's)."""
    import json

    from scipy import stats
    from scipy.integrate import solve_ivp

    data = json.loads((EXAMPLES / "data" / "sir.json").read_text())
    beta, gamma, xi, delta = (params[n] for n in ("beta", "gamma", "xi", "delta"))

    def rhs(t, y):
        s, i, _, b = y
        infection = beta * b / (b + 1e6) * s
        return [-infection, infection - gamma * i, gamma * i, xi * i - delta * b]

    ts = np.asarray(data["t"], float)
    sol = solve_ivp(
        rhs,
        (0.0, ts[-1]),
        data["y0"],
        method="LSODA",
        t_eval=ts,
        rtol=1e-11,
        atol=1e-9,
    )
    s = np.concatenate([[data["y0"][0]], sol.y[0]])
    cases = stats.poisson.logpmf(data["stoi_hat"], s[:-1] - s[1:]).sum()
    bacteria = stats.lognorm.logpdf(data["B_hat"], 0.15, scale=sol.y[3]).sum()
    return float(cases + bacteria)


def test_sir_custom_likelihood_map():
    # Fit only (the default of the example); NUTS in the slow test below.
    fit, posterior = _main("sir_custom_likelihood.py")([])
    assert bool(fit.successful) and posterior is None
    params = {n: float(v) for n, v in fit.params.items()}
    np.testing.assert_allclose(
        float(fit.log_likelihood), _sir_log_likelihood_scipy(params), rtol=1e-7
    )
    # A MAP: the gradient of the log posterior vanishes (unconstrained scale).
    assert float(np.max(np.abs(np.asarray(fit.gradient)))) < 1e-3


@pytest.mark.slow
def test_sir_custom_likelihood_nuts_from_the_map():
    fit, posterior = _main("sir_custom_likelihood.py")(
        ["--nuts", "--num-warmup", "300", "--num-samples", "300", "--num-chains", "2"]
    )
    summary = posterior.summary()
    assert float(summary["r_hat"].max()) < 1.05, summary
    # The posterior is concentrated: its means lie within 3 posterior sd of the MAP.
    for name in fit.names:
        mean, sd = summary.loc[name, "mean"], summary.loc[name, "sd"]
        assert abs(mean - float(fit.params[name])) < 3 * sd, (name, mean, sd)
