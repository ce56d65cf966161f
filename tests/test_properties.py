"""Property tests (hypothesis) against closed forms. Each property calls one jitted
function with its random values as traced arguments, so examples do not recompile."""

import jax
import jax.numpy as jnp
import numpy as np
from _references import (
    BALL,
    LOGISTIC,
    ONE_COMPARTMENT,
    G,
    ball_bounce_times,
    bolus_amount,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import odeinfer as oi

FEW = settings(max_examples=8, deadline=None, derandomize=True)
floats = st.floats


@jax.jit
def _logistic_crossing(k, y0, level):
    crossing = oi.Crossing(LOGISTIC.crossing_fn, level)
    hit = oi.first_crossing(
        LOGISTIC.model,
        y0,
        {"k": k},
        crossing,
        t0=0.0,
        t1=1e4,
        rtol=1e-10,
        atol=1e-12,
        throw=False,
    )
    return hit.time, hit.found, hit.result


@FEW
@given(k=floats(0.005, 0.1), y0=floats(0.05, 0.7), gap=floats(0.05, 0.25))
def test_logistic_threshold_time(k, y0, gap):
    level = y0 + gap
    time, found, code = _logistic_crossing(
        jnp.array(k), jnp.array(y0), jnp.array(level)
    )
    assert bool(code == oi.RESULTS.successful)
    assert bool(found)
    expected = np.log(level / (1 - level) * (1 - y0) / y0) / k
    np.testing.assert_allclose(time, expected, rtol=1e-8)


@jax.jit
def _bounces(h0, e, t1):
    crossing = oi.Crossing(BALL.crossing_fn, 0.0, direction="falling", reset=BALL.reset)
    sol = oi.solve(
        BALL.model,
        jnp.stack([h0, 0.0]),
        {"g": jnp.array(G), "e": e},
        t0=0.0,
        t1=t1,
        events=crossing,
        max_events=8,
        throw=False,
    )
    return sol.events.times, sol.events.count, sol.result


@FEW
@given(h0=floats(0.1, 5.0), e=floats(0.3, 0.95))
def test_bounce_times(h0, e):
    times = ball_bounce_times(h0, e, 4)
    t1 = (times[2] + times[3]) / 2  # three bounces in [0, t1]
    out, count, code = _bounces(jnp.array(h0), jnp.array(e), jnp.array(t1))
    assert bool(code == oi.RESULTS.successful)
    assert int(count) == 3
    np.testing.assert_allclose(out[:3], times[:3], rtol=1e-9)


SAVE = np.linspace(0.0, 24.0, 25)


@jax.jit
def _bolus(times, amounts, cl, v):
    sol = oi.solve(
        ONE_COMPARTMENT.model,
        jnp.array(0.0),
        {"CL": cl, "V": v},
        t0=0.0,
        t1=24.0,
        saveat=jnp.asarray(SAVE),
        doses=oi.Dose(times, amounts, target=()),
        rtol=1e-10,
        atol=1e-10,
        throw=False,
    )
    return sol.ys, sol.result


@FEW
@given(
    times=st.lists(floats(0.0, 23.0), min_size=3, max_size=3),
    amounts=st.lists(floats(1.0, 100.0), min_size=3, max_size=3),
    cl=floats(0.5, 5.0),
    v=floats(5.0, 50.0),
)
def test_random_dose_schedules(times, amounts, cl, v):
    """Unsorted times (sorted internally), coinciding times and doses between save
    times all superpose."""
    ys, code = _bolus(jnp.array(times), jnp.array(amounts), jnp.array(cl), jnp.array(v))
    assert bool(code == oi.RESULTS.successful)
    expected = bolus_amount(SAVE, times, amounts, cl / v)
    np.testing.assert_allclose(ys, expected, rtol=1e-7, atol=1e-9)


def _oscillator_field(t, y, p):
    return jnp.stack([y[1], -(p["omega"] ** 2) * y[0]])


def _position(t, y, p):
    return y[0]


OSCILLATOR = oi.ODEModel(_oscillator_field, name="oscillator")
DIRECTIONS = ("either", "rising", "falling")


@jax.jit
def _oscillator_crossings(omega, levels):
    crossings = [
        oi.Crossing(_position, level, direction=direction)
        for level, direction in zip(levels, DIRECTIONS, strict=True)
    ]
    sol = oi.solve(
        OSCILLATOR,
        jnp.stack([0.0, omega]),
        {"omega": omega},
        t0=0.0,
        t1=10.0,
        events=crossings,
        max_events=16,
        rtol=1e-10,
        atol=1e-12,
        throw=False,
    )
    logs = [sol.events.of(i) for i in range(3)]
    return [log.times for log in logs], [log.count for log in logs], sol.result


@FEW
@given(
    omega=floats(0.5, 1.5),
    levels=st.lists(floats(-0.9, 0.9), min_size=3, max_size=3),
)
def test_crossing_directions(omega, levels):
    """sin(omega t) = L rises at (asin L mod 2 pi + 2 pi n)/omega and falls at
    (pi - asin L + 2 pi n)/omega."""
    assume(min(abs(level) for level in levels) > 0.01)  # not at t0, where y = 0
    assume(min(abs(a - b) for a, b in [levels[:2], levels[1:], levels[::2]]) > 0.05)
    times, counts, code = _oscillator_crossings(jnp.array(omega), jnp.array(levels))
    assert bool(code == oi.RESULTS.successful)
    periods = 2 * np.pi * np.arange(4) / omega
    for level, direction, got, count in zip(
        levels, DIRECTIONS, times, counts, strict=True
    ):
        rising = np.mod(np.arcsin(level), 2 * np.pi) / omega + periods
        falling = (np.pi - np.arcsin(level)) / omega + periods
        expected = {"rising": rising, "falling": falling}.get(
            direction, np.sort(np.concatenate([rising, falling]))
        )
        expected = expected[expected < 10.0]
        assert int(count) == len(expected)
        np.testing.assert_allclose(got[: len(expected)], expected, atol=1e-7)
