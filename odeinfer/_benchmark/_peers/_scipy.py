"""`ScipySolver`: scipy's `solve_ivp` methods, with events and resets by restarting."""

from typing import Any

import equinox as eqx
import numpy as np

from .._problem import BenchmarkProblem
from ._base import AbstractBenchmarkSolver, Outcome, Runner
from ._numpy import evaluate_segments, numpy_callables

SCIPY_METHODS = ("RK45", "DOP853", "Radau", "BDF", "LSODA")


class ScipySolver(AbstractBenchmarkSolver):
    """`scipy.integrate.solve_ivp` with one of its methods, events and resets included
    (a reset or terminal crossing stops `solve_ivp`; the run restarts after the reset).

    **Arguments:**

    - `method`: `"RK45"`, `"DOP853"`, `"Radau"`, `"BDF"` or `"LSODA"`. The implicit
        ones get the exact Jacobian (jitted `jax.jacfwd` of the vector field).
    """

    method: str = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, method: str = "LSODA"):
        if method not in SCIPY_METHODS:
            raise ValueError(
                f"ScipySolver: unknown `method` {method!r}; use one of {SCIPY_METHODS}."
            )
        self.method = method
        self.name = f"scipy/{method}"

    def prepare(self, problem: BenchmarkProblem) -> Runner:
        from scipy.integrate import solve_ivp

        field, jac, event_fns, resets = numpy_callables(problem)
        # The exact Jacobian for the implicit methods (explicit ones warn if given one).
        extra: dict[str, Any] = (
            {"jac": jac} if self.method in ("Radau", "BDF", "LSODA") else {}
        )

        def run(rtol, atol):
            t, y = problem.t0, problem.y0.copy()
            times, segments_t, segments_sol = [], [], []
            steps = nfev = 0
            while True:
                sol = solve_ivp(
                    field,
                    (t, problem.t1),
                    y,
                    method=self.method,
                    rtol=rtol,
                    atol=atol,
                    **extra,
                    events=event_fns or None,
                    dense_output=problem.saveat is not None,
                )
                steps += len(sol.t) - 1
                nfev += sol.nfev
                if sol.status < 0:
                    return Outcome(
                        y_final=sol.y[:, -1], success=False, message=sol.message
                    )
                if problem.saveat is not None:
                    segments_t.append((t, sol.t[-1]))
                    segments_sol.append(sol.sol)
                # scipy's stubs type `t_events` as never set (it is, with `events=`).
                for i, found in enumerate(sol.t_events or ()):
                    times.extend((ti, i) for ti in found)  # pyright: ignore[reportGeneralTypeIssues]
                if sol.status == 0:
                    y = sol.y[:, -1]
                    break
                # A terminal event: which one fired last, then reset or stop.
                t = sol.t[-1]
                which = max(
                    range(len(event_fns)),
                    key=lambda i: (
                        sol.t_events[i][-1] if sol.t_events[i].size else -np.inf
                    ),
                )
                y = sol.y_events[which][-1]
                if resets[which] is not None:
                    y = resets[which](t, y)
                if problem.events[which].terminal:
                    break
            ys = None
            if problem.saveat is not None:
                ys = np.stack(
                    [
                        evaluate_segments(segments_t, segments_sol, s)
                        for s in problem.saveat
                    ]
                )
            times.sort()
            return Outcome(
                y_final=np.asarray(y, dtype=float),
                ys=ys,
                event_times=np.array([ti for ti, _ in times])
                if problem.events
                else None,
                num_steps=steps,
                num_fevals=nfev,
            )

        return Runner(run=run)
