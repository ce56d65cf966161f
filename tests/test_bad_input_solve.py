"""Bad input and fault conditions for the solve/events layer (issue 12): every case gets a
clear exception naming the argument and the fix, or a documented `RESULTS` code; never a
silent non-finite or out-of-domain answer. Numerical cases compare with closed forms."""

import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi
from odeinfer import _validation as validate
from odeinfer._results import SolveError


def _decay_field(t, y, p):
    return -p["k"] * y


def _ball_field(t, y, p):
    return jnp.stack([y[1], -p["g"]])


def _height(t, y, p):
    return y[0]


def _bounce(t, y, p):
    return jnp.stack([0.0, -p["e"] * y[1]])


DECAY = oi.ODEModel(_decay_field, name="decay")
BALL = oi.ODEModel(_ball_field, name="ball")
OSCILLATOR = oi.ODEModel(lambda t, y, p: jnp.stack([y[1], -y[0]]), name="oscillator")
Y0 = jnp.array([1.0, 2.0])
PARAMS = {"k": jnp.array(0.5)}
HEIGHT = oi.Crossing(_height, 0.5)
G = 9.81


def _solve(**overrides):
    arguments = dict(model=DECAY, y0=Y0, params=PARAMS, t0=0.0, t1=1.0)
    arguments.update(overrides)
    model, y0, params = (arguments.pop(n) for n in ("model", "y0", "params"))
    return oi.solve(model, y0, params, **arguments)


def _numpy_field(t, y, p):
    return -p["k"] * np.exp(y)


