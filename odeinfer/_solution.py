"""Immutable results of [`odeinfer.solve`][]: saved states, the event log, stats."""

from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._custom_types import Scalar, State
from ._results import RESULTS, is_successful


def _take(tree, index):
    return jtu.tree_map(lambda x: x[index], tree)


class EventLog(eqx.Module):
    """Every recorded crossing, in time order, in fixed-size buffers of `max_events`.

    Unused slots have `times = inf`, `which = -1` and states filled with `inf`, so the
    log has the same shape under `jax.jit` and `jax.vmap` whatever happened.

    **Attributes:**

    - `times`: crossing times, `inf`-padded.
    - `which`: index (into the `events` passed to `solve`) of the crossing; -1 = unused.
    - `states`: the state at each crossing, before any reset.
    - `states_after`: the state after the reset (equal to `states` without reset).
    - `slopes`: d(fn)/dt at each crossing (positive for a rising crossing).
    - `count`: how many slots are used.
    """

    times: Float[Array, " max_events"]
    which: Int[Array, " max_events"]
    states: PyTree[Float[Array, "max_events ..."]]
    states_after: PyTree[Float[Array, "max_events ..."]]
    slopes: Float[Array, " max_events"]
    count: Int[Array, ""]

    @property
    def mask(self) -> Bool[Array, " max_events"]:
        """`True` for used slots."""
        return self.which >= 0

    def of(self, index: int) -> "EventLog":
        """The log restricted to crossing number `index`, compacted to the front."""
        keep = self.which == index
        size = self.which.shape[-1]
        order = jnp.argsort(
            jnp.where(keep, 0, 1) * size + jnp.arange(size), stable=True
        )

        def pick(x, fill):
            x = jnp.take(x, order, axis=0)
            kept = jnp.take(keep, order)
            return jnp.where(kept.reshape((-1,) + (1,) * (x.ndim - 1)), x, fill)

        return EventLog(
            times=pick(self.times, jnp.inf),
            which=pick(self.which, -1),
            states=jtu.tree_map(lambda x: pick(x, jnp.inf), self.states),
            states_after=jtu.tree_map(lambda x: pick(x, jnp.inf), self.states_after),
            slopes=pick(self.slopes, jnp.nan),
            count=jnp.sum(keep),
        )


class Segments(eqx.Module):
    """Dense output: one diffrax interpolation per segment between events and doses."""

    starts: Float[Array, " segments"]
    ends: Float[Array, " segments"]
    interpolations: Any  # a diffrax.DenseInterpolation with a leading segment axis

    def evaluate(self, t: Scalar) -> State:
        t = jnp.asarray(t, dtype=float)
        used = (self.ends > self.starts) & (self.starts <= t)
        index = jnp.argmax(jnp.where(used, jnp.arange(self.starts.shape[0]), -1))
        return _take(self.interpolations, index).evaluate(t)


class Solution(eqx.Module):
    """The result of [`odeinfer.solve`][]. Immutable; every field is a JAX array (or
    pytree of arrays) so a `Solution` can be returned from `jax.jit` and `jax.vmap`.

    **Attributes:**

    - `t0`, `t1`: the requested interval.
    - `ts`: the requested save times (`saveat`), or `None`.
    - `ys`: the state at `ts` (leading axis over times), or `None`. Right-continuous:
        at a reset or dose time the state after the jump. Times after a terminal
        crossing or a failure hold `inf`.
    - `t_final`, `y_final`: where the solve ended (`t1`, a terminal crossing, or the
        failure point), after any reset or dose there.
    - `events`: the [`odeinfer.EventLog`][] of recorded crossings.
    - `result`: an [`odeinfer.RESULTS`][] code; `solution.successful` is its boolean.
    - `stats`: `num_steps`, `num_accepted_steps`, `num_rejected_steps`,
        `num_segments` (solves between events and doses) and `num_fevals` (vector field
        evaluations, exact for explicit Runge–Kutta solvers; -1 otherwise).
    - `segments`: dense output if `solve(..., dense=True)`, else `None`; use
        `solution.evaluate(t)`.
    """

    t0: Scalar
    t1: Scalar
    ts: Float[Array, " times"] | None
    ys: PyTree[Float[Array, "times ..."]] | None
    t_final: Scalar
    y_final: State
    events: EventLog
    result: RESULTS
    stats: dict[str, Int[Array, ""]]
    segments: Segments | None

    @property
    def successful(self) -> Bool[Array, ""]:
        return is_successful(self.result)

    def evaluate(self, t: Float[Array, "..."]) -> State:
        """The dense-output state at time(s) `t` (needs `solve(..., dense=True)`).

        `t` must lie in `[t0, t_final]` (`t_final` is `t1` unless a terminal crossing
        or a failure stopped the solve earlier): the solution is not known outside.
        With concrete values a time outside raises a `ValueError`; under `jax.jit`
        (traced `t` or solution) the state there is NaN, so that it cannot pass for a
        number. It is not clamped to the nearest end, which would be a silent wrong
        answer.
        """
        if self.segments is None:
            raise ValueError(
                "This solution has no dense output: call `odeinfer.solve(..., dense=True)`."
            )
        t = jnp.asarray(t, dtype=float)
        if not any(isinstance(x, jax.core.Tracer) for x in (t, self.t0, self.t_final)):
            times = np.asarray(t)
            start, end = float(self.t0), float(self.t_final)
            outside = ~((times >= start) & (times <= end))
            if np.any(outside):
                stopped = (
                    ""
                    if end == float(self.t1)
                    else f" (the solve stopped at t_final = {end:.10g}, before "
                    f"t1 = {float(self.t1):g}: {RESULTS[self.result]})"
                )
                raise ValueError(
                    f"`t` = {times[outside].ravel()[:5]} lies outside the solved interval "
                    f"[t0, t_final] = [{start:g}, {end:.10g}]{stopped}; the dense output "
                    "is only defined there. Solve over a longer interval."
                )
        inside = (t >= self.t0) & (t <= self.t_final)
        if t.ndim == 0:
            value = self.segments.evaluate(t)
        else:
            value = jax.vmap(self.segments.evaluate)(t)
        return jtu.tree_map(
            lambda x: jnp.where(
                inside.reshape(inside.shape + (1,) * (x.ndim - t.ndim)), x, jnp.nan
            ),
            value,
        )

    def crossing_times(self, index: int = 0) -> Float[Array, " max_events"]:
        """Times of crossing number `index`, in order, `inf`-padded."""
        return self.events.of(index).times
