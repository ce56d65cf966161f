"""`fit`: maximum-likelihood and MAP estimation with optimistix."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._likelihood import log_likelihood_ok
from . import _least_squares as least_squares
from . import _objective as objective
from ._box import optimise as optimise_box
from ._errors import FitError
from ._laplace import laplace
from ._result import FitResult
from ._trust_region import (
    AbstractBoxLeastSquares,
    box_from_unconstrained,
)

_INFORMATION = ("hessian", "fisher")


def choose_solver(problem, priors, solver, rtol, atol):
    """The default: Levenberg–Marquardt on the standardised residuals when every
    observation is Gaussian with a fixed scale and there are no priors; BFGS on the
    negative log-likelihood (plus negative log prior) otherwise."""
    if solver is None:
        if not priors and objective.has_gaussian_residuals(problem):
            return optx.LevenbergMarquardt(rtol=rtol, atol=atol)
        return optx.BFGS(rtol=rtol, atol=atol)
    if not isinstance(solver, optx.AbstractLeastSquaresSolver | optx.AbstractMinimiser):
        raise TypeError(
            "`solver` must be an optimistix least-squares solver (e.g. "
            "optimistix.LevenbergMarquardt(rtol=1e-8, atol=1e-8)) or minimiser (e.g. "
            "optimistix.BFGS(rtol=1e-8, atol=1e-8)), or a bounded least-squares "
            f"solver (oi.TrustRegionReflective(), oi.Fides()); got {solver!r}."
        )
    if objective.is_least_squares(solver):
        if priors:
            raise ValueError(
                f"`solver={type(solver).__name__}` minimises a sum of squares and cannot "
                "include `priors`; use optimistix.BFGS for MAP estimation."
            )
        if not objective.has_gaussian_residuals(problem):
            raise ValueError(
                f"`solver={type(solver).__name__}` needs standardised residuals, which "
                "exist only when all noise is Gaussian with fixed scales and there are no "
                "event-time data; use optimistix.BFGS (or solver=None)."
            )
    return solver


def check_options(**options) -> None:
    """Tolerances positive and finite, `max_steps` a positive integer, `throw` a bool
    (numbers from the user, checked before any compilation)."""
    for name in ("rtol", "atol"):
        if name in options:
            value = options[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.number)
                or not (np.isfinite(value) and value > 0)
            ):
                raise ValueError(
                    f"`{name}` must be a positive finite number (e.g. 1e-8); got "
                    f"{value!r}."
                )
    if "max_steps" in options:
        value = options["max_steps"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < 1
        ):
            raise ValueError(
                f"`max_steps` must be a positive integer (e.g. 256); got {value!r}."
            )
    if "throw" in options and not isinstance(options["throw"], bool):
        raise TypeError(f"`throw` must be True or False; got {options['throw']!r}.")


def check_information(information, solver) -> str:
    if information is None:
        return "hessian"
    if information not in _INFORMATION:
        raise ValueError(
            f"`information` must be one of {_INFORMATION}; got {information!r}."
        )
    return information


@eqx.filter_jit
def _optimise_jit(problem, priors, solver, u0, max_steps):
    return objective.optimise(problem, priors, solver, u0, max_steps)


@eqx.filter_jit
def _status_at(problem, u):
    """Log-likelihood at unconstrained `u` and whether the solves succeeded there."""
    problem = objective.reverse_problem(problem)
    params = problem.parameters.from_unconstrained(u)
    if isinstance(problem, objective.CallableProblem):
        value = objective.log_likelihood(problem, params)
        return value, jnp.isfinite(value)
    value, ok = log_likelihood_ok(problem, params)
    return value, jnp.all(ok)


def describe_failure(problem, u0, u) -> str:
    """Where and why the log-likelihood is `-inf`: at the start `u0` or only at the
    end point `u`; a failed solve or a prediction outside a noise model's domain."""
    start_value, start_ok = _status_at(problem, jnp.asarray(u0))
    at_start = not bool(jnp.isfinite(start_value))
    point = u0 if at_start else u
    ok = bool(start_ok) if at_start else bool(_status_at(problem, jnp.asarray(u))[1])
    where = "the starting point" if at_start else "the end point"
    if isinstance(problem, objective.CallableProblem):
        cause = "the log-likelihood function gave -inf (or NaN, or ok=False)"
    elif not ok:
        cause = "the ODE solve failed"
    else:
        cause = (
            "the log-likelihood is -inf (a prediction outside a noise model's domain)"
        )
    fix = (
        "Start elsewhere (`init=`, or `odeinfer.multistart`), or make the solve "
        "succeed there (a larger `max_steps`, a stiff solver such as "
        "`oi.Rodas5P()` or `oi.FusedRodas5P()` in the Problem)."
        if at_start
        else "The optimiser stopped where the log-likelihood is -inf and its gradient "
        "exactly 0, which is not an optimum: start elsewhere (`init=`, "
        "`odeinfer.multistart`) or bound the parameters (`oi.Bounded`) away from "
        "that region."
    )
    return f"{cause} at {where} {objective.failure_point(problem, point)}. {fix}"