# (solve overrides, exception type, message pattern naming the argument)
SOLVE_CASES = {
    "model is a function": (dict(model=_decay_field), TypeError, "`model` must be"),
    "t1 == t0": (dict(t0=1.0, t1=1.0), ValueError, "`t1` must be greater than `t0`"),
    "t1 < t0": (dict(t0=2.0, t1=1.0), ValueError, "`t1` must be greater"),
    "t0 NaN": (dict(t0=np.nan), ValueError, "`t0` must be finite"),
    "t1 inf": (dict(t1=np.inf), ValueError, "`t1` must be finite"),
    "t0 not scalar": (dict(t0=jnp.zeros(2)), ValueError, "`t0` must be a scalar"),
    "y0 NaN": (dict(y0=jnp.array([1.0, np.nan])), ValueError, "`y0` contains NaN"),
    "y0 inf": (dict(y0=jnp.array([np.inf, 1.0])), ValueError, "`y0` contains NaN"),
    "y0 empty": (dict(y0=jnp.zeros((0,))), ValueError, "`y0` has no components"),
    "y0 dict NaN": (
        dict(y0={"a": jnp.array(np.nan)}),
        ValueError,
        r"`y0\['a'\]` contains",
    ),
    "params inf": (dict(params={"k": np.inf}), ValueError, r"`params\['k'\]`"),
    "rtol 0": (dict(rtol=0.0), ValueError, "`rtol` must be positive"),
    "rtol negative": (dict(rtol=-1e-6), ValueError, "`rtol` must be positive"),
    "rtol inf": (dict(rtol=np.inf), ValueError, "`rtol` must be positive"),
    "atol NaN": (dict(atol=np.nan), ValueError, "`atol` must be positive"),
    "max_events 0": (dict(max_events=0), ValueError, "`max_events` must be an integer"),
    "max_events float": (dict(max_events=2.5), ValueError, "`max_events` must be"),
    "max_events bool": (dict(max_events=True), ValueError, "`max_events` must be"),
    "max_steps 0": (dict(max_steps=0), ValueError, "`max_steps` must be an integer"),
    "max_steps str": (dict(max_steps="100"), ValueError, "`max_steps` must be"),
    "saveat unsorted": (
        dict(saveat=[0.5, 0.2]),
        ValueError,
        "`saveat` times must be sorted",
    ),
    "saveat after t1": (
        dict(saveat=[0.5, 2.0]),
        ValueError,
        "`saveat` times must lie in",
    ),
    "saveat before t0": (
        dict(saveat=[-0.1, 0.5]),
        ValueError,
        "`saveat` times must lie",
    ),
    "saveat NaN": (
        dict(saveat=[0.1, np.nan, 0.5]),
        ValueError,
        "`saveat` contains NaN",
    ),
    "saveat inf": (
        dict(saveat=[0.1, np.inf]),
        ValueError,
        "`saveat` contains NaN or inf",
    ),
    "saveat 2-D": (dict(saveat=np.zeros((2, 2))), ValueError, "`saveat` must be a 1-D"),
    "saveat empty": (dict(saveat=np.zeros((0,))), ValueError, "`saveat` is empty"),
    "max_step_size 0": (dict(max_step_size=0.0), ValueError, "`max_step_size` must be"),
    "max_step_size < 0": (dict(max_step_size=-1.0), ValueError, "`max_step_size` must"),
    "max_step_size NaN": (dict(max_step_size=np.nan), ValueError, "`max_step_size`"),
    "max_step_size inf": (dict(max_step_size=np.inf), ValueError, "`max_step_size`"),
    "dense not bool": (dict(dense="yes"), TypeError, "`dense` must be True or False"),
    "throw not bool": (dict(throw=None), TypeError, "`throw` must be True or False"),
    "solver a string": (
        dict(solver="tsit5"),
        TypeError,
        "`solver` must be a solver instance",
    ),
    "backsolve adjoint": (
        dict(events=HEIGHT, adjoint=diffrax.BacksolveAdjoint()),
        ValueError,
        "BacksolveAdjoint",
    ),
    "events a function": (
        dict(events=[_height]),
        TypeError,
        "`events` must be a Crossing",
    ),
    "doses a number": (dict(doses=[1.0]), TypeError, "`doses` must be a Dose"),
    "dose before t0": (
        dict(doses=oi.Dose([-1.0], 1.0)),
        ValueError,
        "`doses`: a dose time",
    ),
    "dose index too large": (
        dict(doses=oi.Dose([0.5], 1.0, target=3)),
        IndexError,
        r"`target=3`: index 3 is out of range for a state with 2",
    ),
    "dose index too negative": (
        dict(doses=oi.Dose([0.5], 1.0, target=-3)),
        IndexError,
        "`target=-3`: index -3 is out of range",
    ),
    "dose key missing": (
        dict(y0={"a": 1.0}, doses=oi.Dose([0.5], 1.0, target="b")),
        KeyError,
        r"key 'b' is not in the state; its keys are \['a'\]",
    ),
    "dose key on array state": (
        dict(doses=oi.Dose([0.5], 1.0, target="a")),
        TypeError,
        "`target='a'`: the state at this level is not a dict",
    ),
    "dose index on scalar state": (
        dict(y0=1.0, doses=oi.Dose([0.5], 1.0, target=0)),
        ValueError,
        "the state is a scalar",
    ),
    "dose path too deep": (
        dict(doses=oi.Dose([0.5], 1.0, target=(0, 1))),
        ValueError,
        "deeper than the array state",
    ),
    "dose index into tuple state": (
        dict(
            model=oi.ODEModel(lambda t, y, p: (-y[0], -y[1])),
            y0=(1.0, 2.0),
            doses=oi.Dose([0.5], 1.0, target=2),
        ),
        IndexError,
        "index 2 is out of range for a state with 2",
    ),
    "crossing returns a vector": (
        dict(events=oi.Crossing(lambda t, y, p: y, 0.5, name="whole")),
        ValueError,
        r"Crossing 0 \(whole\)\.fn.*must return a scalar",
    ),
    "crossing returns an int": (
        dict(events=oi.Crossing(lambda t, y, p: jnp.int32(1), 0.5, name="count")),
        ValueError,
        r"Crossing 0 \(count\)\.fn` must return a float",
    ),
    "reset wrong shape": (
        dict(events=oi.Crossing(_height, 0.5, reset=lambda t, y, p: y[0], name="r")),
        ValueError,
        r"Crossing 0 \(r\)\.reset",
    ),
    "vector field too short": (
        dict(y0=jnp.array([1.0, 0.0, 3.0]), model=OSCILLATOR),
        ValueError,
        r"`vector_field` returned float64\[2\] but the state y0 is float64\[3\].*`y0`",
    ),
    "vector field sums": (
        dict(model=oi.ODEModel(lambda t, y, p: jnp.sum(y))),
        ValueError,
        "`vector_field` returned",
    ),
    "vector field dict keys": (
        dict(model=oi.ODEModel(lambda t, y, p: {"b": y["a"]}), y0={"a": 1.0}),
        ValueError,
        "check `y0` \\(its length or keys\\)",
    ),
    "unknown parameter": (
        dict(model=oi.ODEModel(lambda t, y, p: -p["k2"] * y, name="k2")),
        KeyError,
        r"looks up 'k2', which is not defined: params has \['k'\]",
    ),
    "unknown state key": (
        dict(model=oi.ODEModel(lambda t, y, p: {"a": -y["b"]}), y0={"a": 1.0}),
        KeyError,
        r"looks up 'b'.*y has \['a'\]",
    ),
    "unknown parameter in crossing": (
        dict(events=oi.Crossing(lambda t, y, p: y[0] * p["scale"], 0.5, name="c")),
        KeyError,
        r"Crossing 0 \(c\)\.fn` looks up 'scale'",
    ),
    "numpy in vector field": (
        dict(model=oi.ODEModel(_numpy_field)),
        oi.NumpyInTracedCodeError,
        "_numpy_field.*jax.numpy",
    ),
    "python if on traced value": (
        dict(model=oi.ODEModel(lambda t, y, p: -y if p["k"] > 0 else y)),
        TypeError,
        "jnp.where",
    ),
}


