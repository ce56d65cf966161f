"""`multistart`: many optimisations from random starting points, in one vmapped call
(optimistix solvers) or on the host, one after another or in a thread pool (bounded
least squares: [`odeinfer.InteriorTrustRegion`][] in compiled batches,
[`odeinfer.TrustRegionReflective`][], [`odeinfer.Fides`][])."""

import functools
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._parameters import AbstractParameter
from . import _interior_trust_region as interior
from . import _least_squares as least_squares
from . import _objective as objective
from ._box import optimise as optimise_box
from ._errors import FitError
from ._fit import check_information, check_options, choose_solver, make_result
from ._result import FitResult
from ._threads import run_in_threads
from ._trust_region import (
    AbstractBoxLeastSquares,
    Outcome,
    Residuals,
    box_from_unconstrained,
    unconstrained_from_box,
)


class MultistartResult(eqx.Module):
    """The result of [`odeinfer.multistart`][].

    **Attributes:**

    - `best`: the [`odeinfer.FitResult`][] of the start with the highest log objective
        among the converged ones (with Laplace standard errors).
    - `names`: the free parameter names (columns of `starts` and `optima`).
    - `starts`, `optima`: unconstrained starting points and end points, one row per start
        (row 0 is the initial value of the parameters, or `init`).
    - `log_objective`: log-likelihood (+ log prior for MAP) at each end point.
    - `converged`: whether each start's optimiser converged to a finite optimum.
    - `solve_failed`: whether the log-likelihood at each start's end point is `-inf`
        (the ODE solve failed there); such starts never count as converged.
    - `num_steps`: iterations of each start (Jacobian evaluations for the bounded
        least-squares solvers; for [`odeinfer.InteriorTrustRegion`][] every
        evaluation is a residual and its Jacobian).
    - `num_evaluations`: objective (residual) evaluations of each start, where the
        solver counts them (bounded least squares); else `None`.
    - `seconds`: wall time of each start, where the starts run on the host
        (bounded least squares; the first includes compilation, except for
        `InteriorTrustRegion`, which compiles before its first start; starts vmapped
        in one batch share their batch's time); else `None`. With `workers > 1` the
        starts overlap, so these add up to more than the run took.
    - `elapsed`: wall time from the beginning of the first start to the end of each
        start (bounded least squares only; else `None`; for a vmapped batch, the end
        of the batch): the time to a given start's result, e.g. the first one near
        the best optimum.
    """

    best: FitResult
    names: tuple[str, ...] = eqx.field(static=True)
    starts: Float[Array, "starts n"]
    optima: Float[Array, "starts n"]
    log_objective: Float[Array, " starts"]
    converged: Bool[Array, " starts"]
    num_steps: Int[Array, " starts"]
    solve_failed: Bool[Array, " starts"] | None = None
    num_evaluations: Int[Array, " starts"] | None = None
    seconds: Float[Array, " starts"] | None = None
    elapsed: Float[Array, " starts"] | None = None

    @property
    def num_converged(self) -> int:
        return int(np.sum(np.asarray(self.converged)))

    @property
    def sorted_log_objective(self) -> np.ndarray:
        """The log objective of the converged starts, best first (a "waterfall")."""
        values = np.asarray(self.log_objective)[np.asarray(self.converged)]
        return np.sort(values)[::-1]

    def clusters(self, tol: float = 1e-4) -> list[tuple[float, int]]:
        """Groups of converged starts with the same optimum: `(log objective, count)`,
        best first. Two starts are in one group when their log objectives differ by less
        than `tol * (1 + |value|)`."""
        groups: list[list[float]] = []
        for value in self.sorted_log_objective:
            if groups and abs(groups[-1][0] - value) <= tol * (1 + abs(groups[-1][0])):
                groups[-1].append(value)
            else:
                groups.append([value])
        return [(g[0], len(g)) for g in groups]

    def summary(self) -> str:
        clusters = self.clusters()
        head = ", ".join(f"{v:.6g} (x{c})" for v, c in clusters[:5])
        more = f", ... {len(clusters) - 5} more" if len(clusters) > 5 else ""
        failed = (
            0
            if self.solve_failed is None
            else int(np.sum(np.asarray(self.solve_failed)))
        )
        failed_text = f" ({failed} ended where the ODE solve fails)" if failed else ""
        return (
            f"{self.num_converged}/{len(self.converged)} starts converged{failed_text}; "
            f"{len(clusters)} distinct optima (log objective, count): {head}{more}\n"
            + self.best.summary()
        )


