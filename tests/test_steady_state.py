"""`steady_state` against closed forms and central differences; jit, vmap, grad, jacfwd;
a model without a steady state; bad input. Models are module-level (one compilation
each)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi
from odeinfer._steady_state import steady_state_tangents

# dy/dt = k1 - k2 y: y* = k1 / k2.
PRODUCTION_DEGRADATION = oi.ODEModel(
    lambda t, y, p: p["k1"] - p["k2"] * y, name="production_degradation"
)
# dy/dt = A y + b: y* = -A^{-1} b.
LINEAR = oi.ODEModel(lambda t, y, p: p["A"] @ y + p["b"], name="linear")
A_MATRIX = np.array([[-2.0, 1.0, 0.0], [0.5, -3.0, 1.0], [0.0, 0.4, -1.0]])
B_VECTOR = np.array([1.0, 2.0, 0.5])


# Michaelis–Menten with inflow, a dict state: S' = v - V S / (K + S), P' = V S / (K + S)
# - kp P. S* = K v / (V - v), P* = v / kp.
def _michaelis_menten(t, y, p):
    rate = p["V"] * y["S"] / (p["K"] + y["S"])
    return {"S": p["v"] - rate, "P": rate - p["kp"] * y["P"]}


MICHAELIS_MENTEN = oi.ODEModel(_michaelis_menten, name="michaelis_menten")
MM_PARAMS = {"v": 1.0, "V": 3.0, "K": 2.0, "kp": 0.5}
MM_Y0 = {"S": jnp.array(0.0), "P": jnp.array(0.0)}


# A <-> B (rates kf, kb; A + B conserved) and an independent X' = k1 - k2 X.
def _reversible(t, y, p):
    flux = p["kf"] * y[0] - p["kb"] * y[1]
    return jnp.stack([-flux, flux, p["k1"] - p["k2"] * y[2]])


REVERSIBLE = oi.ODEModel(_reversible, name="reversible")
REV_PARAMS = {"kf": 2.0, "kb": 0.5, "k1": 1.0, "k2": 4.0}
REV_Y0 = jnp.array([3.0, 1.0, 0.0])


# A stiff mass-action network with two conservation laws (E + C and A + B): enzyme
# E + S <-> C -> E + P with S inflow v and P outflow kp, and a fast A <-> B.
def _enzyme(t, y, p):
    enzyme, substrate, complex_, product, a, b = y
    binding = p["k1"] * enzyme * substrate - p["km1"] * complex_
    catalysis = p["k2"] * complex_
    exchange = p["ka"] * a - p["kb"] * b
    return jnp.stack(
        [
            catalysis - binding,
            p["v"] - binding,
            binding - catalysis,
            catalysis - p["kp"] * product,
            -exchange,
            exchange,
        ]
    )


ENZYME = oi.ODEModel(_enzyme, name="enzyme")
ENZYME_PARAMS = {"k1": 1e3, "km1": 10.0, "k2": 50.0, "v": 1.0, "kp": 0.1, "ka": 1e4}
ENZYME_PARAMS["kb"] = 1.0
ENZYME_Y0 = jnp.array([0.1, 0.0, 0.0, 0.0, 1.0, 0.0])

VAN_DER_POL = oi.ODEModel(
    lambda t, y, mu: jnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]),
    name="van_der_pol",
)


def _pd(k1, k2, throw=True):
    return oi.steady_state(
        PRODUCTION_DEGRADATION, jnp.array([0.0]), {"k1": k1, "k2": k2}, throw=throw
    )


def test_production_degradation_value_and_derivatives():
    steady = _pd(2.0, 0.5)
    assert steady.successful
    np.testing.assert_allclose(steady.y, [4.0], rtol=1e-12)
    assert float(steady.weighted_residual) < 1e-3
    assert int(steady.num_conservation_laws) == 0
    # y(t) = 4 (1 - e^{-t/2}) meets |f| < atol + rtol |y| (f = 2 e^{-t/2}) at
    # t = 2 ln(2 / 4e-8) ≈ 35.4; the grid (8 a decade) reports the next point.
    assert 35.4 <= float(steady.t) <= 35.4 * 10**0.125 + 1e-9

    def y_star(k):
        return _pd(k[0], k[1]).y[0]

    k = jnp.array([2.0, 0.5])
    expected = [1 / 0.5, -2.0 / 0.5**2]  # dy*/dk1 = 1/k2, dy*/dk2 = -k1/k2^2
    np.testing.assert_allclose(jax.grad(y_star)(k), expected, rtol=1e-10)
    np.testing.assert_allclose(jax.jacfwd(y_star)(k), expected, rtol=1e-10)
    # The steady state does not depend on y0.
    dy0 = jax.grad(
        lambda y0: oi.steady_state(
            PRODUCTION_DEGRADATION, y0, {"k1": 2.0, "k2": 0.5}
        ).y[0]
    )(jnp.array([0.0]))
    np.testing.assert_allclose(dy0, [0.0], atol=1e-14)


def test_vmap_jit_with_a_failing_lane():
    # k2 < 0: unbounded growth, no steady state; the other lanes are unaffected.
    k2 = jnp.array([0.5, 2.0, -0.5])

    @jax.jit
    def batch(k2):
        return jax.vmap(lambda k: _pd(jnp.array(2.0), k, throw=False))(k2)

    steady = batch(k2)
    ok = np.asarray(steady.successful)
    assert ok.tolist() == [True, True, False]
    failed = np.asarray(steady.result == oi.RESULTS.steady_state_not_reached)
    assert failed.tolist() == [False, False, True]
    np.testing.assert_allclose(np.asarray(steady.y)[:2, 0], [4.0, 1.0], rtol=1e-12)


def test_linear_network_against_inverse():
    params = {"A": jnp.asarray(A_MATRIX), "b": jnp.asarray(B_VECTOR)}
    y_star = -np.linalg.solve(A_MATRIX, B_VECTOR)

    def solve(p):
        return oi.steady_state(LINEAR, jnp.zeros(3), p).y

    np.testing.assert_allclose(solve(params), y_star, rtol=1e-12)
    jac = jax.jacrev(solve)(params)
    inverse = np.linalg.inv(A_MATRIX)
    # dy*_k/dA_ij = -(A^{-1})_ki y*_j, dy*/db = -A^{-1}.
    expected_a = -np.einsum("ki,j->kij", inverse, y_star)
    np.testing.assert_allclose(jac["A"], expected_a, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(jac["b"], -inverse, rtol=1e-10, atol=1e-13)


def test_michaelis_menten_closed_form_and_finite_differences():
    v, vmax, km, kp = (MM_PARAMS[k] for k in ("v", "V", "K", "kp"))
    steady = oi.steady_state(MICHAELIS_MENTEN, MM_Y0, MM_PARAMS)
    np.testing.assert_allclose(steady.y["S"], km * v / (vmax - v), rtol=1e-12)
    np.testing.assert_allclose(steady.y["P"], v / kp, rtol=1e-12)

    def substrate(p):
        return oi.steady_state(MICHAELIS_MENTEN, MM_Y0, p).y["S"]

    grad = jax.grad(substrate)(MM_PARAMS)
    closed = {
        "v": km * vmax / (vmax - v) ** 2,
        "V": -km * v / (vmax - v) ** 2,
        "K": v / (vmax - v),
        "kp": 0.0,
    }
    for name, value in closed.items():
        np.testing.assert_allclose(grad[name], value, rtol=1e-10, atol=1e-14)
    # Central differences of the whole computation (integration + Newton), float64.
    step = 1e-6
    for name in ("v", "K"):
        up = dict(MM_PARAMS, **{name: MM_PARAMS[name] + step})
        down = dict(MM_PARAMS, **{name: MM_PARAMS[name] - step})
        difference = (substrate(up) - substrate(down)) / (2 * step)
        np.testing.assert_allclose(grad[name], difference, rtol=1e-7)


def test_conservation_law():
    total = float(REV_Y0[0] + REV_Y0[1])
    kf, kb, k1, k2 = (REV_PARAMS[k] for k in ("kf", "kb", "k1", "k2"))
    steady = oi.steady_state(REVERSIBLE, REV_Y0, REV_PARAMS)
    assert int(steady.num_conservation_laws) == 1
    expected = [total * kb / (kf + kb), total * kf / (kf + kb), k1 / k2]
    np.testing.assert_allclose(steady.y, expected, rtol=1e-12)

    # Started at the steady state: no integration, the same state.
    again = oi.steady_state(REVERSIBLE, steady.y, REV_PARAMS)
    assert float(again.t) == 0.0 and int(again.stats["num_steps"]) == 0
    np.testing.assert_allclose(again.y, expected, rtol=1e-12)

    def solve(y0, p):
        return oi.steady_state(REVERSIBLE, y0, p).y

    # y* depends on y0 through A0 + B0 only: dA*/dA0 = dA*/dB0 = kb / (kf + kb).
    share = np.array([kb, kf]) / (kf + kb)
    expected_y0 = np.zeros((3, 3))
    expected_y0[:2, :2] = share[:, None]
    np.testing.assert_allclose(
        jax.jacfwd(solve)(REV_Y0, REV_PARAMS), expected_y0, atol=1e-12
    )
    jac = jax.jacrev(solve, argnums=1)(REV_Y0, REV_PARAMS)
    scale = total / (kf + kb) ** 2
    np.testing.assert_allclose(jac["kf"], [-scale * kb, scale * kb, 0.0], atol=1e-12)
    np.testing.assert_allclose(jac["kb"], [scale * kf, -scale * kf, 0.0], atol=1e-12)
    np.testing.assert_allclose(jac["k2"], [0.0, 0.0, -k1 / k2**2], atol=1e-12)


def test_two_conservation_laws_in_a_stiff_network():
    p = ENZYME_PARAMS
    steady = oi.steady_state(ENZYME, ENZYME_Y0, p)
    assert int(steady.num_conservation_laws) == 2
    # C* = v / k2, E* = E_T - C*, S* = (km1 + k2) C* / (k1 E*), P* = v / kp,
    # A* = T kb / (ka + kb), B* = T ka / (ka + kb), with E_T = E0 + C0, T = A0 + B0.
    c = p["v"] / p["k2"]
    e = 0.1 - c
    s = (p["km1"] + p["k2"]) * c / (p["k1"] * e)
    a, b = p["kb"] / (p["ka"] + p["kb"]), p["ka"] / (p["ka"] + p["kb"])
    np.testing.assert_allclose(steady.y, [e, s, c, p["v"] / p["kp"], a, b], rtol=1e-10)
    jac = jax.jacfwd(lambda y0: oi.steady_state(ENZYME, y0, p).y)(ENZYME_Y0)
    expected = np.zeros((6, 6))
    expected[0, [0, 2]] = 1.0  # dE*/dE_T
    expected[1, [0, 2]] = -s / e  # dS*/dE_T
    expected[4, [4, 5]] = a
    expected[5, [4, 5]] = b
    np.testing.assert_allclose(jac, expected, atol=1e-9)


def test_limit_cycle_has_no_steady_state():
    steady = oi.steady_state(
        VAN_DER_POL, jnp.array([2.0, 0.0]), 1.0, max_steps=300, throw=False
    )
    assert steady.result == oi.RESULTS.steady_state_not_reached
    assert "No steady state" in oi.describe(steady.result)
    assert float(steady.weighted_residual) > 1
    with pytest.raises(oi.SolveError, match="No steady state was reached"):
        oi.steady_state(VAN_DER_POL, jnp.array([2.0, 0.0]), 1.0, max_steps=300)
    # Under jit (traced inputs) throw=True raises from inside the compiled code.
    with pytest.raises(Exception, match="No steady state was reached"):
        jax.jit(
            lambda mu: (
                oi.steady_state(VAN_DER_POL, jnp.array([2.0, 0.0]), mu, max_steps=300).y
            )
        )(1.0).block_until_ready()
    # Under an eager jax.grad the code is concrete: the same SolveError, in Python.
    with pytest.raises(oi.SolveError, match="No steady state was reached"):
        jax.grad(
            lambda mu: oi.steady_state(
                VAN_DER_POL, jnp.array([2.0, 0.0]), mu, max_steps=300
            ).y[0]
        )(1.0)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(y0=jnp.array([jnp.nan])), "y0"),
        (dict(params={"k1": jnp.inf, "k2": 0.5}), "params"),
        (dict(rtol=-1e-8), "rtol"),
        (dict(atol=0.0), "atol"),
        (dict(t_max=0.0), "t_max"),
        (dict(t_max=jnp.inf), "t_max"),
        (dict(model=oi.ODEModel(lambda t, y, p: jnp.concatenate([y, y]))), "y0 is"),
        (dict(max_steps=0), "max_steps"),
        (dict(solver="Rodas5P"), "solver"),
        (dict(model=lambda t, y, p: -y), "ODEModel"),
        (dict(throw=1), "throw"),
    ],
)
def test_bad_input_is_named_before_compilation(change, match):
    arguments = dict(
        model=PRODUCTION_DEGRADATION,
        y0=jnp.array([0.0]),
        params={"k1": 2.0, "k2": 0.5},
    )
    arguments.update(change)
    model, y0, params = (arguments.pop(k) for k in ("model", "y0", "params"))
    with pytest.raises((ValueError, TypeError), match=match):
        oi.steady_state(model, y0, params, **arguments)


def test_default_solver_is_rodas5p():
    # A reminder, not a computation: the integration default is the stiff solver.
    import inspect

    default = inspect.signature(oi.steady_state).parameters["solver"].default
    assert isinstance(default, oi.Rodas5P)
    assert isinstance(default, diffrax.AbstractSolver)


def test_fused_integration_gives_the_same_steady_state_and_derivatives():
    # The integration stage is not differentiated, so a fused solver may run it
    # (it compiles less); the result and its IFT derivatives are those of the model.
    # A <-> B with kf, kb and X' = k1 - k2 X: A* = kb T/(kf+kb), X* = k1/k2.
    y0 = jnp.array([1.0, 0.0, 0.0])

    def steady(p):
        return oi.steady_state(REVERSIBLE, y0, p, solver=oi.FusedRodas5P()).y

    y = steady(REV_PARAMS)
    kf, kb, k1, k2 = (REV_PARAMS[k] for k in ("kf", "kb", "k1", "k2"))
    expected = jnp.array([kb / (kf + kb), kf / (kf + kb), k1 / k2])
    assert jnp.allclose(y, expected, rtol=1e-9, atol=1e-12)
    grad = jax.grad(lambda p: steady(p)[0])(REV_PARAMS)
    # dA*/dkf = -kb/(kf+kb)^2, dA*/dkb = kf/(kf+kb)^2.
    assert jnp.allclose(grad["kf"], -kb / (kf + kb) ** 2, rtol=1e-7)
    assert jnp.allclose(grad["kb"], kf / (kf + kb) ** 2, rtol=1e-7)


def test_growth_along_a_conservation_law_has_no_steady_state():
    # A <-> B with kf = -1, kb = 1: A + B = 4 is conserved while A' = A + B = 4, so A
    # grows linearly for ever. AMICI's relative criterion holds once |A| is large, and
    # Newton then stops where f = 0 but A + B = 0, breaking the conserved total; the
    # bordered Jacobian J + P is singular there, so no steady state is reported.
    def exchange(t, y, p):
        flux = p["kf"] * y[0] - p["kb"] * y[1]
        return jnp.stack([-flux, flux])

    model = oi.ODEModel(exchange, name="exchange")
    params = {"kf": -1.0, "kb": 1.0}
    steady = oi.steady_state(model, jnp.array([3.0, 1.0]), params, throw=False)
    assert steady.result == oi.RESULTS.steady_state_not_reached


def test_tangents_along_many_directions_closed_form():
    """`steady_state_tangents` (the implicit function theorem applied to `D` directions
    at once, as the PEtab sensitivities use it) against the closed-form derivatives of
    A <-> B, X' = k1 - k2 X, and against `jax.jvp` of `steady_state` itself."""
    kf, kb, k1, k2 = (REV_PARAMS[k] for k in ("kf", "kb", "k1", "k2"))
    total = float(REV_Y0[0] + REV_Y0[1])
    steady = oi.steady_state(REVERSIBLE, REV_Y0, REV_PARAMS)
    rng = np.random.default_rng(0)
    d_params = {k: jnp.asarray(rng.normal(size=4)) for k in REV_PARAMS}
    d_y0 = jnp.asarray(rng.normal(size=(4, 3)))
    got = steady_state_tangents(REVERSIBLE, steady, REV_PARAMS, d_params, d_y0)
    # A* = T kb / (kf + kb), T = A0 + B0; X* = k1 / k2.
    scale = total / (kf + kb) ** 2
    d_total = d_y0[:, 0] + d_y0[:, 1]
    d_a = (
        d_total * kb / (kf + kb)
        - scale * kb * d_params["kf"]
        + scale * kf * d_params["kb"]
    )
    d_x = d_params["k1"] / k2 - k1 / k2**2 * d_params["k2"]
    expected = np.stack([d_a, d_total - d_a, d_x], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    for j in range(4):
        _, jvp = jax.jvp(
            lambda y0, p: oi.steady_state(REVERSIBLE, y0, p).y,
            (REV_Y0, REV_PARAMS),
            (d_y0[j], {k: v[j] for k, v in d_params.items()}),
        )
        np.testing.assert_allclose(got[j], jvp, atol=1e-12)
    # Where no steady state was reached: zero tangents, not garbage.
    failed = eqx.tree_at(
        lambda s: s.result, steady, oi.RESULTS.steady_state_not_reached
    )
    zero = steady_state_tangents(REVERSIBLE, failed, REV_PARAMS, d_params, d_y0)
    assert not np.any(np.asarray(zero))
