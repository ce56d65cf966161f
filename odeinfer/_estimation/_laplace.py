"""The Laplace approximation at an optimum: observed information, covariance, delta method.

The information matrix is computed in the unconstrained space `u` (where the optimiser
works) with forward-over-forward autodiff through the ODE solves and events
(`diffrax.ForwardMode`): either the Hessian of the negative log objective (observed
information, `information="hessian"`) or the Gauss–Newton matrix `JᵀJ` of the standardised
residuals (expected/Fisher information for Gaussian noise, `information="fisher"`). Its
inverse is mapped to the constrained parameters by the delta method,
`Cov(θ) = (dθ/du) Cov(u) (dθ/du)ᵀ`. At an MLE the gradient vanishes, so this equals the
inverse Hessian computed directly in the constrained space.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _objective as objective


class Laplace(eqx.Module):
    log_likelihood: jax.Array
    log_prior: jax.Array
    gradient: jax.Array  # of the log objective w.r.t. u
    information: jax.Array  # in u
    covariance_unconstrained: jax.Array
    covariance: jax.Array  # of the constrained free parameters
    positive_definite: jax.Array


@eqx.filter_jit
def laplace(problem, priors, u, information: str) -> Laplace:
    problem = objective.forward_problem(problem)
    space = problem.parameters

    def log_obj(u_):
        return objective.log_objective(u_, problem, priors)

    if information == "fisher":
        jac = jax.jacfwd(
            lambda u_: objective.residual_vector(u_, (problem, priors, None))
        )(u)
        info = jac.T @ jac
        if priors:
            info = info - jax.jacfwd(
                jax.jacfwd(
                    lambda u_: objective.log_prior(priors, space.from_unconstrained(u_))
                )
            )(u)
    else:
        info = -jax.jacfwd(jax.jacfwd(log_obj))(u)
    info = 0.5 * (info + info.T)
    gradient = jax.jacfwd(log_obj)(u)
    params = space.from_unconstrained(u)
    eigenvalues = jnp.linalg.eigvalsh(info)
    positive_definite = jnp.all(eigenvalues > 0)
    cov_u = jnp.linalg.inv(info)
    cov_u = jnp.where(positive_definite, cov_u, jnp.nan)
    jac_transform = jax.jacfwd(
        lambda u_: objective.constrained_vector(problem, space.from_unconstrained(u_))
    )(u)
    covariance = jac_transform @ cov_u @ jac_transform.T
    return Laplace(
        log_likelihood=objective.log_likelihood(problem, params),
        log_prior=objective.log_prior(priors, params),
        gradient=gradient,
        information=info,
        covariance_unconstrained=cov_u,
        covariance=covariance,
        positive_definite=positive_definite,
    )
