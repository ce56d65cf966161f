"""Result codes of the segment loop: a segment's own, the first failure kept over the
segments, and the solve's final code."""

import diffrax
import jax.lax as lax
import jax.numpy as jnp

from .._model import ODEModel
from .._results import RESULTS
from ._carry import SegmentCarry
from ._diagnostics import looks_stiff


def segment_code(
    diffrax_result, failed, nonfinite, singular, overflow, recorded, tangent, zeno
) -> RESULTS:
    """The code of one segment; later checks take precedence over earlier ones."""
    code = RESULTS.where(failed, RESULTS.promote(diffrax_result), RESULTS.successful)
    code = RESULTS.where(
        (nonfinite & jnp.invert(failed)) | singular, RESULTS.nonfinite_state, code
    )
    code = RESULTS.where(overflow, RESULTS.event_buffer_full, code)
    code = RESULTS.where(recorded & tangent, RESULTS.tangent_crossing, code)
    code = RESULTS.where(recorded & zeno, RESULTS.zeno_events, code)
    return code


def first_failure(previous: RESULTS, code: RESULTS, done) -> RESULTS:
    """`code` of a segment that ran, unless an earlier segment failed."""
    keep_first = (previous == RESULTS.successful) & jnp.invert(done)
    return RESULTS.where(keep_first, code, previous)


def final_code(
    carry: SegmentCarry,
    solver: diffrax.AbstractSolver,
    model: ODEModel,
    params,
    t0,
) -> RESULTS:
    """The solve's code: the loop's, `event_buffer_full` where the segments ran out
    before the end, and `looks_stiff` for an explicit solver out of steps on a stiff
    problem."""
    result = RESULTS.where(
        carry.done | (carry.result != RESULTS.successful),
        carry.result,
        RESULTS.event_buffer_full,
    )
    if isinstance(solver, diffrax.AbstractERK):
        # An explicit solver out of steps: stiff if its average step was limited by
        # stability, h_avg |λ|max > 1 at the state reached (DP5/Tsit5: ~3.3 at the edge).
        hit = result == RESULTS.max_steps_reached
        stiff = lax.cond(
            hit,
            lambda: looks_stiff(model, carry.t, carry.y, params, t0, carry.num_steps),
            lambda: jnp.array(False),
        )
        result = RESULTS.where(hit & stiff, RESULTS.looks_stiff, result)
    return result
