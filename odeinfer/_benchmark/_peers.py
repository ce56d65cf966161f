"""Solvers that [`odeinfer.benchmarking.benchmark`][] can run, as strategy objects.

`AbstractBenchmarkSolver.prepare(problem)` returns a `Runner`: a plain callable
`run(rtol, atol) -> Outcome` (plus an optional `gradient(rtol, atol)`). Preparing builds
and caches whatever is compiled, so that the benchmark can time the first call
(compilation included) apart from later ones. A user adds a solver by subclassing
`AbstractBenchmarkSolver` and implementing `name` and `prepare`.
"""

import abc
import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._solve import solve
from .._solvers import Rodas4, Rodas5P
from ._problem import BenchmarkProblem


@dataclasses.dataclass
class Outcome:
    """One run of one solver: numpy values, whatever the solver."""

    y_final: np.ndarray
    ys: np.ndarray | None = None
    event_times: np.ndarray | None = None
    num_steps: int = -1
    num_fevals: int = -1
    success: bool = True
    message: str = ""


@dataclasses.dataclass
class Runner:
    """A prepared solver: `run(rtol, atol) -> Outcome`; `gradient(rtol, atol) ->
    ndarray` (in the order of `problem.param_names`) or `None` when unsupported."""

    run: Callable[[float, float], Outcome]
    gradient: Callable[[float, float], np.ndarray] | None = None


class AbstractBenchmarkSolver(eqx.Module):
    """A solver [`odeinfer.benchmarking.benchmark`][] can run. Subclass it to benchmark your own.

    **Attributes and methods to provide:**

    - `name`: a `str` label for tables and plots.
    - `prepare(problem) -> Runner`: set up (and compile) for one problem.
    - `available() -> bool` (optional): `False` when an optional dependency is
        missing; the benchmark then records the solver as skipped.
    """

    name: eqx.AbstractVar[str]

    @abc.abstractmethod
    def prepare(self, problem: BenchmarkProblem) -> Runner:
        """Build a [`Runner`] for `problem`."""

    def available(self) -> bool:
        return True


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

        field, jac, event_fns, resets = _numpy_callables(problem)
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
                    [_evaluate(segments_t, segments_sol, s) for s in problem.saveat]
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


def _evaluate(segments_t, segments_sol, s):
    for (a, b), interpolant in zip(segments_t, segments_sol, strict=True):
        if a <= s <= b:
            last = interpolant(s)
    return last


def _numpy_callables(problem: BenchmarkProblem):
    """numpy-facing vector field, Jacobian, scipy event functions and resets."""
    params = problem.params
    np_field = problem.numpy_vector_field
    jitted = jax.jit(lambda t, y: problem.model(t, y, params))  # compiled on first use

    def field(t, y):
        if np_field is not None:
            return np_field(t, y, params)
        return np.asarray(jitted(t, y))

    jac_jit = jax.jit(jax.jacfwd(lambda t, y: problem.model(t, y, params), argnums=1))

    def jac(t, y):
        return np.asarray(jac_jit(t, y))

    event_fns, resets = [], []
    direction = {"rising": 1, "falling": -1, "either": 0}
    for crossing in problem.events:
        value = jax.jit(lambda t, y, c=crossing: c.value(t, y, params))

        def event(t, y, value=value):
            return float(value(t, y))

        event.terminal = crossing.terminal or crossing.reset is not None
        event.direction = direction[crossing.direction]
        event_fns.append(event)
        if crossing.reset is None:
            resets.append(None)
        else:
            reset = jax.jit(lambda t, y, fn=crossing.reset: fn(t, y, params))
            resets.append(lambda t, y, reset=reset: np.asarray(reset(t, y)))
    # Compile the JAX callables now, so that their compilation is not timed as a run.
    y0 = problem.y0
    field(problem.t0, y0)
    jac(problem.t0, y0)
    for event in event_fns:
        event(problem.t0, y0)
    for reset in resets:
        if reset is not None:
            reset(problem.t0, y0)
    return field, jac, event_fns, resets


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

        field, jac, event_fns, _ = _numpy_callables(problem)

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


SCIPY_METHODS = ("RK45", "DOP853", "Radau", "BDF", "LSODA")
DIFFRAX_SOLVERS = (
    "Tsit5",
    "Dopri5",
    "Dopri8",
    "Bosh3",
    "Heun",
    "Kvaerno3",
    "Kvaerno4",
    "Kvaerno5",
    "ImplicitEuler",
)


ROSENBROCK_SOLVERS = {"Rodas5P": Rodas5P, "Rodas4": Rodas4}


def get_solver(name: "str | AbstractBenchmarkSolver") -> AbstractBenchmarkSolver:
    """A benchmark solver from its name: odeinfer's Rosenbrock solvers (`"Rodas5P"`,
    `"Rodas4"`) or a diffrax solver (`"Tsit5"`, `"Kvaerno5"`), optionally prefixed
    `"odeinfer/"`, a scipy method (`"scipy/LSODA"`), or SUNDIALS
    (`"sundials/CVODE-BDF"`, `"cvode"`). Solver objects are returned unchanged."""
    if isinstance(name, AbstractBenchmarkSolver):
        return name
    if isinstance(name, diffrax.AbstractSolver):  # e.g. oi.Rodas5P() itself
        return OdeinferSolver(name)
    if not isinstance(name, str):
        raise TypeError(
            f"A solver must be a name (str) or an AbstractBenchmarkSolver; got {name!r}."
        )
    key = name.removeprefix("odeinfer/").removeprefix("diffrax/")
    if key in ROSENBROCK_SOLVERS:
        return OdeinferSolver(ROSENBROCK_SOLVERS[key]())
    if key in DIFFRAX_SOLVERS:
        return OdeinferSolver(getattr(diffrax, key)())
    if name.startswith("scipy/") and name.removeprefix("scipy/") in SCIPY_METHODS:
        return ScipySolver(name.removeprefix("scipy/"))
    if name.lower() in ("cvode", "sundials/cvode", "sundials/cvode-bdf"):
        return CVODESolver("BDF")
    if name.lower() == "sundials/cvode-adams":
        return CVODESolver("Adams")
    known = (
        list(ROSENBROCK_SOLVERS)
        + list(DIFFRAX_SOLVERS)
        + [f"scipy/{m}" for m in SCIPY_METHODS]
        + ["sundials/CVODE-BDF", "sundials/CVODE-Adams"]
    )
    raise ValueError(
        f"Unknown solver {name!r}. Known names: {', '.join(known)}; or pass an "
        "odeinfer.benchmarking.OdeinferSolver(diffrax.X()) / your own AbstractBenchmarkSolver."
    )
