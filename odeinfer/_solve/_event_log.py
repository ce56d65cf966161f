"""The event log of a solve: fixed-size buffers of `max_events` crossings, filled in
time order by the segment loop."""

import jax.numpy as jnp
import jax.tree_util as jtu

from .._solution import EventLog
from ._tree import fill


def empty_log(y0, max_events: int) -> EventLog:
    """A log with every slot unused (`inf` times and states, `which = -1`)."""
    return EventLog(
        times=jnp.full((max_events,), jnp.inf),
        which=jnp.full((max_events,), -1, dtype=jnp.int32),
        states=fill(y0, max_events),
        states_after=fill(y0, max_events),
        slopes=jnp.full((max_events,), jnp.nan),
        count=jnp.array(0, dtype=jnp.int32),
    )


def record_crossing(
    log: EventLog, crossed, max_events: int, t, which, y, y_after, slope
):
    """Write a crossing into the next free slot where `crossed`.

    **Returns:** `(log, recorded, overflow)`: the log, whether the crossing was written,
    and whether it was not for want of a free slot.
    """
    overflow = crossed & (log.count >= max_events)
    record = crossed & jnp.invert(overflow)
    slot = jnp.minimum(log.count, max_events - 1)

    def write(buffer, value):
        return jtu.tree_map(
            lambda b, v: b.at[slot].set(jnp.where(record, v, b[slot])),
            buffer,
            value,
        )

    log = EventLog(
        times=write(log.times, t),
        which=write(log.which, which),
        states=write(log.states, y),
        states_after=write(log.states_after, y_after),
        slopes=write(log.slopes, slope),
        count=log.count + record.astype(jnp.int32),
    )
    return log, record, overflow
