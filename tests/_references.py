"""Models, crossing functions and independent references (closed forms, scipy) shared
by the core tests.

Everything here is defined once at module level: odeinfer compiles one solve per
(model, crossing functions, options), so tests that reuse these objects (and pass
parameters as JAX arrays, which are traced) share compilations.
"""

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import odeinfer as oi  # turns on float64

G = 9.81

# --- logistic: dy/dt = k y (1 - y) -------------------------------------------------------


def _logistic_field(t, y, p):
    return p["k"] * y * (1 - y)


def _identity(t, y, p):
    return y


def logistic_exact(t, y0, k):
    """The closed-form logistic solution."""
    return 1.0 / (1.0 + (1.0 / y0 - 1.0) * np.exp(-k * t))


def logistic_crossing_time(level, y0, k):
    """t* with logistic_exact(t*) = level: ln(level/(1-level) * (1-y0)/y0) / k."""
    return np.log(level / (1 - level) * (1 - y0) / y0) / k


# --- 3-D spring pendulum -----------------------------------------------------------------


def _spring_field(t, s, p):
    r = jnp.sqrt(jnp.sum(s[:3] ** 2))
    acc = (1.0 / r - 1.0) * p["k"] * s[:3] - jnp.array([0.0, 0.0, 1.0]) * p["g"]
    return jnp.concatenate([s[3:], acc])


def _radius(t, s, p):
    return jnp.sqrt(jnp.sum(s[:3] ** 2))


SPRING_Y0 = (0.0, 0.0, 0.7, 0.1, 1.5, 0.0)


def spring_scipy_crossings(level, *, z0=0.7, k=250.0, g=10.0, direction=0, t1=5.0):
    """Crossing times of |position| = level by scipy DOP853 at rtol = atol = 1e-13."""

    def field(t, s):
        x, y, z, vx, vy, vz = s
        c = (1.0 / np.sqrt(x * x + y * y + z * z) - 1.0) * k
        return [vx, vy, vz, c * x, c * y, c * z - g]

    def event(t, s):
        return np.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2) - level

    event.direction = direction
    y0 = list(SPRING_Y0)
    y0[2] = z0
    out = solve_ivp(
        field, (0.0, t1), y0, method="DOP853", rtol=1e-13, atol=1e-13, events=[event]
    )
    assert out.success
    return out.t_events[0]


# --- bouncing ball: h'' = -g, bounce at h = 0 falling, v -> -e v -------------------------


def _ball_field(t, y, p):
    return jnp.stack([y[1], -p["g"] * jnp.ones_like(y[0])])


def _height(t, y, p):
    return y[0]


def _bounce(t, y, p):
    return jnp.stack([y[0], -p["e"] * y[1]])


def ball_bounce_times(h0, e, n, g=G):
    """T_1 = sqrt(2 h0 / g); each flight after bounce j lasts 2 e^j T_1."""
    first = np.sqrt(2 * h0 / g)
    flights = 2 * first * e ** np.arange(1, n)
    return first + np.concatenate([[0.0], np.cumsum(flights)])


def ball_rebound_speeds(h0, e, n, g=G):
    """Upward speed after bounce j = e^j sqrt(2 g h0)."""
    return e ** np.arange(1, n + 1) * np.sqrt(2 * g * h0)


# --- one-compartment bolus and gut -> central oral models --------------------------------


def _one_compartment_field(t, y, p):
    return -(p["CL"] / p["V"]) * y


def _oral_field(t, y, p):
    gut, central = y[0], y[1]
    return jnp.stack([-p["ka"] * gut, p["ka"] * gut - p["ke"] * central])


def bolus_amount(t, dose_times, amounts, ke, a0=0.0):
    """Superposition of exponential decays of every bolus given at or before t."""
    t = np.asarray(t, dtype=float)[..., None]
    tau = t - np.asarray(dose_times)
    given = tau >= 0
    decay = np.where(given, np.exp(-ke * np.where(given, tau, 0.0)), 0.0)
    return a0 * np.exp(-ke * t[..., 0]) + decay @ np.asarray(amounts)


def oral_central_amount(t, dose_times, amounts, ka, ke):
    """Bateman function, superposed over the oral doses."""
    t = np.asarray(t, dtype=float)[..., None]
    tau = np.where(t >= np.asarray(dose_times), t - np.asarray(dose_times), 0.0)
    given = t >= np.asarray(dose_times)
    shape = ka / (ka - ke) * (np.exp(-ke * tau) - np.exp(-ka * tau))
    return np.where(given, shape, 0.0) @ np.asarray(amounts)


@dataclasses.dataclass(frozen=True)
class Case:
    model: oi.ODEModel
    crossing_fn: Callable
    reset: Callable | None = None


LOGISTIC = Case(oi.ODEModel(_logistic_field, name="logistic"), _identity)
SPRING = Case(oi.ODEModel(_spring_field, name="spring"), _radius)
BALL = Case(oi.ODEModel(_ball_field, name="ball"), _height, _bounce)
ONE_COMPARTMENT = Case(
    oi.ODEModel(_one_compartment_field, name="one_compartment"), None
)
ORAL = Case(oi.ODEModel(_oral_field, name="oral"), None)


def spring_params(k=250.0, g=10.0):
    return {"k": jnp.asarray(k, dtype=float), "g": jnp.asarray(g, dtype=float)}


def spring_y0(z0=0.7):
    return jnp.asarray(SPRING_Y0).at[2].set(z0)