@pytest.mark.parametrize(
    "overrides, error, match", SOLVE_CASES.values(), ids=SOLVE_CASES
)
def test_solve_rejects(overrides, error, match):
    with pytest.raises(error, match=match):
        _solve(**overrides)


def _dose(**kwargs):
    return lambda: oi.Dose(**{"times": [1.0], "amounts": 1.0, **kwargs})


def _crossing(*args, **kwargs):
    return lambda: oi.Crossing(*args, **kwargs)


CONSTRUCTOR_CASES = {
    "dose amounts NaN": (_dose(amounts=np.nan), ValueError, "Dose: `amounts` contains"),
    "dose times inf": (
        _dose(times=[0.0, np.inf]),
        ValueError,
        "Dose: `times` contains",
    ),
    "dose amounts shape": (
        _dose(times=[0.0, 1.0], amounts=[1.0, 2.0, 3.0]),
        ValueError,
        "Dose: `amounts` has shape",
    ),
    "dose times 2-D": (
        _dose(times=np.zeros((2, 2))),
        ValueError,
        "Dose: `times` must be 1-D",
    ),
    "dose target float": (
        _dose(target=1.5),
        TypeError,
        "Dose: `target` must be an integer",
    ),
    "dose target None": (_dose(target=None), TypeError, "Dose: `target` must be"),
    "crossing level NaN": (
        _crossing(_height, np.nan),
        ValueError,
        "`level` must be finite",
    ),
    "crossing level inf": (
        _crossing(_height, -np.inf),
        ValueError,
        "`level` must be finite",
    ),
    "crossing level vector": (
        _crossing(_height, [0.0, 1.0]),
        ValueError,
        "`level` must be a",
    ),
    "crossing direction": (
        _crossing(_height, 0.0, direction="up"),
        ValueError,
        "`direction` must be",
    ),
    "crossing fn": (_crossing(0.5), TypeError, "`fn` must be callable"),
    "crossing reset": (
        _crossing(_height, reset=1.0),
        TypeError,
        "`reset` must be None",
    ),
    "crossing terminal": (
        _crossing(_height, terminal="yes"),
        TypeError,
        "`terminal` must be True or False",
    ),
    "crossing name": (_crossing(_height, name=3), TypeError, "`name` must be a string"),
    "first_crossing max_events": (
        lambda: oi.first_crossing(
            DECAY, Y0, PARAMS, HEIGHT, t0=0.0, t1=1.0, max_events=3
        ),
        TypeError,
        "`first_crossing` does not take `max_events`.*all_crossings",
    ),
    "first_crossing events": (
        lambda: oi.first_crossing(DECAY, Y0, PARAMS, HEIGHT, t0=0.0, t1=1.0, events=[]),
        TypeError,
        "`first_crossing` does not take `events`",
    ),
    "first_crossing list": (
        lambda: oi.first_crossing(DECAY, Y0, PARAMS, [HEIGHT], t0=0.0, t1=1.0),
        TypeError,
        "`crossing` must be one odeinfer.Crossing",
    ),
    "all_crossings events": (
        lambda: oi.all_crossings(DECAY, Y0, PARAMS, HEIGHT, t0=0.0, t1=1.0, events=[]),
        TypeError,
        "`all_crossings` does not take `events`",
    ),
    "all_crossings max_events 0": (
        lambda: oi.all_crossings(
            DECAY, Y0, PARAMS, HEIGHT, t0=0.0, t1=1.0, max_events=0
        ),
        ValueError,
        "`max_events` must be an integer",
    ),
    "all_crossings t1 NaN": (
        lambda: oi.all_crossings(DECAY, Y0, PARAMS, HEIGHT, t0=0.0, t1=np.nan),
        ValueError,
        "`t1` must be finite",
    ),
}