def draw_starts(problem, priors, n_starts, key, u_init, spread, from_priors):
    """Starting points in the unconstrained space: uniform within the bounds of bounded
    parameters, uniform in `u_init ± spread` for the others (a factor `e^spread` either
    way for positive parameters), or drawn from the priors where `from_priors`."""
    space = problem.parameters
    names = objective.free_names(problem)
    key_u, key_b = jax.random.split(key)
    u = u_init + jax.random.uniform(
        key_u, (n_starts, u_init.shape[0]), minval=-spread, maxval=spread
    )
    params = jax.vmap(space.from_unconstrained)(u)
    params = dict(params)
    keys = jax.random.split(key_b, len(names))
    for name, k in zip(names, keys, strict=True):
        shape = (n_starts,) + jnp.shape(params[name])[1:]
        if from_priors and name in priors:
            params[name] = jnp.asarray(priors[name].sample(k, shape[:1]), dtype=float)
            params[name] = jnp.reshape(params[name], shape)
            continue
        lower, upper = _bounds(space.specs[name])
        if np.isfinite(lower) and np.isfinite(upper):
            margin = 1e-3 * (upper - lower)
            params[name] = jax.random.uniform(
                k, shape, minval=lower + margin, maxval=upper - margin
            )
    u = jax.vmap(space.to_unconstrained)(params)
    return jnp.concatenate([u_init[None], u[1:]], axis=0)


def _bounds(spec: AbstractParameter) -> tuple[float, float]:
    return float(spec.lower), float(spec.upper)


@eqx.filter_jit
def _optimise_many(problem, priors, solver, starts, max_steps, batch_size):
    def one(u0):
        u, result, steps = objective.optimise(problem, priors, solver, u0, max_steps)
        value = objective.log_objective(u, objective.reverse_problem(problem), priors)
        return u, result, steps, value

    if batch_size is None or batch_size >= starts.shape[0]:
        return jax.vmap(one)(starts)
    return jax.lax.map(one, starts, batch_size=batch_size)