def make_result(
    problem, priors, solver, u, result, num_steps, information, u0=None
) -> FitResult:
    approx = laplace(problem, priors, u, information)
    params = problem.parameters.from_unconstrained(u)
    solve_ok = bool(jnp.isfinite(approx.log_likelihood))
    failure = "" if solve_ok else describe_failure(problem, u if u0 is None else u0, u)
    return FitResult(
        names=objective.free_names(problem),
        params=dict(params),
        unconstrained=u,
        log_likelihood=approx.log_likelihood,
        log_posterior=approx.log_likelihood + approx.log_prior,
        result=result,
        num_steps=num_steps,
        gradient=approx.gradient,
        information_matrix=approx.information,
        covariance=approx.covariance,
        covariance_unconstrained=approx.covariance_unconstrained,
        method="map" if priors else "mle",
        solver=type(solver).__name__,
        information=information,
        solve_ok=jnp.asarray(solve_ok),
        failure=failure,
    )


def raise_if_failed(result, what: str) -> None:
    if not bool(result.solve_ok):
        raise FitError(
            f"{what} failed: {result.failure} (Pass `throw=False` to inspect the "
            "result.)",
            result,
        )
    if not bool(result.successful):
        raise FitError(
            f"{what} did not converge: {result.result}. Increase `max_steps`, try other "
            "starting values (`init=`) or `odeinfer.multistart`, or pass `throw=False` "
            "to inspect the result.",
            result,
        )


