"""One segment of the loop: a `diffeqsolve` from the carry's time to the next stop (the
next dose time or `t1`), ended early by the first crossing; then the end of the segment
is handled: the crossing's reset or the dose, the event log, the result code, the saved
states."""

import diffrax
import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from .._custom_types import Params, State
from .._events import Crossing
from .._model import ODEModel
from ._carry import SegmentCarry
from ._codes import first_failure, segment_code
from ._crossing import crossing_outcome
from ._diagnostics import singular
from ._dose_schedule import DoseSchedule
from ._event_log import record_crossing
from ._event_time import locate_crossing, step_solver
from ._tree import all_finite, take_last, tree_where


class SegmentStep(eqx.Module):
    """Everything fixed over the loop; `step(carry)` runs one segment.

    **Returns** of `step(carry)`: the next carry, and with `dense` the segment's
    `(start, end, interpolation)`.
    """

    model: ODEModel
    term: diffrax.ODETerm
    solver: diffrax.AbstractSolver
    controller: diffrax.AbstractStepSizeController
    event: diffrax.Event | None
    adjoint: diffrax.AbstractAdjoint
    params: Params
    levels: Float[Array, " crossings"]
    t1: Float[Array, ""]
    ts: Float[Array, " times"] | None
    crossings: tuple[Crossing, ...]
    schedule: DoseSchedule
    rtol: Float[Array, ""]
    atol: Float[Array, ""]
    max_events: int = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    dense: bool = eqx.field(static=True)

    def __call__(self, carry: SegmentCarry):
        t, y, done = carry.t, carry.y, carry.done
        next_dose, dose_slot = self.schedule.next_dose(carry.dose_index)
        sol, t_end, y_end, fired, failed = self._integrate(carry, next_dose)

        # Which crossing fired, its reset, and its behaviour around the crossing.
        crossing = crossing_outcome(
            self.crossings,
            self.model,
            self.params,
            sol.event_mask,
            fired,
            t_end,
            y_end,
            carry.log,
            carry.override,
            carry.active,
            self.rtol,
            self.atol,
        )
        y_after = crossing.y_after

        # A dose is due where the segment ran to its stop time without an event.
        reached_dose = jnp.array(False)
        dose_index = carry.dose_index
        if self.schedule.size:
            reached_dose = jnp.invert(fired | failed | done) & (t_end == next_dose)
            dosed = self.schedule.give(y_after, dose_slot)
            y_after = tree_where(reached_dose, dosed, y_after)
            dose_index = dose_index + reached_dose.astype(jnp.int32)

        log, recorded, overflow = record_crossing(
            carry.log,
            fired & jnp.invert(done),
            self.max_events,
            t_end,
            crossing.which,
            y_end,
            y_after,
            crossing.slope,
        )

        nonfinite = jnp.invert(all_finite(y_after))
        # Running out of steps where the solution blows up, or where the vector field
        # is not defined just ahead (sqrt of a state reaching 0), is a non-finite state.
        blown_up = failed & (sol.result == diffrax.RESULTS.max_steps_reached)
        blown_up = blown_up & singular(self.model, t_end, y_end, self.params)
        reached_end = (t_end >= self.t1) & jnp.invert(fired | reached_dose)
        stopped = crossing.terminal | crossing.zeno
        finished = jnp.invert(done) & (
            failed | stopped | overflow | nonfinite | reached_end
        )
        code = segment_code(
            sol.result,
            failed,
            nonfinite,
            blown_up,
            overflow,
            recorded,
            crossing.tangent,
            crossing.zeno,
        )
        result = first_failure(carry.result, code, done)
        ys = self._save(carry, sol, t_end, finished)

        running = jnp.invert(done).astype(jnp.int32)
        new_carry = SegmentCarry(
            t=jnp.where(done, t, t_end),
            y=tree_where(done, y, y_after),
            done=done | finished,
            log=log,
            dose_index=dose_index,
            override=crossing.override,
            active=crossing.active & jnp.invert(done),
            ys=ys,
            result=result,
            num_steps=carry.num_steps + running * sol.stats["num_steps"],
            num_accepted_steps=carry.num_accepted_steps
            + running * sol.stats["num_accepted_steps"],
            num_rejected_steps=carry.num_rejected_steps
            + running * sol.stats["num_rejected_steps"],
            num_segments=carry.num_segments + running,
        )
        dense_out = (t, t_end, sol.interpolation) if self.dense else None
        return new_carry, dense_out

    def _integrate(self, carry: SegmentCarry, next_dose):
        """`diffeqsolve` to the next stop: `(sol, t_end, y_end, fired, failed)`."""
        t, y, done = carry.t, carry.y, carry.done
        # diffrax cannot differentiate with respect to its `t1` (it takes `nextafter`
        # of it), so the stop time enters as a constant and its derivative is restored
        # below through `dy(t_stop)/dt_stop = f(t_stop, y)`.
        t_stop_traced = jnp.where(done, t, jnp.minimum(next_dose, self.t1))
        t_stop = lax.stop_gradient(t_stop_traced)
        subs = [diffrax.SubSaveAt(t1=True)]
        if self.ts is not None:
            subs.append(diffrax.SubSaveAt(ts=jnp.clip(self.ts, t, t_stop)))
        locate = self.event is not None and self.event.root_finder is None
        saveat = diffrax.SaveAt(subs=subs, dense=self.dense, controller_state=locate)
        sol = diffrax.diffeqsolve(
            self.term,
            self.solver,
            t,
            t_stop,
            None,
            y,
            args=(self.params, self.levels, carry.override, carry.active),
            saveat=saveat,
            stepsize_controller=self.controller,
            adjoint=self.adjoint,
            event=self.event,
            max_steps=self.max_steps,
            throw=False,
        )
        fired = sol.result == diffrax.RESULTS.event_occurred
        # `SubSaveAt(t1=True)` first: `ts` and `ys` are set.
        t_end = sol.ts[0][-1]  # pyright: ignore[reportOptionalSubscript]
        y_end = take_last(sol.ys[0])  # pyright: ignore[reportOptionalSubscript]
        if locate:
            # diffrax stopped at the end of the step over which the crossing happened;
            # the guard's state ends with that step's start.
            mask = jnp.stack(jtu.tree_leaves(sol.event_mask)) & fired
            t_end, y_end = locate_crossing(
                step_solver(self.solver, self.adjoint),
                self.term,
                self.crossings,
                (self.params, self.levels, carry.override, carry.active),
                jnp.argmax(mask),
                fired,
                sol.controller_state[-1],  # pyright: ignore[reportOptionalSubscript]
                t_end,
                y_end,
            )
        shift = jnp.where(fired, 0.0, t_stop_traced - t_stop)  # zero, with a tangent
        t_end = t_end + shift
        y_end = jtu.tree_map(
            lambda y_, f_: y_ + f_ * shift, y_end, self.model(t_end, y_end, self.params)
        )
        failed = jnp.invert(fired | (sol.result == diffrax.RESULTS.successful))
        return sol, t_end, y_end, fired, failed

    def _save(self, carry: SegmentCarry, sol, t_end, finished) -> State | None:
        """The saved states with this segment's times filled in."""
        if self.ts is None:
            return carry.ys
        ts, t, done = self.ts, carry.t, carry.done
        in_segment = (ts >= t) & ((ts < t_end) | (finished & (ts <= t_end)))
        in_segment = in_segment & jnp.invert(done)
        return jtu.tree_map(
            lambda new, old: jnp.where(
                in_segment.reshape((-1,) + (1,) * (new.ndim - 1)), new, old
            ),
            sol.ys[1],
            carry.ys,
        )
