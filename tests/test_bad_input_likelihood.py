"""Bad input to the observation and likelihood layers: every case is a clear exception
whose message names the argument (checked before any compilation where the values are
concrete), or a documented result (`-inf` with `ok` False under tracing) — never a
silent non-finite or out-of-domain answer. Issue 12."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import odeinfer as oi

DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
TWO_STATES = oi.ODEModel(lambda t, y, p: jnp.stack([-p["k"] * y[0], p["k"] * y[0]]))
TIMES = np.array([0.5, 1.0, 2.0])
DATA = 2.0 * np.exp(-0.7 * TIMES)
SPACE = {"k": oi.Positive(0.5), "b": oi.Bounded(0.0, 1.0, 0.5), "g": oi.Fixed(1.0)}
GOOD = {"k": 0.7, "b": 0.5}


def _experiment(**kwargs):
    options = dict(times=TIMES, data=DATA, noise=oi.Gaussian(0.1), y0=2.0)
    options.update(kwargs)
    return oi.Experiment(**options)


def _problem(model=DECAY, space=None, **kwargs):
    return oi.Problem(model, _experiment(**kwargs), SPACE if space is None else space)


@pytest.fixture(scope="module")
def problem():
    return _problem()


_NAN_DATA = DATA.copy()
_NAN_DATA[1] = np.nan
_CROSSING = oi.Crossing(lambda t, y, p: y - 1.0)

# (label, callable that must raise, exception type, message pattern)
CONSTRUCTION_CASES = [
    # Experiment: data and times.
    ("no data", lambda: oi.Experiment(y0=2.0), ValueError, "no data"),
    ("empty times", lambda: _experiment(times=[], data=[]), ValueError, "no data"),
    ("times no data", lambda: _experiment(data=None), ValueError, "without `data`"),
    ("data no times", lambda: _experiment(times=None), ValueError, "without `times`"),
    ("times 2-D", lambda: _experiment(times=TIMES[None]), ValueError, "`times` must"),
    ("rows", lambda: _experiment(data=DATA[:2]), ValueError, "`data` must have shape"),
    ("3-D data", lambda: _experiment(data=DATA[:, None, None]), ValueError, "`data`"),
    ("unsorted", lambda: _experiment(times=[1.0, 0.5, 2.0]), ValueError, "sorted"),
    ("nan time", lambda: _experiment(times=[0.5, np.nan, 2.0]), ValueError, "`times`"),
    ("inf time", lambda: _experiment(times=[0.5, 1.0, np.inf]), ValueError, "`times`"),
    ("nan data", lambda: _experiment(data=_NAN_DATA), ValueError, "`data` has 1 non"),
    ("inf data", lambda: _experiment(data=DATA + [0, 0, np.inf]), ValueError, "`data`"),
    ("str data", lambda: _experiment(data=["a", "b", "c"]), TypeError, "`data` must"),
    ("complex", lambda: _experiment(data=DATA + 1j), TypeError, "`data` must be real"),
    ("str times", lambda: _experiment(times="abc"), TypeError, "`times` must be real"),
    ("ragged", lambda: _experiment(data=[[1.0], [1, 2], 3]), TypeError, "`data`"),
    ("before t0", lambda: _experiment(t0=1.0), ValueError, r"`times\[0\]` = 0.5"),
    ("huge data", lambda: _experiment(data=DATA * 1e200), ValueError, "Rescale"),
    ("nan t0", lambda: _experiment(t0=np.nan), ValueError, "`t0` must be a finite"),
    ("vector t0", lambda: _experiment(t0=[0.0, 1.0]), ValueError, "`t0` must"),
    ("str t0", lambda: _experiment(t0="zero"), ValueError, "`t0` must"),
    # Experiment: mask.
    ("mask shape", lambda: _experiment(mask=[True, False]), ValueError, "`mask` must"),
    ("mask ints", lambda: _experiment(mask=[1, 1, 1]), ValueError, "`mask` must"),
    (
        "mask at nan",
        lambda: _experiment(data=_NAN_DATA, mask=[True, True, True]),
        ValueError,
        "non-finite where `mask` is True",
    ),
    (
        "mask all false",
        lambda: _experiment(mask=[False, False, False]),
        ValueError,
        "`mask` is False everywhere",
    ),
    # Experiment: observables and noise.
    ("observables 42", lambda: _experiment(observables=42), TypeError, "`observables`"),
    (
        "observable not callable",
        lambda: _experiment(observables=[lambda t, y, p: y, 3]),
        TypeError,
        "not callable",
    ),
    (
        "observables vs columns",
        lambda: _experiment(observables=[lambda t, y, p: y, lambda t, y, p: 2 * y]),
        ValueError,
        "2 observables",
    ),
    ("no noise", lambda: _experiment(noise=None), TypeError, "`noise` must be"),
    ("noise str", lambda: _experiment(noise="gaussian"), TypeError, "`noise` must be"),
    (
        "noise count",
        lambda: _experiment(noise=[oi.Gaussian(1.0), oi.Gaussian(1.0)]),
        ValueError,
        "2 noise models for 1",
    ),
    (
        "noise dict names",
        lambda: _experiment(noise={"other": oi.Gaussian(1.0)}),
        ValueError,
        "`noise` dict",
    ),
    ("noise list item", lambda: _experiment(noise=[3.0]), TypeError, "`noise` 3.0"),
    ("no y0", lambda: _experiment(y0=None), ValueError, "give `y0`"),
    ("doses", lambda: _experiment(doses=[1.0]), TypeError, "`doses` must be oi.Dose"),
    ("overrides list", lambda: _experiment(overrides=[1]), TypeError, "`overrides`"),
    (
        "override nan",
        lambda: _experiment(overrides={"k": np.nan}),
        ValueError,
        r"`overrides\['k'\]` must be finite",
    ),
    (
        "override str array",
        lambda: _experiment(overrides={"k": [1.0, "x"]}),
        TypeError,
        r"`overrides\['k'\]` must be real",
    ),
    ("event_times", lambda: _experiment(event_times=[1.0]), TypeError, "`event_times`"),
    # Data outside the noise model's support: -inf for every parameter value.
    (
        "poisson negative",
        lambda: _experiment(data=[3.0, -1.0, 0.0], noise=oi.Poisson()),
        ValueError,
        "Poisson noise needs non-negative integer",
    ),
    (
        "poisson fraction",
        lambda: _experiment(data=[3.0, 1.5, 0.0], noise=oi.Poisson()),
        ValueError,
        "Poisson noise needs non-negative integer",
    ),
    (
        "negative binomial",
        lambda: _experiment(data=[3.0, -2.0, 0.0], noise=oi.NegativeBinomial(2.0)),
        ValueError,
        "NegativeBinomial noise needs non-negative integer",
    ),
    (
        "lognormal zero",
        lambda: _experiment(data=[1.0, 0.0, 2.0], noise=oi.LogNormal(0.1)),
        ValueError,
        "LogNormal noise needs positive",
    ),
    (
        "lognormal column 1",
        lambda: _experiment(
            data=np.stack([DATA, -DATA], axis=1),
            observables=lambda t, y, p: jnp.stack([y, y]),
            noise=[oi.Gaussian(0.1), oi.LogNormal(0.1)],
        ),
        ValueError,
        "column 1",
    ),
    # Noise models.
    ("gaussian empty", lambda: oi.Gaussian(), ValueError, "give `sigma`"),
    ("gaussian 0", lambda: oi.Gaussian(0.0), ValueError, "`sigma` must be a positive"),
    ("gaussian -1", lambda: oi.Gaussian(-1.0), ValueError, "`sigma` must be"),
    ("gaussian nan", lambda: oi.Gaussian(np.nan), ValueError, "`sigma` must be"),
    ("gaussian inf", lambda: oi.Gaussian(np.inf), ValueError, "`sigma` must be"),
    ("gaussian vector", lambda: oi.Gaussian([1.0, 2.0]), ValueError, "`sigma`"),
    ("gaussian object", lambda: oi.Gaussian(object()), TypeError, "`sigma` must"),
    (
        "proportional",
        lambda: oi.Gaussian(proportional=-0.1),
        ValueError,
        "`proportional` must",
    ),
    ("lognormal 0", lambda: oi.LogNormal(0.0), ValueError, "LogNormal: `sigma`"),
    ("student df", lambda: oi.StudentT(0.0, 1.0), ValueError, "StudentT: `df`"),
    ("student sigma", lambda: oi.StudentT(3.0, -1.0), ValueError, "StudentT: `sigma`"),
    (
        "nb concentration",
        lambda: oi.NegativeBinomial(0.0),
        ValueError,
        "`concentration`",
    ),
    # Event-time observations.
    (
        "event crossing",
        lambda: oi.EventTimeObservation("y=1", 1.0, oi.Gaussian(0.1)),
        TypeError,
        "`crossing` must be",
    ),
    (
        "event noise discrete",
        lambda: oi.EventTimeObservation(_CROSSING, 1.0, oi.Poisson()),
        TypeError,
        "continuous noise",
    ),
    (
        "event nan",
        lambda: oi.EventTimeObservation(_CROSSING, np.nan, oi.Gaussian(0.1)),
        ValueError,
        "`time` must be a finite",
    ),
    (
        "event censoring",
        lambda: oi.EventTimeObservation(
            _CROSSING, 1.0, oi.Gaussian(0.1), censoring="left"
        ),
        ValueError,
        "`censoring` must be",
    ),
    (
        "event right",
        lambda: oi.EventTimeObservation(
            _CROSSING, None, oi.Gaussian(0.1), censoring="right"
        ),
        ValueError,
        "needs `end_time`",
    ),
    (
        "event interval",
        lambda: oi.EventTimeObservation(
            _CROSSING, None, oi.Gaussian(0.1), censoring="interval", interval=(2, 1)
        ),
        ValueError,
        "a < b",
    ),
    # Parameter specs.
    ("positive -1", lambda: oi.Positive(-1.0), ValueError, "Positive: `init` must"),
    ("positive 0", lambda: oi.Positive(0.0), ValueError, "Positive: `init` must"),
    ("real nan", lambda: oi.Real(np.nan), ValueError, "Real: `init` must be finite"),
    ("real str", lambda: oi.Real("one"), TypeError, "Real: `init` must be a number"),
    ("bounded order", lambda: oi.Bounded(1.0, 0.0), ValueError, "`lower < upper`"),
    ("bounded inf", lambda: oi.Bounded(0.0, np.inf), ValueError, "`lower < upper`"),
    ("bounded nan", lambda: oi.Bounded(np.nan, 1.0), ValueError, "`lower < upper`"),
    ("bounded str", lambda: oi.Bounded("a", 1.0), TypeError, "`lower` and `upper`"),
    ("bounded init", lambda: oi.Bounded(0, 1, init=2.0), ValueError, "`init`=2.0"),
    ("parameters empty", lambda: oi.Parameters({}), TypeError, "non-empty dict"),
    (
        "parameters spec",
        lambda: oi.Parameters({"k": "positive"}),
        TypeError,
        "`k` must be oi.Real",
    ),
    ("parameters name", lambda: oi.Parameters({1: oi.Real()}), TypeError, "strings"),
    # Problem: checked by tracing abstractly, before any compilation.
    ("model", lambda: oi.Problem("decay", _experiment(), SPACE), TypeError, "`model`"),
    ("experiments", lambda: oi.Problem(DECAY, [], SPACE), TypeError, "`experiments`"),
    (
        "rtol",
        lambda: oi.Problem(DECAY, _experiment(), SPACE, rtol=0),
        ValueError,
        "rtol",
    ),
    (
        "unknown scale",
        lambda: _problem(noise=oi.Gaussian("sd")),
        ValueError,
        r"refers to parameter\(s\) \['sd'\]",
    ),
    (
        "fixed scale",
        lambda: _problem(noise=oi.Gaussian("g"), space={**SPACE, "g": oi.Fixed(-1.0)}),
        ValueError,
        "noise scale `g` is fixed",
    ),
    (
        "override source",
        lambda: _problem(overrides={"k": "k_patient"}),
        ValueError,
        "k_patient",
    ),
    (
        "observable numpy",
        lambda: _problem(observables=lambda t, y, p: np.exp(y)),
        oi.NumpyInTracedCodeError,
        "observable",
    ),
    (
        "observable index",
        lambda: _problem(
            model=TWO_STATES, y0=jnp.ones(2), observables=lambda t, y, p: y[5]
        ),
        ValueError,
        "indexes the state out of range",
    ),
    (
        "observable size",
        lambda: _problem(model=TWO_STATES, y0=jnp.ones(2)),
        ValueError,
        "do not produce 1 value",
    ),
    (
        "observable state name",
        lambda: _problem(
            model=oi.ODEModel(lambda t, y, p: {"x": -p["k"] * y["x"]}),
            y0={"x": 2.0},
            observables=lambda t, y, p: y["X"],
        ),
        (KeyError, ValueError),
        "'X', which is not defined",
    ),
    (
        "model parameter name",
        lambda: _problem(model=oi.ODEModel(lambda t, y, p: -p["k2"] * y)),
        (KeyError, ValueError),
        "'k2', which is not defined",
    ),
    (
        "y0 numpy",
        lambda: _problem(y0=lambda p: np.asarray(p["k"])),
        oi.NumpyInTracedCodeError,
        "y0",
    ),
    (
        "y0 vs vector field",
        lambda: _problem(model=TWO_STATES, y0=jnp.ones(3)),
        ValueError,
        "vector_field",
    ),
]


@pytest.mark.parametrize(
    "build, error, match",
    [case[1:] for case in CONSTRUCTION_CASES],
    ids=[case[0] for case in CONSTRUCTION_CASES],
)
def test_construction_rejects(build, error, match):
    with pytest.raises(error, match=match):
        build()


# Concrete parameter values: checked in Python before the likelihood compiles.
PARAMS_CASES = [
    ("positive -1", {"k": -1.0, "b": 0.5}, ValueError, r"`params\['k'\]`=-1.0 lies"),
    ("positive 0", {"k": 0.0, "b": 0.5}, ValueError, r"`params\['k'\]`=0.0 lies"),
    ("nan", {"k": np.nan, "b": 0.5}, ValueError, r"`params\['k'\]`=nan"),
    ("inf", {"k": 0.7, "b": np.inf}, ValueError, r"`params\['b'\]`=inf"),
    ("bounded", {"k": 0.7, "b": 1.5}, ValueError, r"`params\['b'\]`=1.5 lies outside"),
    ("unknown", {**GOOD, "c": 1.0}, ValueError, r"unknown parameter name\(s\) \['c'\]"),
    ("missing", {"k": 0.7}, ValueError, r"missing free parameter\(s\) \['b'\]"),
    ("shape", {"k": [0.7, 0.8], "b": 0.5}, ValueError, r"`params\['k'\]` has shape"),
    ("string", {"k": "fast", "b": 0.5}, TypeError, r"`params\['k'\]` must be a number"),
    ("not a dict", [0.7, 0.5], TypeError, "`params` must be a dict"),
]


@pytest.mark.parametrize("entry", ["log_likelihood", "residuals"])
@pytest.mark.parametrize(
    "params, error, match",
    [case[1:] for case in PARAMS_CASES],
    ids=[case[0] for case in PARAMS_CASES],
)
def test_concrete_params_rejected(problem, entry, params, error, match):
    function = {"log_likelihood": oi.log_likelihood, "residuals": oi.residuals}[entry]
    with pytest.raises(error, match=match):
        function(problem, params)


def test_problem_argument_checked():
    with pytest.raises(TypeError, match="`problem` must be an oi.Problem"):
        oi.log_likelihood(lambda p: 0.0, GOOD)


def test_residuals_need_gaussian_noise():
    counts = _problem(data=[3.0, 2.0, 1.0], noise=oi.Poisson())
    with pytest.raises(TypeError, match="needs Gaussian noise"):
        oi.residuals(counts, GOOD)


# Traced values cannot raise: outside the support the value is -inf (documented in
# `log_likelihood`).
def test_outside_support_traced_is_minus_inf(problem):
    @jax.jit
    def value(k):
        return oi.log_likelihood(problem, {"k": k, "b": 0.5})

    assert value(-1.0) == -jnp.inf
    truth = -0.5 * np.sum(((DATA - 2.0 * np.exp(-0.7 * TIMES)) / 0.1) ** 2)
    truth -= 3 * np.log(0.1 * np.sqrt(2 * np.pi))
    assert np.isclose(value(0.7), truth, rtol=1e-7)


def test_with_status_is_deprecated_and_still_works(problem):
    with pytest.warns(DeprecationWarning, match="oi.simulate|odeinfer.simulate"):
        value, ok = oi.log_likelihood(problem, {"k": 0.7, "b": 0.5}, with_status=True)
    assert value == oi.log_likelihood(problem, {"k": 0.7, "b": 0.5})
    assert bool(ok.all())


def test_outside_support_under_vmap(problem):
    ks = jnp.array([0.7, -1.0, 0.0, jnp.nan])
    values = jax.vmap(lambda k: oi.log_likelihood(problem, {"k": k, "b": 0.5}))(ks)
    assert np.isfinite(values[0]) and np.all(values[1:] == -np.inf)


def test_outside_support_residuals_traced(problem):
    r = jax.jit(lambda k: oi.residuals(problem, {"k": k, "b": 0.5}))(-1.0)
    assert np.all(np.isinf(r))


def test_failed_solve_is_minus_inf_with_flag():
    stiff = _problem(y0=2.0)
    stiff = oi.Problem(DECAY, stiff.experiments, SPACE, max_steps=16)
    value = oi.log_likelihood(stiff, {"k": 1e6, "b": 0.5})
    simulations = oi.simulate(stiff, {"k": 1e6, "b": 0.5})
    assert value == -jnp.inf and not any(bool(s.ok) for s in simulations)
    assert all(s.result != oi.RESULTS.successful for s in simulations)


# Fuzzing: the experiment's arguments and the likelihood's params.
_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=30, deadline=None)
@given(
    times=st.lists(_floats, min_size=0, max_size=4),
    data=st.lists(_floats, min_size=0, max_size=4),
    noise=st.sampled_from(["gaussian", "lognormal", "poisson"]),
    t0=_floats,
)
def test_fuzz_experiment(times, data, noise, t0):
    model = {
        "gaussian": oi.Gaussian(0.5),
        "lognormal": oi.LogNormal(0.5),
        "poisson": oi.Poisson(),
    }[noise]
    try:
        experiment = oi.Experiment(times, data, noise=model, y0=1.0, t0=t0)
    except (ValueError, TypeError) as error:
        # The message names the experiment and the argument at fault.
        assert "Experiment `experiment`" in str(error)
        assert "`" in str(error).split(":", 1)[1]
        return
    # Accepted: the invariants the likelihood relies on hold, and every observed
    # entry has a finite log density at a valid prediction.
    times_out = np.asarray(experiment.times)
    assert times_out.size >= 1 and np.all(np.isfinite(times_out))
    assert np.all(np.diff(times_out) >= 0) and times_out[0] >= float(experiment.t0)
    values = np.asarray(experiment.data[:, 0])
    lp = model.log_prob(values, np.full_like(values, 1.0), {})
    assert np.all(np.isfinite(np.asarray(lp)))


@settings(max_examples=30, deadline=None)
@given(k=_floats, b=_floats)
def test_fuzz_log_likelihood_params(problem, k, b):
    params = {"k": k, "b": b}
    inside = np.isfinite(k) and np.isfinite(b) and k > 0 and 0 < b < 1
    if not inside:
        with pytest.raises(ValueError, match=r"`params\['[kb]'\]`"):
            oi.log_likelihood(problem, params)
        return
    value = oi.log_likelihood(problem, params)
    ok = jnp.stack([s.ok for s in oi.simulate(problem, params)])
    # Inside the support: a finite value, or -inf flagged by a failed solve.
    assert np.isfinite(value) or (value == -np.inf and not bool(ok.all()))
    assert not np.isnan(value)
