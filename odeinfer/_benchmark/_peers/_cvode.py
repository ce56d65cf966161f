"""`CVODESolver`: SUNDIALS CVODE through scikit-sundae (optional: `odeinfer[bench]`)."""

import importlib.util
from typing import Any

import equinox as eqx
import numpy as np

from .._problem import BenchmarkProblem
from ._base import AbstractBenchmarkSolver, Outcome, Runner
from ._numpy import numpy_callables


class CVODESolver(AbstractBenchmarkSolver):
    """SUNDIALS CVODE (BDF with a dense Newton solver and exact Jacobian, or Adams)
    through scikit-sundae, an optional peer: `pip install "odeinfer[bench]"`.
    Crossings are recorded with CVODE's root finding; resets are not supported.

    **Arguments:**

    - `method`: `"BDF"` (default) or `"Adams"`.
    """

    method: str = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(self, method: str = "BDF"):
        if method not in ("BDF", "Adams"):
            raise ValueError(
                f"CVODESolver: `method` must be 'BDF' or 'Adams'; got {method!r}."
            )
        self.method = method
        self.name = f"sundials/CVODE-{method}"

    def available(self) -> bool:
        return importlib.util.find_spec("sksundae") is not None

    def prepare(self, problem: BenchmarkProblem) -> Runner:
        if not self.available():
            raise ImportError(
                "CVODESolver needs scikit-sundae: `pip install scikit-sundae` (or "
                '`pip install "odeinfer[bench]"`).'
            )
        if any(c.reset is not None or c.terminal for c in problem.events):
            raise NotImplementedError(
                "CVODESolver does not support crossings with resets or terminal ones."
            )
        from sksundae.cvode import CVODE  # pyright: ignore[reportMissingImports]

        field, jac, event_fns, _ = numpy_callables(problem)

        def rhs(t, y, yp):
            yp[:] = field(t, y)

        def jacfn(t, y, yp, jj):
            jj[:, :] = jac(t, y)

        options: dict[str, Any] = dict(
            method=self.method, max_num_steps=problem.max_steps
        )
        if self.method == "BDF":
            options["jacfn"] = jacfn
        if event_fns:

            def events(t, y, out):
                for i, fn in enumerate(event_fns):
                    out[i] = fn(t, y)

            events.terminal = [False] * len(event_fns)
            events.direction = [fn.direction for fn in event_fns]
            options.update(eventsfn=events, num_events=len(event_fns))

        def run(rtol, atol):
            solver = CVODE(rhs, rtol=rtol, atol=atol, **options)
            tspan = [problem.t0, problem.t1]
            if problem.saveat is not None:
                inner = problem.saveat[
                    (problem.saveat > problem.t0) & (problem.saveat < problem.t1)
                ]
                tspan = [problem.t0, *inner, problem.t1]
            sol = solver.solve(np.asarray(tspan), problem.y0.copy())
            ys = None
            if problem.saveat is not None:
                ys = np.stack(
                    [
                        sol.y[list(sol.t).index(s)]
                        if s in sol.t
                        else np.full_like(problem.y0, np.nan)
                        for s in problem.saveat
                    ]
                )
            times = None
            if event_fns:
                times = np.sort(
                    np.asarray(sol.t_events if sol.t_events is not None else [])
                )
            return Outcome(
                y_final=np.asarray(sol.y[-1], dtype=float),
                ys=ys,
                event_times=times,
                num_steps=len(sol.t) - 1 if problem.saveat is None else -1,
                num_fevals=int(sol.nfev),
                success=bool(sol.success),
                message=str(sol.message),
            )

        return Runner(run=run)
