"""The jitted segment loop: one `lax.scan` of fixed length over the segments of a solve
(see the package docstring)."""

import diffrax
import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._events import Crossing, Dose
from .._model import ODEModel
from .._results import RESULTS
from .._solution import Solution
from ._assemble import assemble_solution
from ._carry import depending_on, initial_carry
from ._dose_schedule import dose_schedule
from ._integrator import make_controller, make_event, make_term, with_model_jacobian
from ._segment import SegmentStep
from ._tree import all_finite


@eqx.filter_jit
def solve_segments(
    model: ODEModel,
    y0,
    params,
    t0,
    t1,
    ts,
    crossings: tuple[Crossing, ...],
    doses: tuple[Dose, ...],
    solver: diffrax.AbstractSolver,
    rtol,
    atol,
    max_step_size,
    adjoint: diffrax.AbstractAdjoint,
    max_events: int,
    max_steps: int,
    dense: bool,
    throw: bool,
) -> Solution:
    """The solve with canonical arguments (`_arguments.py`) and a diffrax solver."""
    y0 = jtu.tree_map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)), y0)
    levels = jnp.stack([c.level for c in crossings]) if crossings else jnp.zeros((0,))
    schedule = dose_schedule(doses)
    # Without crossings only the doses split the interval.
    max_segments = (max_events if crossings else 0) + schedule.size + 1
    step = SegmentStep(
        model=model,
        term=make_term(model),
        solver=with_model_jacobian(solver, model),
        controller=make_controller(model, crossings, rtol, atol, max_step_size),
        event=make_event(crossings, adjoint),
        adjoint=adjoint,
        params=params,
        levels=levels,
        t1=t1,
        ts=ts,
        crossings=crossings,
        schedule=schedule,
        rtol=rtol,
        atol=atol,
        max_events=max_events,
        max_steps=max_steps,
        dense=dense,
    )

    # Inputs that cannot be checked outside jit (traced values) become a result code.
    valid = (
        (t1 > t0)
        & all_finite((y0, params, levels, doses))
        & jnp.all(rtol > 0)
        & jnp.all(atol > 0)
    )
    if max_step_size is not None:
        valid = valid & (max_step_size > 0)
    result0 = RESULTS.where(valid, RESULTS.successful, RESULTS.invalid_input)
    carry0 = initial_carry(t0, y0, ts, valid, result0, len(crossings), max_events)
    carry0 = depending_on(carry0, (y0, params, levels, doses, t0, t1))

    carry, dense_out = lax.scan(
        lambda carry, _: step(carry), carry0, xs=None, length=max_segments
    )
    return assemble_solution(
        carry,
        dense_out,
        solver=step.solver,
        model=model,
        params=params,
        t0=t0,
        t1=t1,
        ts=ts,
        dense=dense,
        throw=throw,
    )