@pytest.mark.parametrize(
    "make, error, match", CONSTRUCTOR_CASES.values(), ids=CONSTRUCTOR_CASES
)
def test_events_reject(make, error, match):
    with pytest.raises(error, match=match):
        make()


def _at_times(ts, **kwargs):
    return lambda: oi.solve_at_times(DECAY, Y0, PARAMS, ts, **kwargs)


SOLVE_AT_TIMES_CASES = {
    "ts NaN": (
        _at_times(jnp.array([0.1, np.nan, 0.5])),
        ValueError,
        "`ts` contains NaN",
    ),
    "ts inf": (
        _at_times(jnp.array([0.1, np.inf])),
        ValueError,
        "`ts` contains NaN or inf",
    ),
    "ts unsorted": (
        _at_times(jnp.array([0.5, 0.1])),
        ValueError,
        "`ts` times must be sorted",
    ),
    "ts empty": (
        _at_times(jnp.zeros((0,))),
        ValueError,
        "`ts` must be a non-empty 1-D",
    ),
    "ts 2-D": (
        _at_times(jnp.zeros((2, 2))),
        ValueError,
        "`ts` must be a non-empty 1-D",
    ),
    "t0 after ts": (_at_times(jnp.array([0.1, 0.5]), t0=0.3), ValueError, "`t0`"),
    "t0 NaN": (
        _at_times(jnp.array([0.1, 0.5]), t0=np.nan),
        ValueError,
        "`t0` contains",
    ),
    "rtol 0": (
        _at_times(jnp.array([0.1]), rtol=0.0),
        ValueError,
        "`rtol` must be positive",
    ),
    "max_steps 0": (
        _at_times(jnp.array([0.1]), max_steps=0),
        ValueError,
        "`max_steps`",
    ),
    "model a function": (
        lambda: oi.solve_at_times(_decay_field, Y0, PARAMS, jnp.array([0.1])),
        TypeError,
        "`model` must be an odeinfer.ODEModel",
    ),
}