def _as_key(key) -> PRNGKeyArray:
    """A `jax.random` key from `key` (a key, or an int seed)."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return key
    raise TypeError(
        "`key` must be a jax.random key (e.g. `jax.random.key(0)`) or an int seed; got "
        f"{key!r:.100}."
    )


def multistart(
    problem,
    n_starts: int,
    *,
    key: PRNGKeyArray | int,
    parameters=None,
    init: dict | None = None,
    priors: dict | None = None,
    spread: float = 2.0,
    from_priors: bool = False,
    solver: AbstractBoxLeastSquares
    | optx.AbstractLeastSquaresSolver
    | optx.AbstractMinimiser
    | None = None,
    information: str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
    batch_size: int | None = None,
    workers: int = 1,
    progress_bar: bool = False,
    throw: bool = True,
) -> MultistartResult:
    """Run [`odeinfer.fit`][] from `n_starts` starting points and report the best
    optimum and the spread of optima. The optimistix solvers run every start in one
    vmapped call; [`odeinfer.InteriorTrustRegion`][] (the default for an
    [`odeinfer.AbstractResidualLikelihood`][] such as a PEtab problem) runs each
    start as one compiled program, `batch_size` starts vmapped together and
    `workers` such batches at a time; the host-loop bounded least-squares solvers
    ([`odeinfer.TrustRegionReflective`][], [`odeinfer.Fides`][]) run them one after
    another or `workers` at a time, with jitted residual and Jacobian calls compiled
    once.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][], a log-likelihood function with
        `parameters=`, or an [`odeinfer.AbstractResidualLikelihood`][] (as in
        [`odeinfer.fit`][]).
    - `n_starts`: the number of starting points (the first is the parameters' `init`).
    - `key`: a `jax.random` key for the starting points, or an int seed.
    - `parameters`, `init`, `priors`, `solver`, `information`, `rtol`, `atol`,
        `max_steps`: as in [`odeinfer.fit`][].
    - `spread`: half-width, in the unconstrained space, of the uniform box around the
        initial values for parameters without finite bounds. Bounded parameters are
        drawn uniformly within their bounds.
    - `from_priors`: draw the parameters that have a prior from it instead.
    - `batch_size`: how many starts run side by side. `None` (default): all of them,
        in one `jax.vmap`. A smaller number runs batches of that size one after another
        inside the same compiled program (`jax.lax.map`); `batch_size=1` suits stiff
        models, where a vmapped batch runs every start's ODE solve for as many steps as
        its most expensive member needs (a start that wanders into a stiff region
        slows all the others). For [`odeinfer.InteriorTrustRegion`][]: the starts
        vmapped together in one compiled program (`None`: 1, which was fastest on
        the PEtab problems measured: a vmapped loop runs until its slowest start
        ends). Not used by the host-loop solvers (one start at a time, see
        `workers`).
    - `workers`: how many bounded least-squares starts run at the same time, in a
        thread pool (JAX releases the GIL while a compiled residual or Jacobian call
        runs, and XLA runs a small model's call on one core, so `workers=2` on two
        free cores takes about half the time). The results are the same as with
        `workers=1` (default), start by start; the first start runs alone and
        compiles. For [`odeinfer.InteriorTrustRegion`][], how many of its batches
        run at the same time (its compiled program holds no GIL at all: `workers=2`
        on two free cores took less than half the time of `workers=1` on Boehm).
        Only for the bounded least-squares solvers: the optimistix solvers run all
        starts in one compiled call (see `batch_size`).
    - `progress_bar`: show a progress bar (tqdm) over the starts with the best
        log-likelihood so far (bounded least squares only: the vmapped solvers
        finish all starts at once).
    - `throw`: raise an [`odeinfer.FitError`][] (a `RuntimeError`) if no start
        converged.

    **Returns:**

    An [`odeinfer.MultistartResult`][]: `best`, `sorted_log_objective`,
    `num_converged`, `clusters()`, `summary()`.
    """
    if (
        isinstance(n_starts, bool)
        or not isinstance(n_starts, int | np.integer)
        or n_starts < 1
    ):
        raise ValueError(f"`n_starts` must be a positive integer; got {n_starts!r}.")
    if (
        isinstance(spread, bool)
        or not isinstance(spread, int | float | np.number)
        or not (np.isfinite(spread) and spread > 0)
    ):
        raise ValueError(
            f"`spread` must be a positive finite number (e.g. 2.0); got {spread!r}."
        )
    if (
        isinstance(workers, bool)
        or not isinstance(workers, int | np.integer)
        or workers < 1
    ):
        raise ValueError(f"`workers` must be a positive integer; got {workers!r}.")
    key = _as_key(key)
    check_options(rtol=rtol, atol=atol, max_steps=max_steps, throw=throw)
    # Each start's compile of InteriorTrustRegion's whole loop (Fujita: 11.8 s against
    # TrustRegionReflective's 1.9) is paid once for all starts, and its starts were
    # 2.9x faster on Fujita (3.2 against 9.1 s, 292 against 738 evaluations) and took
    # 53 against 464 evaluations on Boehm; a single `fit` keeps TrustRegionReflective.
    boxed = least_squares.residual_model(
        problem,
        parameters,
        priors,
        solver,
        rtol,
        atol,
        default=interior.InteriorTrustRegion,
    )
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be None or a positive integer; got {batch_size!r}."
        )
    if boxed is not None:
        return _multistart_box(
            *boxed,
            int(n_starts),
            key,
            init,
            spread,
            information,
            int(max_steps),
            int(workers),
            None if batch_size is None else int(batch_size),
            progress_bar,
            throw,
        )

    problem, parameters = least_squares.as_function(problem, parameters)
    problem = objective.canonical(problem, parameters, priors)
    priors = objective.check_priors(priors, problem)
    if from_priors and not priors:
        raise ValueError("`from_priors=True` needs `priors`.")
    u_init = jnp.asarray(objective.initial_unconstrained(problem, init))
    solver = choose_solver(problem, priors, solver, rtol, atol)
    if workers != 1:
        raise ValueError(
            f"`workers={workers}` runs bounded least-squares starts "
            "(oi.TrustRegionReflective, oi.Fides) in a thread pool; the optimistix "
            f"solver here ({type(solver).__name__}) runs all starts in one compiled "
            "call: leave `workers=1` (`batch_size` sets how many run side by side)."
        )
    information = check_information(information, solver)
    starts = draw_starts(
        problem, priors, int(n_starts), key, u_init, spread, from_priors
    )
    optima, codes, steps, values = _optimise_many(
        problem,
        priors,
        solver,
        starts,
        int(max_steps),
        None if batch_size is None else int(batch_size),
    )
    solve_failed = jnp.invert(jnp.isfinite(values))
    converged = (codes == optx.RESULTS.successful) & jnp.invert(solve_failed)
    ok = np.asarray(converged)
    if not ok.any():
        if throw:
            failed = int(np.sum(np.asarray(solve_failed)))
            raise FitError(
                f"None of the {n_starts} starts converged ({failed} ended where the ODE "
                "solve fails, log-likelihood -inf); increase `max_steps` or narrow the "
                "starting region (`spread`, bounds), or pass `throw=False`."
            )
        best_index = int(np.nanargmax(np.where(np.isfinite(values), values, -np.inf)))
    else:
        best_index = int(np.argmax(np.where(ok, np.asarray(values), -np.inf)))
    result = jtu.tree_map(lambda x: x[best_index], codes)
    best = make_result(
        problem,
        priors,
        solver,
        optima[best_index],
        result,
        steps[best_index],
        information,
        u0=starts[best_index],
    )
    return MultistartResult(
        best=best,
        names=objective.free_names(problem),
        starts=starts,
        optima=optima,
        log_objective=values,
        converged=converged,
        num_steps=steps,
        solve_failed=solve_failed,
    )


def _multistart_box(
    model: Residuals,
    solver: AbstractBoxLeastSquares,
    n_starts: int,
    key,
    init,
    spread,
    information,
    max_steps: int,
    workers: int,
    batch_size: int | None,
    progress_bar: bool,
    throw: bool,
) -> MultistartResult:
    """`multistart` by bounded least squares: the same starting points as the
    vmapped path (drawn in the unconstrained space), one optimisation after another
    or `workers` at a time."""
    u_init = jnp.asarray(objective.initial_unconstrained(model, init))
    information = least_squares.check_information(information, model)
    starts = draw_starts(model, {}, n_starts, key, u_init, spread, False)
    # On the main thread, for all starts at once (one eager operation each, not one
    # per start: ~8 ms a start on Boehm's 11 parameters otherwise).
    v0s = list(
        np.asarray(
            jax.vmap(lambda u: box_from_unconstrained(model.parameters, u))(starts)
        )
    )
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_starts, desc="multistart", unit="start")
    try:
        if isinstance(solver, interior.InteriorTrustRegion):
            outcomes, elapsed = _run_compiled(
                model, solver, v0s, max_steps, workers, batch_size, bar
            )
        else:
            outcomes, elapsed = _run_starts(model, solver, v0s, max_steps, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    values = np.array([o.log_likelihood for o in outcomes])
    solve_failed = ~np.isfinite(values)
    converged = (
        np.array([o.result == optx.RESULTS.successful for o in outcomes])
        & ~solve_failed
    )
    if not converged.any():
        if throw:
            raise FitError(
                f"None of the {n_starts} starts converged ({int(solve_failed.sum())} "
                "ended where the ODE solve fails, log-likelihood -inf); increase "
                "`max_steps` or narrow the bounds, or pass `throw=False`."
            )
        best_index = int(np.argmax(np.where(solve_failed, -np.inf, values)))
    else:
        best_index = int(np.argmax(np.where(converged, values, -np.inf)))
    best_fit = least_squares.fit_result(
        model, solver, outcomes[best_index], information
    )
    optima = jax.vmap(lambda v: unconstrained_from_box(model, v))(
        jnp.asarray(np.stack([o.v for o in outcomes]))
    )
    return MultistartResult(
        best=best_fit,
        names=objective.free_names(model),
        starts=starts,
        optima=optima,
        log_objective=jnp.asarray(values),
        converged=jnp.asarray(converged),
        num_steps=jnp.asarray([o.num_steps for o in outcomes]),
        solve_failed=jnp.asarray(solve_failed),
        num_evaluations=jnp.asarray([o.num_evaluations for o in outcomes]),
        seconds=jnp.asarray([o.seconds for o in outcomes]),
        elapsed=jnp.asarray(elapsed),
    )


def _run_starts(
    model: Residuals,
    solver: AbstractBoxLeastSquares,
    v0s: list[np.ndarray],
    max_steps: int,
    workers: int,
    bar,
) -> tuple[list[Outcome], list[float]]:
    """The optimisations from `v0s`, in order, and the wall time from the beginning
    to the end of each. Starts run alone on this thread until one has evaluated a
    Jacobian (so every jitted function the solver calls is compiled, once), the rest
    in a pool of `workers` threads. An exception in a start cancels the starts not
    yet begun and is raised here once the running ones have finished."""
    outcomes: list[Outcome | None] = [None] * len(v0s)
    elapsed = [0.0] * len(v0s)
    best = -np.inf
    begin = time.perf_counter()

    def record(i: int, outcome: Outcome) -> None:
        nonlocal best
        outcomes[i] = outcome
        elapsed[i] = time.perf_counter() - begin
        best = max(best, outcome.log_likelihood)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(best_llh=f"{best:.6g}", llh=f"{outcome.log_likelihood:.6g}")

    first, compiled = 0, False
    while first < len(v0s) and (workers == 1 or not compiled):
        outcome = optimise_box(model, solver, v0s[first], max_steps)
        record(first, outcome)
        compiled = outcome.num_steps > 0  # a Jacobian was evaluated
        first += 1
    rest = range(first, len(v0s))
    run_in_threads(
        [
            functools.partial(optimise_box, model, solver, v0s[i], max_steps)
            for i in rest
        ],
        workers,
        lambda k, outcome: record(first + k, outcome),
    )
    return [o for o in outcomes if o is not None], elapsed


def _run_compiled(
    model: Residuals,
    solver: interior.InteriorTrustRegion,
    v0s: list[np.ndarray],
    max_steps: int,
    workers: int,
    batch_size: int | None,
    bar,
) -> tuple[list[Outcome], list[float]]:
    """The optimisations from `v0s` by `InteriorTrustRegion`: vmapped batches of
    `batch_size` starts (default 1), `workers` batches at a time; the wall time from
    the beginning (after compilation) to the end of each start's batch."""
    outcomes: list[Outcome | None] = [None] * len(v0s)
    elapsed = [0.0] * len(v0s)
    best = -np.inf

    def record(indices: list[int], results: list[Outcome], seconds: float) -> None:
        nonlocal best
        for i, outcome in zip(indices, results, strict=True):
            outcomes[i] = outcome
            elapsed[i] = seconds
            best = max(best, outcome.log_likelihood)
        if bar is not None:
            bar.update(len(indices))
            bar.set_postfix(best_llh=f"{best:.6g}")

    interior.optimise_starts(
        model,
        solver,
        v0s,
        max_steps,
        batch_size=1 if batch_size is None else min(batch_size, len(v0s)),
        workers=workers,
        record=record,
    )
    return [o for o in outcomes if o is not None], elapsed
