"""A segment that ended on a crossing: which crossing fired, its reset, and how each
crossing function behaves around that point (the sign to report on restart, the slope
to record, a tangent crossing, accumulating events).
"""

from typing import NamedTuple

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import State
from .._events import Crossing
from .._model import ODEModel
from .._solution import EventLog
from ._tree import tree_where

# A crossing is tangent when (d fn/dt)^2 <= _GRAZING_SAFETY * 2 |d^2 fn/dt^2| * tol_fn:
# a perturbation of the trajectory of the size of the solver error could remove it.
_GRAZING_SAFETY = 100.0


class CrossingOutcome(NamedTuple):
    """What a segment's end means for the crossings.

    - `which`: index of the crossing that fired (-1 without crossings).
    - `y_after`: the state after its reset (the state reached without one).
    - `terminal`, `tangent`, `zeno`: it stops the solve; it is tangent to its level;
      events accumulate there.
    - `slope`: `d fn/dt` of the crossing that fired, before the reset.
    - `override`, `active`: the next segment's condition arguments (`_integrator.py`).
    """

    which: Int[Array, ""]
    y_after: State
    terminal: Bool[Array, ""]
    slope: Float[Array, ""]
    tangent: Bool[Array, ""]
    zeno: Bool[Array, ""]
    override: Float[Array, " crossings"]
    active: Bool[Array, " crossings"]


def crossing_outcome(
    crossings: tuple[Crossing, ...],
    model: ODEModel,
    params,
    event_mask,
    fired,
    t_end,
    y_end,
    log: EventLog,
    override,
    active,
    rtol,
    atol,
) -> CrossingOutcome:
    """The outcome of a segment that reached `(t_end, y_end)`, `fired` when it ended
    on a crossing (`event_mask`: diffrax's, one flag per crossing)."""
    if not crossings:
        return CrossingOutcome(
            which=jnp.array(-1, dtype=jnp.int32),
            y_after=y_end,
            terminal=jnp.array(False),
            slope=jnp.array(jnp.nan),
            tangent=jnp.array(False),
            zeno=jnp.array(False),
            override=override,
            active=active,
        )
    mask = jnp.stack(jtu.tree_leaves(event_mask)) & fired
    which = jnp.argmax(mask).astype(jnp.int32)
    y_after = y_end
    for i, crossing in enumerate(crossings):
        if crossing.reset is not None:
            reset_y = crossing.reset(t_end, y_end, params)
            y_after = tree_where(mask[i], reset_y, y_after)
    terminal = jnp.any(mask & jnp.array([c.terminal for c in crossings]))
    override, grazing, accumulating = _around(
        crossings, model, params, t_end, y_end, y_after, rtol, atol
    )
    # The slope before the reset is recorded with its derivatives; the rest decides
    # signs and flags only.
    slope = _slopes(crossings, model, t_end, y_end, params)[which]
    tangent = fired & grazing[which]
    zeno = fired & accumulating[which]
    # The same crossing again at the same time (to rounding): accumulation too.
    last = jnp.maximum(log.count - 1, 0)
    previous_time = log.times[last]
    repeated = (log.which[last] == which) & (
        t_end - previous_time
        <= 64 * jnp.finfo(t_end.dtype).eps * jnp.maximum(jnp.abs(t_end), 1.0)
    )
    zeno = zeno | (fired & (log.count > 0) & repeated)
    return CrossingOutcome(
        which=which,
        y_after=y_after,
        terminal=terminal,
        slope=slope,
        tangent=tangent,
        zeno=zeno,
        override=override,
        active=mask,
    )


def _around(crossings, model: ODEModel, params, t, y, y_after, rtol, atol):
    """For every crossing function at a segment's end, without derivatives:
    `(override, grazing, accumulating)`, the sign to report at the next segment's first
    point, whether it is tangent there, and whether a reset keeps it on its level
    (Zeno). The function and its first two time derivatives are taken before and after
    the reset in one `jax.vmap`, for all crossings at once (one trace of the vector
    field and the crossing functions)."""
    t, y, y_after, params = lax.stop_gradient((t, y, y_after, params))
    states = jtu.tree_map(lambda a, b: jnp.stack([a, b]), y, y_after)
    values, slopes, curvatures = jax.vmap(
        lambda y_: _time_derivatives(crossings, model, t, y_, params)
    )(states)
    value, value_after = values
    slope, slope_after = slopes
    curvature, curvature_after = curvatures
    jump = value_after - value
    levels = jnp.stack([c.level for c in crossings])
    tol_fn = atol + rtol * jnp.abs(levels)
    # Which way the flow moves the crossing function just after the event: the sign of
    # its slope, or of its curvature where the slope is too small to matter at the
    # solver tolerance.
    flat = slope_after**2 <= (_GRAZING_SAFETY * 2 * jnp.abs(curvature_after) * tol_fn)
    motion = jnp.sign(jnp.where(flat, curvature_after, slope_after))
    on_level = jnp.abs(value_after) <= tol_fn
    fallback = jnp.where(jump != 0, jump, jnp.sign(slope_after))
    override = jnp.where(on_level & (motion != 0), motion, fallback)
    grazing = slope**2 <= _GRAZING_SAFETY * 2 * jnp.abs(curvature) * tol_fn
    # Zeno: a reset that changed the crossing's motion but leaves the state on the
    # level, pushed on through it in the direction just crossed.
    resets = jnp.array([c.reset is not None for c in crossings])
    changed = (slope_after != slope) | (jnp.abs(jump) > tol_fn)
    accumulating = on_level & changed & (motion != 0) & (motion == jnp.sign(slope))
    return override, grazing, resets & accumulating


def _values(crossings: tuple[Crossing, ...], params):
    def values(t_, y_):
        return jnp.stack([c.value(t_, y_, params) for c in crossings])

    return values


def _slopes(crossings: tuple[Crossing, ...], model: ODEModel, t, y, params):
    """`d fn/dt` along the flow at `(t, y)`, one per crossing."""
    flow = (jnp.ones_like(t), model(t, y, params))
    return jax.jvp(_values(crossings, params), (t, y), flow)[1]


def _time_derivatives(crossings: tuple[Crossing, ...], model: ODEModel, t, y, params):
    """`fn`, `d fn/dt` and `d^2 fn/dt^2` along the flow at `(t, y)`, one per
    crossing."""
    values = _values(crossings, params)

    def with_slope(t_, y_):
        return jax.jvp(values, (t_, y_), (jnp.ones_like(t_), model(t_, y_, params)))

    flow = (jnp.ones_like(t), model(t, y, params))
    (value, slope), (_, curvature) = jax.jvp(with_slope, (t, y), flow)
    return value, slope, curvature
