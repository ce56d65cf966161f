"""`profile`: profile likelihoods and likelihood-ratio confidence intervals."""

from statistics import NormalDist
from typing import cast

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from scipy import interpolate, optimize

from . import _objective as objective
from ._fit import check_options, choose_solver
from ._result import FitResult


class ProfileResult(eqx.Module):
    """The result of [`odeinfer.profile`][].

    **Attributes:**

    - `name`: the profiled parameter.
    - `values`: its values along the profile (constrained scale, increasing; the estimate
        included).
    - `log_objective`: the profile log-likelihood (+ log prior for MAP): the maximum over
        the other free parameters at each value.
    - `converged`: whether each inner optimisation converged (to a finite value).
    - `solve_failed`: whether the ODE solve failed (log objective `-inf`) at each
        value; such points are left out of the interval.
    - `others`: the other free parameters' optima (unconstrained), one row per value.
    - `estimate`, `max_log_objective`: the optimum.
    - `level`, `threshold`: the confidence level and `chi2_1` quantile `q`: the interval
        is `{value: 2 (max - profile) <= q}`.
    - `interval`: `(lower, upper)`; an end is `-inf`/`inf` when the profile does not fall
        below the threshold within the profiled range (widen `span`).
    """

    name: str = eqx.field(static=True)
    values: np.ndarray
    log_objective: np.ndarray
    converged: np.ndarray
    others: np.ndarray
    estimate: float
    max_log_objective: float
    level: float
    threshold: float
    interval: tuple[float, float]
    solve_failed: np.ndarray | None = None

    @property
    def deviance(self) -> np.ndarray:
        """`2 (max log objective - profile)`: compare with `threshold`."""
        return 2.0 * (self.max_log_objective - self.log_objective)

    def summary(self) -> str:
        lo, hi = self.interval
        failed = 0 if self.solve_failed is None else int(np.sum(self.solve_failed))
        failed_text = f"; the ODE solve failed at {failed}" if failed else ""
        return (
            f"profile of {self.name}: estimate {self.estimate:.6g}, "
            f"{100 * self.level:g}% likelihood-ratio interval [{lo:.6g}, {hi:.6g}] "
            f"({int(np.sum(self.converged))}/{len(self.converged)} points converged"
            f"{failed_text})"
        )


@eqx.filter_jit
def _paths(problem, priors, solver, u_hat, index, grids, max_steps):
    """Both directions at once (vmapped), each a warm-started scan outwards."""
    n = u_hat.shape[0]
    reverse = objective.reverse_problem(problem)

    def path(grid):
        def step(u_rest, value):
            pin = (index, value)
            if n > 1:
                u, result, _ = objective.optimise(
                    problem, priors, solver, u_rest, max_steps, pin=pin
                )
                ok = result == optx.RESULTS.successful
            else:
                u, ok = u_rest, jnp.array(True)
            log_value = objective.log_objective(
                objective.embed(u, pin), reverse, priors
            )
            ok = ok & jnp.isfinite(log_value)
            return jnp.where(ok, u, u_rest), (u, ok, log_value)

        u_rest0 = jnp.concatenate([u_hat[:index], u_hat[index + 1 :]])
        _, out = lax.scan(step, u_rest0, grid)
        return out

    return jax.vmap(path)(grids)


def _crossing(values, deviance, threshold):
    """Where the interpolated deviance first reaches `threshold` along `values`
    (ordered outwards from the estimate), or `None`."""
    above = np.nonzero(deviance >= threshold)[0]
    if above.size == 0:
        return None
    k = int(above[0])
    order = np.argsort(values)
    curve = interpolate.PchipInterpolator(values[order], deviance[order] - threshold)
    a, b = sorted((values[k - 1], values[k]))
    # Without `full_output`, `brentq` returns the root alone.
    return float(cast(float, optimize.brentq(curve, a, b)))


