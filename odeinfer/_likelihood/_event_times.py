"""The predicted times of an experiment's event-time observations, all from one solve.

The observations' distinct crossings (`Experiment.crossing_slots`) are one
[`odeinfer.solve`][] up to the latest search horizon: one crossing is
[`odeinfer.first_crossing`][] (terminal); several are recorded without being terminal
and without their resets (an observation does not change the trajectory). Each
observation reads the first recorded occurrence of its crossing, found if before its
own horizon.
"""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._crossings import first_crossing
from .._model import ODEModel
from .._observations import Experiment
from .._results import RESULTS
from .._solve import solve

# Event buffer of the shared solve: the crossings may recur before the latest horizon
# (an oscillation crosses a level twice a period); PEtab's importer uses the same.
_EVENTS_PER_CROSSING = 4
_SPARE_EVENTS = 16


def predict_event_times(
    model: ODEModel,
    experiment: Experiment,
    y0,
    params,
    options: dict,
    first_options: dict | None = None,
) -> tuple[Float[Array, " n"], Bool[Array, " n"], RESULTS]:
    """`(times, found, result)` of `experiment.event_times`: predicted first-crossing
    times (`inf` where not found before the observation's horizon), whether each was
    found, and the solve's [`odeinfer.RESULTS`][] code.

    `options` are the solve's; `first_options`, where given, replace them when the
    observations read one crossing (a terminal first crossing, which the fused
    solvers take)."""
    observations = experiment.event_times
    if not observations:
        return jnp.zeros((0,)), jnp.zeros((0,), dtype=bool), RESULTS.successful
    t0 = experiment.t0
    doses = experiment.doses or None
    horizons = jnp.stack([o.horizon(t0) for o in observations])
    t1 = horizons[0] if len(observations) == 1 else jnp.max(horizons)
    slots = experiment.crossing_slots
    crossings = tuple(
        observations[slots.index(i)].crossing for i in range(max(slots) + 1)
    )
    if len(crossings) == 1:
        crossing = crossings[0].with_options(reset=None)  # it ends the solve
        hit = first_crossing(
            model,
            y0,
            params,
            crossing,
            t0=t0,
            t1=t1,
            doses=doses,
            **(options if first_options is None else first_options),
        )
        found = hit.found & (hit.time <= horizons)
        times = jnp.where(found, hit.time, jnp.inf)
        return times, found, hit.result
    solution = solve(
        model,
        y0,
        params,
        t0=t0,
        t1=t1,
        events=tuple(c.with_options(terminal=False, reset=None) for c in crossings),
        max_events=_EVENTS_PER_CROSSING * len(crossings) + _SPARE_EVENTS,
        doses=doses,
        **options,
    )
    log = solution.events
    match = log.which[:, None] == jnp.asarray(slots)[None, :]  # (max_events, n)
    seen = jnp.any(match, axis=0)
    first = log.times[jnp.argmax(match, axis=0)]
    found = seen & (first <= horizons)
    times = jnp.where(found, first, jnp.inf)
    # A full buffer stops the solve early: still fine where every crossing not seen
    # could only have been found after its observation's horizon.
    known = seen | (solution.t_final >= horizons)
    harmless = (solution.result == RESULTS.event_buffer_full) & jnp.all(known)
    return times, found, RESULTS.where(harmless, RESULTS.successful, solution.result)
