import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi

SPACE = oi.Parameters(
    {
        "k": oi.Positive(init=0.5),
        "p": oi.Bounded(-1.0, 3.0, init=0.5),
        "x": oi.Real(init=[1.0, -2.0]),
        "g": oi.Fixed(9.81),
        "h": 2.0,
    }
)


def test_names_initial_and_fixed():
    assert SPACE.names == ("k", "p", "x")
    assert SPACE.size == 4
    init = SPACE.initial()
    assert set(init) == {"k", "p", "x", "g", "h"}
    assert float(init["g"]) == 9.81 and float(init["h"]) == 2.0


def test_round_trip_and_transforms():
    params = {"k": 2.0, "p": 2.5, "x": jnp.array([0.3, -4.0])}
    u = SPACE.to_unconstrained(params)
    # Independent references: log, scaled logit, identity.
    np.testing.assert_allclose(u[0], np.log(2.0))
    np.testing.assert_allclose(u[1], np.log((2.5 + 1.0) / (3.0 - 2.5)), rtol=1e-12)
    np.testing.assert_allclose(u[2:], [0.3, -4.0])
    back = SPACE.from_unconstrained(u)
    for name in params:
        np.testing.assert_allclose(back[name], params[name], rtol=1e-12)
    assert float(back["g"]) == 9.81


def test_log_abs_det_jacobian_against_finite_differences():
    u = jnp.array([0.3, -0.7, 1.0, 2.0])

    def flat(u_):
        p = SPACE.from_unconstrained(u_)
        return jnp.concatenate([jnp.atleast_1d(p[n]) for n in SPACE.names])

    eps = 1e-6
    jac = np.stack(
        [(flat(u + eps * e) - flat(u - eps * e)) / (2 * eps) for e in np.eye(4)], axis=1
    )
    expected = np.log(abs(np.linalg.det(jac)))
    np.testing.assert_allclose(SPACE.log_abs_det_jacobian(u), expected, rtol=1e-8)
    # Differentiable and jit-able.
    assert np.isfinite(jax.jit(jax.grad(SPACE.log_abs_det_jacobian))(u)).all()


def test_complete_fills_fixed_and_checks_names():
    full = SPACE.complete({"k": 1.0, "p": 0.0, "x": [0.0, 0.0]})
    assert float(full["g"]) == 9.81
    with pytest.raises(ValueError, match="unknown"):
        SPACE.complete({"k": 1.0, "p": 0.0, "x": [0.0, 0.0], "q": 1.0})
    with pytest.raises(ValueError, match="missing"):
        SPACE.complete({"k": 1.0})
    with pytest.raises(ValueError, match="shape"):
        SPACE.complete({"k": 1.0, "p": 0.0, "x": 0.0})


def test_bad_specs():
    with pytest.raises(ValueError, match="inside"):
        oi.Bounded(0.0, 1.0, init=1.5)
    with pytest.raises(ValueError, match="> 0"):
        oi.Positive(init=-1.0)
    with pytest.raises(ValueError, match="lower < upper"):
        oi.Bounded(1.0, 0.0)
    with pytest.raises(TypeError):
        oi.Parameters({"k": "positive"})
    with pytest.raises(ValueError, match="outside"):
        SPACE.check_inside({"k": -1.0})
    with pytest.raises(ValueError, match="shape"):
        SPACE.to_unconstrained and SPACE.from_unconstrained(jnp.zeros(3))


def test_specs_expose_bounds():
    assert SPACE.specs["k"].lower == 0.0 and SPACE.specs["k"].upper == np.inf
    assert SPACE.specs["p"].lower == -1.0 and SPACE.specs["p"].upper == 3.0
    assert SPACE.specs["x"].shape == (2,)


def test_specs_built_inside_jit_vmap_and_grad():
    """Specs and `Parameters` built inside the user's `jax.jit`, `jax.vmap` or
    `jax.grad`, from constants or traced values: the values pass through (derivatives
    included), their checks wait for concrete values."""

    def constrained(g, u):
        space = oi.Parameters(
            {
                "k": oi.Positive(init=g),
                "p": oi.Bounded(-1.0, 3.0, init=0.5 * g),
                "g": oi.Fixed(g),
                "h": g,
                "c": oi.Fixed(1.5),
                "d": 2.0,
            }
        )
        params = space.from_unconstrained(u)
        assert space.names == ("k", "p")
        return params["k"] + params["p"] + params["g"] * params["h"] + params["c"]

    u = jnp.array([np.log(2.0), 0.0])  # k = 2, p = 1 (the interval's midpoint)
    expected = 2.0 + 1.0 + 3.0**2 + 1.5
    np.testing.assert_allclose(jax.jit(constrained)(3.0, u), expected, rtol=1e-12)
    np.testing.assert_allclose(
        jax.vmap(constrained, in_axes=(0, None))(jnp.array([3.0, 4.0]), u),
        [expected, 2.0 + 1.0 + 4.0**2 + 1.5],
        rtol=1e-12,
    )
    np.testing.assert_allclose(jax.grad(constrained)(3.0, u), 2 * 3.0, rtol=1e-12)
    # The initial values too (traced `init` in the free specs).
    initial = jax.jit(lambda g: oi.Parameters({"k": oi.Positive(g)}).initial()["k"])
    np.testing.assert_allclose(initial(0.7), 0.7)
    # Where concrete, the checks still run inside `jax.jit`.
    with pytest.raises(ValueError, match="> 0"):
        jax.jit(lambda g: oi.Positive(init=-1.0).init + g)(1.0)
    # Bounds fix the transform: a traced one is refused with a clear message.
    with pytest.raises(TypeError, match="traced"):
        jax.jit(lambda g: oi.Bounded(g, 3.0).init)(1.0)
