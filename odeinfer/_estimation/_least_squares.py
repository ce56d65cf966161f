"""Which problems `fit` and `multistart` solve by bounded trust-region least squares,
and the `FitResult` of such a fit (Gauss–Newton information from the Jacobian it
already has, or the Hessian)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._density import CallableLikelihood
from .._likelihood import Problem
from .._parameters import Parameters
from .._residual_likelihood import AbstractResidualLikelihood
from . import _objective as objective
from ._laplace import laplace
from ._result import FitResult
from ._trust_region import (
    AbstractBoxLeastSquares,
    Outcome,
    Residuals,
    TrustRegionReflective,
    box_from_unconstrained,
    residuals_and_jacobian_at,
    unconstrained_from_box,
)


def residual_model(
    problem,
    parameters,
    priors,
    solver,
    rtol: float,
    atol: float,
    default: type[AbstractBoxLeastSquares] = TrustRegionReflective,
) -> tuple[Residuals, AbstractBoxLeastSquares] | None:
    """The residual model and the solver when the fit is by trust-region least
    squares: `solver` is an `AbstractBoxLeastSquares` (`InteriorTrustRegion`,
    `TrustRegionReflective`, `Fides`), or `solver=None` (then `default(rtol=rtol,
    atol=atol)`) for an `AbstractResidualLikelihood` with residuals and no priors.
    `None` otherwise."""
    if isinstance(solver, AbstractBoxLeastSquares):
        name = type(solver).__name__
        if priors:
            raise ValueError(
                f"`solver={name}` minimises a sum of squares and cannot "
                "include `priors`; use optimistix.BFGS for MAP estimation."
            )
        if isinstance(problem, AbstractResidualLikelihood):
            problem.check_residuals()
            space = problem.parameters if parameters is None else Parameters(parameters)
            return Residuals(problem, space), solver
        if isinstance(problem, Problem):
            if parameters is not None:
                raise ValueError(
                    "`parameters` is only for a plain log-likelihood function; an "
                    "oi.Problem carries its own parameters (leave `parameters=None`)."
                )
            problem = objective.canonical(problem)
            if not objective.has_gaussian_residuals(problem):
                raise ValueError(
                    f"`solver={name}` needs standardised residuals, which "
                    "exist only when all noise is Gaussian with fixed scales and there "
                    "are no event-time data; use optimistix.BFGS (or solver=None)."
                )
            return Residuals(problem, problem.parameters), solver
        raise TypeError(
            f"`solver={name}` needs residuals: pass an oi.Problem with "
            "Gaussian noise, or an AbstractResidualLikelihood such as the "
            "odeinfer.petab.PEtabProblem itself (not its `log_likelihood` method); got "
            f"{type(problem).__name__}."
        )
    if (
        solver is not None
        or priors
        or not isinstance(problem, AbstractResidualLikelihood)
    ):
        return None
    try:
        problem.check_residuals()
    except ValueError:
        return None
    space = problem.parameters if parameters is None else Parameters(parameters)
    return Residuals(problem, space), default(rtol=rtol, atol=atol)  # pyright: ignore[reportCallIssue]  (the concrete solvers take rtol, atol)


def as_function(problem, parameters):
    """An `AbstractResidualLikelihood` as the plain `(log_likelihood, parameters)` pair
    the other optimisers take; any other problem as it is."""
    if isinstance(problem, AbstractResidualLikelihood):
        return problem.log_likelihood, (
            problem.parameters if parameters is None else parameters
        )
    return problem, parameters


def check_information(information, model: Residuals) -> str:
    """The default is the Fisher information from the residuals' Jacobian (`JᵀJ`, or
    the likelihood's own formula where `r` carries noise residuals): first
    derivatives only, which is also what each start of a multistart pays for. The
    observed information (Hessian) where the likelihood cannot form it."""
    if information is None:
        return "fisher" if model.has_fisher_information else "hessian"
    if information not in ("hessian", "fisher"):
        raise ValueError(
            f"`information` must be one of ('hessian', 'fisher'); got {information!r}."
        )
    if information == "fisher" and not model.has_fisher_information:
        raise ValueError(
            '`information="fisher"`: the residuals include noise residuals for '
            "estimated σ and the likelihood does not say how to form the Fisher "
            'information from them (`fisher_information`); use "hessian".'
        )
    return information


class _Approximation(eqx.Module):
    gradient: jax.Array
    information: jax.Array
    covariance: jax.Array
    covariance_unconstrained: jax.Array


@eqx.filter_jit
def _gauss_newton(model: Residuals, v, r, jac) -> _Approximation:
    """The Fisher information from the residuals `r` and their Jacobian `jac` in the
    box coordinates `v` (`JᵀJ`, or the likelihood's formula where `r` carries noise
    residuals), mapped to the unconstrained `u` (`FitResult`'s space) and to the
    constrained parameters. `r` and `jac` come from the optimiser's own compiled
    call, so no solve is compiled again here."""
    info_v = model.fisher_information(r, jac)
    u = unconstrained_from_box(model, v)
    dv_du = jax.jacfwd(lambda u_: box_from_unconstrained(model.parameters, u_))(u)
    positive_definite = jnp.all(jnp.linalg.eigvalsh(info_v) > 0)
    cov_v = jnp.where(positive_definite, jnp.linalg.inv(info_v), jnp.nan)
    du_dv = jnp.linalg.inv(dv_du)
    dtheta_dv = jax.jacfwd(
        lambda v_: objective.constrained_vector(model, model.params(v_))
    )(v)
    return _Approximation(
        gradient=dv_du.T @ (-jac.T @ r),
        information=dv_du.T @ info_v @ dv_du,
        covariance=dtheta_dv @ cov_v @ dtheta_dv.T,
        covariance_unconstrained=du_dv @ cov_v @ du_dv.T,
    )


def fit_result(
    model: Residuals,
    solver: AbstractBoxLeastSquares,
    outcome: Outcome,
    information: str,
) -> FitResult:
    v = jnp.asarray(outcome.v)
    u = unconstrained_from_box(model, v)
    params = model.params(v)
    solve_ok = bool(np.isfinite(outcome.log_likelihood))
    if information == "fisher":
        r, jac = residuals_and_jacobian_at(model, v)
        approx = _gauss_newton(model, v, r, jac)
    else:
        likelihood = model.likelihood
        if isinstance(likelihood, AbstractResidualLikelihood):
            likelihood = CallableLikelihood(likelihood.log_likelihood, model.parameters)
        approx = laplace(likelihood, {}, u, "hessian")
    failure = (
        ""
        if solve_ok
        else f"{outcome.message}; the log-likelihood is -inf at "
        f"{objective.failure_point(model, u)}. Start elsewhere (`init=`, "
        "`odeinfer.multistart`) or make the solve succeed there."
    )
    value = jnp.asarray(outcome.log_likelihood)
    return FitResult(
        names=objective.free_names(model),
        params=dict(params),
        unconstrained=u,
        log_likelihood=value,
        log_posterior=value,
        result=outcome.result,
        num_steps=jnp.asarray(outcome.num_steps),
        gradient=approx.gradient,
        information_matrix=approx.information,
        covariance=approx.covariance,
        covariance_unconstrained=approx.covariance_unconstrained,
        method="mle",
        solver=type(solver).__name__,
        information=information,
        solve_ok=jnp.asarray(solve_ok),
        failure=failure,
        num_evaluations=jnp.asarray(outcome.num_evaluations),
    )
