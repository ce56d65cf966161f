"""[`odeinfer.benchmarking.benchmark`][]: every solver × tolerance on one problem, against a reference."""

import math
import statistics
import sys
import time
from collections.abc import Sequence

import diffrax
import numpy as np

from .._results import SolveError
from ._peers import AbstractBenchmarkSolver, ScipySolver, get_solver
from ._problem import BenchmarkProblem, Reference, check_reference
from ._report import BenchmarkResults

_DEFAULT_REFERENCE_RTOL = 1e-13


def _relative_error(value, reference, floor) -> float:
    if value is None or reference is None:
        return math.nan
    value, reference = (
        np.asarray(value, dtype=float),
        np.asarray(reference, dtype=float),
    )
    if value.shape != reference.shape:
        return math.inf
    scale = np.maximum(np.abs(reference), floor)
    with np.errstate(invalid="ignore"):
        error = np.abs(value - reference) / scale
    return float(np.max(error)) if np.all(np.isfinite(error)) else math.inf


def _event_error(times, reference) -> float:
    if times is None or reference is None:
        return math.nan
    if len(times) != len(reference):
        return math.inf
    if len(times) == 0:
        return 0.0
    return float(np.max(np.abs(np.asarray(times) - np.asarray(reference))))


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _reference_solver(problem, reference_solver):
    if reference_solver == "auto":
        return ScipySolver("Radau" if problem.stiff else "DOP853")
    if reference_solver is None:
        return None
    return get_solver(reference_solver)


def compute_reference(
    problem: BenchmarkProblem,
    *,
    solver: "str | AbstractBenchmarkSolver" = "auto",
    rtol: float = _DEFAULT_REFERENCE_RTOL,
    gradient: bool = False,
    fd_step: float = 1e-5,
) -> Reference:
    """A reference solution of `problem` at tight tolerance.

    **Arguments:**

    - `problem`: an [`odeinfer.benchmarking.BenchmarkProblem`][].
    - `solver`: `"auto"` (scipy Radau for stiff problems, DOP853 otherwise, both
        high-order), a solver name or a solver object.
    - `rtol`: the relative tolerance; `atol = problem.atol_scale * rtol`.
    - `gradient`: also compute d `problem.quantity` / d params by central finite
        differences of the reference solver (relative step `fd_step`).

    **Returns:**

    A [`odeinfer.benchmarking.Reference`][].

    **Raises:**

    [`odeinfer.SolveError`][] (a `RuntimeError`) when the reference solve fails.
    """
    _check_problem(problem)
    _check_flag("gradient", gradient)
    _check_tolerance("fd_step", fd_step)
    if fd_step >= 0.1:
        raise ValueError(
            f"`fd_step` is a relative finite-difference step and must be < 0.1 (typical "
            f"1e-5); got {fd_step!r}."
        )
    reference_solver = _reference_solver(problem, solver)
    if reference_solver is None:
        raise ValueError(
            f"Problem {problem.name!r} has no reference and `reference_solver=None` "
            "gives no way to compute one. Give `BenchmarkProblem(reference=...)` or a "
            "reference solver (e.g. 'scipy/Radau')."
        )
    _check_tolerance("rtol", rtol)
    atol = problem.atol_scale * rtol
    runner = reference_solver.prepare(problem)
    out = runner.run(rtol, atol)
    if not out.success:
        raise SolveError(
            f"The reference solve of {problem.name!r} with {reference_solver.name} "
            f"failed: {out.message}. Give the reference explicitly."
        )
    grad = None
    if gradient:
        grad = _fd_gradient(problem, reference_solver, rtol, atol, fd_step)
    return Reference(
        y_final=out.y_final,
        ys=out.ys,
        event_times=out.event_times,
        gradient=grad,
        source=f"{reference_solver.name} rtol={rtol:g} atol={atol:g}",
    )


def _fd_gradient(problem, reference_solver, rtol, atol, step) -> np.ndarray:
    """Central finite differences of `quantity` through the reference solver."""
    grad = []
    for name in problem.param_names:
        value = problem.params[name]
        h = step * max(abs(value), 1e-3)
        sides = []
        for sign in (1, -1):
            params = dict(problem.params, **{name: value + sign * h})
            shifted = _with_params(problem, params)
            out = reference_solver.prepare(shifted).run(rtol, atol)
            times = out.event_times if out.event_times is not None else np.zeros(0)
            times = np.concatenate([times, np.full(1, np.inf)])
            sides.append(float(problem.quantity(out.y_final, times)))
        grad.append((sides[0] - sides[1]) / (2 * h))
    return np.array(grad)


def _with_params(problem, params):
    return problem.replace(params=params)


def _check_tolerance(name, value):
    if not (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(value)
        and value > 0
    ):
        raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}.")


def _check_problem(problem):
    if not isinstance(problem, BenchmarkProblem):
        raise TypeError(
            f"`problem` must be an odeinfer.benchmarking.BenchmarkProblem; got {type(problem).__name__}. "
            "See odeinfer.benchmarking.benchmark_problem(name) for the shipped suite."
        )


