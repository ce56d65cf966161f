"""`odeinfer.petab._forward.forward_derivatives`: every derivative mode of a function
whose derivatives are taken forward, against closed forms; and a PEtab problem on the
diffrax path (events), whose likelihood is differentiated that way, against central
differences."""

import functools
import os

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")

from _paths import PETAB  # noqa: E402

import odeinfer.petab as petab  # noqa: E402
from odeinfer.petab._forward import forward_derivatives  # noqa: E402


def _cube_by_loop(a):
    """`a**3` through a `lax.while_loop` (no reverse mode of its own)."""

    def body(carry):
        i, value = carry
        return i + 1, value * a

    return lax.while_loop(lambda c: c[0] < 3, body, (0, jnp.ones_like(a)))[1]


def _fn(x):
    # values (x0^3 x1, sin x1), a flag
    values = {"a": _cube_by_loop(x[0]) * x[1], "b": jnp.sin(x[1])}
    return values, jnp.all(x > 0)


def _llh(x):
    values, ok = forward_derivatives(_fn)(x)
    return values["a"] + 2.0 * values["b"], ok


X = jnp.array([1.3, 0.7])


def _closed_form(x):
    a, b = float(x[0]), float(x[1])
    value = a**3 * b + 2 * np.sin(b)
    grad = np.array([3 * a**2 * b, a**3 + 2 * np.cos(b)])
    hessian = np.array([[6 * a * b, 3 * a**2], [3 * a**2, -2 * np.sin(b)]])
    return value, grad, hessian


def test_every_mode_against_the_closed_form():
    value, grad, hessian = _closed_form(X)
    got, ok = _llh(X)
    assert bool(ok)
    np.testing.assert_allclose(got, value, rtol=1e-14)

    def scalar(x):
        return _llh(x)[0]

    for derivative in (jax.grad, jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(jax.jit(derivative(scalar))(X), grad, rtol=1e-14)
    np.testing.assert_allclose(
        jax.jvp(scalar, (X,), (jnp.array([0.5, -2.0]),))[1],
        grad @ np.array([0.5, -2.0]),
        rtol=1e-14,
    )
    np.testing.assert_allclose(jax.hessian(scalar)(X), hessian, rtol=1e-13)
    np.testing.assert_allclose(jax.jacfwd(jax.jacfwd(scalar))(X), hessian, rtol=1e-13)
    # Under vmap (a multistart): each row its own gradient.
    xs = jnp.stack([X, 2 * X])
    grads = jax.vmap(jax.grad(scalar))(xs)
    np.testing.assert_allclose(grads[1], _closed_form(2 * X)[1], rtol=1e-14)


# --- a PEtab problem with events: the diffrax path in forward mode ---------------------
LIU = "Liu_IFACPapersOnLine2025"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(os.path.join(PETAB, LIU)), reason="no PEtab benchmark data"
)
def test_liu_gradient_in_forward_mode_matches_central_differences():
    """Liu: an SBML event (a crossing with a reset), two experiments, 9 estimated
    parameters: solved by Rodas5P with `diffrax.ForwardMode()`, `jax.grad` through
    the forward Jacobian. Against central differences (h = 1e-4) of the problem at
    rtol = atol = 1e-12: measured max relative error 1.7e-3 (floor 1e-2 on the
    denominator; the gradient of reverse mode, before, was the same to 4e-12)."""
    path = os.path.join(PETAB, LIU, f"{LIU}.yaml")
    p = petab.load(path)
    assert p._simulator.forward
    tight = petab.load(path, rtol=1e-12, atol=1e-12, max_steps=1_000_000)
    names = list(p.nominal)
    x0 = np.array([p.nominal[n] for n in names])

    def value(x, problem):
        return problem.log_likelihood(dict(zip(names, x, strict=True)))

    grad = np.asarray(jax.jit(jax.grad(functools.partial(value, problem=p)))(x0))
    h = 1e-4
    fd = np.array(
        [
            (float(value(x0 + h * e, tight)) - float(value(x0 - h * e, tight)))
            / (2 * h)
            for e in np.eye(len(x0))
        ]
    )
    error = np.max(np.abs(grad - fd) / np.maximum(np.abs(fd), 1e-2))
    assert error < 1e-2, dict(zip(names, zip(grad, fd, strict=True), strict=True))
