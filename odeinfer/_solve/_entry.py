"""The public [`odeinfer.solve`][]: check the arguments, run the segment loop (or a fused
forward-sensitivity solver), and apply `throw` to the result code they return."""

from collections.abc import Sequence

import diffrax
from jaxtyping import ArrayLike

from .._custom_types import Params, ScalarLike, State
from .._events import Crossing, Dose
from .._fast._entry import solve_fused
from .._model import ODEModel
from .._results import describe, raise_on_failure
from .._solution import Solution
from .._solvers._fused import AbstractFusedSolver
from ._arguments import canonical_arguments
from ._loop import solve_segments


def solve(
    model: ODEModel,
    y0: State,
    params: Params,
    *,
    t0: ScalarLike,
    t1: ScalarLike,
    saveat: ArrayLike | None = None,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    rtol: ScalarLike = 1e-8,
    atol: ScalarLike = 1e-10,
    events: Crossing | Sequence[Crossing] | None = None,
    doses: Dose | Sequence[Dose] | None = None,
    max_events: int = 16,
    max_steps: int = 4096,
    max_step_size: ScalarLike | None = None,
    dense: bool = False,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    throw: bool = True,
) -> Solution:
    """Solve `dy/dt = model(t, y, params)` on `[t0, t1]`, recording crossings, applying
    their resets and the doses, differentiably.

    **Arguments:**

    - `model`: an [`odeinfer.ODEModel`][].
    - `y0`: the initial state (any pytree of arrays).
    - `params`: the parameters (any pytree; a dict of named parameters is usual).
    - `t0`, `t1`: the interval, `t0 < t1`, both finite.
    - `saveat`: sorted times in `[t0, t1]` at which to save the state, or `None`.
    - `solver`: a strategy object (see the [solver guide](../stiff.md)):
        - a diffrax solver: the default `diffrax.Tsit5()` for non-stiff problems;
          [`odeinfer.Rodas5P`][] (or [`odeinfer.Rodas4`][] at rtol ≥ 1e-5) for stiff
          ones — 5–35× faster than `diffrax.Kvaerno5()` on the Bari stiff set, and it
          solves Van der Pol, which Kvaerno5 does not. Everything (crossings, resets,
          doses, dense output, every adjoint) works with these. IMEX solvers
          (`KenCarp4`) need a split vector field, which `solve` does not take.
        - a fused forward-sensitivity solver ([`odeinfer.FusedDopri5`][],
          [`odeinfer.FusedRodas5P`][], [`odeinfer.FusedAuto`][]): the fast choice for
          derivatives of saved states of small models (a gradient costs a few solves);
          doses yes, one terminal crossing without reset yes (`oi.first_crossing`),
          other crossings, `dense` and `max_step_size` no; `adjoint` is not used
          (every derivative mode comes from the forward sensitivities).
    - `rtol`, `atol`: tolerances of the PID step-size controller. Traced: changing them
        does not recompile.
    - `events`: one [`odeinfer.Crossing`][] or a sequence; each occurrence is recorded in
        `solution.events`, its `reset` applied, and a `terminal` one stops the solve.
    - `doses`: one [`odeinfer.Dose`][] or a sequence: jumps at preset times.
    - `max_events`: size of the event buffers. More crossings give
        `RESULTS.event_buffer_full`.
    - `max_steps`: the step budget of each segment between events and doses; running
        out gives `RESULTS.max_steps_reached`. Every solve is bounded by
        `max_steps * (max_events + number of doses + 1)` steps.
    - `max_step_size`: an upper bound on the step (`None`: no bound). Use it when a
        crossing function can cross and come back within one step.
    - `dense`: keep the dense output for `solution.evaluate(t)` (memory grows with
        `max_steps` per segment).
    - `adjoint`: how derivatives are taken (a diffrax adjoint):
        - `diffrax.RecursiveCheckpointAdjoint()` (default): reverse mode (`jax.grad`,
          `jax.jacrev`, `jax.vjp`) with checkpointing. No forward mode.
        - `diffrax.ForwardMode()`: forward mode (`jax.jvp`, `jax.jacfwd`) and
          forward-over-forward Hessians `jax.jacfwd(jax.jacfwd(f))`; the cheapest for a
          few parameters.
        - `diffrax.DirectAdjoint()`: every mode and order, `jax.hessian` included, at
          a higher cost (and much higher under `jax.vmap`).
        - `diffrax.BacksolveAdjoint` is refused (diffrax cannot use it with events
          or split saving).
    - `throw`: raise on failure. Under `jax.vmap` set `throw=False` and read
        `solution.result`.

    **Returns:**

    An [`odeinfer.Solution`][].

    **Raises:**

    `ValueError`/`TypeError` before any work for invalid input (a non-increasing or
    non-finite time span, non-finite `y0` or `params`, non-positive tolerances, a
    crossing function that is not scalar, a vector field whose output does not match
    `y0`), and [`odeinfer.NumpyInTracedCodeError`][] for a vector field, crossing or
    reset written with numpy instead of `jax.numpy`.
    """
    args = canonical_arguments(
        model,
        y0,
        params,
        t0=t0,
        t1=t1,
        saveat=saveat,
        solver=solver,
        rtol=rtol,
        atol=atol,
        events=events,
        doses=doses,
        max_events=max_events,
        max_steps=max_steps,
        max_step_size=max_step_size,
        dense=dense,
        adjoint=adjoint,
        throw=throw,
    )
    # The compiled programs return the result code and carry no host callback (JAX does
    # not write such a program to its persistent compilation cache): `throw` is applied
    # after the call, in Python where the code is concrete (also under jax.grad), so
    # that the first line the user reads is the result's message.
    if isinstance(solver, AbstractFusedSolver):
        solution = solve_fused(
            model,
            args.y0,
            args.params,
            t0=args.t0,
            t1=args.t1,
            saveat=args.saveat,
            doses=args.doses,
            solver=solver,
            rtol=args.rtol,
            atol=args.atol,
            max_steps=max_steps,
            throw=False,
            crossing=args.crossings[0] if args.crossings else None,
            max_events=max_events,
        )
    else:
        solution = solve_segments(
            model,
            args.y0,
            args.params,
            args.t0,
            args.t1,
            args.saveat,
            args.crossings,
            args.doses,
            solver,
            args.rtol,
            args.atol,
            args.max_step_size,
            adjoint,
            max_events,
            max_steps,
            dense,
            False,
        )
    return raise_on_failure(solution, throw, _failure_message)


def _failure_message(solution: Solution) -> str:
    return (
        f"odeinfer.solve failed at t = {float(solution.t_final):.10g} "
        f"(t0 = {float(solution.t0):g}, t1 = {float(solution.t1):g}): "
        f"{describe(solution.result)} "
        "(Pass `throw=False` to get the Solution and read `solution.result`.)"
    )
