"""Terminal crossings with the fused solvers (`FusedDopri5`, `FusedRodas5P`,
`FusedAuto`): crossing times and their derivatives against closed forms and scipy
(`solve_ivp` with its events, rtol 1e-12, central differences for derivatives), parity
with the diffrax path, `jax.vmap`, a crossing not found, and the crossings refused."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _references import (
    LOGISTIC,
    SPRING,
    logistic_crossing_time,
    logistic_exact,
    spring_params,
    spring_scipy_crossings,
    spring_y0,
)
from scipy.integrate import solve_ivp

import odeinfer as oi

FUSED = [oi.FusedDopri5(), oi.FusedRodas5P(), oi.FusedAuto()]
IDS = ["FusedDopri5", "FusedRodas5P", "FusedAuto"]
REACH = oi.Crossing(LOGISTIC.crossing_fn, 0.8, direction="rising")


def _threshold(k, solver, level=0.8, y0=0.5, t1=1000.0, **options):
    return oi.first_crossing(
        LOGISTIC.model, y0, {"k": k}, REACH.with_options(level=level), t0=0.0,
        t1=t1, solver=solver, **options,
    )  # fmt: skip


# FusedDopri5 in the default tier (19 s and 13 s of compilation for the other two);
# FusedAuto's crossings are also in tests/test_batches.py (Problem's default solver),
# FusedRodas5P's in test_rober_against_radau.
SLOW_TOO = [oi.FusedDopri5()] + [
    pytest.param(s, marks=pytest.mark.slow) for s in (oi.FusedRodas5P(), oi.FusedAuto())
]


@pytest.mark.parametrize("solver", SLOW_TOO, ids=IDS)
def test_logistic_threshold_time_and_derivatives(solver):
    """t* = ln 4 / k (y0 = 1/2, level 0.8): dt*/dk = -ln 4/k^2, d2t*/dk2 = 2 ln 4/k^3,
    dt*/dlevel = 1/(k L (1 - L)), dt*/dy0 = -1/(k y0 (1 - y0))."""
    k = jnp.asarray(0.01)
    hit = _threshold(k, solver)
    assert bool(hit.found) and hit.result == oi.RESULTS.successful
    np.testing.assert_allclose(hit.time, np.log(4) / 0.01, rtol=1e-7)
    np.testing.assert_allclose(hit.state, 0.8, rtol=1e-9)
    np.testing.assert_allclose(hit.slope, 0.01 * 0.8 * 0.2, rtol=1e-7)

    def time(k):
        return _threshold(k, solver).time

    expected = -np.log(4) / 0.01**2
    np.testing.assert_allclose(jax.grad(time)(k), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(time)(k), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.grad(time))(k), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.hessian(time)(k), 2 * np.log(4) / 0.01**3, rtol=1e-4)

    level = jnp.asarray(0.8)
    d_level = jax.grad(lambda L: _threshold(k, solver, level=L).time)(level)
    np.testing.assert_allclose(d_level, 1 / (0.01 * 0.8 * 0.2), rtol=1e-6)
    d_y0 = jax.grad(lambda y0: _threshold(k, solver, y0=y0).time)(jnp.asarray(0.5))
    np.testing.assert_allclose(d_y0, -1 / (0.01 * 0.25), rtol=1e-6)
    # The state at the crossing is the level whatever k: its derivative is zero.
    d_state = jax.grad(lambda k: _threshold(k, solver).state)(k)
    np.testing.assert_allclose(d_state, 0.0, atol=1e-8)


def test_t0_and_parameters_only_the_crossing_reads():
    """dt*/dt0 = 1 (the logistic is autonomous); `fn = y / scale` reaching 0.4 is
    `y = 0.4 scale`, so dt*/dscale = 0.4 / (k L (1 - L)) at L = 0.8: a parameter the
    vector field does not read gets its derivative from the crossing function."""
    scaled = oi.Crossing(lambda t, y, p: y / p["scale"], 0.4, direction="rising")

    def time(t0, scale):
        params = {"k": 0.01, "scale": scale}
        return oi.first_crossing(LOGISTIC.model, 0.5, params, scaled, t0=t0,
                                 t1=1000.0, solver=oi.FusedDopri5()).time  # fmt: skip

    t0, scale = jnp.asarray(3.0), jnp.asarray(2.0)
    np.testing.assert_allclose(time(t0, scale), 3.0 + np.log(4) / 0.01, rtol=1e-8)
    d_t0, d_scale = jax.grad(time, argnums=(0, 1))(t0, scale)
    np.testing.assert_allclose(d_t0, 1.0, rtol=1e-6)
    np.testing.assert_allclose(d_scale, 0.4 / (0.01 * 0.8 * 0.2), rtol=1e-6)


def test_solution_matches_the_diffrax_path():
    """Event log, final point and saves (`inf` after the terminal crossing) as the
    diffrax path fills them."""
    saveat = jnp.linspace(0.0, 300.0, 7)
    options = dict(t0=0.0, t1=1000.0, saveat=saveat, events=REACH.with_options(
        terminal=True), max_events=3)  # fmt: skip
    fused = oi.solve(
        LOGISTIC.model, 0.5, {"k": 0.01}, solver=oi.FusedDopri5(), **options
    )
    plain = oi.solve(LOGISTIC.model, 0.5, {"k": 0.01}, **options)
    for a, b in (
        (fused.events.times, plain.events.times),
        (fused.events.states, plain.events.states),
        (fused.events.states_after, plain.events.states_after),
        (fused.events.slopes, plain.events.slopes),
        (fused.t_final, plain.t_final),
        (fused.y_final, plain.y_final),
        (fused.ys, plain.ys),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-7)
    np.testing.assert_array_equal(fused.events.which, plain.events.which)
    assert int(fused.events.count) == int(plain.events.count) == 1
    assert fused.result == plain.result == oi.RESULTS.successful
    before = np.asarray(saveat) <= np.log(4) / 0.01
    np.testing.assert_allclose(
        fused.ys[before], logistic_exact(np.asarray(saveat)[before], 0.5, 0.01),
        rtol=1e-8,
    )  # fmt: skip
    assert np.all(np.isinf(fused.ys[~before]))
    # Derivatives of the saves: finite, zero after the crossing.
    d_ys = jax.jacfwd(
        lambda k: (
            oi.solve(
                LOGISTIC.model, 0.5, {"k": k}, solver=oi.FusedDopri5(), **options
            ).ys
        )  # fmt: skip
    )(jnp.asarray(0.01))
    t = np.asarray(saveat)[before]
    y = logistic_exact(t, 0.5, 0.01)
    np.testing.assert_allclose(d_ys[before], t * y * (1 - y), rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(d_ys[~before], 0.0)


def test_spring_against_scipy_and_diffrax():
    """The 3-D spring's first F = 0.85 (rising) against scipy DOP853 (rtol 1e-13, its
    events); dt*/dk against central differences of that solve."""
    crossing = oi.Crossing(SPRING.crossing_fn, 0.85)

    def first(k, solver, rtol):
        return oi.first_crossing(
            SPRING.model, spring_y0(), {**spring_params(), "k": k}, crossing, t0=0.0,
            t1=5.0, solver=solver, rtol=rtol, atol=rtol,
        ).time  # fmt: skip

    reference = spring_scipy_crossings(0.85)[0]
    k = jnp.asarray(250.0)
    fused = first(k, oi.FusedDopri5(), 1e-11)
    np.testing.assert_allclose(fused, reference, rtol=1e-9)
    np.testing.assert_allclose(first(k, diffrax.Tsit5(), 1e-11), fused, rtol=1e-9)
    delta = 250.0 * 1e-5
    slope = (
        spring_scipy_crossings(0.85, k=250.0 + delta)[0]
        - spring_scipy_crossings(0.85, k=250.0 - delta)[0]
    ) / (2 * delta)
    grad = jax.grad(lambda k: first(k, oi.FusedDopri5(), 1e-11))(k)
    np.testing.assert_allclose(grad, slope, rtol=1e-6)


def _rober_scipy(k1, level=0.5):
    def field(t, y):
        r1, r2, r3 = k1 * y[0], 1e4 * y[1] * y[2], 3e7 * y[1] ** 2
        return [-r1 + r2, r1 - r2 - r3, r3]

    def jacobian(t, y):
        return [
            [-k1, 1e4 * y[2], 1e4 * y[1]],
            [k1, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
            [0.0, 6e7 * y[1], 0.0],
        ]

    def event(t, y):
        return y[0] - level

    event.direction = -1
    event.terminal = True
    out = solve_ivp(field, (0.0, 1e4), [1.0, 0.0, 0.0], method="Radau", rtol=1e-12,
                    atol=1e-20, jac=jacobian, events=[event])  # fmt: skip
    assert out.status == 1
    return out.t_events[0][0]


def _rober():
    def field(t, y, p):
        r1, r2, r3 = p["k1"] * y[0], p["k3"] * y[1] * y[2], p["k2"] * y[1] ** 2
        return jnp.stack([-r1 + r2, r1 - r2 - r3, r3])

    return oi.ODEModel(field, name="rober_crossing")


ROBER = _rober()
HALF = oi.Crossing(lambda t, y, p: y[0], 0.5, direction="falling")


def _rober_time(k1, solver):
    params = {"k1": k1, "k2": 3e7, "k3": 1e4}
    return oi.first_crossing(
        ROBER, jnp.array([1.0, 0.0, 0.0]), params, HALF, t0=0.0, t1=1e4,
        solver=solver, rtol=1e-8, atol=1e-14, max_steps=20_000,
    ).time  # fmt: skip


def test_rober_against_radau():
    """ROBER's y1 falling through 0.5 (t* = 268.3247...) with FusedRodas5P and the
    diffrax Rodas5P; dt*/dk1 (about -12665.28) against central differences of Radau."""
    reference = _rober_scipy(0.04)
    np.testing.assert_allclose(reference, 268.324726, rtol=1e-8)
    k1 = jnp.asarray(0.04)
    fused = _rober_time(k1, oi.FusedRodas5P())
    np.testing.assert_allclose(fused, reference, rtol=1e-7)
    np.testing.assert_allclose(_rober_time(k1, oi.Rodas5P()), fused, rtol=1e-7)
    delta = 0.04 * 1e-5
    slope = (_rober_scipy(0.04 + delta) - _rober_scipy(0.04 - delta)) / (2 * delta)
    np.testing.assert_allclose(slope, -12665.2756, rtol=1e-6)
    grad = jax.grad(lambda k1: _rober_time(k1, oi.FusedRodas5P()))(k1)
    np.testing.assert_allclose(grad, slope, rtol=1e-5)


def test_vmap_over_parameters_and_not_found():
    """A batch of rates, one of which does not reach the level before t1: `found`
    false there, time inf, derivative exactly zero."""
    ks = jnp.array([0.01, 0.02, 0.05, 0.001])

    def time(k):
        return _threshold(k, oi.FusedAuto(), t1=300.0).time

    hits = jax.vmap(lambda k: _threshold(k, oi.FusedAuto(), t1=300.0))(ks)
    expected = logistic_crossing_time(0.8, 0.5, np.asarray(ks))
    found = expected <= 300.0
    np.testing.assert_array_equal(hits.found, found)
    np.testing.assert_allclose(hits.time[found], expected[found], rtol=1e-7)
    assert np.all(np.isinf(hits.time[~found]))
    assert np.all(np.isinf(hits.state[~found]))
    assert np.all(hits.result == oi.RESULTS.successful)
    grads = jax.vmap(jax.grad(time))(ks)
    np.testing.assert_allclose(
        grads[found], -np.log(4) / np.asarray(ks)[found] ** 2, rtol=1e-6
    )
    np.testing.assert_array_equal(grads[~found], 0.0)


def test_crossing_after_a_dose_against_the_closed_form():
    """Decay with a bolus: the amount falls through the level after the dose; the
    crossing time and its derivatives with respect to the rate and the dose amount."""
    decay = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay_dose_crossing")
    below = oi.Crossing(lambda t, y, p: y[0], 0.5, direction="falling")

    def time(k, amount, solver):
        return oi.first_crossing(
            decay, jnp.array([1.0]), {"k": k}, below, t0=0.0, t1=10.0, solver=solver,
            doses=oi.Dose(times=1.0, amounts=amount),
        ).time  # fmt: skip

    k, amount = jnp.asarray(0.5), jnp.asarray(2.0)
    # y(t) = (e^{-k} + A) e^{-k (t - 1)} after the dose: t* = 1 + ln(2 (e^{-k} + A))/k.
    expected = 1 + np.log(2 * (np.exp(-0.5) + 2.0)) / 0.5
    fused = time(k, amount, oi.FusedDopri5())
    np.testing.assert_allclose(fused, expected, rtol=1e-7)
    grad_fused = jax.grad(time, argnums=(0, 1))(k, amount, oi.FusedDopri5())
    # Closed form (the diffrax-path comparison cost 10 s of compilation):
    # dt*/dk = (-k e^{-k}/(e^{-k} + A) - ln(2 (e^{-k} + A))) / k^2,
    # dt*/dA = 1 / (k (e^{-k} + A)).
    c = np.exp(-0.5) + 2.0
    dk = (-0.5 * np.exp(-0.5) / c - np.log(2 * c)) / 0.5**2
    np.testing.assert_allclose(grad_fused, (dk, 1 / (0.5 * c)), rtol=1e-6)


def test_segments_count_only_the_doses_given_before_the_solve_stopped():
    """`num_segments` (and the evaluation count built on it) is one more than the
    doses the solve reached: not those after a terminal crossing or after `t1`; one at
    `t1` counts, as on the diffrax path."""
    decay = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay_dose_segments")
    below = oi.Crossing(lambda t, y, p: y[0], 0.5, direction="falling", terminal=True)
    doses = oi.Dose(times=[1.0, 6.0, 8.0], amounts=2.0)

    def segments(t1, events):
        sol = oi.solve(
            decay, jnp.array([1.0]), {"k": 0.5}, t0=0.0, t1=t1, doses=doses,
            events=events, solver=oi.FusedDopri5(),
        )  # fmt: skip
        return int(sol.stats["num_segments"]), float(sol.t_final)

    # The crossing (t* = 1 + ln(2 (e^{-1/2} + 2)) / (1/2) = 4.30) comes before 6 and 8.
    n, t_final = segments(10.0, (below,))
    np.testing.assert_allclose(t_final, 1 + np.log(2 * (np.exp(-0.5) + 2)) / 0.5, 1e-6)
    assert n == 2
    assert segments(7.0, ())[0] == 3  # the dose at 8 is after t1
    assert segments(8.0, ())[0] == 4  # one at t1 is given


@pytest.mark.parametrize(
    "events, match",
    [
        (
            [
                oi.Crossing(LOGISTIC.crossing_fn, 0.6, terminal=True),
                REACH.with_options(terminal=True),
            ],
            "got 2 crossings",
        ),
        (REACH, "not terminal"),
        (
            REACH.with_options(terminal=True, reset=lambda t, y, p: 0.5 * y),
            "with a `reset`",
        ),
    ],
    ids=["several", "not terminal", "reset"],
)
def test_refused_crossings_name_the_fix(events, match):
    with pytest.raises(ValueError, match=match) as info:
        oi.solve(LOGISTIC.model, 0.5, {"k": 0.01}, t0=0.0, t1=1000.0, events=events,
                 solver=oi.FusedDopri5())  # fmt: skip
    assert "oi.Rodas5P()" in str(info.value)
    with pytest.raises(ValueError, match="not terminal"):
        oi.all_crossings(LOGISTIC.model, 0.5, {"k": 0.01}, REACH, t0=0.0, t1=1000.0,
                         solver=oi.FusedAuto())  # fmt: skip


def test_two_crossings_within_one_step_are_not_hidden():
    """`sin t` against the level 1 - 1e-7: rising and falling 9e-4 apart around the
    maximum; a step over both shows no sign change and is retried shorter, as on the
    diffrax path (`CrossingGuard`)."""
    sine = oi.ODEModel(lambda t, y, p: jnp.cos(t), name="sine_guard")
    near_top = oi.Crossing(lambda t, y, p: y, 1 - 1e-7, direction="rising")
    for solver in (oi.FusedDopri5(), oi.FusedRodas5P()):
        hit = oi.first_crossing(sine, 0.0, {}, near_top, t0=0.0, t1=3.0, rtol=1e-12,
                                atol=1e-12, solver=solver)  # fmt: skip
        assert bool(hit.found)
        np.testing.assert_allclose(hit.time, np.arcsin(1 - 1e-7), rtol=1e-9)
        # At the default tolerances the touch is not resolved: `tangent_crossing`, as
        # on the diffrax path.
        touch = oi.first_crossing(sine, 0.0, {}, near_top, t0=0.0, t1=3.0,
                                  solver=solver, throw=False)  # fmt: skip
        assert touch.result == oi.RESULTS.tangent_crossing
