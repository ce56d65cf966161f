"""`solve`: saved states, stats, dense output, `jax.jit` and `jax.vmap`, against closed
forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _references import G, ball_bounce_times, ball_rebound_speeds, logistic_exact

import odeinfer as oi

SAVE = np.linspace(0.0, 300.0, 13)


def _logistic_solve(logistic, k, y0, **options):
    return oi.solve(
        logistic.model,
        y0,
        {"k": k},
        t0=0.0,
        t1=300.0,
        saveat=jnp.asarray(SAVE),
        events=oi.Crossing(logistic.crossing_fn, 0.8),
        **options,
    )


def test_logistic_saved_states_and_stats(logistic):
    sol = _logistic_solve(logistic, jnp.array(0.01), jnp.array(0.5))
    assert sol.result == oi.RESULTS.successful
    assert bool(sol.successful)
    np.testing.assert_allclose(sol.ts, SAVE)
    np.testing.assert_allclose(sol.ys, logistic_exact(SAVE, 0.5, 0.01), rtol=1e-8)
    assert float(sol.t_final) == 300.0
    np.testing.assert_allclose(sol.y_final, logistic_exact(300.0, 0.5, 0.01), rtol=1e-8)
    # The crossing is recorded without changing the trajectory.
    assert int(sol.events.count) == 1
    np.testing.assert_allclose(sol.events.times[0], 100 * np.log(4), rtol=1e-7)
    stats = {name: int(value) for name, value in sol.stats.items()}
    assert stats["num_steps"] > 0
    assert (
        stats["num_steps"] == stats["num_accepted_steps"] + stats["num_rejected_steps"]
    )
    assert stats["num_segments"] == 2  # up to the crossing, then to t1
    # Tsit5: 7 stages, first-same-as-last, so 6 new evaluations per step, plus three per
    # segment (first stage and the two of the initial step-size guess).
    assert stats["num_fevals"] == 6 * stats["num_steps"] + 3 * stats["num_segments"]


def test_logistic_tolerance_controls_error(logistic):
    """Tolerances are traced (no recompilation) and tightening them reduces the error."""
    errors = []
    for rtol in (1e-5, 1e-9):
        sol = _logistic_solve(
            logistic, jnp.array(0.01), jnp.array(0.5), rtol=rtol, atol=rtol
        )
        errors.append(np.abs(sol.ys - logistic_exact(SAVE, 0.5, 0.01)).max())
    assert errors[1] < errors[0] / 100


def test_jit_and_vmap_match_loop(logistic):
    """jax.jit and jax.vmap over params and y0 (throw=False) give the loop's results."""

    def run(k, y0):
        sol = _logistic_solve(logistic, k, y0, throw=False)
        return sol.ys, sol.events.times[0], sol.result

    ks = jnp.array([0.01, 0.02, 0.03])
    y0s = jnp.array([0.5, 0.3, 0.1])
    jitted = jax.jit(run)
    looped = [jitted(k, y0) for k, y0 in zip(ks, y0s, strict=True)]
    batched = jax.vmap(run)(ks, y0s)
    np.testing.assert_array_equal(batched[2] == oi.RESULTS.successful, [True] * 3)
    for i, (k, y0) in enumerate(zip(ks, y0s, strict=True)):
        np.testing.assert_allclose(batched[0][i], looped[i][0], rtol=1e-12)
        np.testing.assert_allclose(batched[1][i], looped[i][1], rtol=1e-12)
        assert bool(looped[i][2] == oi.RESULTS.successful)
        np.testing.assert_allclose(
            looped[i][0], logistic_exact(SAVE, float(y0), float(k)), rtol=1e-7
        )
        t_star = np.log(4 * (1 - float(y0)) / float(y0)) / float(k)
        np.testing.assert_allclose(batched[1][i], t_star, rtol=1e-7)


def test_dense_output_across_resets(ball):
    h0, e = 1.0, 0.8
    crossing = oi.Crossing(ball.crossing_fn, 0.0, direction="falling", reset=ball.reset)
    sol = oi.solve(
        ball.model,
        jnp.array([h0, 0.0]),
        {"g": jnp.array(G), "e": jnp.array(e)},
        t0=0.0,
        t1=2.0,
        events=crossing,
        max_events=4,
        max_steps=64,
        dense=True,
    )
    bounces = ball_bounce_times(h0, e, 3)
    speeds = ball_rebound_speeds(h0, e, 3)
    # Just before and after each bounce, and in between.
    ts = np.sort(
        np.concatenate([bounces - 1e-6, bounces + 1e-6, [0.0, 0.2, 0.8, 1.5, 2.0]])
    )
    start = np.concatenate([[0.0], bounces])
    last = np.searchsorted(start, ts, side="right") - 1
    tau = ts - start[last]
    v_start = np.concatenate([[0.0], speeds])[last]
    h_start = np.where(last == 0, h0, 0.0)
    expected = np.stack(
        [h_start + v_start * tau - G * tau**2 / 2, v_start - G * tau], 1
    )
    np.testing.assert_allclose(sol.evaluate(jnp.asarray(ts)), expected, atol=1e-9)
    # Right-continuous at the bounce itself (the recorded crossing time, which agrees
    # with the closed form to round-off): the state after the reset.
    t_bounce = sol.events.times[0]
    np.testing.assert_allclose(float(t_bounce), bounces[0], rtol=1e-12)
    np.testing.assert_allclose(sol.evaluate(t_bounce), [0.0, speeds[0]], atol=1e-9)


def test_evaluate_without_dense_raises(logistic):
    sol = _logistic_solve(logistic, jnp.array(0.01), jnp.array(0.5))
    with pytest.raises(ValueError, match="dense=True"):
        sol.evaluate(1.0)


def test_new_python_float_parameter_does_not_recompile(logistic):
    def run(k):
        return oi.solve(logistic.model, 0.5, {"k": k}, t0=0.0, t1=10.0).y_final

    run(0.01)
    compiles = []

    def listen(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        value = run(0.011)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    np.testing.assert_allclose(value, logistic_exact(10.0, 0.5, 0.011), rtol=1e-8)
    assert compiles == []
