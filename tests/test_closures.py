"""diffrax solvers (the segment loop, `odeinfer/_solve/`) with crossings on functions
that close over traced values: a vector field, a crossing function or a reset built
inside `jax.grad`, `jax.jacrev`, `jax.jacfwd`, `jax.vmap` or `jax.jit` of the user's
function (the fused solvers' counterpart is `test_fused_closures.py`). Truth: closed
forms.

- Decay `dy/dt = -k y`, `y0 = 1`, reset `y -> y + a` on falling through `c`
  (`a < 1 - c`): crossings at `t1 = ln(1 / c) / k` and `t2 = t1 + ln(1 + a / c) / k`,
  and after the second `y(T) = (c + a) exp(-k (T - t2)) = (c + a)^2 / c^2 exp(-k T)`.
- The logistic `dy/dt = k y (1 - y)`, `y0 = 1/2`, reaches `c` at
  `t* = ln(c / (1 - c)) / k`: `dt*/dk = -t*/k`, `dt*/dc = 1 / (k c (1 - c))`.

The default tier compiles one forward-mode program (~3 s); the reverse-mode ones (a
Tsit5 gradient with crossings compiles in 5-10 s) are in the slow tier, and the step-size
guard's part of the reverse-mode fix is checked on its own below.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi
from odeinfer._events._guard import CrossingGuard, crossing_probe

RTOL, ATOL = 1e-10, 1e-12
T = 1.3  # after the decay's second crossing, before its third


def _decay_with_reset(adjoint):
    """`(k, c, a) -> (t1, t2, y(T))` with `k` closed over by the vector field, `c` by
    the crossing function and `a` by the reset (twice: the value and `has_aux`), and
    the third crossing time (`inf`: none before `T`)."""

    def outputs(k_c_a):
        k, c, a = k_c_a
        model = oi.ODEModel(lambda t, y, p: -k * y)
        through = oi.Crossing(
            lambda t, y, p: y - c, 0.0, direction="falling",
            reset=lambda t, y, p: y + a,
        )  # fmt: skip
        solution = oi.solve(
            model, 1.0, {}, t0=0.0, t1=T, saveat=jnp.array([T]), events=through,
            max_events=3, adjoint=adjoint, rtol=RTOL, atol=ATOL,
        )  # fmt: skip
        times = solution.events.times
        out = jnp.stack([times[0], times[1], solution.ys[0]])  # pyright: ignore[reportOptionalSubscript]
        return out, (out, times[2])

    return outputs


def _check_decay_with_reset(jacobian, value, third, k, c, a):
    t1 = np.log(1 / c) / k
    t2 = t1 + np.log(1 + a / c) / k
    y_T = (c + a) ** 2 / c**2 * np.exp(-k * T)
    np.testing.assert_allclose(value, [t1, t2, y_T], rtol=1e-8)
    assert np.isinf(third)
    exact_jacobian = [
        [-t1 / k, -1 / (k * c), 0.0],
        [-t2 / k, (1 / (c + a) - 2 / c) / k, 1 / (k * (c + a))],
        [-T * y_T, 2 * y_T / (c + a) - 2 * y_T / c, 2 * y_T / (c + a)],
    ]
    np.testing.assert_allclose(jacobian, exact_jacobian, rtol=1e-7, atol=1e-12)


def test_reset_closed_over_jit_forward_mode():
    """`jax.jit` of `jax.jvp` (the `ForwardMode` adjoint) of the crossing times and the
    state after a reset, with respect to what the vector field, the crossing function
    and the reset close over: the Jacobian column by column from one compilation
    (cheaper to compile than `jax.jacfwd`'s batched loop)."""
    outputs = _decay_with_reset(diffrax.ForwardMode())
    k_c_a = jnp.array([1.0, 0.5, 0.25])
    jvp = jax.jit(lambda x, v: jax.jvp(outputs, (x,), (v,), has_aux=True))
    columns = [jvp(k_c_a, direction) for direction in jnp.eye(3)]
    jacobian = jnp.stack([tangent for _, tangent, _ in columns], axis=1)
    value, third = columns[0][2]
    _check_decay_with_reset(jacobian, value, third, *np.asarray(k_c_a))


def test_guard_probe_carries_no_derivative():
    """The crossing guard (`_events/_guard.py`) only chooses steps: the values and
    slopes it keeps carry no derivative, also with respect to what the vector field
    closes over (where the inputs' `stop_gradient` does not reach; a reverse-mode
    derivative through its closest-approach `sqrt` came out NaN)."""

    def kept(k):
        model = oi.ODEModel(lambda t, y, p: -k * y)
        crossing = oi.Crossing(lambda t, y, p: y, 0.5)
        guard = CrossingGuard(
            diffrax.PIDController(rtol=1e-8, atol=1e-10),
            crossing_probe(model, (crossing,), 1e-8, 1e-10),
        )  # pyright: ignore[reportCallIssue]
        args = ({}, jnp.array([0.5]))
        term = diffrax.ODETerm(lambda t, y, args: model(t, y, args[0]))  # pyright: ignore[reportArgumentType]
        y0, y1 = jnp.array(1.0), jnp.exp(-0.1 * k)
        _, state = guard.init(term, 0.0, 0.1, y0, 0.1, args, None, 5)  # pyright: ignore[reportArgumentType]
        *_, (_, values, slopes, _), _ = guard.adapt_step_size(
            0.0, 0.1, y0, y1, args, jnp.array(1e-12), 5, state
        )
        return values[0] + slopes[0]

    assert jax.jit(jax.grad(kept))(1.0) == 0.0


@pytest.mark.slow  # reverse-mode compilations of Tsit5 with crossings, 5-10 s each
def test_reset_closed_over_reverse_mode():
    """`jax.jacrev` (a `jax.vmap` of the reverse pass, the default adjoint) of the
    same."""
    outputs = _decay_with_reset(diffrax.RecursiveCheckpointAdjoint())
    k_c_a = jnp.array([1.0, 0.5, 0.25])
    jacobian, (value, third) = jax.jacrev(outputs, has_aux=True)(k_c_a)
    _check_decay_with_reset(jacobian, value, third, *np.asarray(k_c_a))


def _logistic_exact(k, c):
    """`(t*, (dt*/dk, dt*/dc))`."""
    time = np.log(c / (1 - c)) / k
    return time, (-time / k, 1 / (k * c * (1 - c)))


def _crossing_time(
    k, c, adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()
):
    """The time the logistic reaches `c` (`k` closed over by the vector field, `c` by
    the crossing function), twice: the value and `has_aux`."""
    model = oi.ODEModel(lambda t, y, p: k * y * (1 - y))
    reach = oi.Crossing(lambda t, y, p: y - c, 0.0, direction="rising")
    time = oi.first_crossing(
        model, 0.5, {}, reach, t0=0.0, t1=1000.0, adjoint=adjoint, rtol=RTOL, atol=ATOL
    ).time
    return time, time


@pytest.mark.slow  # three compilations, two in reverse mode
def test_first_crossing_closed_over():
    """`first_crossing` under `jax.grad` (the case reported), `jax.vmap` of it and
    `jax.jit(jax.jacfwd)`; `all_crossings` under `jax.vmap`."""
    gradient = jax.grad(_crossing_time, argnums=(0, 1), has_aux=True)
    exact_gradient = _logistic_exact(0.01, 0.8)[1]
    np.testing.assert_allclose(gradient(0.01, 0.8)[0], exact_gradient, rtol=1e-7)
    ks, cs = jnp.array([0.01, 0.02]), jnp.array([0.8, 0.6])
    time, exact_gradient = _logistic_exact(np.asarray(ks), np.asarray(cs))
    np.testing.assert_allclose(jax.vmap(gradient)(ks, cs)[0], exact_gradient, rtol=1e-7)

    jacobian, value = jax.jit(
        jax.jacfwd(
            lambda k, c: _crossing_time(k, c, diffrax.ForwardMode()),
            argnums=(0, 1),
            has_aux=True,
        )
    )(0.02, 0.7)
    np.testing.assert_allclose(value, _logistic_exact(0.02, 0.7)[0], rtol=1e-8)
    np.testing.assert_allclose(jacobian, _logistic_exact(0.02, 0.7)[1], rtol=1e-7)

    def first_time(k, c):
        model = oi.ODEModel(lambda t, y, p: k * y * (1 - y))
        reach = oi.Crossing(lambda t, y, p: y - c, 0.0, direction="rising")
        return oi.all_crossings(
            model, 0.5, {}, reach, t0=0.0, t1=1000.0, max_events=2, rtol=RTOL, atol=ATOL
        ).times[0]

    np.testing.assert_allclose(jax.vmap(first_time)(ks, cs), time, rtol=1e-8)
