"""Bad input to `fit`, `multistart` and `profile`: a clear exception naming the argument
(checked before any compilation), or a documented result (`FitResult.solve_ok`,
`MultistartResult.solve_failed`, `ProfileResult.solve_failed`) — never a silent success
where the log-likelihood is `-inf`. Issue 12."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optimistix as optx
import pytest

import odeinfer as oi

DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
TIMES = np.array([0.5, 1.0, 2.0, 3.0])
DATA = 2.0 * np.exp(-0.7 * TIMES)
# `k` is not the first parameter: messages must name it, not the first one.
SPACE = {"A": oi.Real(1.5), "k": oi.Positive(0.5), "g": oi.Fixed(1.0)}


def _gaussian_log_likelihood(p):
    """Independent normals: k ~ N(2, 0.1), a ~ N(-1, 0.5) (closed-form answers)."""
    return -0.5 * ((p["k"] - 2.0) / 0.1) ** 2 - 0.5 * ((p["a"] + 1.0) / 0.5) ** 2


# Not in sorted order on purpose (JAX flattens dicts by sorted key).
CALLABLE_SPACE = {"k": oi.Positive(1.0), "a": oi.Real(0.0)}


@pytest.fixture(scope="module")
def problem():
    experiment = oi.Experiment(
        TIMES, DATA, noise=oi.Gaussian(0.1), y0=lambda p: p["A"], name="decay"
    )
    # max_steps small enough that k = 1e6 fails (explicit solver, stiff decay).
    return oi.Problem(DECAY, experiment, SPACE, max_steps=64)


@pytest.fixture(scope="module")
def problem_fit(problem):
    return oi.fit(problem)


@pytest.fixture(scope="module")
def callable_fit():
    return oi.fit(_gaussian_log_likelihood, parameters=CALLABLE_SPACE)


FIT_CASES = [
    ("problem number", dict(problem=42), TypeError, "`problem` must be an oi.Problem"),
    (
        "callable without parameters",
        dict(problem=_gaussian_log_likelihood),
        TypeError,
        "pass `parameters=`",
    ),
    (
        "parameters with a Problem",
        dict(parameters=CALLABLE_SPACE),
        ValueError,
        "`parameters` is only for a plain log-likelihood",
    ),
    (
        "bad parameters",
        dict(problem=_gaussian_log_likelihood, parameters={"k": "positive"}),
        TypeError,
        "`k` must be oi.Real",
    ),
    ("init list", dict(init=[1.0, 2.0]), TypeError, "`init` must be a dict"),
    ("init unknown", dict(init={"B": 1.0}), ValueError, r"`init` names unknown.*'B'"),
    ("init fixed", dict(init={"g": 2.0}), ValueError, r"`init` names unknown.*'g'"),
    (
        "init k=-1",
        dict(init={"k": -1.0}),
        ValueError,
        r"`init\['k'\]` = -1.0 is outside",
    ),
    ("init k=0", dict(init={"k": 0.0}), ValueError, r"`init\['k'\]` = 0.0 is outside"),
    ("init nan", dict(init={"A": np.nan}), ValueError, r"`init\['A'\]` = nan"),
    ("init inf", dict(init={"k": np.inf}), ValueError, r"`init\['k'\]` = inf"),
    (
        "init shape",
        dict(init={"k": [1.0, 2.0]}),
        ValueError,
        r"`init\['k'\]` has shape",
    ),
    (
        "init string",
        dict(init={"k": "fast"}),
        TypeError,
        r"`init\['k'\]` must be a number",
    ),
    ("priors list", dict(priors=[1.0]), TypeError, "`priors` must be a dict"),
    ("prior number", dict(priors={"k": 3.0}), TypeError, r"`priors\['k'\]` must be a"),
    (
        "prior unknown",
        dict(priors={"B": dist.Normal(0, 1)}),
        ValueError,
        r"`priors` names unknown.*'B'",
    ),
    ("solver string", dict(solver="bfgs"), TypeError, "`solver` must be an optimistix"),
    (
        "LM with priors",
        dict(
            solver=optx.LevenbergMarquardt(rtol=1e-6, atol=1e-6),
            priors={"k": dist.LogNormal(0.0, 1.0)},
        ),
        ValueError,
        "cannot include `priors`",
    ),
    (
        "LM on a function",
        dict(
            problem=_gaussian_log_likelihood,
            parameters=CALLABLE_SPACE,
            solver=optx.LevenbergMarquardt(rtol=1e-6, atol=1e-6),
        ),
        ValueError,
        "needs standardised residuals",
    ),
    ("information", dict(information="observed"), ValueError, "`information` must be"),
    (
        "fisher on a function",
        dict(
            problem=_gaussian_log_likelihood,
            parameters=CALLABLE_SPACE,
            information="fisher",
        ),
        ValueError,
        '`information="fisher"` needs Gaussian',
    ),
    ("rtol 0", dict(rtol=0.0), ValueError, "`rtol` must be a positive"),
    ("atol negative", dict(atol=-1e-8), ValueError, "`atol` must be a positive"),
    ("rtol nan", dict(rtol=np.nan), ValueError, "`rtol` must be a positive"),
    ("rtol string", dict(rtol="tight"), ValueError, "`rtol` must be a positive"),
    ("max_steps 0", dict(max_steps=0), ValueError, "`max_steps` must be a positive"),
    ("max_steps float", dict(max_steps=2.5), ValueError, "`max_steps` must be a"),
    ("throw string", dict(throw="yes"), TypeError, "`throw` must be True or False"),
]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [case[1:] for case in FIT_CASES],
    ids=[case[0] for case in FIT_CASES],
)
def test_fit_rejects(problem, kwargs, error, match):
    kwargs = dict(kwargs)
    target = kwargs.pop("problem", problem)
    with pytest.raises(error, match=match):
        oi.fit(target, **kwargs)


MULTISTART_CASES = [
    ("key string", dict(key="seed"), TypeError, "`key` must be a jax.random key"),
    ("key float", dict(key=1.5), TypeError, "`key` must be a jax.random key"),
    ("key bool", dict(key=True), TypeError, "`key` must be a jax.random key"),
    ("key array", dict(key=jnp.zeros(3)), TypeError, "`key` must be a jax.random"),
    ("n_starts 0", dict(n_starts=0), ValueError, "`n_starts` must be a positive"),
    ("n_starts float", dict(n_starts=2.5), ValueError, "`n_starts` must be"),
    ("spread 0", dict(spread=0.0), ValueError, "`spread` must be a positive"),
    ("spread nan", dict(spread=np.nan), ValueError, "`spread` must be a positive"),
    ("from_priors", dict(from_priors=True), ValueError, "`from_priors=True` needs"),
    ("init k=-1", dict(init={"k": -1.0}), ValueError, r"`init\['k'\]` = -1.0"),
    ("max_steps", dict(max_steps=-3), ValueError, "`max_steps` must be a positive"),
    (
        "callable without parameters",
        dict(problem=_gaussian_log_likelihood),
        TypeError,
        "pass `parameters=`",
    ),
]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [case[1:] for case in MULTISTART_CASES],
    ids=[case[0] for case in MULTISTART_CASES],
)
def test_multistart_rejects(problem, kwargs, error, match):
    kwargs = {"key": 0, "n_starts": 3, **kwargs}
    target = kwargs.pop("problem", problem)
    n_starts = kwargs.pop("n_starts")
    with pytest.raises(error, match=match):
        oi.multistart(target, n_starts, **kwargs)


PROFILE_CASES = [
    ("fit_result dict", dict(fit_result={"k": 0.7}), TypeError, "`fit_result` must be"),
    ("name unknown", dict(name="B"), ValueError, "`name` must be a free parameter"),
    ("name fixed", dict(name="g"), ValueError, "`name` must be a free parameter"),
    ("name number", dict(name=1), ValueError, "`name` must be a free parameter"),
    ("level 1.5", dict(level=1.5), ValueError, r"`level` must lie in \(0, 1\)"),
    ("level 0", dict(level=0.0), ValueError, r"`level` must lie in \(0, 1\)"),
    ("n_points 1", dict(n_points=1), ValueError, "`n_points` must be an integer >= 2"),
    ("n_points float", dict(n_points=4.5), ValueError, "`n_points` must be an integer"),
    ("span 0", dict(span=0.0), ValueError, "`span` must be a positive"),
    ("span inf", dict(span=np.inf), ValueError, "`span` must be a positive"),
    (
        "priors not used in the fit",
        dict(priors={"k": dist.LogNormal(0.0, 1.0)}),
        ValueError,
        "Pass the same `priors`",
    ),
    ("rtol", dict(rtol=-1.0), ValueError, "`rtol` must be a positive"),
    (
        "another problem's fit",
        dict(fit_result="callable"),
        ValueError,
        "`fit_result` does not belong to `problem`",
    ),
]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [case[1:] for case in PROFILE_CASES],
    ids=[case[0] for case in PROFILE_CASES],
)
def test_profile_rejects(problem, problem_fit, callable_fit, kwargs, error, match):
    kwargs = {"fit_result": problem_fit, "name": "k", **kwargs}
    if isinstance(kwargs["fit_result"], str):
        kwargs["fit_result"] = callable_fit
    with pytest.raises(error, match=match):
        oi.profile(problem, kwargs.pop("fit_result"), kwargs.pop("name"), **kwargs)


# Results: estimation never reports success where the log-likelihood is -inf.
def test_fit_recovers_truth(problem_fit):
    # Noise-free data: the MLE is the truth, and the log-likelihood is the constant.
    assert bool(problem_fit.successful) and bool(problem_fit.solve_ok)
    assert np.isclose(problem_fit.params["k"], 0.7, rtol=1e-6)
    assert np.isclose(problem_fit.params["A"], 2.0, rtol=1e-6)
    constant = -len(TIMES) * np.log(0.1 * np.sqrt(2 * np.pi))
    assert np.isclose(problem_fit.log_likelihood, constant, rtol=1e-8)
    assert problem_fit.message == "converged"


@pytest.mark.parametrize("solver", [None, optx.BFGS(rtol=1e-6, atol=1e-6)])
def test_fit_from_failing_start_names_the_point(problem, solver):
    with pytest.raises(
        oi.FitError,
        match=r"the ODE solve failed at the starting point θ = \{A: 1.5, k: 1e\+06\}",
    ) as error:
        oi.fit(problem, init={"k": 1e6}, solver=solver)
    # The error carries the failed result (one convention: the result, its code).
    assert isinstance(error.value, RuntimeError)
    assert isinstance(error.value.result, oi.FitResult)
    assert not bool(error.value.result.solve_ok)


def test_fit_from_failing_start_result_code(problem):
    result = oi.fit(problem, init={"k": 1e6}, throw=False)
    assert not bool(result.successful) and not bool(result.solve_ok)
    assert result.log_likelihood == -np.inf
    assert "starting point" in result.message and "NOT OK" in result.summary()


def test_fit_callable_matches_closed_form(callable_fit):
    # Unsorted parameter order; the log-likelihood is an exact quadratic.
    assert callable_fit.names == ("k", "a") and bool(callable_fit.successful)
    assert np.isclose(callable_fit.params["k"], 2.0, atol=1e-6)
    assert np.isclose(callable_fit.params["a"], -1.0, atol=1e-6)
    se = callable_fit.standard_errors
    assert np.isclose(se["k"], 0.1, rtol=1e-4) and np.isclose(se["a"], 0.5, rtol=1e-4)


def test_fit_callable_failure_is_reported():
    def cliff(p):  # -inf beyond k = 3, where this fit starts
        return jnp.where(p["k"] < 3.0, _gaussian_log_likelihood(p), -jnp.inf)

    result = oi.fit(
        cliff, parameters={"k": oi.Positive(5.0), "a": oi.Real(0.0)}, throw=False
    )
    assert not bool(result.successful) and not bool(result.solve_ok)
    assert "gave -inf" in result.message and "k: 5" in result.message


def test_multistart_int_key_equals_key(callable_fit):
    a = oi.multistart(_gaussian_log_likelihood, 3, key=7, parameters=CALLABLE_SPACE)
    b = oi.multistart(
        _gaussian_log_likelihood,
        3,
        key=jax.random.key(7),
        parameters=CALLABLE_SPACE,
    )
    np.testing.assert_array_equal(a.starts, b.starts)
    assert a.num_converged == 3 and not np.any(np.asarray(a.solve_failed))
    assert np.isclose(a.best.params["k"], 2.0, atol=1e-6)


def _everywhere_minus_inf(p):
    return jnp.where(p["k"] > 0, -jnp.inf, 0.0)


def test_multistart_all_failing_raises():
    with pytest.raises(oi.FitError, match=r"3 ended where the ODE solve fails"):
        oi.multistart(
            _everywhere_minus_inf, 3, key=0, parameters={"k": oi.Positive(1.0)}
        )


def test_multistart_all_failing_result_code():
    result = oi.multistart(
        _everywhere_minus_inf,
        3,
        key=0,
        parameters={"k": oi.Positive(1.0)},
        throw=False,
    )
    assert np.all(np.asarray(result.solve_failed))
    assert result.num_converged == 0 and not bool(result.best.successful)
    assert "3 ended where the ODE solve fails" in result.summary()


def test_profile_of_a_failed_fit_is_rejected(problem):
    failed = oi.fit(problem, init={"k": 1e6}, throw=False)
    with pytest.raises(ValueError, match="`fit_result` is not an optimum"):
        oi.profile(problem, failed, "k")


def test_profile_reports_failing_points(callable_fit):
    # -inf for k > 2.3: beyond the interval's upper end (2 + 1.96 * 0.1 = 2.196), inside
    # the profiled range; the failing points are flagged and left out of the interval.
    def cliff(p):
        return jnp.where(p["k"] < 2.3, _gaussian_log_likelihood(p), -jnp.inf)

    result = oi.profile(cliff, callable_fit, "k", parameters=CALLABLE_SPACE)
    failed = np.asarray(result.solve_failed)
    assert failed.any() and np.all(result.values[failed] > 2.3)
    assert not np.any(np.asarray(result.converged)[failed])
    z = 1.959963984540054
    np.testing.assert_allclose(result.interval, (2 - z * 0.1, 2 + z * 0.1), rtol=1e-3)
    assert "the ODE solve failed at" in result.summary()


# Diagnostics and quadrature: `check_gradients`, the cumulative integrals.
def _square(p):
    return jnp.sum(p["x"] ** 2)


_T3 = jnp.array([0.0, 1.0, 2.0])
DIAGNOSTIC_CASES = [
    (
        "fn not callable",
        lambda: oi.check_gradients(3.0, {"x": 1.0}),
        TypeError,
        "`fn` must be a scalar function",
    ),
    (
        "x empty",
        lambda: oi.check_gradients(_square, {}),
        ValueError,
        "`x` has no components",
    ),
    (
        "x nan",
        lambda: oi.check_gradients(_square, {"x": np.nan}),
        ValueError,
        "`x` must be finite",
    ),
    (
        "x string",
        lambda: oi.check_gradients(_square, {"x": "one"}),
        TypeError,
        "`x` must be a pytree of float arrays",
    ),
    (
        "steps empty",
        lambda: oi.check_gradients(_square, {"x": 1.0}, steps=()),
        ValueError,
        "`steps` must be relative step sizes",
    ),
    (
        "steps negative",
        lambda: oi.check_gradients(_square, {"x": 1.0}, steps=(1e-3, -1e-4)),
        ValueError,
        "`steps` must be relative step sizes",
    ),
    (
        "rtol zero",
        lambda: oi.check_gradients(_square, {"x": 1.0}, rtol=0.0),
        ValueError,
        "`rtol` must be a positive",
    ),
    (
        "mode",
        lambda: oi.check_gradients(_square, {"x": 1.0}, mode="central"),
        ValueError,
        "`mode` must be 'reverse' or 'forward'",
    ),
    (
        "fn vector",
        lambda: oi.check_gradients(lambda p: p["x"] * 2, {"x": jnp.ones(2)}),
        ValueError,
        "`fn` must return a scalar",
    ),
    (
        "trapezoid lengths",
        lambda: oi.cumulative_trapezoid(jnp.ones(4), _T3),
        ValueError,
        "`ts` must be 1-D with one time per entry",
    ),
    (
        "trapezoid 2-D ts",
        lambda: oi.cumulative_trapezoid(jnp.ones(3), _T3[None]),
        ValueError,
        "`ts` must be 1-D",
    ),
    (
        "trapezoid unsorted",
        lambda: oi.cumulative_trapezoid(jnp.ones(3), jnp.array([0.0, 2.0, 1.0])),
        ValueError,
        "`ts` must be finite and strictly increasing",
    ),
    (
        "trapezoid nan",
        lambda: oi.cumulative_trapezoid(jnp.ones(3), jnp.array([0.0, jnp.nan, 1.0])),
        ValueError,
        "`ts` must be finite",
    ),
    (
        "simpson lengths",
        lambda: oi.cumulative_simpson(jnp.ones(5), _T3),
        ValueError,
        "`ts` must be 1-D with one time per entry",
    ),
    (
        "integral order",
        lambda: oi.cumulative_integral(
            DECAY, lambda t, y, p: y, 1.0, {"k": 1.0}, ts=_T3, order=0
        ),
        ValueError,
        "`order` must be a positive integer",
    ),
    (
        "integral unsorted",
        lambda: oi.cumulative_integral(
            DECAY, lambda t, y, p: y, 1.0, {"k": 1.0}, ts=jnp.array([0.0, 2.0, 1.0])
        ),
        ValueError,
        "`ts` must be finite and strictly increasing",
    ),
    (
        "integral t0 after ts",
        lambda: oi.cumulative_integral(
            DECAY, lambda t, y, p: y, 1.0, {"k": 1.0}, ts=_T3 + 1.0, t0=1.5
        ),
        ValueError,
        "`t0` must be finite and at or before",
    ),
]


@pytest.mark.parametrize(
    "call, error, match",
    [case[1:] for case in DIAGNOSTIC_CASES],
    ids=[case[0] for case in DIAGNOSTIC_CASES],
)
def test_diagnostics_reject(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_check_gradients_flags_minus_inf():
    # A failed solve's -inf has a gradient of exactly 0: flagged, never "ok".
    report = oi.check_gradients(
        lambda p: jnp.where(p["x"] > 0, -jnp.inf, 0.0), {"x": 1.0}, jit=False
    )
    assert not report.ok and report.flags == (("nonfinite-value",),)
    assert "nonfinite-value" in str(report)


def test_check_gradients_still_agrees_with_closed_form():
    report = oi.check_gradients(_square, {"x": jnp.array([1.0, -2.0])}, jit=False)
    assert report.ok
    np.testing.assert_allclose(report.autodiff, [2.0, -4.0])


def test_trapezoid_matches_closed_form():
    # ∫₀ᵗ s ds = t²/2, exact for the trapezoid rule on a linear integrand.
    np.testing.assert_allclose(oi.cumulative_trapezoid(_T3, _T3), [0.0, 0.5, 2.0])
