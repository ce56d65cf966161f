"""The integral model of issue 3: a prediction Q(t) = ∫_0^t e^{A s} f(s) ds."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import expm

import odeinfer as oi

SCALAR = oi.ODEModel(lambda t, y, p: p["a"] * y, name="exp")
MATRIX = oi.ODEModel(lambda t, y, p: p["A"] @ y, name="expm")
A = jnp.array([[-0.5, 1.0], [-1.0, -0.3]])


def _sin_integrand(t, y, p):
    return y * jnp.sin(t)


def _closed_scalar(a, t):
    # ∫_0^t e^{a s} sin s ds
    return (jnp.exp(a * t) * (a * jnp.sin(t) - jnp.cos(t)) + 1.0) / (a * a + 1.0)


def _closed_matrix(a_matrix, t):
    # ∫_0^t e^{A s} ds = A^{-1} (e^{A t} - I)
    return jnp.linalg.solve(a_matrix, expm(a_matrix * t) - jnp.eye(2))


def test_array_rules_convergence_order():
    errors_trap, errors_simp, hs = [], [], []
    for n in (9, 17, 33, 65):
        ts = np.linspace(0.0, 2.0, n)
        exact = (1 - np.cos(3 * ts)) / 3
        values = np.sin(3 * ts)
        errors_trap.append(np.abs(oi.cumulative_trapezoid(values, ts) - exact).max())
        errors_simp.append(np.abs(oi.cumulative_simpson(values, ts) - exact).max())
        hs.append(ts[1] - ts[0])
    order_trap = np.polyfit(np.log(hs), np.log(errors_trap), 1)[0]
    order_simp = np.polyfit(np.log(hs[1:]), np.log(errors_simp[1:]), 1)[0]
    assert 1.9 < order_trap < 2.1
    assert 3.7 < order_simp < 4.3
    with pytest.raises(ValueError, match="uniform"):
        oi.cumulative_simpson(np.ones(4), [0.0, 1.0, 1.5, 3.0])


def test_adaptive_integral_and_gradient_scalar_a():
    ts = jnp.linspace(0.0, 3.0, 7)

    def q(a):
        return oi.cumulative_integral(
            SCALAR,
            _sin_integrand,
            jnp.array(1.0),
            {"a": a},
            ts=ts,
            adjoint=diffrax.ForwardMode(),
            rtol=1e-10,
            atol=1e-12,
        )

    a = -0.4
    np.testing.assert_allclose(q(a), _closed_scalar(a, ts), atol=1e-8)
    dq = jax.jacfwd(q)(a)
    np.testing.assert_allclose(dq, jax.jacfwd(_closed_scalar)(a, ts), atol=1e-7)


def test_gradient_wrt_matrix_matches_closed_form():
    t1 = 2.0
    ts = jnp.array([1.0, t1])

    def q(a_matrix):
        integral = oi.cumulative_integral(
            MATRIX,
            lambda t, y, p: y,
            jnp.eye(2),
            {"A": a_matrix},
            ts=ts,
            t0=0.0,
            adjoint=diffrax.ForwardMode(),
            rtol=1e-10,
            atol=1e-12,
        )
        return integral[-1]

    np.testing.assert_allclose(q(A), _closed_matrix(A, t1), atol=1e-8)
    jac = jax.jacfwd(q)(A)  # (2, 2) output x (2, 2) input
    np.testing.assert_allclose(jac, jax.jacfwd(_closed_matrix)(A, t1), atol=1e-7)


def test_trapezoid_error_on_the_ode_is_second_order():
    # One solve on the finest grid; coarser grids are its subsamples.
    fine = jnp.linspace(0.0, 3.0, 97)
    a = -0.4
    ys = oi.solve(SCALAR, 1.0, {"a": a}, t0=0.0, t1=3.0, saveat=fine).ys
    integrand = np.asarray(ys * jnp.sin(fine))
    errors, hs = [], []
    for stride in (16, 8, 4, 2, 1):
        ts = np.asarray(fine)[::stride]
        q = oi.cumulative_trapezoid(integrand[::stride], ts)
        errors.append(np.abs(q - _closed_scalar(a, ts)).max())
        hs.append(ts[1] - ts[0])
    order = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert 1.9 < order < 2.1, (order, errors)
    # The same rule through cumulative_integral on the coarsest grid agrees.
    coarse = np.asarray(fine)[::16]
    via_api = oi.cumulative_integral(
        SCALAR, _sin_integrand, 1.0, {"a": a}, ts=coarse, method="trapezoid"
    )
    np.testing.assert_allclose(
        via_api, oi.cumulative_trapezoid(integrand[::16], coarse), rtol=1e-7
    )


def test_gauss_legendre_and_simpson_methods():
    ts = jnp.linspace(0.0, 3.0, 7)
    a = -0.4
    exact = _closed_scalar(a, ts)
    gl = oi.cumulative_integral(
        SCALAR, _sin_integrand, 1.0, {"a": a}, ts=ts, method="gauss_legendre", order=4
    )
    np.testing.assert_allclose(gl, exact, atol=1e-7)
    simpson = oi.cumulative_integral(
        SCALAR, _sin_integrand, 1.0, {"a": a}, ts=ts, method="simpson"
    )
    trapezoid = oi.cumulative_trapezoid(
        np.exp(a * np.asarray(ts)) * np.sin(np.asarray(ts)), np.asarray(ts)
    )
    assert np.abs(simpson - exact).max() < 0.1 * np.abs(trapezoid - exact).max()
    with pytest.raises(ValueError, match="method"):
        oi.cumulative_integral(SCALAR, _sin_integrand, 1.0, {"a": a}, ts=ts, method="x")


def test_integral_as_observable_in_a_likelihood():
    model = oi.with_integral(SCALAR, _sin_integrand)
    times = np.array([0.5, 1.0, 2.0])
    data = np.asarray(_closed_scalar(-0.4, times)) + np.array([0.01, -0.02, 0.015])
    experiment = oi.Experiment(
        times,
        data,
        observables=lambda t, yq, p: yq[1],
        noise=oi.Gaussian(0.02),
        y0=lambda p: oi.integral_initial_state(_sin_integrand, jnp.array(1.0), p),
    )
    problem = oi.Problem(model, experiment, {"a": oi.Real(-0.3)})
    value = oi.log_likelihood(problem, {"a": -0.4})
    expected = jax.scipy.stats.norm.logpdf(
        data, _closed_scalar(-0.4, times), 0.02
    ).sum()
    np.testing.assert_allclose(value, expected, rtol=1e-7)