def _check_flag(name, value):
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False; got {value!r}.")


def _solvers(solvers) -> list[AbstractBenchmarkSolver]:
    if isinstance(solvers, str | AbstractBenchmarkSolver | diffrax.AbstractSolver):
        solvers = [solvers]
    if not isinstance(solvers, Sequence):
        raise TypeError(
            "`solvers` must be a list of solver names or solver objects, e.g. "
            f"['Tsit5', 'scipy/DOP853']; got {type(solvers).__name__}."
        )
    solvers = [get_solver(s) for s in solvers]
    if not solvers:
        raise ValueError("`solvers` is empty; give e.g. ['Tsit5', 'scipy/DOP853'].")
    names = [s.name for s in solvers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"`solvers` names {repeated} more than once: the rows would be "
            "indistinguishable. Give each solver once (or a distinct `name=`)."
        )
    return solvers


def _tolerance_pairs(problem, tolerances):
    if isinstance(tolerances, int | float | np.integer | np.floating) and not (
        isinstance(tolerances, bool | np.bool_)
    ):
        tolerances = [tolerances]
    if isinstance(tolerances, np.ndarray):
        tolerances = tolerances.tolist()
    if not isinstance(tolerances, Sequence) or isinstance(tolerances, str):
        raise TypeError(
            "`tolerances` must be a list of rtols or (rtol, atol) pairs, e.g. "
            f"[1e-4, 1e-6, 1e-8]; got {tolerances!r}."
        )
    pairs = []
    for tol in tolerances:
        if isinstance(tol, tuple | list):
            if len(tol) != 2:
                raise ValueError(
                    f"`tolerances`: each entry is an rtol or an (rtol, atol) pair; got {tol!r}."
                )
            rtol, atol = tol
        else:
            rtol, atol = tol, None
        _check_tolerance("tolerances (rtol)", rtol)
        if rtol >= 1:
            raise ValueError(
                f"`tolerances (rtol)` must be < 1 (a relative error); got {rtol!r}."
            )
        atol = problem.atol_scale * rtol if atol is None else atol
        _check_tolerance("tolerances (atol)", atol)
        pairs.append((float(rtol), float(atol)))
    if not pairs:
        raise ValueError("`tolerances` is empty; give e.g. [1e-4, 1e-6, 1e-8].")
    return pairs


class _Progress:
    def __init__(self, total, enabled):
        self.total, self.done, self.bar = total, 0, None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="benchmark", leave=False)
            except ImportError:
                pass

    def step(self, text):
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update()
        else:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def benchmark(
    problem: BenchmarkProblem,
    solvers: Sequence["str | AbstractBenchmarkSolver"],
    tolerances: Sequence[float | tuple[float, float]] = (1e-4, 1e-6, 1e-8),
    *,
    repeats: int = 5,
    gradients: bool = False,
    reference: Reference | None = None,
    reference_solver: "str | AbstractBenchmarkSolver | None" = "auto",
    reference_rtol: float = _DEFAULT_REFERENCE_RTOL,
    progress: bool = True,
) -> BenchmarkResults:
    """Run every solver at every tolerance on `problem` and measure accuracy and cost.

    **Arguments:**

    - `problem`: a [`odeinfer.benchmarking.BenchmarkProblem`][] (e.g.
        `odeinfer.benchmarking.benchmark_problem("rober")`).
    - `solvers`: names (`"Tsit5"`, `"Kvaerno5"`, `"scipy/LSODA"`,
        `"sundials/CVODE-BDF"`, ...) or solver objects
        ([`odeinfer.benchmarking.OdeinferSolver`][], [`odeinfer.benchmarking.ScipySolver`][],
        [`odeinfer.benchmarking.CVODESolver`][], or your own `AbstractBenchmarkSolver`).
    - `tolerances`: relative tolerances (`atol = problem.atol_scale * rtol`) or
        `(rtol, atol)` pairs; all `> 0`.
    - `repeats`: timed runs after the first (compiling) one; the median is reported.
    - `gradients`: also time d `problem.quantity` / d params for solvers that support
        it and compare with the reference gradient (finite differences of the reference
        solver unless the reference gives one).
    - `reference`: a [`odeinfer.benchmarking.Reference`][]; default the problem's own, else computed
        with `reference_solver` at `reference_rtol`.
    - `reference_solver`: `"auto"` (scipy Radau for stiff problems, DOP853 otherwise), a
        name, a solver object, or `None` (never compute: a problem without a reference
        is then an error).
    - `progress`: print a progress line per run (a tqdm bar when tqdm is installed).

    **Returns:**

    [`odeinfer.benchmarking.BenchmarkResults`][]: `.table()`, `.to_csv()`, `.to_json()`, `.plot()`.

    **Raises:**

    `ValueError`/`TypeError` before any work for an unknown or repeated solver, a
    tolerance `<= 0`, `>= 1` or not a number, `repeats < 1`, a reference of another
    shape than the problem's, or a problem with no reference and no way to compute one.
    """
    _check_problem(problem)
    solvers = _solvers(solvers)
    pairs = _tolerance_pairs(problem, tolerances)
    if not (
        isinstance(repeats, int) and not isinstance(repeats, bool) and repeats >= 1
    ):
        raise ValueError(f"`repeats` must be an integer >= 1; got {repeats!r}.")
    _check_flag("gradients", gradients)
    _check_flag("progress", progress)
    _check_tolerance("reference_rtol", reference_rtol)
    if reference is None:
        reference = problem.reference
    if reference is None and reference_solver is None:
        raise ValueError(
            f"Problem {problem.name!r} has no reference and `reference_solver=None` gives "
            "no way to compute one. Pass `reference=odeinfer.benchmarking.Reference(...)` or a "
            "`reference_solver` (e.g. 'scipy/Radau')."
        )
    if reference is not None and not isinstance(reference, Reference):
        raise TypeError(
            f"`reference` must be an odeinfer.benchmarking.Reference; got {reference!r}."
        )
    if reference is not None:
        check_reference(problem.y0, problem.saveat, reference)
    if reference is None and reference_solver is not None:
        _reference_solver(problem, reference_solver)  # an unknown name fails here

    if reference is None:
        assert reference_solver is not None  # refused above
        reference = compute_reference(
            problem, solver=reference_solver, rtol=reference_rtol, gradient=gradients
        )
    if gradients and reference.gradient is None:
        fd_solver = _reference_solver(problem, reference_solver or "auto")
        grad = _fd_gradient(
            problem,
            fd_solver,
            reference_rtol,
            problem.atol_scale * reference_rtol,
            1e-5,
        )
        reference = Reference(
            y_final=reference.y_final,
            ys=reference.ys,
            event_times=reference.event_times,
            gradient=grad,
            source=reference.source,
        )

    rows = []
    bar = _Progress(len(solvers) * len(pairs), progress)
    try:
        for solver in solvers:
            runner = None
            if not solver.available():
                message = f"skipped: {solver.name} is not installed"
            else:
                try:
                    runner = solver.prepare(problem)
                except (NotImplementedError, ImportError) as error:
                    message = f"skipped: {error}"
            for rtol, atol in pairs:
                if runner is None:
                    rows.append(_row(problem, solver, rtol, atol, message=message))
                else:
                    rows.append(
                        _measure(
                            problem,
                            solver,
                            runner,
                            rtol,
                            atol,
                            reference,
                            repeats,
                            gradients,
                        )  # fmt: skip
                    )
                bar.step(f"{problem.name} {solver.name} rtol={rtol:g}")
    finally:
        bar.close()
    return BenchmarkResults(rows, {problem.name: reference.source})


