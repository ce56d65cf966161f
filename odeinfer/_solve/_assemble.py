"""The [`odeinfer.Solution`][] of the segment loop."""

import diffrax
import jax.numpy as jnp

from .._model import ODEModel
from .._solution import Segments, Solution
from .._solvers._counts import work_counts
from ._carry import SegmentCarry
from ._codes import final_code


def assemble_solution(
    carry: SegmentCarry,
    dense_out,
    *,
    solver: diffrax.AbstractSolver,
    model: ODEModel,
    params,
    t0,
    t1,
    ts,
    dense: bool,
    throw: bool,
) -> Solution:
    """The `Solution` from the loop's last carry and, with `dense`, the segments'
    interpolations; raises through `error_if` on failure where `throw`."""
    result = final_code(carry, solver, model, params, t0)
    counts = work_counts(solver, carry.num_steps, carry.num_segments)
    segments = None
    if dense:
        starts, ends, interpolations = dense_out
        segments = Segments(starts=starts, ends=ends, interpolations=interpolations)
    solution = Solution(
        t0=t0,
        t1=t1,
        ts=ts,
        ys=carry.ys,
        t_final=carry.t,
        y_final=carry.y,
        events=carry.log,
        result=result,
        stats=dict(
            num_steps=carry.num_steps,
            num_accepted_steps=carry.num_accepted_steps,
            num_rejected_steps=carry.num_rejected_steps,
            num_segments=carry.num_segments,
            **counts,
        ),
        segments=segments,
    )
    if throw:
        solution = result.error_if(solution, jnp.invert(solution.successful))
    return solution
