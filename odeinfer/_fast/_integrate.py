"""The adaptive Dormand–Prince loop in one `lax.while_loop`, saving by dense output.

Every step advances an array `Y` of shape `(rows, n)`: row 0 is the state, further rows
are forward sensitivities (see `_sensitivity.py`). Step sizes are chosen from the error
of the first `error_rows` rows only.

Saving: `i` is the first save time not yet filled. A step from `t` may not go past
`ts[i + 1]`, so it holds at most one unsaved time; when `ts[i] <= t + h` the row `i` is
filled from the DP5 dense output (`theta = 0` when `ts[i] = t`) with a one-row update.
Filling every save time from a masked update at each step, or from a nested loop,
measured 2-3x slower with sensitivities: XLA recomputes the interpolant for every
element of the buffer. The clip costs a step only where one step would span two
save times. For fixed steps the saved values are smooth in the parameters, and their
derivatives are the interpolant of the sensitivities.

The loop stops at `ts[-1]`, after `max_steps` steps (accepted and rejected), or on a
step-size underflow; it never raises.
"""

from collections.abc import Callable

import jax.lax as lax
import jax.numpy as jnp

from ._control import error_norm, initial_step, propose_step
from ._dopri5 import dense_output, dopri5_step


def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


def integrate(
    F: Callable,
    f: Callable,
    Y0,
    ts,
    t0,
    rtol,
    atol,
    max_steps: int,
    error_rows: int,
):
    """Integrate `dY/dt = F(t, Y)` from `t0` and save at the sorted times `ts >= t0`.

    **Arguments:**

    - `F`: the stage function on `(rows, n)` arrays; `f(t, y)` is its row 0 alone (used
        for the initial step).
    - `Y0`: the initial value, shape `(rows, n)`.
    - `ts`, `t0`, `rtol`, `atol`: arrays (traced; no recompilation when they change).
    - `max_steps`: bound on the number of steps, accepted and rejected.
    - `error_rows`: how many leading rows enter the error norm (1: the state only).

    **Returns:** `(Ys, ok, num_steps, num_accepted)`, `Ys` of shape `(len(ts), rows, n)`.
    `ok` is false when `max_steps` ran out, the step size underflowed, the vector field
    was non-finite at `t0`, or a save time lies before `t0`; save times not reached then
    hold the last accepted state (finite), so derivatives stay finite too.
    """
    m = ts.shape[0]
    t1 = ts[-1]
    k1 = F(t0, Y0)
    h0 = initial_step(f, t0, Y0[0], k1[0], t1, rtol, atol)
    bad_start = ~_all_finite(k1) | ~_all_finite(Y0) | jnp.any(ts < t0)
    Ys = jnp.broadcast_to(Y0, ts.shape + Y0.shape)

    def cond(carry):
        t, _, _, _, _, _, steps, _, _, _, failed = carry
        return (t < t1) & (steps < max_steps) & ~failed

    def body(carry):
        t, h, Y, k1, Ys, i, steps, accepted, facold, rejected_last, failed = carry
        target = ts[jnp.minimum(i + 1, m - 1)]
        clipped = h >= target - t
        h_step = jnp.where(clipped, target - t, h)
        t_next = jnp.where(clipped, target, t + h_step)
        Y1, k7, error, dense = dopri5_step(F, t, h_step, Y, k1)
        err = error_norm(
            error[:error_rows], Y[:error_rows], Y1[:error_rows], rtol, atol
        )
        # One fused reduction: NaN/inf anywhere in err, Y1 or k7 makes this non-finite.
        finite = jnp.isfinite(err + 0.0 * (jnp.sum(Y1) + jnp.sum(k7)))
        err = jnp.where(finite, err, jnp.inf)
        accept, h_next, facold = propose_step(h_step, err, facold, rejected_last)
        # A step shortened to land on a save time does not shrink the next one.
        h_next = jnp.where(accept & clipped, jnp.maximum(h_next, h), h_next)
        # Save: at most one time, ts[i], per step.
        j = jnp.minimum(i, m - 1)
        save = accept & (i < m) & (ts[j] <= t_next)
        theta = jnp.where(h_step > 0, jnp.clip((ts[j] - t) / h_step, 0.0, 1.0), 1.0)
        row = dense_output(Y, dense, theta[None])[0]
        Ys = lax.dynamic_update_index_in_dim(Ys, jnp.where(save, row, Ys[j]), j, 0)
        t = jnp.where(accept, t_next, t)
        Y = jnp.where(accept, Y1, Y)
        k1 = jnp.where(accept, k7, k1)
        failed = ~(t + h_next > t)  # step-size underflow (or NaN)
        return (
            t,
            h_next,
            Y,
            k1,
            Ys,
            i + save,
            steps + 1,
            accepted + accept,
            facold,
            ~accept,
            failed,
        )

    zero = jnp.zeros((), jnp.int32)
    carry = (
        t0,
        h0,
        Y0,
        k1,
        Ys,
        zero,
        zero,
        zero,
        jnp.asarray(1e-4, Y0.dtype),
        jnp.asarray(False),
        bad_start,
    )
    t, _, Y, _, Ys, i, steps, accepted, _, _, failed = lax.while_loop(cond, body, carry)
    ok = (t >= t1) & ~failed
    # Times at t1 not yet filled (the last step ended on them), or never reached.
    Ys = jnp.where((jnp.arange(m) >= i)[:, None, None], Y, Ys)
    return Ys, ok, steps, accepted
