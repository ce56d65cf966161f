"""`Simulation` and `simulate`: the predictions of every experiment, experiments of the
same structure solved as one vmapped batch."""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._observations import Experiment
from .._results import RESULTS, is_successful
from .._solve import solve
from ._batches import map_experiments
from ._event_times import predict_event_times
from ._problem import Problem, observation_solver, solve_options


class Simulation(eqx.Module):
    """The predictions for one experiment.

    - `times`: the observation times.
    - `observables`: predicted observables, `(n_times, n_observables)`.
    - `event_times`: predicted first-crossing times of the event-time observations
        (`inf` where not found before the search horizon).
    - `event_found`: whether each was found.
    - `result`: an [`odeinfer.RESULTS`][] code: `RESULTS.successful`, or the code of
        the first solve that failed (the observations' solve, then the event-time
        solve).
    - `ok`: whether every solve succeeded (`oi.is_successful(result)`).
    """

    times: Float[Array, " n_times"]
    observables: Float[Array, "n_times n_observables"]
    event_times: Float[Array, " n_events"]
    event_found: Bool[Array, " n_events"]
    result: RESULTS
    ok: Bool[Array, ""]


def simulate_experiment(problem: Problem, experiment: Experiment, p) -> Simulation:
    """The predictions of one experiment with its parameters `p` (overrides applied):
    one solve for the observations, one for the event-time observations."""
    y0 = experiment.initial_state(p)
    result = RESULTS.successful
    fused = observation_solver(problem)
    fused_options: dict[str, Any] | None = None
    if fused is not None:
        fused_options = dict(
            solver=fused,
            rtol=problem.rtol,
            atol=problem.atol,
            max_steps=problem.max_steps,
            throw=False,
        )
    if experiment.times.shape[0]:
        t0 = experiment.t0
        # A solve needs t1 > t0; observations all at t0 are y0 itself.
        t1 = jnp.maximum(experiment.t_end, t0 + 1.0)
        solution = solve(
            problem.model,
            y0,
            p,
            t0=t0,
            t1=t1,
            saveat=experiment.times,
            doses=experiment.doses or None,
            **(solve_options(problem) if fused_options is None else fused_options),
        )
        result = solution.result
        predicted = jax.vmap(experiment.observe, in_axes=(0, 0, None))(
            experiment.times, solution.ys, p
        )
    else:
        predicted = jnp.zeros((0, experiment.n_observables))
    # One crossing is a terminal first crossing, which the fused solvers take too;
    # several are recorded by one diffrax-path solve.
    times, found, event_result = predict_event_times(
        problem.model, experiment, y0, p, solve_options(problem), fused_options
    )
    result = RESULTS.where(is_successful(result), event_result, result)
    return Simulation(
        times=experiment.times,
        observables=predicted,
        event_times=times,
        event_found=found,
        result=result,
        ok=is_successful(result),
    )


def check_problem(problem: Problem, params: Mapping) -> dict:
    """`params` completed with the fixed values, for a checked `problem`."""
    if not isinstance(problem, Problem):
        raise TypeError(
            f"`problem` must be an oi.Problem; got {type(problem).__name__}."
        )
    return problem.parameters.complete(params)


@eqx.filter_jit
def _simulate(problem, params):
    def one(experiment, p):
        return simulate_experiment(problem, experiment, p)

    out = map_experiments(one, problem.experiments, params)
    return tuple(
        eqx.tree_at(
            lambda s: (s.times, s.observables),
            simulation,
            (e.times, simulation.observables[: e.times.shape[0]]),
        )
        for e, simulation in zip(problem.experiments, out, strict=True)
    )


def simulate(problem: Problem, params: Mapping) -> tuple[Simulation, ...]:
    """Predicted observables (at each experiment's `times`) and event times.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][].
    - `params`: a dict of constrained values for the free parameters (fixed ones are
        filled in; giving them too is allowed).

    **Returns:**

    A tuple with one [`odeinfer.Simulation`][] per experiment.
    """
    return _simulate(problem, check_problem(problem, params))