def fit(
    problem,
    *,
    parameters=None,
    init: dict | None = None,
    priors: dict | None = None,
    solver: AbstractBoxLeastSquares
    | optx.AbstractLeastSquaresSolver
    | optx.AbstractMinimiser
    | None = None,
    information: str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
    throw: bool = True,
) -> FitResult:
    """Maximum-likelihood (or, with `priors`, maximum a posteriori) estimates of the free
    parameters of `problem`, with Laplace standard errors and correlations.

    The optimistix solvers work on the unconstrained space of `problem.parameters`
    (log for `Positive`, logit for `Bounded`); the bounded least-squares solvers
    ([`odeinfer.InteriorTrustRegion`][], [`odeinfer.TrustRegionReflective`][],
    [`odeinfer.Fides`][]) work on the box of the `Bounded` parameters directly.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][], a log-likelihood function
        `fn(params: dict) -> value` (or `-> (value, ok)`) written with `jax.numpy`, or
        an [`odeinfer.AbstractResidualLikelihood`][] (an imported
        [`odeinfer.petab.PEtabProblem`][]).
    - `parameters`: for a function `problem`: its [`odeinfer.Parameters`][] (or a
        dict of specs, `{"k": oi.Positive(init=1.0)}`): names, starting values and
        supports. For an `AbstractResidualLikelihood`: optional, replaces its own
        (other bounds or starting values, the same names).
    - `init`: starting values `{name: value}` (constrained scale) overriding the
        parameters' `init`; a value outside a parameter's support is a `ValueError`
        naming it.
    - `priors`: `{name: numpyro distribution}` for MAP estimation (the mode of the
        posterior density of the constrained parameters).
    - `solver`: [`odeinfer.InteriorTrustRegion`][] (compiled),
        [`odeinfer.TrustRegionReflective`][], [`odeinfer.Fides`][] (bounded
        least squares on the box, for residual likelihoods) or an optimistix solver.
        `None`
        chooses `TrustRegionReflective` for an `AbstractResidualLikelihood` with
        residuals (every PEtab noise model normal) and no priors;
        `optimistix.LevenbergMarquardt` on [`odeinfer.residuals`][] (forward-mode
        Jacobians through the solves) for an `oi.Problem` whose observations are all
        Gaussian with a fixed scale and no priors; `optimistix.BFGS` on the negative
        log-likelihood (reverse-mode gradients) otherwise.
    - `information`: `"hessian"` (observed information, the Hessian of the negative
        log-likelihood; the default, except as below) or `"fisher"` (Gauss–Newton
        `JᵀJ` of the standardised residuals; Gaussian noise only; the default with
        the bounded least-squares solvers, from the residuals' Jacobian, with the
        likelihood's own formula where the residuals carry noise residuals, see
        `AbstractResidualLikelihood.fisher_information`). Computed with forward-mode
        autodiff and mapped to the constrained parameters by the delta method.
    - `rtol`, `atol`: the optimiser's convergence tolerances (on the unconstrained
        parameters and the objective; scipy's `ftol`/`xtol` and `gtol` for the default
        `TrustRegionReflective`; a solver passed in keeps its own).
    - `max_steps`: the optimiser's iteration budget (residual evaluations for
        `TrustRegionReflective`, iterations for `Fides`, residual + Jacobian
        evaluations for `InteriorTrustRegion`).
    - `throw`: raise an [`odeinfer.FitError`][] (a `RuntimeError` carrying the
        `FitResult`) if the optimiser did not converge or the
        log-likelihood at the result is `-inf` (the ODE solve failed there: the message
        says whether at the starting point or where the optimiser stopped, and the
        parameter values).

    **Returns:**

    An [`odeinfer.FitResult`][]: `estimates`, `log_likelihood`, `result`,
    `successful`, `solve_ok`, `message`, `standard_errors`, `correlation`,
    `intervals(level)`, `summary()`.

    !!! Example

        ```python
        result = oi.fit(problem)
        print(result.summary())
        ```
    """
    check_options(rtol=rtol, atol=atol, max_steps=max_steps, throw=throw)
    boxed = least_squares.residual_model(
        problem, parameters, priors, solver, rtol, atol
    )
    if boxed is not None:
        model, box_solver = boxed
        u0 = objective.initial_unconstrained(model, init)
        information = least_squares.check_information(information, model)
        outcome = optimise_box(
            model,
            box_solver,
            box_from_unconstrained(model.parameters, jnp.asarray(u0)),
            int(max_steps),
        )
        fit_result = least_squares.fit_result(model, box_solver, outcome, information)
        if throw:
            raise_if_failed(fit_result, "The optimisation")
        return fit_result
    problem, parameters = least_squares.as_function(problem, parameters)
    problem = objective.canonical(problem, parameters, priors)
    priors = objective.check_priors(priors, problem)
    u0 = objective.initial_unconstrained(problem, init)
    solver = choose_solver(problem, priors, solver, rtol, atol)
    information = check_information(information, solver)
    if information == "fisher" and not objective.has_gaussian_residuals(problem):
        raise ValueError(
            '`information="fisher"` needs Gaussian noise with fixed scales; use "hessian".'
        )
    u, result, num_steps = _optimise_jit(
        problem, priors, solver, jnp.asarray(u0), int(max_steps)
    )
    fit_result = make_result(
        problem, priors, solver, u, result, num_steps, information, u0=u0
    )
    if throw:
        raise_if_failed(fit_result, "The optimisation")
    return fit_result
