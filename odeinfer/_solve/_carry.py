"""What one segment of the loop hands the next."""

import equinox as eqx
import jax.numpy as jnp
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
