"""What one segment of the loop hands the next."""

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._custom_types import State
from .._results import RESULTS
from .._solution import EventLog
from ._event_log import empty_log
from ._tree import fill


class SegmentCarry(eqx.Module):
    """The state of the segment loop between two segments.

    **Attributes:**

    - `t`, `y`: where the next segment starts (after any reset or dose).
    - `done`: the solve has finished (reached `t1`, a terminal crossing, a failure);
      later segments are zero-length and change nothing.
    - `log`: the event log so far.
    - `dose_index`: how many doses have been given.
    - `override`, `active`: the next segment's condition arguments (`_integrator.py`).
    - `ys`: the states saved at `saveat` so far (`inf` where not yet reached), or
      `None` without `saveat`.
    - `result`: the first failure (`RESULTS.successful` so far without one).
    - `num_steps`, `num_accepted_steps`, `num_rejected_steps`, `num_segments`: work
      counts summed over the segments run.
    """

    t: Float[Array, ""]
    y: State
    done: Bool[Array, ""]
    log: EventLog
    dose_index: Int[Array, ""]
    override: Float[Array, " crossings"]
    active: Bool[Array, " crossings"]
    ys: PyTree[Float[Array, "times ..."]] | None
    result: RESULTS
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    num_segments: Int[Array, ""]


def initial_carry(
    t0, y0, ts, valid, result, n_crossings: int, max_events: int
) -> SegmentCarry:
    """The carry before the first segment; with invalid input (`valid` false) the loop
    is done before it starts."""
    log = empty_log(y0, max_events)
    zero = jnp.array(0, dtype=jnp.int32)
    return SegmentCarry(
        t=t0,
        y=y0,
        done=jnp.invert(valid),
        log=log,
        dose_index=zero,
        override=jnp.zeros((n_crossings,)),
        active=jnp.zeros((n_crossings,), dtype=bool),
        ys=None if ts is None else fill(y0, ts.shape[0]),
        result=result,
        num_steps=zero,
        num_accepted_steps=zero,
        num_rejected_steps=zero,
        num_segments=zero,
    )


def depending_on(carry: SegmentCarry, inputs) -> SegmentCarry:
    """`carry` with the time, the state, the event log and the saved states made to
    depend, by exactly zero, on the floating leaves of `inputs` (the parameters, the
    initial state, ...).

    The values do not change. Under `jax.jvp`, `jax.vmap` of it and reverse mode, these
    then have a (batched) tangent before the first segment, as they have after it: the
    transformations' fixpoints over the segment loop settle in one pass of its body
    instead of two (Oliveira's forward-mode PEtab gradient: trace 4.4 -> 3.2 s)."""
    leaves = [x for x in jtu.tree_leaves(inputs) if eqx.is_inexact_array(x)]
    if not leaves:
        return carry
    # `where`, not `0 * x`: zero also where `x` is not finite.
    dtype = jnp.result_type(carry.t)
    zero = jnp.sum(
        jnp.stack([jnp.sum(jnp.where(False, x, 0)).real.astype(dtype) for x in leaves])
    )
    moving = (carry.t, carry.y, carry.log, carry.ys)
    moving = jtu.tree_map(
        lambda x: x + zero.astype(x.dtype) if eqx.is_inexact_array(x) else x, moving
    )
    return eqx.tree_at(
        lambda c: (c.t, c.y, c.log, c.ys), carry, moving, is_leaf=lambda x: x is None
    )
