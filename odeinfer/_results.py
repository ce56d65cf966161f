"""Result codes of odeinfer solves (an extension of `diffrax.RESULTS`), and how `throw`
turns a failure into an exception."""

import warnings
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import diffrax
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import lax

# `successful` is redefined below to carry words (`print(solution.result)` then says what
# happened instead of `RESULTS<>`); equinox warns about any redefinition.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Enumeration has duplicate")

    class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
        """Why a solve ended. `RESULTS.successful` means it reached `t1` (or a terminal
        crossing) with every requested quantity computed. Read `solution.result` under
        `jax.vmap` with `throw=False`; with `throw=True` a failure raises with the
        message. `print(solution.result)` shows the message.
        """

        successful = "successful: the solve reached `t1` (or a terminal crossing)."
        event_buffer_full = (
            "More events occurred than `max_events` can record, so later events were "
            "lost. Increase `max_events`. If the events come ever closer together "
            "(a bouncing ball coming to rest), they accumulate at a finite time (Zeno "
            "behaviour) and no buffer is large enough: stop the solve before that "
            "time, or change the model (e.g. switch to resting dynamics with a "
            "terminal crossing)."
        )
        tangent_crossing = (
            "A crossing was tangent: the crossing function's time derivative is zero to "
            "within solver tolerance, so the event time (and its derivative) is "
            "undefined. Move the level, or tighten `rtol`/`atol` if the crossing is real."
        )
        nonfinite_state = (
            "The state became non-finite (NaN or inf), or was about to: the solution "
            "blows up in finite time, or the vector field is not defined past the point "
            "reached (e.g. the square root of a state that reaches zero). Increasing "
            "`max_steps` will not help. Check the parameters and the model (clip the "
            "state, add a terminal Crossing before the singular point), or, for a stiff "
            "problem, use a stiff solver such as `oi.Rodas5P()` (or `oi.FusedAuto()`)."
        )
        invalid_input = (
            "Invalid traced input: need t0 < t1, finite y0, params, crossing levels and "
            "dose amounts, rtol > 0, atol > 0 and max_step_size > 0. (Outside "
            "`jax.jit` these are reported as ValueErrors naming the argument.)"
        )
        zeno_events = (
            "Events accumulate (Zeno behaviour): a crossing's reset left the state on "
            "the level with the flow pushing it straight back through (e.g. a bouncing "
            "ball whose bounce speed has decayed to about the solver tolerance, or a "
            "reset to a state at rest on the level). Solving on would take infinitely "
            "many events or let the state pass the level. The solve stopped at the "
            "accumulation; `t_final`/`y_final` are that point. Stop before it (smaller "
            "`t1`), or change the model there (e.g. a terminal Crossing that switches "
            "to resting dynamics)."
        )
        looks_stiff = (
            "The explicit solver ran out of `max_steps` and the problem looks stiff: its "
            "steps were limited by stability (h·|λ| at the edge of the stability "
            "region), not accuracy, so more steps would only crawl on. Use a stiff "
            "solver: `solver=oi.Rodas5P()` (or `oi.FusedRodas5P()` for fast gradients), "
            "or `oi.FusedAuto()`, which switches to Rodas5P by itself."
        )
        steady_state_not_reached = (
            "No steady state was reached (odeinfer.steady_state): the integration from "
            "y0 did not bring the weighted RMS of dy/dt below 1 (weights atol + "
            "rtol·|y|) within `t_max` and `max_steps`, or the Newton polish on "
            "f(y) = 0 did not converge there. The model may have no steady state (a "
            "limit cycle, unbounded growth), or approach it more slowly than `t_max`: "
            "increase `t_max`/`max_steps`, or loosen `rtol`/`atol`. A Jacobian that is "
            "singular at the steady state for a reason other than a linear "
            "conservation law (a bifurcation point) also ends here."
        )


class SolveError(eqx.EquinoxRuntimeError):
    """A solve failed and `throw=True`: the message is the [`odeinfer.RESULTS`][]
    message of the failure, naming the cause and the fix."""


def is_successful(result: RESULTS):
    """`True` where the solve succeeded (a terminating event counts as success)."""
    return (result == RESULTS.successful) | (result == RESULTS.event_occurred)


def describe(result: RESULTS) -> str:
    """The message of a concrete result code, in words (`"traced"` under `jax.jit`)."""
    return RESULTS[result]


class _HasResult(Protocol):
    result: RESULTS

    @property
    def successful(self) -> Any: ...


_Outcome = TypeVar("_Outcome", bound=_HasResult)


def raise_on_failure(
    outcome: _Outcome, throw: bool, message: Callable[[_Outcome], str]
) -> _Outcome:
    """`throw=True` applied to the value a compiled solve returned, outside its program.

    The compiled program only returns the result code: it carries no host callback, so
    JAX's persistent compilation cache can keep it (JAX does not write programs with
    callbacks). Here, after the call:

    - the code is concrete (an ordinary call, and also under `jax.grad`, `jax.jvp`,
      `jax.hessian` outside `jax.jit`: result codes carry no derivative): a failure
      raises [`odeinfer.SolveError`][] with `message(outcome)`, in Python;
    - the code is traced (inside the caller's `jax.jit` or under `jax.vmap`): there is
      no host to check on until the caller's program runs, so the check goes into that
      program as `eqx.error_if` (an `equinox.EquinoxRuntimeError` with the
      [`odeinfer.RESULTS`][] message, as before).

    `message` receives `outcome` with derivatives stopped (its floats are concrete).
    """
    if not throw:
        return outcome
    successful = lax.stop_gradient(outcome.successful)
    if isinstance(successful, jax.core.Tracer):
        return outcome.result.error_if(outcome, jnp.invert(successful))
    if not np.all(np.asarray(successful)):
        stopped = jax.tree_util.tree_map(
            lambda x: lax.stop_gradient(x) if eqx.is_array(x) else x, outcome
        )
        raise SolveError(message(stopped))
    return outcome