def _row(problem, solver, rtol, atol, **values):
    row = dict(
        problem=problem.name, solver=solver.name, rtol=rtol, atol=atol,
        error=math.nan, error_final=math.nan, error_saveat=math.nan,
        event_error=math.nan, gradient_error=math.nan, time_s=math.nan,
        compile_s=math.nan, gradient_time_s=math.nan, gradient_compile_s=math.nan,
        steps=-1, fevals=-1, success=False, message="",
    )  # fmt: skip
    row.update(values)
    return row


def _measure(problem, solver, runner, rtol, atol, reference, repeats, gradients):
    try:
        out, first = _timed(runner.run, rtol, atol)
        times = [_timed(runner.run, rtol, atol)[1] for _ in range(repeats)]
    except Exception as error:  # a peer that raises is a failure row, not a crash
        return _row(
            problem, solver, rtol, atol, message=f"{type(error).__name__}: {error}"
        )
    median = statistics.median(times)
    error_final = _relative_error(out.y_final, reference.y_final, problem.error_floor)
    error_saveat = _relative_error(out.ys, reference.ys, problem.error_floor)
    row = _row(
        problem,
        solver,
        rtol,
        atol,
        error_final=error_final,
        error_saveat=error_saveat,
        error=max(
            e for e in (error_final, error_saveat, -math.inf) if not math.isnan(e)
        ),
        event_error=_event_error(out.event_times, reference.event_times),
        time_s=median,
        compile_s=max(first - median, 0.0),
        steps=out.num_steps,
        fevals=out.num_fevals,
        success=out.success,
        message=out.message,
    )
    if row["error"] == -math.inf:
        row["error"] = math.nan
    if gradients and runner.gradient is not None and reference.gradient is not None:
        try:
            grad, first = _timed(runner.gradient, rtol, atol)
            times = [_timed(runner.gradient, rtol, atol)[1] for _ in range(repeats)]
            ref = np.asarray(reference.gradient)
            norm = max(float(np.linalg.norm(ref)), 1e-300)
            row["gradient_error"] = float(np.linalg.norm(grad - ref)) / norm
            row["gradient_time_s"] = statistics.median(times)
            row["gradient_compile_s"] = max(first - row["gradient_time_s"], 0.0)
        except Exception as error:
            row["message"] = (
                f"{row['message']} gradient failed: {type(error).__name__}: {error}"
            )
    return row