@pytest.mark.parametrize(
    "make, error, match", SOLVE_AT_TIMES_CASES.values(), ids=SOLVE_AT_TIMES_CASES
)
def test_solve_at_times_rejects(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.fixture(scope="module")
def dense_solution():
    return _solve(dense=True)


@pytest.fixture(scope="module")
def stopped_solution():
    crossing = oi.Crossing(_height, 0.5, terminal=True)
    return _solve(t1=3.0, dense=True, events=crossing)


@pytest.mark.parametrize(
    "t, match",
    [
        (
            2.0,
            r"`t` = \[2.\] lies outside the solved interval \[t0, t_final\] = \[0, 1\]",
        ),
        (-0.5, "lies outside the solved interval"),
        (np.nan, "lies outside the solved interval"),
        (jnp.array([0.5, 1.5]), r"`t` = \[1.5\]"),
    ],
)
def test_evaluate_outside_the_interval(dense_solution, t, match):
    with pytest.raises(ValueError, match=match):
        dense_solution.evaluate(t)


def test_evaluate_after_a_terminal_stop(stopped_solution):
    t_stop = np.log(2) / 0.5  # y0[0] = 1 decays to 0.5
    assert abs(float(stopped_solution.t_final) - t_stop) < 1e-8
    with pytest.raises(ValueError, match="the solve stopped at t_final"):
        stopped_solution.evaluate(2.0)
    assert abs(stopped_solution.evaluate(1.0)[0] - np.exp(-0.5)) < 1e-7


def test_evaluate_without_dense_output():
    with pytest.raises(ValueError, match="dense=True"):
        _solve().evaluate(0.5)


def test_evaluate_traced_outside_is_nan(dense_solution):
    evaluate = eqx.filter_jit(lambda sol, t: sol.evaluate(t))
    values = evaluate(dense_solution, jnp.array([0.5, 1.5]))
    assert np.allclose(values[0], np.exp(-0.25) * np.asarray(Y0), rtol=1e-7)
    assert np.all(np.isnan(values[1]))


# ---------------------------------------------------------------------------------------
# Fault conditions that become named result codes.


def _ball(e, t1, max_events=64, reset=_bounce, **kwargs):
    crossing = oi.Crossing(_height, 0.0, direction="falling", reset=reset)
    return oi.solve(
        BALL,
        jnp.array([1.0, 0.0]),
        {"g": G, "e": e},
        t0=0.0,
        t1=t1,
        events=crossing,
        max_events=max_events,
        throw=False,
        **kwargs,
    )


def _accumulation_time(h0, e):
    first = np.sqrt(2 * h0 / G)
    return first + 2 * G * first * e / (G * (1 - e))


@pytest.mark.parametrize("e, t1", [(0.5, 3.0), (0.8, 6.0)])
def test_zeno_bouncing_ball_stops_at_the_accumulation(e, t1):
    sol = _ball(e, t1)
    t_inf = _accumulation_time(1.0, e)
    assert sol.result == oi.RESULTS.zeno_events
    assert not bool(sol.successful)
    # Stopped just before the closed-form accumulation time, on the floor, not below.
    assert t_inf - 1e-3 < float(sol.t_final) <= t_inf + 1e-9
    assert float(sol.y_final[0]) >= -1e-9
    # The recorded bounces are the closed-form ones.
    first = np.sqrt(2 / G)
    n = int(sol.events.count)
    exact = (
        first
        + np.concatenate([[0.0], np.cumsum(2 * G * first * e ** np.arange(1, n))]) / G
    )
    assert np.allclose(sol.events.times[:n], exact, atol=1e-7)
    assert np.all(sol.events.states_after[:n, 0] >= -1e-9)


def test_zeno_with_a_small_buffer_is_a_full_buffer():
    sol = _ball(0.8, 6.0, max_events=16)
    assert sol.result == oi.RESULTS.event_buffer_full
    assert "Zeno" in oi.RESULTS[sol.result]


def test_reset_to_rest_on_the_level_is_zeno():
    sol = _ball(0.5, 3.0, reset=lambda t, y, p: jnp.zeros(2))
    assert sol.result == oi.RESULTS.zeno_events
    assert abs(float(sol.t_final) - np.sqrt(2 / G)) < 1e-8
    assert np.allclose(sol.y_final, 0.0)


def test_zeno_raises_with_throw():
    crossing = oi.Crossing(_height, 0.0, direction="falling", reset=_bounce)
    with pytest.raises(SolveError, match=r"^odeinfer.solve failed at t = .*Zeno"):
        oi.solve(
            BALL,
            jnp.array([1.0, 0.0]),
            {"g": G, "e": 0.5},
            t0=0.0,
            t1=3.0,
            events=crossing,
            max_events=64,
        )


def test_a_counter_reset_that_passes_through_is_not_zeno():
    # The reset changes another component only: passing through the level is intended.
    model = oi.ODEModel(lambda t, y, p: jnp.stack([jnp.cos(t), 0.0]))
    crossing = oi.Crossing(
        _height, 0.5, reset=lambda t, y, p: y.at[1].add(1.0), name="counter"
    )
    sol = oi.solve(
        model,
        jnp.array([0.0, 0.0]),
        {},
        t0=0.0,
        t1=7.0,
        events=crossing,
        max_events=8,
        throw=False,
    )
    assert bool(sol.successful)
    expected = np.array([1, 5, 13]) * np.pi / 6  # sin t = 1/2
    assert np.allclose(sol.events.times[:3], expected, atol=1e-8)
    assert int(sol.y_final[1]) == 3


def test_two_crossings_inside_one_step_are_found():
    level = 1 - 1e-7
    found = oi.all_crossings(
        OSCILLATOR,
        jnp.array([0.0, 1.0]),
        {},
        oi.Crossing(_height, level),
        t0=0.0,
        t1=3.0,
        rtol=1e-12,
        atol=1e-14,
        throw=False,
    )
    half_width = np.arccos(level)
    assert bool(oi.is_successful(found.result))
    assert int(found.count) == 2
    assert np.allclose(
        found.times[:2], [np.pi / 2 - half_width, np.pi / 2 + half_width], atol=1e-9
    )


def test_near_tangent_crossings_at_loose_tolerance_are_flagged():
    found = oi.all_crossings(
        OSCILLATOR,
        jnp.array([0.0, 1.0]),
        {},
        oi.Crossing(_height, 1 - 1e-7),
        t0=0.0,
        t1=3.0,
        throw=False,
    )
    assert found.result == oi.RESULTS.tangent_crossing


def test_a_near_miss_is_not_a_crossing():
    found = oi.all_crossings(
        OSCILLATOR,
        jnp.array([0.0, 1.0]),
        {},
        oi.Crossing(_height, 1 + 1e-6),
        t0=0.0,
        t1=3.0,
        rtol=1e-12,
        atol=1e-14,
        throw=False,
    )
    assert bool(oi.is_successful(found.result))
    assert int(found.count) == 0


@pytest.mark.parametrize(
    "field, y0, t1",
    [
        (lambda t, y, p: y**2, 1.0, 2.0),  # y = 1 / (1 - t): blows up at t = 1
        (
            lambda t, y, p: -jnp.sqrt(y),
            1.0,
            3.0,
        ),  # y = (1 - t / 2)^2 reaches 0 at t = 2
    ],
    ids=["blow-up", "sqrt past zero"],
)
def test_singular_solutions_report_a_nonfinite_state(field, y0, t1):
    sol = oi.solve(oi.ODEModel(field), jnp.array(y0), {}, t0=0.0, t1=t1, throw=False)
    assert sol.result == oi.RESULTS.nonfinite_state
    assert "max_steps` will not help" in oi.RESULTS[sol.result]


def test_running_out_of_steps_on_a_regular_problem_still_says_max_steps():
    sol = _solve(max_steps=2, throw=False)
    assert sol.result == oi.RESULTS.max_steps_reached


def test_failure_message_comes_first():
    with pytest.raises(eqx.EquinoxRuntimeError) as error:
        _solve(max_steps=2)
    first_line = str(error.value).splitlines()[0]
    assert first_line.startswith("odeinfer.solve failed at t = ")
    assert "max_steps" in first_line


@pytest.mark.parametrize(
    "overrides",
    [
        dict(t1=-1.0),
        dict(level=jnp.nan),
        dict(amount=jnp.nan),
        dict(max_step_size=-1.0),
        dict(k=jnp.inf),
    ],
    ids=["t1 < t0", "level NaN", "dose NaN", "max_step_size < 0", "params inf"],
)
def test_traced_bad_values_give_invalid_input(overrides):
    values = dict(t1=1.0, level=0.5, amount=1.0, max_step_size=0.1, k=0.5) | overrides

    @jax.jit
    def run(t1, level, amount, max_step_size, k):
        return oi.solve(
            DECAY,
            Y0,
            {"k": k},
            t0=0.0,
            t1=t1,
            events=oi.Crossing(_height, level),
            doses=oi.Dose([0.2], amount, target=1),
            max_step_size=max_step_size,
            throw=False,
        ).result

    result = run(**{n: jnp.asarray(v) for n, v in values.items()})
    assert result == oi.RESULTS.invalid_input


def test_a_crossing_that_never_happens():
    crossing = oi.Crossing(_height, 2.0)  # y0[0] = 1 decays: never reaches 2

    def time(k):
        hit = oi.first_crossing(DECAY, Y0, {"k": k}, crossing, t0=0.0, t1=1.0)
        return hit.time, hit

    (value, hit), gradient = jax.value_and_grad(time, has_aux=True)(0.5)
    assert not bool(hit.found)
    assert bool(oi.is_successful(hit.result))
    assert np.isinf(value)
    assert gradient == 0.0  # the documented convention: mask with `found`


def test_success_prints_in_words():
    assert "successful" in str(_solve().result)
    assert "successful" in oi.RESULTS[_solve().result]


def test_rtol_below_precision_warns():
    with pytest.warns(UserWarning, match="below the precision of float32"):
        validate.check_precision(1e-12, jnp.float32)
    with pytest.warns(UserWarning, match="below the precision of float64"):
        _solve(rtol=1e-17)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate.check_precision(1e-6, jnp.float32)
        validate.check_precision(1e-14, jnp.float64)


def test_valid_dose_targets_still_work():
    exact = np.exp(-0.5)
    sol = _solve(doses=oi.Dose([0.5], 1.0, target=-1), saveat=[1.0])
    assert np.allclose(sol.ys[0], [exact, 2 * exact + np.exp(-0.25)], rtol=1e-7)
    model = oi.ODEModel(lambda t, y, p: {"a": -p["k"] * y["a"]})
    sol = _solve(model=model, y0={"a": 1.0}, doses=oi.Dose([0.5], 1.0, target="a"))
    assert abs(sol.y_final["a"] - (exact + np.exp(-0.25))) < 1e-7


def test_vector_field_indexing_past_the_state_is_refused():
    """JAX clamps `y[2]` of a 2-vector to `y[1]`: a silently different model."""
    model = oi.ODEModel(lambda t, y, p: jnp.stack([y[1], -y[2]]), name="past_end")
    with pytest.raises(ValueError, match=r"vector_field.*out of range.*shape \(2,\)"):
        oi.solve(model, jnp.array([1.0, 0.0]), {}, t0=0.0, t1=1.0)