def profile(
    problem,
    fit_result: FitResult,
    name: str,
    *,
    parameters=None,
    level: float = 0.95,
    n_points: int = 10,
    span: float = 4.0,
    priors: dict | None = None,
    solver: optx.AbstractLeastSquaresSolver | optx.AbstractMinimiser | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
) -> ProfileResult:
    """The profile likelihood of parameter `name` and its likelihood-ratio interval.

    The parameter is stepped outwards from the estimate on both sides, in the
    unconstrained space, to `span` Laplace standard errors (of the unconstrained
    coordinate) in `n_points` steps; at each value the other free parameters are
    re-optimised, warm-started from the previous value. The interval is where
    `2 (max - profile) <= chi2_1.ppf(level)`, found by root finding (Brent) on a
    monotone cubic (PCHIP) interpolation of the profile.

    **Arguments:**

    - `problem`: the [`odeinfer.Problem`][] that was fitted (or the log-likelihood
        function, with the same `parameters=` as given to `fit`).
    - `fit_result`: its [`odeinfer.FitResult`][] (the optimum and its Laplace scale);
        a fit whose log-likelihood is `-inf` (`fit_result.solve_ok` False) is a
        `ValueError`.
    - `name`: a free parameter.
    - `parameters`: for a function `problem` only, as in [`odeinfer.fit`][].
    - `level`: confidence level of the interval.
    - `n_points`: profile points on each side of the estimate.
    - `span`: how far to go on each side, in standard errors.
    - `priors`: pass the same priors as to `fit` to profile the log posterior.
    - `solver`, `rtol`, `atol`, `max_steps`: the inner optimiser, as in
        [`odeinfer.fit`][].

    **Returns:**

    An [`odeinfer.ProfileResult`][].
    """
    problem = objective.canonical(problem, parameters, priors)
    names = objective.free_names(problem)
    if not isinstance(fit_result, FitResult):
        raise TypeError(
            "`fit_result` must be the oi.FitResult of `oi.fit(problem)` (or "
            f"`oi.multistart(...).best`); got {type(fit_result).__name__}."
        )
    if not isinstance(name, str) or name not in names:
        raise ValueError(
            f"`name` must be a free parameter, one of {list(names)}; got {name!r}."
        )
    if fit_result.names != names:
        raise ValueError(
            f"`fit_result` does not belong to `problem`: it has parameters "
            f"{list(fit_result.names)}, the problem {list(names)}."
        )
    if not bool(jnp.asarray(fit_result.solve_ok)):
        raise ValueError(
            "`fit_result` is not an optimum: its log-likelihood is -inf "
            f"({fit_result.message}). Fit again from another start before profiling."
        )
    if isinstance(level, bool) or not (
        isinstance(level, int | float | np.number) and 0 < level < 1
    ):
        raise ValueError(f"`level` must lie in (0, 1), e.g. 0.95; got {level!r}.")
    if (
        isinstance(n_points, bool)
        or not isinstance(n_points, int | np.integer)
        or n_points < 2
    ):
        raise ValueError(f"`n_points` must be an integer >= 2; got {n_points!r}.")
    if isinstance(span, bool) or not (
        isinstance(span, int | float | np.number) and np.isfinite(span) and span > 0
    ):
        raise ValueError(f"`span` must be a positive finite number; got {span!r}.")
    check_options(rtol=rtol, atol=atol, max_steps=max_steps)
    priors = objective.check_priors(priors, problem)
    if (fit_result.method == "map") != bool(priors):
        raise ValueError(
            "Pass the same `priors` to `profile` as to `fit` (the fit was "
            f"{fit_result.method.upper()})."
        )
    solver = choose_solver(problem, priors, solver, rtol, atol)
    index = names.index(name)
    u_hat = jnp.asarray(fit_result.unconstrained)
    scale = float(
        np.sqrt(np.asarray(fit_result.covariance_unconstrained)[index, index])
    )
    if not np.isfinite(scale) or scale <= 0:
        scale = 0.5
    steps = scale * span * np.linspace(1.0 / n_points, 1.0, n_points)
    grids = jnp.asarray(float(u_hat[index]) + np.stack([steps, -steps]))
    u_rest, ok, log_values = _paths(
        problem, priors, solver, u_hat, index, grids, max_steps
    )

    space = problem.parameters

    def constrained(u_value):
        u = u_hat.at[index].set(u_value)
        return float(space.from_unconstrained(u)[name])

    estimate = float(fit_result.params[name])
    best = float(fit_result.log_posterior)
    ok = np.asarray(ok)
    raw_log_values = log_values
    log_values = np.where(ok, np.asarray(log_values), np.nan)
    best = max(best, float(np.nanmax(log_values, initial=-np.inf)))
    # chi2(1).ppf(level) = z², z the normal quantile at (1 + level) / 2.
    threshold = NormalDist().inv_cdf(0.5 + level / 2) ** 2
    ends = []
    for side in range(2):
        theta = np.array([estimate] + [constrained(v) for v in np.asarray(grids[side])])
        deviance = 2.0 * (best - np.concatenate([[best], log_values[side]]))
        keep = np.isfinite(deviance)
        end = _crossing(theta[keep], deviance[keep], threshold)
        ends.append(end if end is not None else (np.inf if side == 0 else -np.inf))
    values = np.concatenate(
        [
            [constrained(v) for v in np.asarray(grids[1])][::-1],
            [estimate],
            [constrained(v) for v in np.asarray(grids[0])],
        ]
    )
    profile_values = np.concatenate(
        [log_values[1][::-1], [float(fit_result.log_posterior)], log_values[0]]
    )
    converged = np.concatenate([ok[1][::-1], [True], ok[0]])
    raw = np.asarray(raw_log_values)
    solve_failed = np.concatenate(
        [np.invert(np.isfinite(raw[1]))[::-1], [False], np.invert(np.isfinite(raw[0]))]
    )
    u_rest = np.asarray(u_rest)
    u_rest_hat = np.delete(np.asarray(u_hat), index)[None]
    others = np.concatenate([u_rest[1][::-1], u_rest_hat, u_rest[0]])
    return ProfileResult(
        name=name,
        values=values,
        log_objective=profile_values,
        converged=converged,
        others=others,
        estimate=estimate,
        max_log_objective=best,
        level=level,
        threshold=threshold,
        interval=(ends[1], ends[0]),
        solve_failed=solve_failed,
    )
