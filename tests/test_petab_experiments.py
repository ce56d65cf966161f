"""`odeinfer.petab._experiments.over_experiments`: a function of the experiments'
inputs, vmapped for values and differentiated one experiment after the other, with
fused solves inside (exponential decay in closed form): values, `jax.grad`,
`jax.jacfwd`, `jax.jacrev`, `jax.hessian` and a vmapped gradient; a constant input
(no tangent) and a flag pass through."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")

import odeinfer as oi  # noqa: E402
from odeinfer.petab._experiments import over_experiments  # noqa: E402

TS = np.array([[0.5, 1.0, 2.0], [0.3, 0.9, 1.5], [1.0, 2.5, 4.0]])
C = np.array([1.0, 0.5, 2.0])  # k_e = a c_e
D = np.array([0.0, 1.0, -0.5])  # y0_e = b + d_e
W = np.array([1.0, -2.0, 0.5])  # weights of the save times
DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")


def _one(k, y0, ts, flag):
    sol = oi.solve(
        DECAY, y0[None], {"k": k}, t0=0.0, t1=ts[-1], saveat=ts,
        solver=oi.FusedRodas5P(), rtol=1e-11, atol=1e-13, throw=False,
    )  # fmt: skip
    return sol.ys[:, 0], sol.successful & flag


def _scalar(x):
    ys, ok = over_experiments(
        _one, (x[0] * C, x[1] + D, jnp.asarray(TS), jnp.array([True, True, True]))
    )
    return jnp.where(jnp.all(ok), jnp.sum(ys * W), jnp.nan)


def _closed_form(x):
    a, b = x
    k, y0 = a * C[:, None], b + D[:, None]
    e = np.exp(-k * TS)
    value = np.sum(W * y0 * e)
    dk = -TS * C[:, None]  # d(-k t)/da
    grad = np.array([np.sum(W * y0 * e * dk), np.sum(W * e)])
    h_aa = np.sum(W * y0 * e * dk**2)
    h_ab = np.sum(W * e * dk)
    return value, grad, np.array([[h_aa, h_ab], [h_ab, 0.0]])


X = jnp.array([0.8, 2.0])


def test_values_and_every_derivative_against_the_closed_form():
    value, grad, hessian = _closed_form(np.asarray(X))
    np.testing.assert_allclose(jax.jit(_scalar)(X), value, rtol=1e-8)
    for derivative in (jax.grad, jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(jax.jit(derivative(_scalar))(X), grad, rtol=1e-7)
    np.testing.assert_allclose(
        jax.jit(jax.hessian(_scalar))(X), hessian, rtol=1e-6, atol=1e-9
    )
    xs = jnp.stack([X, 1.5 * X])
    grads = jax.jit(jax.vmap(jax.grad(_scalar)))(xs)
    np.testing.assert_allclose(
        grads[1], _closed_form(1.5 * np.asarray(X))[1], rtol=1e-7
    )


def test_a_failed_flag_reaches_the_output():
    def scalar(x):
        flags = jnp.array([True, False, True])
        _, ok = over_experiments(_one, (x[0] * C, x[1] + D, jnp.asarray(TS), flags))
        return ok

    ok = jax.jit(scalar)(X)
    np.testing.assert_array_equal(np.asarray(ok), [True, False, True])
