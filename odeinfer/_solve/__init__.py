"""`solve`: an event-aware, differentiable ODE solve built on `diffrax.diffeqsolve`.

diffrax stops at the first event and has no resets or preset-time jumps. odeinfer
splits the interval into *segments*: each segment is one `diffeqsolve` from the current
time to the next dose time (or `t1`), stopped early by the first crossing. At the end of a
segment the crossing is recorded, its reset or the dose is applied, and the next segment
starts from there. The segments run in a `lax.scan` of fixed length
`max_events + number of doses + 1`, so the whole solve has fixed shapes (jit, vmap) and is
reverse- and forward-mode differentiable; finished segments are zero-length solves.

Restarting exactly on a crossing would detect it again. So in the next segment that
crossing's condition function reports, at the segment's first point only, the sign it has
just after the crossing (`sign(d fn/dt)` there, or the jump a reset made).

The files, in the order a solve runs through them:

- `_entry.py`: the public `solve` (check, dispatch to the segment loop or the fused
  solvers, raise).
- `_arguments.py`: validation and canonicalisation of the arguments.
- `_loop.py`: the jitted segment loop: set up, `lax.scan` over segments, assemble.
- `_integrator.py`: the diffrax term, solver, step-size controller and event.
- `_carry.py`: what one segment hands the next (`SegmentCarry`).
- `_segment.py`: one segment: integrate to the next stop, then handle its end.
- `_crossing.py`, `_dose_schedule.py`, `_event_log.py`: a segment's end: the crossing
  and its reset, the dose, the record in the event log.
- `_codes.py`, `_diagnostics.py`: the result codes and the checks behind them.
- `_assemble.py`: the `Solution`.
"""

from ._entry import solve as solve
