"""`odeinfer._jit.jit_unless_traced`: compiled (and traced once) for eager calls,
eager `jax.grad` included; inlined under `jax.jit`; the same values and derivatives
in every mode (closed form)."""

import jax
import jax.numpy as jnp
import numpy as np

from odeinfer._jit import jit_unless_traced


def _counted():
    traces = []

    @jit_unless_traced
    def f(x):
        traces.append(None)  # runs once per trace
        return jnp.sin(x) * x

    return f, traces


def _df(x):
    return np.cos(x) * x + np.sin(x)


def test_eager_calls_and_eager_gradients_are_traced_once():
    f, traces = _counted()
    for x in (0.3, 0.7, 1.1):
        np.testing.assert_allclose(f(jnp.asarray(x)), np.sin(x) * x, rtol=1e-14)
    assert len(traces) == 1
    traces.clear()
    grad = jax.grad(f)
    for x in (0.3, 0.7, 1.1):
        np.testing.assert_allclose(grad(jnp.asarray(x)), _df(x), rtol=1e-14)
    assert len(traces) <= 1  # the jitted program, not an op-by-op trace per call


def test_inlined_under_jit_with_the_same_derivatives():
    f, _ = _counted()
    xs = jnp.array([0.3, 0.7, 1.1])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(jax.grad(f)))(xs), _df(np.asarray(xs)), rtol=1e-14
    )
    np.testing.assert_allclose(
        jax.vmap(jax.grad(f))(xs), _df(np.asarray(xs)), rtol=1e-14
    )
    np.testing.assert_allclose(
        jax.jit(jax.hessian(f))(0.7), -np.sin(0.7) * 0.7 + 2 * np.cos(0.7), rtol=1e-14
    )
