"""`first_crossing` and `all_crossings`: event-time problems in one call."""

import equinox as eqx
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._custom_types import Params, ScalarLike, State
from ._events import Crossing
from ._model import ODEModel
from ._results import RESULTS
from ._solve import solve


class FirstCrossing(eqx.Module):
    """The first time a [`odeinfer.Crossing`][] happens in `[t0, t1]`.

    - `time`: the crossing time; `inf` when `found` is `False`.
    - `state`: the state at that time (before any reset); `inf` when not found.
    - `found`: whether the crossing happened in `[t0, t1]`. Where it is `False`, `time`
        is `inf` and its derivatives are exactly zero: mask with `found` before using
        `time` in an objective.
    - `slope`: d(fn)/dt at the crossing.
    - `result`: the solve's [`odeinfer.RESULTS`][] code.
    """

    time: Float[Array, ""]
    state: State
    found: Bool[Array, ""]
    slope: Float[Array, ""]
    result: RESULTS


class AllCrossings(eqx.Module):
    """Every crossing in `[t0, t1]`, in fixed-size buffers of `max_events`.

    - `times`: crossing times in order, `inf`-padded.
    - `states`: states at the crossings (leading axis `max_events`), `inf`-padded.
    - `mask`: `True` for real crossings.
    - `count`: the number of crossings found.
    - `slopes`: d(fn)/dt at each crossing (`nan`-padded).
    - `result`: `RESULTS.event_buffer_full` if more than `max_events` occurred.
    """

    times: Float[Array, " max_events"]
    states: PyTree[Float[Array, "max_events ..."]]
    mask: Bool[Array, " max_events"]
    count: Int[Array, ""]
    slopes: Float[Array, " max_events"]
    result: RESULTS


def first_crossing(
    model: ODEModel,
    y0: State,
    params: Params,
    crossing: Crossing,
    *,
    t0: ScalarLike,
    t1: ScalarLike,
    **solve_options,
) -> FirstCrossing:
    """The first time `crossing.fn(t, y, params) == crossing.level` in `[t0, t1]`.

    Solves until the crossing (it is made terminal) and root-finds the time on the
    dense output. Differentiable with respect to `y0`, `params`, `crossing.level`,
    `t0`; see [`odeinfer.solve`][] for the options (`rtol`, `atol`, `solver`,
    `adjoint`, `doses`, `throw`, ...).

    Not finding the crossing is not an error: `found` is `False` and `time` is `inf`
    (check `found`, or `result`, before using `time`). Its derivative is then exactly
    zero with respect to everything (a crossing that does not happen does not move):
    `jax.grad` cannot tell a missed crossing from an insensitive one, so mask with
    `found`, e.g. `jnp.where(hit.found, hit.time, fallback)`, and decide what a miss
    means for your objective.

    !!! Example

        ```python
        model = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y))
        hit = oi.first_crossing(model, 0.5, {"k": 0.01}, oi.Crossing(lambda t, y, p: y, 0.8),
                                t0=0.0, t1=1000.0)
        hit.time  # 100 * ln 4 = 138.629...
        ```
    """
    _check_single(crossing)
    _check_options("first_crossing", solve_options, ("events", "max_events"))
    solution = solve(
        model,
        y0,
        params,
        t0=t0,
        t1=t1,
        events=crossing.with_options(terminal=True),
        max_events=1,
        **solve_options,
    )
    log = solution.events
    first = jtu.tree_map(lambda x: x[0], log.states)
    return FirstCrossing(
        time=log.times[0],
        state=first,
        found=log.count > 0,
        slope=log.slopes[0],
        result=solution.result,
    )


def all_crossings(
    model: ODEModel,
    y0: State,
    params: Params,
    crossing: Crossing,
    *,
    t0: ScalarLike,
    t1: ScalarLike,
    max_events: int = 64,
    **solve_options,
) -> AllCrossings:
    """Every time `crossing.fn(t, y, params) == crossing.level` in `[t0, t1]`.

    The crossing's `reset` (if any) is applied at each occurrence and the solve goes
    on; `terminal` is ignored. The output has fixed size `max_events` (padding `inf`,
    `mask`, `count`), so it works under `jax.jit` and `jax.vmap`; more crossings than
    `max_events` give `RESULTS.event_buffer_full` (raised when `throw=True`).
    Differentiable like [`odeinfer.first_crossing`][].
    """
    _check_single(crossing)
    _check_options("all_crossings", solve_options, ("events",))
    solution = solve(
        model,
        y0,
        params,
        t0=t0,
        t1=t1,
        events=crossing.with_options(terminal=False),
        max_events=max_events,
        **solve_options,
    )
    log = solution.events
    return AllCrossings(
        times=log.times,
        states=log.states,
        mask=log.mask,
        count=log.count,
        slopes=log.slopes,
        result=solution.result,
    )


def _check_options(function, options, reserved):
    for name in reserved:
        if name in options:
            what = {
                "events": "the crossing is its `crossing` argument; for several "
                "crossings in one solve use odeinfer.solve(..., events=[...])",
                "max_events": "it finds one crossing; for every occurrence use "
                "odeinfer.all_crossings(..., max_events=...)",
            }[name]
            raise TypeError(f"`{function}` does not take `{name}`: {what}.")


def _check_single(crossing):
    if not isinstance(crossing, Crossing):
        raise TypeError(
            f"`crossing` must be one odeinfer.Crossing; got {type(crossing).__name__}. "
            "For several crossings in one solve use odeinfer.solve(..., events=[...])."
        )
