"""`odeinfer.solve_at_times`: values against scipy (DOP853, rtol 1e-12) and closed forms,
derivatives (custom forward-sensitivity JVP, and reverse mode by its transpose) against
closed forms and central finite differences of scipy, failure codes, vmap and retracing."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import odeinfer as oi


def lotka_volterra(t, z, theta):
    u, v = z
    alpha, beta, gamma, delta = theta
    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


LV = oi.ODEModel(lotka_volterra, name="lotka_volterra")
DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
LV_THETA = np.array([0.55, 0.028, 0.80, 0.024])
LV_Z0 = np.array([33.9, 5.9])
LV_TS = np.arange(1.0, 13.0)  # saved at t = 1..12, solved from t0 = 0
TOL = {"rtol": 1e-10, "atol": 1e-10}


def scipy_lv(z0, theta, ts=LV_TS, rtol=1e-12):
    def field(t, z):
        u, v = z
        return [(theta[0] - theta[1] * v) * u, (-theta[2] + theta[3] * u) * v]

    sol = solve_ivp(
        field, (0.0, ts[-1]), z0, method="DOP853", rtol=rtol, atol=1e-12, t_eval=ts
    )
    return sol.y.T


@jax.jit
def lv_states(z0, theta):
    return oi.solve_at_times(LV, z0, theta, LV_TS, t0=0.0, **TOL)


@jax.jit
def decay_states(y0, params, ts, t0):
    return oi.solve_at_times(DECAY, y0, params, ts, t0=t0, **TOL)


@jax.jit
def lv_log_density(z0, theta, log_data):
    z, ok = oi.solve_at_times(LV, z0, theta, LV_TS, t0=0.0, **TOL)
    value = -0.5 * jnp.sum((jnp.log(z) - log_data) ** 2 / 0.25**2)
    return jnp.where(ok, value, -jnp.inf)


@pytest.fixture(scope="module")
def log_data():
    rng = np.random.default_rng(0)
    return np.log(scipy_lv(LV_Z0, LV_THETA)) + 0.25 * rng.standard_normal((12, 2))


def test_lotka_volterra_values_match_scipy():
    ys, ok = lv_states(LV_Z0, LV_THETA)
    assert bool(ok) and ys.shape == (12, 2)
    np.testing.assert_allclose(ys, scipy_lv(LV_Z0, LV_THETA), rtol=1e-8)


def test_decay_values_and_derivatives_match_closed_form():
    y0, k, t0 = jnp.array([1.0, 3.0]), 0.7, 0.5
    ts = jnp.array([0.5, 1.0, 2.5, 2.5, 4.0])  # a save at t0 and a repeated time

    def states(y0, k, ts, t0):
        return decay_states(y0, {"k": k}, ts, t0)[0]

    ys, ok = decay_states(y0, {"k": k}, ts, t0)
    decay = np.exp(-k * (ts - t0))[:, None]
    assert bool(ok)
    np.testing.assert_allclose(ys, decay * y0, rtol=1e-9)
    # Reverse mode (the transpose of the forward-sensitivity JVP), all inputs at once.
    d_y0, d_k, d_ts, d_t0 = jax.jit(jax.jacrev(states, argnums=(0, 1, 2, 3)))(
        y0, k, ts, t0
    )
    np.testing.assert_allclose(d_y0, decay[:, :, None] * np.eye(2), rtol=1e-8)
    np.testing.assert_allclose(d_k, -(ts - t0)[:, None] * decay * y0, rtol=1e-8)
    np.testing.assert_allclose(
        d_ts, np.eye(5)[:, None, :] * (-k * decay * y0)[:, :, None], atol=1e-9
    )
    np.testing.assert_allclose(d_t0, k * decay * y0, rtol=1e-8)


def central_difference(fn, x, step):
    columns = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = step * max(1.0, abs(x[i]))
        columns.append((fn(x + e) - fn(x - e)) / (2 * e[i]))
    return np.stack(columns, axis=-1)


def test_lotka_volterra_jacobians_match_finite_differences_of_scipy():
    fd_theta = central_difference(lambda th: scipy_lv(LV_Z0, th), LV_THETA, 1e-5)
    fd_z0 = central_difference(lambda z: scipy_lv(z, LV_THETA), LV_Z0, 1e-5)
    # Forward mode here; reverse mode (jax.grad, jax.jacrev) is checked below and on
    # the decay.
    d_z0, d_theta = jax.jit(jax.jacfwd(lambda z, th: lv_states(z, th)[0], (0, 1)))(
        LV_Z0, LV_THETA
    )
    np.testing.assert_allclose(d_theta, fd_theta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_z0, fd_z0, rtol=1e-5, atol=1e-8)


def test_grad_of_log_density_matches_jacfwd_and_finite_differences(log_data):
    x = np.concatenate([LV_Z0, LV_THETA])

    def log_density(x):
        return lv_log_density(x[:2], x[2:], log_data)

    grad = jax.jit(jax.grad(log_density))(x)
    forward = jax.jit(jax.jacfwd(log_density))(x)
    np.testing.assert_allclose(grad, forward, rtol=1e-12, atol=1e-12)

    def scipy_log_density(x):
        z = scipy_lv(x[:2], x[2:])
        return -0.5 * np.sum((np.log(z) - log_data) ** 2 / 0.25**2)

    fd = central_difference(scipy_log_density, x, 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-4)


def test_error_control_on_sensitivities_runs_and_is_accurate():
    def states(theta):
        return oi.solve_at_times(
            LV,
            LV_Z0,
            theta,
            LV_TS,
            t0=0.0,
            rtol=1e-6,
            atol=1e-6,
            sensitivity_error_control=True,
        )[0]

    fd = central_difference(lambda th: scipy_lv(LV_Z0, th), LV_THETA, 1e-5)
    jac = jax.jit(jax.jacfwd(states))(LV_THETA)
    assert np.max(np.abs(jac - fd)) < 1e-3 * np.max(np.abs(fd))


def test_vmap_over_parameters_matches_single_solves():
    thetas = LV_THETA * np.array([[1.0], [1.1], [0.9]])
    ys, ok = jax.vmap(lv_states, in_axes=(None, 0))(LV_Z0, thetas)
    assert np.all(ok)
    for i, theta in enumerate(thetas):
        np.testing.assert_allclose(ys[i], scipy_lv(LV_Z0, theta), rtol=1e-8)


def test_max_steps_exhausted_gives_not_ok_without_raising():
    fn = jax.jit(
        lambda th: oi.solve_at_times(LV, LV_Z0, th, LV_TS, t0=0.0, max_steps=5)
    )
    ys, ok = fn(LV_THETA)
    assert not bool(ok)
    assert np.all(np.isfinite(ys))
    grad = jax.jit(jax.grad(lambda th: fn(th)[0].sum()))(LV_THETA)
    assert np.all(np.isfinite(grad))


def test_nan_parameters_give_not_ok(log_data):
    theta = LV_THETA.copy()
    theta[1] = np.nan
    ys, ok = lv_states(LV_Z0, theta)
    assert not bool(ok)
    assert lv_log_density(LV_Z0, theta, log_data) == -np.inf


def test_tolerances_are_traced_no_recompilation():
    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def states(theta, rtol, atol):
        return oi.solve_at_times(LV, LV_Z0, theta, LV_TS, t0=0.0, rtol=rtol, atol=atol)

    loose = states(LV_THETA, 1e-4, 1e-4)[0]
    tight = states(LV_THETA, 1e-10, 1e-10)[0]
    reference = scipy_lv(LV_Z0, LV_THETA)
    assert np.max(np.abs(tight - reference)) < np.max(np.abs(loose - reference))


def test_pytree_state_and_parameters():
    def field(t, y, p):
        return {"a": -p["k"] * y["a"], "b": p["k"] * y["a"]}

    model = oi.ODEModel(field)
    ts = jnp.array([0.0, 1.0, 2.0])
    ys, ok = jax.jit(lambda y0, p: oi.solve_at_times(model, y0, p, ts, **TOL))(
        {"a": 1.0, "b": 0.0}, {"k": 0.3}
    )
    assert bool(ok)
    np.testing.assert_allclose(ys["a"], np.exp(-0.3 * ts), rtol=1e-9)
    np.testing.assert_allclose(ys["b"], 1 - np.exp(-0.3 * ts), rtol=1e-9)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"ts": np.array([2.0, 1.0])}, ValueError, "sorted"),
        ({"ts": np.zeros((2, 2))}, ValueError, "1-D"),
        ({"rtol": -1.0}, ValueError, "rtol"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"t0": 5.0}, ValueError, "t0"),
    ],
)
def test_bad_input_raises_before_work(kwargs, error, match):
    args = {"ts": LV_TS} | kwargs
    ts = args.pop("ts")
    with pytest.raises(error, match=match):
        oi.solve_at_times(LV, LV_Z0, LV_THETA, ts, **args)
    with pytest.raises(TypeError, match="ODEModel"):
        oi.solve_at_times(lotka_volterra, LV_Z0, LV_THETA, LV_TS)


def test_parameters_the_field_does_not_read_get_no_sensitivities_and_exact_gradients(
    log_data,
):
    # The field reads alpha..delta; "sigma" (used by the likelihood only) and "offset"
    # (never used) get no sensitivity rows, and a parameter read only inside a
    # lax.cond branch still counts as read.
    from odeinfer._fast._fused import Flattener, FusedConfig, _used_parameters

    def field(t, z, p):
        u, v = z
        alpha = jax.lax.cond(p["switch"] > 0, lambda: p["alpha"], lambda: 0.0)
        return jnp.stack(
            [(alpha - p["beta"] * v) * u, (-p["gamma"] + p["delta"] * u) * v]
        )

    model = oi.ODEModel(field)
    names = ("alpha", "beta", "gamma", "delta")
    params = {n: jnp.asarray(v) for n, v in zip(names, LV_THETA, strict=True)}
    params |= {"sigma": jnp.asarray(0.25), "offset": jnp.zeros(3), "switch": 1.0}
    # Flattened (sorted keys): alpha beta delta gamma offset[3] sigma switch.
    flat = Flattener.of(params)
    theta = flat.flatten(params, jnp.float64)
    config = FusedConfig(
        model, Flattener.of(jnp.asarray(LV_Z0)), flat, "dopri5", 4096, False
    )
    used = _used_parameters(config, 0.0, jnp.asarray(LV_Z0), theta)
    assert used == (0, 1, 2, 3, 8)

    def log_density(p):
        z, ok = oi.solve_at_times(model, jnp.asarray(LV_Z0), p, LV_TS, t0=0.0, **TOL)
        resid = (jnp.log(z) - log_data) / p["sigma"]
        return -0.5 * jnp.sum(resid**2) - log_data.size * jnp.log(p["sigma"])

    grad = jax.jit(jax.grad(log_density))(params)
    theta_grad = np.array([grad[n] for n in names])
    expected = jax.grad(lambda th: lv_log_density(jnp.asarray(LV_Z0), th, log_data))(
        jnp.asarray(LV_THETA)
    )
    # lv_log_density has sigma = 0.25 built in: the theta gradients must coincide.
    np.testing.assert_allclose(theta_grad, expected, rtol=1e-10)
    # d/dsigma of -0.5 r²/σ² - N log σ is (Σ r²/σ² - N)/σ, from the solved states.
    z = np.asarray(lv_states(jnp.asarray(LV_Z0), jnp.asarray(LV_THETA))[0])
    r2 = np.sum((np.log(z) - log_data) ** 2) / 0.25**2
    np.testing.assert_allclose(grad["sigma"], (r2 - log_data.size) / 0.25, rtol=1e-9)
    np.testing.assert_array_equal(grad["offset"], np.zeros(3))


def test_closed_over_rate_matches_closed_form():
    """A vector field that closes over a traced rate (built inside the user's
    `jax.jacfwd` or `jax.jacrev`): the rate is integrated as a parameter, so
    `dy/dk = -t y0 exp(-k t)` exactly, not an error or a zero."""
    ts = jnp.array([0.5, 1.0, 2.0])

    def states(k):
        model = oi.ODEModel(lambda t, y, p: -k * y)
        ys = oi.solve_at_times(
            model, jnp.array([2.0]), {}, ts, t0=0.0, rtol=1e-10, atol=1e-10
        )[0]
        return ys[:, 0], ys[:, 0]

    k = 0.7
    exact = 2.0 * np.exp(-k * ts)
    d_k, ys = jax.jacfwd(states, has_aux=True)(k)
    np.testing.assert_allclose(ys, exact, rtol=1e-9)
    np.testing.assert_allclose(d_k, -ts * exact, rtol=1e-8)
    np.testing.assert_allclose(
        jax.jit(jax.jacrev(states, has_aux=True))(k)[0], -ts * exact, rtol=1e-8
    )
