import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import odeinfer as oi

X = {"a": jnp.array([1.0, 2.0]), "b": 0.3}


def test_correct_gradient_passes_and_prints_a_table():
    report = oi.check_gradients(lambda p: jnp.sum(p["a"] ** 2) * jnp.exp(p["b"]), X)
    assert report.ok and report.names == ("a[0]", "a[1]", "b")
    exact = np.array([2.0, 4.0, 5.0]) * np.exp(0.3)
    np.testing.assert_allclose(report.autodiff, exact, rtol=1e-12)
    np.testing.assert_allclose(report.finite_difference, exact, rtol=1e-8)
    assert "OK" in str(report) and "a[1]" in str(report)


def test_silent_zero_gradient_is_flagged():
    # stop_gradient (or a pure_callback/numpy round-trip with a custom rule) gives zeros.
    report = oi.check_gradients(
        lambda p: p["a"] * jax.lax.stop_gradient(p["b"]) ** 2, {"a": 1.0, "b": 2.0}
    )
    assert not report.ok
    assert report.flags == ((), ("zero-gradient",))
    assert "zero-gradient" in str(report)


def test_numpy_call_and_nan_and_wrong_derivative_are_flagged():
    def with_numpy(p):
        return p["a"] * jnp.asarray(np.exp(np.asarray(p["b"])))

    report = oi.check_gradients(with_numpy, {"a": 1.0, "b": 2.0})
    assert all("autodiff-error" in f for f in report.flags)
    # Finite differences still work (evaluated eagerly).
    np.testing.assert_allclose(report.finite_difference[0], np.exp(2.0), rtol=1e-8)

    report = oi.check_gradients(lambda x: jnp.sqrt(x) + x, jnp.array(0.0))
    assert report.flags == (("nan",),)

    @jax.custom_jvp
    def wrong(x):
        return jnp.sin(x)

    wrong.defjvp(
        lambda primals, tangents: (
            jnp.sin(primals[0]),
            1.1 * jnp.cos(primals[0]) * tangents[0],
        )
    )
    report = oi.check_gradients(wrong, jnp.array(0.4))
    assert report.flags == (("mismatch",),)


SPRING = oi.ODEModel(lambda t, y, p: jnp.stack([y[1], -p["k"] * y[0]]), name="spring")
Y0 = jnp.array([1.0, 0.0])


def test_event_time_gradient_three_ways():
    # y0 = cos(sqrt(k) t): t* = arccos(L)/sqrt(k), dt*/dk = -t*/(2k).
    k, level = 4.0, 0.5
    crossing = oi.Crossing(lambda t, y, p: y[0], level)
    implicit = oi.event_time_gradient(SPRING, Y0, {"k": k}, crossing, t0=0.0, t1=3.0)
    t_star = np.arccos(level) / np.sqrt(k)
    np.testing.assert_allclose(implicit.time, t_star, rtol=1e-7)
    np.testing.assert_allclose(implicit.gradient["k"], -t_star / (2 * k), rtol=1e-6)
    assert not implicit.grazing
    report = oi.check_event_gradients(
        SPRING,
        Y0,
        {"k": k},
        crossing,
        t0=0.0,
        t1=3.0,
        mode="forward",
        adjoint=diffrax.ForwardMode(),
    )
    assert report.ok, str(report)
    np.testing.assert_allclose(report.autodiff, [-t_star / (2 * k)], rtol=1e-6)
    assert report.reference_error[0] < 1e-6


def test_grazing_crossing_is_flagged():
    # y0 = cos(2t) has its minimum -1 at t = pi/2; a level just above it is nearly tangent.
    # Crossings 1.4e-3 apart: a max_step_size well below that lets the solver see both.
    crossing = oi.Crossing(lambda t, y, p: y[0], -1.0 + 1e-6)
    implicit = oi.event_time_gradient(
        SPRING, Y0, {"k": 4.0}, crossing, t0=0.0, t1=1.6, max_step_size=5e-4
    )
    assert implicit.grazing
