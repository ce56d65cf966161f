"""`OdeinferSolver`: odeinfer's and diffrax's solvers through `odeinfer.solve`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._solve import solve
from .._problem import BenchmarkProblem
from ._base import AbstractBenchmarkSolver, Outcome, Runner


def _param_vector(grad_dict, names):
    return np.array([float(grad_dict[name]) for name in names])


class OdeinferSolver(AbstractBenchmarkSolver):
    """[`odeinfer.solve`][] with a diffrax solver.

    **Arguments:**

    - `solver`: a diffrax solver instance (`diffrax.Tsit5()`, `diffrax.Kvaerno5()`, ...).
    - `adjoint`: how gradients are taken: `diffrax.RecursiveCheckpointAdjoint()`
        (reverse mode, `jax.grad`) or `diffrax.ForwardMode()` (`jax.jacfwd`).
        `diffrax.BacksolveAdjoint()` gives no gradient row: `odeinfer.solve` cannot use it.
    - `name`: the label; default `odeinfer/<SolverName>`.
    """

    solver: diffrax.AbstractSolver
    adjoint: diffrax.AbstractAdjoint
    name: str = eqx.field(static=True)

    def __init__(
        self,
        solver: diffrax.AbstractSolver,
        *,
        adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),  # noqa: B008
        name: str | None = None,
    ):
        if not isinstance(solver, diffrax.AbstractSolver):
            raise TypeError(
                f"OdeinferSolver: `solver` must be a diffrax solver instance such as "
                f"diffrax.Tsit5(); got {solver!r}."
            )
        if not isinstance(adjoint, diffrax.AbstractAdjoint):
            raise TypeError(
                "OdeinferSolver: `adjoint` must be a diffrax adjoint instance such as "
                f"diffrax.RecursiveCheckpointAdjoint() or diffrax.ForwardMode(); got "
                f"{adjoint!r}."
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(
                f"OdeinferSolver: `name` must be a non-empty string or None; got {name!r}."
            )
        self.solver = solver
        self.adjoint = adjoint
        self.name = name or f"odeinfer/{type(solver).__name__}"

    def prepare(self, problem: BenchmarkProblem) -> Runner:
        saveat = None if problem.saveat is None else jnp.asarray(problem.saveat)

        def solution(params, events, rtol, atol, adjoint):
            return solve(
                problem.model,
                jnp.asarray(problem.y0),
                params,
                t0=problem.t0,
                t1=problem.t1,
                saveat=saveat,
                solver=self.solver,
                rtol=rtol,
                atol=atol,
                events=events or None,
                max_events=problem.max_events,
                max_steps=problem.max_steps,
                adjoint=adjoint,
                throw=False,
            )

        # Inside `filter_jit` the input checks of `solve` run once, at trace time; the
        # tolerances and crossing levels are traced, so new values do not recompile.
        @eqx.filter_jit
        def run_jit(params, events, rtol, atol):
            sol = solution(
                params, events, rtol, atol, diffrax.RecursiveCheckpointAdjoint()
            )
            return sol.y_final, sol.ys, sol.events.times, sol.stats, sol.successful

        # Arrays, not Python floats: `filter_jit` would treat floats as static.
        params = {k: jnp.asarray(v) for k, v in problem.params.items()}

        def run(rtol, atol):
            y, ys, times, stats, ok = jax.device_get(
                run_jit(params, problem.events, jnp.asarray(rtol), jnp.asarray(atol))
            )
            times = np.asarray(times)
            return Outcome(
                y_final=np.asarray(y),
                ys=None if ys is None else np.asarray(ys),
                event_times=times[np.isfinite(times)] if problem.events else None,
                num_steps=int(stats["num_steps"]),
                num_fevals=int(stats["num_fevals"]),
                success=bool(ok),
                message="" if ok else "odeinfer.solve did not succeed",
            )

        def objective(params, events, rtol, atol):
            sol = solution(params, events, rtol, atol, self.adjoint)
            return problem.quantity(sol.y_final, sol.events.times)

        forward = isinstance(self.adjoint, diffrax.ForwardMode)
        grad_jit = eqx.filter_jit(
            jax.jacfwd(objective) if forward else jax.grad(objective)
        )

        def gradient(rtol, atol):
            grads = jax.device_get(
                grad_jit(params, problem.events, jnp.asarray(rtol), jnp.asarray(atol))
            )
            return _param_vector(grads, problem.param_names)

        # odeinfer.solve saves with `SaveAt(subs=...)`, which diffrax's
        # BacksolveAdjoint refuses (and it cannot cross events anyway).
        backsolve = isinstance(self.adjoint, diffrax.BacksolveAdjoint)
        return Runner(run=run, gradient=None if backsolve else gradient)
