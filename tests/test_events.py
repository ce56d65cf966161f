"""Events: several crossings in one solve, resets (bouncing ball), terminal crossings,
the event buffer, doses; values and derivatives against closed forms and scipy."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _references import (
    G,
    ball_bounce_times,
    ball_rebound_speeds,
    bolus_amount,
    oral_central_amount,
    spring_params,
    spring_scipy_crossings,
    spring_y0,
)

import odeinfer as oi

REVERSE = diffrax.RecursiveCheckpointAdjoint()  # the default adjoint

# --- several crossings in one solve -----------------------------------------------------


def test_spring_several_crossings_in_one_solve(spring):
    """|r| = 0.85 either way, 0.8 rising only and 0.9 falling only, recorded in one log,
    each against scipy with the matching `event.direction`."""
    crossings = [
        oi.Crossing(spring.crossing_fn, 0.85),
        oi.Crossing(spring.crossing_fn, 0.8, direction="rising"),
        oi.Crossing(spring.crossing_fn, 0.9, direction="falling"),
    ]
    sol = oi.solve(
        spring.model,
        spring_y0(),
        spring_params(),
        t0=0.0,
        t1=5.0,
        events=crossings,
        max_events=40,
        rtol=1e-10,
        atol=1e-12,
    )
    assert sol.result == oi.RESULTS.successful
    references = [
        spring_scipy_crossings(0.85),
        spring_scipy_crossings(0.8, direction=1),
        spring_scipy_crossings(0.9, direction=-1),
    ]
    assert [len(r) for r in references] == [19, 9, 10]
    assert int(sol.events.count) == 38
    times = np.asarray(sol.events.times)
    assert np.all(np.diff(times[:38]) > 0)  # one log, in time order
    for index, (reference, crossing) in enumerate(
        zip(references, crossings, strict=True)
    ):
        log = sol.events.of(index)
        n = len(reference)
        assert int(log.count) == n
        np.testing.assert_array_equal(log.which[:n], index)
        np.testing.assert_allclose(log.times[:n], reference, atol=1e-8)
        np.testing.assert_allclose(sol.crossing_times(index)[:n], reference, atol=1e-8)
        radius = np.linalg.norm(np.asarray(log.states)[:n, :3], axis=1)
        np.testing.assert_allclose(radius, float(crossing.level), atol=1e-9)
        slopes = np.asarray(log.slopes[:n])
        if crossing.direction == "rising":
            assert np.all(slopes > 0)
        if crossing.direction == "falling":
            assert np.all(slopes < 0)
        assert np.all(np.isinf(log.times[n:]))
    # Without resets the state does not jump.
    np.testing.assert_array_equal(sol.events.states, sol.events.states_after)


# --- bouncing ball ----------------------------------------------------------------------

H0, E = 1.0, 0.8
N_BOUNCES = 6  # bounces in [0, 3] for h0 = 1, e = 0.8 (the 7th is at t = 3.12)


def _ball_solve(ball, h0, e, *, t1=3.0, terminal=False, **options):
    crossing = oi.Crossing(
        ball.crossing_fn, 0.0, direction="falling", reset=ball.reset, terminal=terminal
    )
    options.setdefault("max_events", 8)
    return oi.solve(
        ball.model,
        jnp.stack([h0, jnp.zeros_like(h0)]),
        {"g": jnp.array(G), "e": e},
        t0=0.0,
        t1=t1,
        events=crossing,
        **options,
    )


def test_ball_bounce_times_and_speeds(ball):
    assert ball_bounce_times(H0, E, N_BOUNCES + 1)[-1] > 3.0
    sol = _ball_solve(ball, jnp.array(H0), jnp.array(E))
    assert sol.result == oi.RESULTS.successful
    assert int(sol.events.count) == N_BOUNCES
    np.testing.assert_allclose(
        sol.events.times[:N_BOUNCES], ball_bounce_times(H0, E, N_BOUNCES), rtol=1e-10
    )
    speeds = ball_rebound_speeds(H0, E, N_BOUNCES)
    np.testing.assert_allclose(
        sol.events.states_after[:N_BOUNCES, 1], speeds, rtol=1e-9
    )
    np.testing.assert_allclose(sol.events.states[:N_BOUNCES, 1], -speeds / E, rtol=1e-9)
    np.testing.assert_allclose(sol.events.states[:N_BOUNCES, 0], 0.0, atol=1e-12)
    # Free flight after the last bounce up to t1 = 3.
    t_last, v_last = ball_bounce_times(H0, E, N_BOUNCES)[-1], speeds[-1]
    tau = 3.0 - t_last
    np.testing.assert_allclose(
        sol.y_final, [v_last * tau - G * tau**2 / 2, v_last - G * tau], atol=1e-10
    )
    assert float(sol.t_final) == 3.0
    assert int(sol.stats["num_segments"]) == N_BOUNCES + 1
    assert int(sol.stats["num_steps"]) > 0


def test_ball_derivatives_closed_form(ball):
    """d(bounce times, rebound speeds)/d(h0, e) by forward mode vs closed form:
    T_n = sqrt(2 h0/g) (1 + 2 sum_{j<n} e^j), v_n = e^n sqrt(2 g h0)."""

    def outputs(h0, e):
        sol = _ball_solve(ball, h0, e, adjoint=diffrax.ForwardMode())
        return sol.events.times[:N_BOUNCES], sol.events.states_after[:N_BOUNCES, 1]

    (dt_dh, dt_de), (dv_dh, dv_de) = jax.jacfwd(outputs, argnums=(0, 1))(
        jnp.array(H0), jnp.array(E)
    )
    n = np.arange(1, N_BOUNCES + 1)
    t_first = np.sqrt(2 * H0 / G)
    times = ball_bounce_times(H0, E, N_BOUNCES)
    speeds = ball_rebound_speeds(H0, E, N_BOUNCES)
    np.testing.assert_allclose(dt_dh, times / (2 * H0), rtol=1e-8)
    dsum = np.array([sum(2 * j * E ** (j - 1) for j in range(1, m)) for m in n])
    np.testing.assert_allclose(dt_de, t_first * dsum, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dv_dh, speeds / (2 * H0), rtol=1e-8)
    np.testing.assert_allclose(dv_de, n * speeds / E, rtol=1e-8)


def test_ball_terminal_stops_at_first_bounce(ball):
    saveat = jnp.array([0.0, 0.2, 0.4, 0.5, 1.0])
    sol = _ball_solve(ball, jnp.array(H0), jnp.array(E), terminal=True, saveat=saveat)
    t_first = np.sqrt(2 * H0 / G)
    assert sol.successful
    assert int(sol.events.count) == 1
    np.testing.assert_allclose(sol.t_final, t_first, rtol=1e-10)
    np.testing.assert_allclose(sol.y_final, [0.0, E * G * t_first], atol=1e-10)
    ts = np.array([0.0, 0.2, 0.4])
    np.testing.assert_allclose(sol.ys[:3, 0], H0 - G * ts**2 / 2, atol=1e-10)
    assert np.all(np.isinf(sol.ys[3:]))  # after the terminal crossing


def test_ball_event_buffer_full(ball):
    h0, e = jnp.array(H0), jnp.array(E)
    sol = _ball_solve(ball, h0, e, max_events=3, throw=False)
    assert sol.result == oi.RESULTS.event_buffer_full
    assert not bool(sol.successful)
    assert int(sol.events.count) == 3
    np.testing.assert_allclose(
        sol.events.times, ball_bounce_times(H0, E, 3), rtol=1e-10
    )
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_events"):
        _ball_solve(ball, h0, e, max_events=3, throw=True)


# --- second derivatives (slow to compile: two tests only) -------------------------------


def _second_bounce_time(ball, x, t1, adjoint):
    """The second bounce time; `t1` lies between the second and third bounce."""
    sol = _ball_solve(
        ball, x[0], x[1], t1=t1, max_events=2, max_steps=32, adjoint=adjoint
    )
    return sol.events.times[1]


def _second_bounce_hessian(x):
    """T_2 = sqrt(2 h0 / g) (1 + 2 e) in closed form."""
    h0, e = x
    c = np.sqrt(2 / G)
    return np.array(
        [[-0.25 * c * h0**-1.5 * (1 + 2 * e), c * h0**-0.5], [c * h0**-0.5, 0.0]]
    )


def _fd_hessian(fn, x, step=1e-4):
    """Central second differences of the (compiled) primal. The ball's flight is a
    polynomial that Tsit5 integrates exactly, so round-off is the only solver error."""
    x = np.asarray(x)
    n = len(x)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            ei, ej = step * np.eye(n)[i], step * np.eye(n)[j]
            out[i, j] = (
                fn(x + ei + ej) - fn(x + ei - ej) - fn(x - ei + ej) + fn(x - ei - ej)
            ) / (4 * step**2)
    return out


@pytest.mark.parametrize(
    "mode, x, t1",
    [("forward-over-reverse", (H0, E), 1.5), ("forward-over-forward", (0.7, 0.6), 1.0)],
)
def test_second_bounce_hessian(ball, mode, x, t1):
    """`jax.hessian` with `DirectAdjoint` and `jacfwd(jacfwd)` with `ForwardMode`."""
    assert (
        ball_bounce_times(x[0], x[1], 3)[1] < t1 < ball_bounce_times(x[0], x[1], 3)[2]
    )
    x = jnp.array(x)
    if mode == "forward-over-reverse":
        fn = jax.jit(
            lambda x: _second_bounce_time(ball, x, t1, diffrax.DirectAdjoint())
        )
        hessian = jax.hessian(fn)(x)
    else:
        fn = jax.jit(lambda x: _second_bounce_time(ball, x, t1, diffrax.ForwardMode()))
        hessian = jax.jacfwd(jax.jacfwd(fn))(x)
    np.testing.assert_allclose(
        hessian, _second_bounce_hessian(np.asarray(x)), atol=1e-8
    )
    np.testing.assert_allclose(hessian, _fd_hessian(fn, x), atol=1e-6)


# --- doses ------------------------------------------------------------------------------

DOSE_TIMES = np.array([0.0, 6.0, 12.0, 18.0])
DOSE_AMOUNTS = np.array([100.0, 50.0, 80.0, 20.0])
SAVE = np.array([0.0, 1.0, 5.999, 6.0, 9.0, 12.0, 15.0, 18.0, 24.0])


def _bolus(one_compartment, cl, v, amounts, adjoint=REVERSE):
    return oi.solve(
        one_compartment.model,
        jnp.array(0.0),
        {"CL": cl, "V": v},
        t0=0.0,
        t1=24.0,
        saveat=jnp.asarray(SAVE),
        doses=oi.Dose(jnp.asarray(DOSE_TIMES), amounts, target=()),
        rtol=1e-10,
        atol=1e-10,
        adjoint=adjoint,
    )


def test_bolus_superposition(one_compartment):
    cl, v = 2.0, 10.0
    sol = _bolus(
        one_compartment, jnp.array(cl), jnp.array(v), jnp.asarray(DOSE_AMOUNTS)
    )
    assert sol.result == oi.RESULTS.successful
    expected = bolus_amount(SAVE, DOSE_TIMES, DOSE_AMOUNTS, cl / v)
    np.testing.assert_allclose(sol.ys, expected, rtol=1e-8)
    # Right-continuous at dose times: the saved state includes the dose given then.
    before = bolus_amount(5.999, DOSE_TIMES, DOSE_AMOUNTS, cl / v)
    assert float(sol.ys[3]) - float(before) == pytest.approx(50.0, rel=1e-3)
    assert int(sol.stats["num_segments"]) == len(DOSE_TIMES) + 1
    assert int(sol.events.count) == 0


def test_bolus_derivatives_closed_form(one_compartment):
    cl, v = 2.0, 10.0
    ke = cl / v

    def saved(cl, v, amounts):
        return _bolus(one_compartment, cl, v, amounts, diffrax.ForwardMode()).ys

    d_cl, d_v, d_amounts = jax.jacfwd(saved, argnums=(0, 1, 2))(
        jnp.array(cl), jnp.array(v), jnp.asarray(DOSE_AMOUNTS)
    )
    tau = SAVE[:, None] - DOSE_TIMES[None, :]
    decay = np.where(tau >= 0, np.exp(-ke * np.maximum(tau, 0.0)), 0.0)
    np.testing.assert_allclose(d_amounts, decay, rtol=1e-8, atol=1e-12)
    d_ke = -(decay * np.maximum(tau, 0.0)) @ DOSE_AMOUNTS
    np.testing.assert_allclose(d_cl, d_ke / v, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(d_v, -d_ke * cl / v**2, rtol=1e-7, atol=1e-10)


def test_oral_doses_bateman(oral):
    ka, ke = 1.0, 0.2
    times, amounts = np.array([0.0, 8.0, 16.0]), np.array([100.0, 100.0, 50.0])
    save = np.linspace(0.0, 24.0, 25)
    sol = oi.solve(
        oral.model,
        jnp.zeros(2),
        {"ka": jnp.array(ka), "ke": jnp.array(ke)},
        t0=0.0,
        t1=24.0,
        saveat=jnp.asarray(save),
        doses=oi.Dose(jnp.asarray(times), jnp.asarray(amounts), target=0),
        rtol=1e-10,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        sol.ys[:, 1],
        oral_central_amount(save, times, amounts, ka, ke),
        rtol=1e-8,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        sol.ys[:, 0], bolus_amount(save, times, amounts, ka), rtol=1e-8
    )
