"""The adaptive loop of the fused solvers: one `lax.while_loop` over steps of a method
(`_methods.py`) from `t0` to `t_end`, saving by dense output.

Every step advances an array `Y` of shape `(rows, n)`: row 0 is the state, further rows
are forward sensitivities. Step sizes are chosen from the error of the first
`error_rows` rows only (Hairer's norm and PI controller, `_control.py`): the state's,
or with the sensitivities the largest of the rows' norms (CVODES's test).

Saving: `i` is the first save time not yet filled. A step from `t` may not go past
`ts[i + 1]` (nor `t_end`), so it holds at most one unsaved time; when `ts[i] <= t + h`
the row `i` is filled from the dense output with a one-row update. Filling every save
time from a masked update at each step, or from a nested loop, measured 2-3x slower
with sensitivities: XLA recomputes the interpolant for every element of the buffer.

Segments: a solve with doses runs this loop once per interval between dose times.
Save times equal to a segment's end are left to the next segment (the solution is
right-continuous: a state saved at a dose time includes the dose), except in the final
segment. The loop stops at `t_end`, after `max_steps` steps (accepted and rejected), or
on a step-size underflow; it never raises.

Crossings: with a crossing to watch (`_crossing.watch`), the loop also stops after the
first accepted step over which the crossing happened, and keeps that step's start (`t`,
`Y`, `aux`) and size (`h`) for `_crossing.py` to locate the crossing in it. As on the
diffrax path (`_events/_guard.py`), a step over which the crossing function turns back
towards its level and may reach it and come back is rejected and retried shorter.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._control import error_norm, initial_step, propose_step, sensitivity_error_norm
from ._methods import STIFF_BOUND, STIFF_STEPS, AutoRows, Dopri5Rows, RosenbrockRows


def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


class SegmentEnd(NamedTuple):
    """Where `integrate_segment` stopped.

    - `Y`, `aux`, `t`: the state rows, the method's auxiliary value and the time
        reached (`t_end` on success); where `crossed`, the start of the step over
        which the crossing happened.
    - `Ys`, `i`: the save buffer and the next unfilled index.
    - `ok`: success (`t_end` or a crossing reached, no failure).
    - `steps`, `accepted`: the step counts.
    - `stiff`: the problem was detected stiff (`stiff0` on entry).
    - `crossed`, `h`, `crossed_stiff`: a crossing stopped the loop, over a step of
        size `h` (0 otherwise) taken by the stiff method of `AutoRows`.
    """

    Y: Float[Array, "rows n"]
    aux: Float[Array, "rows n"]
    t: Float[Array, ""]
    Ys: Float[Array, "times rows n"]
    i: Int[Array, ""]
    ok: Bool[Array, ""]
    steps: Int[Array, ""]
    accepted: Int[Array, ""]
    stiff: Bool[Array, ""]
    crossed: Bool[Array, ""]
    h: Float[Array, ""]
    crossed_stiff: Bool[Array, ""]


def integrate_segment(
    method,
    f,
    Y0,
    ts,
    Ys,
    i0,
    t0,
    t_end,
    final,
    rtol,
    atol,
    max_steps: int,
    error_rows: int,
    stiff0,
    crossing: Callable | None = None,
) -> SegmentEnd:
    """Integrate from `(t0, Y0)` to `t_end`, filling the rows of `Ys` (shape
    `(len(ts), rows, n)`) from index `i0`. With `crossing` (`_crossing.watch`), stop
    after the first accepted step over which the crossing happened, and retry shorter
    a step that may hide two crossings.

    **Returns:** a `SegmentEnd`. With `AutoRows` the steps after `stiff` is set are
    Rodas5P steps; with `Dopri5Rows` it is only reported. After a failure the unreached
    rows hold the last accepted state (finite), `i = len(ts)`; after a crossing, the
    unreached rows hold the state at the crossing step's start (for the caller to
    mask).
    """
    m = ts.shape[0]
    f0 = f(t0, Y0[0])
    span = jnp.maximum(t_end - t0, 0.0)
    h0 = initial_step(f, t0, Y0[0], f0, t0 + jnp.where(span > 0, span, 1.0), rtol, atol)
    index = jnp.arange(m)
    early = jnp.any((index >= i0) & (ts < t0))  # a save time before the start
    bad_start = ~_all_finite(f0) | ~_all_finite(Y0) | early

    def loop(method, carry, watch: bool, until_stiff: bool):
        def cond(carry):
            t, _, _, _, _, _, steps, _, _, _, failed, stiff, _, _, found, _ = carry
            going = (t < t_end) & (steps < max_steps) & ~failed & ~found
            return going & ~stiff if until_stiff else going

        def body(carry):
            (t, h, Y, aux, Ys, i, steps, accepted, facold, rejected_last, failed,
             stiff, stiff_count, calm_count, found, h_found) = carry  # fmt: skip
            limit = jnp.minimum(ts[jnp.minimum(i + 1, m - 1)], t_end)
            limit = jnp.where(limit > t, limit, t_end)
            clipped = h >= limit - t
            h_step = jnp.where(clipped, limit - t, h)
            t_next = jnp.where(clipped, limit, t + h_step)
            j = jnp.minimum(i, m - 1)
            theta = jnp.where(h_step > 0, jnp.clip((ts[j] - t) / h_step, 0.0, 1.0), 1.0)
            Y1, aux1, error, row, h_lambda = method.step(t, h_step, Y, aux, theta)
            if error_rows == 1:
                err = error_norm(error[:1], Y[:1], Y1[:1], rtol, atol)
            else:
                err = sensitivity_error_norm(
                    error[:error_rows], Y[:error_rows], Y1[:error_rows], rtol, atol
                )
            # One fused reduction: NaN/inf anywhere in err, Y1 or aux1 makes this
            # non-finite.
            finite = jnp.isfinite(err + 0.0 * (jnp.sum(Y1) + jnp.sum(aux1)))
            err = jnp.where(finite, err, jnp.inf)
            accept, h_next, facold_next = propose_step(
                h_step, err, facold, rejected_last
            )
            if crossing is not None:
                if isinstance(method, Dopri5Rows):
                    dy, dy1 = aux[0], aux1[0]  # the FSAL stages: f at both ends
                else:
                    dy, dy1 = f(t, Y[0]), f(t_next, Y1[0])
                hit, hidden, fraction = crossing(
                    t, Y[0], dy, t_next, Y1[0], dy1, h_step
                )
                # A step that may hide two crossings is retried shorter, the
                # controller's state kept (`_events/_guard.py`).
                retry = accept & hidden
                accept = accept & ~retry
                h_next = jnp.where(retry, fraction * h_step, h_next)
                facold_next = jnp.where(retry, facold, facold_next)
                found = accept & hit
                h_found = jnp.where(found, h_step, h_found)
            facold = facold_next
            # A step shortened to land on a save time does not shrink the next one.
            h_next = jnp.where(accept & clipped, jnp.maximum(h_next, h), h_next)
            if watch:
                # Hairer's test on the step the controller wanted (clipping to save
                # times must not hide stiffness): h|λ| > STIFF_BOUND on STIFF_STEPS
                # accepted steps, the count reset by 6 calm steps in a row.
                lam_h = h_lambda / jnp.where(h_step > 0, h_step, 1.0) * h
                limited = accept & (lam_h > STIFF_BOUND)
                calm = accept & ~limited
                stiff_count = stiff_count + limited
                calm_count = jnp.where(limited, 0, calm_count + calm)
                stiff_count = jnp.where(calm_count >= 6, 0, stiff_count)
                stiff = stiff | (stiff_count >= STIFF_STEPS)
            save = accept & (i < m) & (ts[j] <= t_next) & (final | (ts[j] < t_end))
            Ys = lax.dynamic_update_index_in_dim(Ys, jnp.where(save, row, Ys[j]), j, 0)
            # After a crossing, the step's start is kept (the loop then stops).
            advance = accept & ~found
            t = jnp.where(advance, t_next, t)
            Y = jnp.where(advance, Y1, Y)
            aux = jnp.where(advance, aux1, aux)
            failed = ~(t + h_next > t)  # step-size underflow (or NaN)
            return (
                t, h_next, Y, aux, Ys, i + save, steps + 1, accepted + accept,
                facold, ~accept, failed, stiff, stiff_count, calm_count, found,
                h_found,
            )  # fmt: skip

        return lax.while_loop(cond, body, carry)

    zero = jnp.zeros((), jnp.int32)
    explicit = method.explicit if isinstance(method, AutoRows) else method
    carry = (
        t0, h0, Y0, explicit.first(t0, Y0), Ys, jnp.asarray(i0, jnp.int32), zero,
        zero, jnp.asarray(1e-4, Y0.dtype), jnp.asarray(False), bad_start,
        jnp.asarray(stiff0), zero, zero, jnp.asarray(False), jnp.zeros_like(h0),
    )  # fmt: skip
    carry = depending_on(carry, (Y0, ts, t0, t_end, rtol, atol))
    if isinstance(method, AutoRows):
        # Two loops, not a `lax.cond` per step: under `jax.vmap` a cond computes both
        # methods at every step (measured 7x the cost on a non-stiff batch), while the
        # Rosenbrock loop below runs no iteration when no trajectory turned stiff.
        # (`stiff0`: a later dose segment of a trajectory already found stiff.)
        carry = loop(method.explicit, carry, watch=True, until_stiff=True)
        found_explicit = carry[14]
        out = loop(method.stiff, carry, watch=False, until_stiff=False)
        crossed_stiff = out[14] & ~found_explicit
    else:
        watch = isinstance(method, Dopri5Rows)
        out = loop(method, carry, watch=watch, until_stiff=False)
        crossed_stiff = jnp.asarray(isinstance(method, RosenbrockRows)) & out[14]
    (t, _, Y, aux, Ys, i, steps, accepted, _, _, failed, stiff, _, _, found,
     h_found) = out  # fmt: skip
    ok = ((t >= t_end) | found) & ~failed
    # Rows not yet filled at the end: the final time (the last step ended on it), or
    # never reached after a failure (the last good state keeps them finite) or a
    # crossing (the caller masks them).
    stop = final | ~ok | found
    fill = (index >= i) & stop
    Ys = jnp.where(fill[:, None, None], Y, Ys)
    i = jnp.where(stop, m, i)
    return SegmentEnd(
        Y=Y, aux=aux, t=t, Ys=Ys, i=i, ok=ok, steps=steps, accepted=accepted,
        stiff=stiff, crossed=found, h=h_found, crossed_stiff=crossed_stiff,
    )  # fmt: skip


def depending_on(carry, inputs):
    """`carry` (a pytree of arrays) with every leaf made to depend, by exactly zero,
    on the floating leaves of `inputs`: the values do not change, and under
    `jax.vmap` every leaf is batched where an input is, as it is after one step.
    `jax.vmap`'s rule for a loop or scan then settles which leaves are batched in its
    first pass over the body instead of repeating it (the logistic `Problem` of
    `benchmarks/compile_experiments.py`, 2 experiments: gradient trace 0.70 -> 0.55 s;
    with an event time each, 1.96 -> 1.70 s)."""
    leaves = [x for x in jax.tree_util.tree_leaves(inputs) if eqx.is_inexact_array(x)]
    if not leaves:
        return carry
    # `where`, not `0 * x`: zero also where `x` is not finite.
    zero = jnp.sum(jnp.stack([jnp.sum(jnp.where(False, x, 0)).real for x in leaves]))

    def moved(x):
        x = jnp.asarray(x)
        if x.dtype == jnp.bool_:
            return x | (zero != 0)
        return x + zero.astype(x.dtype)

    return jax.tree_util.tree_map(moved, carry)
