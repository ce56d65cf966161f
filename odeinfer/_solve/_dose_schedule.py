"""The doses of a solve merged into one time-ordered schedule.

The loop keeps `dose_index`, the number of doses given so far; a segment stops at the
next dose time, and the dose is given where it got there without an event.
"""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._events import Dose
from ._tree import tree_where


class DoseSchedule(eqx.Module):
    """Every dose time of every [`odeinfer.Dose`][], sorted (stably, so doses at the
    same time are given in the order passed), with its amount and the index of its
    `Dose` (`owner`). `size` is 0 without doses; `times` etc. are then `None`."""

    doses: tuple[Dose, ...]
    size: int = eqx.field(static=True)
    times: Float[Array, " size"] | None
    amounts: Float[Array, " size"] | None
    owner: Int[Array, " size"] | None

    def next_dose(self, dose_index):
        """`(time, slot)` of the next dose after `dose_index` given: `inf` once all
        are given (`slot` clipped to the last dose); `(inf, None)` without doses."""
        if self.times is None:
            return jnp.inf, None
        dose_pending = dose_index < self.size
        dose_slot = jnp.minimum(dose_index, self.size - 1)
        return jnp.where(dose_pending, self.times[dose_slot], jnp.inf), dose_slot

    def give(self, y, dose_slot):
        """`y` after the dose in `dose_slot`, applied by its own `Dose`."""
        if self.amounts is None or self.owner is None:
            return y
        dosed = y
        for owner, dose in enumerate(self.doses):
            given = dose.apply(y, self.amounts[dose_slot])
            dosed = tree_where(self.owner[dose_slot] == owner, given, dosed)
        return dosed


def dose_schedule(doses: Sequence[Dose]) -> DoseSchedule:
    """The schedule of `doses` (traced inside the jitted loop)."""
    doses = tuple(doses)
    size = sum(int(d.times.shape[0]) for d in doses)
    if not size:
        return DoseSchedule(doses, 0, None, None, None)
    times = jnp.concatenate([d.times for d in doses])
    amounts = jnp.concatenate([d.amounts for d in doses])
    owner = jnp.concatenate(
        [jnp.full(d.times.shape, i, dtype=jnp.int32) for i, d in enumerate(doses)]
    )
    order = jnp.argsort(times, stable=True)
    return DoseSchedule(doses, size, times[order], amounts[order], owner[order])
