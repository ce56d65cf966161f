"""`solve_fused_along`: a fused solve's derivatives along directions the caller gives,
against the derivatives of the closed-form solution of a linear chain with a dose."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi
from odeinfer._fast._along import solve_fused_along

TS = jnp.array([0.5, 1.5, 3.0])
T1 = 4.0
DOSE_TIME = 1.0


def chain(t, y, p):
    """y1 -> y2 -> (out) at rates k1, k2."""
    return jnp.stack([-p["k1"] * y[0], p["k1"] * y[0] - p["k2"] * y[1]])


def closed_form(a, k1, k2, c, t):
    """The chain from `(a, 0)` with `c` added to y1 at `DOSE_TIME`, at the times `t`."""

    def from_pulse(amount, s):
        s = jnp.maximum(s, 0.0)
        y1 = amount * jnp.exp(-k1 * s)
        y2 = amount * k1 / (k2 - k1) * (jnp.exp(-k1 * s) - jnp.exp(-k2 * s))
        return jnp.stack([y1, y2], axis=-1)

    dosed = jnp.where((t > DOSE_TIME)[:, None], from_pulse(c, t - DOSE_TIME), 0.0)
    return from_pulse(a, t) + dosed


@pytest.mark.parametrize(
    "solver",
    [
        oi.FusedRodas5P(),
        oi.FusedRodas5P(sensitivity_error_control=True),
        oi.FusedDopri5(sensitivity_error_control=True),
    ],
)
def test_directions_match_the_closed_form(solver):
    """Three directions, each moving several inputs at once: the initial amount and
    k1; k1 and k2 against each other; the dose amount and k2. The derivative of the
    closed form along each (by `jax.jvp`) is the reference."""
    a, k1, k2, c = 2.0, 0.7, 0.3, 1.5
    directions = np.array(
        [[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, -2.0, 0.0], [0.0, 0.0, 0.25, 1.0]]
    )
    solution, d_ys, d_final = solve_fused_along(
        oi.ODEModel(chain),
        jnp.array([a, 0.0]),
        {"k1": jnp.asarray(k1), "k2": jnp.asarray(k2)},
        jnp.stack([directions[:, 0], np.zeros(3)], axis=1),
        {"k1": jnp.asarray(directions[:, 1]), "k2": jnp.asarray(directions[:, 2])},
        t0=jnp.asarray(0.0),
        t1=jnp.asarray(T1),
        saveat=TS,
        doses=(oi.Dose(DOSE_TIME, c, target=0),),
        dose_amount_directions=jnp.asarray(directions[:, 3:]),
        solver=solver,
        rtol=jnp.asarray(1e-10),
        atol=jnp.asarray(1e-12),
        max_steps=100_000,
    )
    assert bool(solution.successful)
    times = jnp.concatenate([TS, jnp.array([T1])])
    expected = closed_form(a, k1, k2, c, times)
    assert solution.ys is not None
    np.testing.assert_allclose(
        np.asarray(solution.ys), expected[:-1], rtol=1e-8, atol=1e-12
    )
    for d, direction in enumerate(directions):
        _, tangent = jax.jvp(
            lambda a_, k1_, k2_, c_: closed_form(a_, k1_, k2_, c_, times),
            (a, k1, k2, c),
            tuple(direction),
        )
        np.testing.assert_allclose(d_ys[d], tangent[:-1], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(d_final[d], tangent[-1], rtol=1e-7, atol=1e-10)


def test_closures_over_traced_values_are_refused():
    def solve_with(k):
        model = oi.ODEModel(lambda t, y, p: -k * y)
        return solve_fused_along(
            model, jnp.array([1.0]), {}, jnp.ones((1, 1)), {},
            t0=jnp.asarray(0.0), t1=jnp.asarray(1.0), saveat=jnp.array([0.5]),
            doses=(), dose_amount_directions=None, solver=oi.FusedRodas5P(),
            rtol=jnp.asarray(1e-8), atol=jnp.asarray(1e-8), max_steps=100,
        )  # fmt: skip

    with pytest.raises(ValueError, match="closes over traced values"):
        jax.jit(solve_with)(0.5)
