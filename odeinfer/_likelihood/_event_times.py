"""The predicted times of an experiment's event-time observations, all from one solve.

One observation is [`odeinfer.first_crossing`][] up to its search horizon. Several are
one [`odeinfer.solve`][] up to the latest horizon with every observed crossing (not
terminal, without its reset: an observation does not change the trajectory), each
observation reading the first recorded occurrence of its crossing (the same function,
direction and level) before its own horizon.
"""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._crossings import first_crossing
from .._model import ODEModel
from .._observations import Experiment
from .._results import RESULTS, is_successful
from .._solve import solve

# Event buffer of the shared solve: the observed crossings may recur before the latest
# horizon (an oscillation crossing a level twice a period); PEtab's importer uses the
# same budget.
_EVENTS_PER_CROSSING = 4
_SPARE_EVENTS = 16


def _same_crossing(a, b) -> Bool[Array, ""]:
    if a.fn is not b.fn or a.direction != b.direction:
        return jnp.array(False)
    return a.level == b.level


def predict_event_times(
    model: ODEModel, experiment: Experiment, y0, params, options: dict
) -> tuple[Float[Array, " n"], Bool[Array, " n"], Bool[Array, ""]]:
    """`(times, found, ok)` of `experiment.event_times`: predicted first-crossing
    times (`inf` where not found before the observation's horizon), whether each was
    found, and whether the solve succeeded."""
    observations = experiment.event_times
    doses = experiment.doses or None
    t0 = experiment.t0
    if not observations:
        return jnp.zeros((0,)), jnp.zeros((0,), dtype=bool), jnp.array(True)
    horizons = jnp.stack([o.horizon(t0) for o in observations])
    if len(observations) == 1:
        hit = first_crossing(
            model,
            y0,
            params,
            observations[0].crossing,
            t0=t0,
            t1=horizons[0],
            doses=doses,
            **options,
        )
        return hit.time[None], hit.found[None], is_successful(hit.result)
    crossings = tuple(
        o.crossing.with_options(terminal=False, reset=None) for o in observations
    )
    solution = solve(
        model,
        y0,
        params,
        t0=t0,
        t1=jnp.max(horizons),
        events=crossings,
        max_events=_EVENTS_PER_CROSSING * len(crossings) + _SPARE_EVENTS,
        doses=doses,
        **options,
    )
    log = solution.events
    # same[i, j]: observation j's crossing is crossing i (recorded under either index
    # when two are equal: the solve records the first of simultaneous crossings).
    same = jnp.stack(
        [jnp.stack([_same_crossing(a, b) for b in crossings]) for a in crossings]
    )
    which = jnp.maximum(log.which, 0)
    match = same[which] & log.mask[:, None]  # (max_events, n): entry e is crossing j
    seen = jnp.any(match, axis=0)
    first = jnp.argmax(match, axis=0)
    found = seen & (log.times[first] <= horizons)
    times = jnp.where(found, log.times[first], jnp.inf)
    # A full buffer stops the solve early: still fine where every crossing not yet
    # seen could only have been found after its horizon.
    known = seen | (solution.t_final >= horizons)
    ok = is_successful(solution.result) | (
        (solution.result == RESULTS.event_buffer_full) & jnp.all(known)
    )
    return times, found, ok
