"""The objectives that estimation optimises, as functions of the unconstrained vector `u`.

Everything here is a pure function of `u` (the free parameters on the unconstrained real
line, in `problem.parameters.names` order) so optimistix can take its Jacobians, gradients
and Hessians. A *pin* fixes one coordinate of `u` (for profile likelihoods): the optimiser
then sees the remaining coordinates only.
"""

from collections.abc import Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._density import (
    CallableLikelihood,
    LogDensity,
    as_likelihood,
    log_likelihood_and_status,
)
from .._density import check_priors as check_density_priors
from .._likelihood import Problem, residuals

# The estimators' likelihood types are the density's.
CallableProblem = CallableLikelihood


def canonical(problem, parameters=None, priors=None):
    """`problem` as a likelihood (`oi.Problem` or a function wrapped with its
    `parameters`, or with parameters on the priors' supports) after a pytree round
    trip. JAX rebuilds dicts with sorted keys, so a problem seen inside `jax.jit` may
    list its parameters in another order than the one built by the user; estimation
    works on the round-tripped problem so that the unconstrained vectors mean the same
    inside and outside compiled code."""
    if not isinstance(problem, Problem | CallableLikelihood) and not callable(problem):
        raise TypeError(
            "`problem` must be an oi.Problem, or a log-likelihood function "
            f"`fn(params) -> value` with `parameters=`; got {type(problem).__name__}."
        )
    if isinstance(priors, Mapping) and not priors:
        priors = None
    problem = as_likelihood(problem, parameters, priors)
    leaves, treedef = jax.tree_util.tree_flatten(problem)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def log_likelihood(problem, params) -> jax.Array:
    """The log-likelihood of an oi.Problem or of a wrapped function; `-inf` where the
    function reports failure or returns NaN."""
    return log_likelihood_and_status(problem, params)[0]


def free_names(problem) -> tuple[str, ...]:
    return tuple(problem.parameters.names)


def constrained_vector(problem, params) -> jax.Array:
    """The free parameters (constrained scale) as one vector, in `names` order."""
    return jnp.concatenate(
        [jnp.ravel(jnp.asarray(params[n], dtype=float)) for n in free_names(problem)]
    )


def with_adjoint(problem, adjoint):
    """`problem` with its diffrax adjoint replaced (forward mode for Jacobians and
    Hessians, reverse mode for gradients of a scalar)."""
    if not isinstance(problem, Problem) or type(problem.adjoint) is type(adjoint):
        return problem
    return eqx.tree_at(lambda p: p.adjoint, problem, adjoint)


def forward_problem(problem):
    return with_adjoint(problem, diffrax.ForwardMode())


def reverse_problem(problem):
    return with_adjoint(problem, diffrax.RecursiveCheckpointAdjoint())


def embed(u_rest, pin):
    """Insert the pinned coordinate `(index, value)` into `u_rest` (no pin: `u_rest`)."""
    if pin is None:
        return u_rest
    index, value = pin
    return jnp.concatenate([u_rest[:index], jnp.reshape(value, (1,)), u_rest[index:]])


def log_prior(priors, params) -> jax.Array:
    """Sum of the priors' log densities at the constrained values (0 without priors)."""
    total = jnp.array(0.0)
    for name, prior in priors.items():
        total = total + jnp.sum(prior.log_prob(params[name]))
    return total


def log_objective(u, problem, priors):
    """Log-likelihood (+ log prior for MAP) at unconstrained `u`: the one
    `LogDensity` without the Jacobian term. MAP is the mode of the posterior
    density of the *constrained* parameters, so it does not depend on the transforms
    used for optimisation."""
    return LogDensity(problem, priors, jacobian=False)(u)[0]


def negative_log_objective(u_rest, args):
    problem, priors, pin = args
    value = -log_objective(embed(u_rest, pin), problem, priors)
    # A failed solve gives log-likelihood -inf: keep it as +inf (line searches reject it).
    return jnp.where(jnp.isnan(value), jnp.inf, value)


def residual_vector(u_rest, args):
    problem, _, pin = args
    params = problem.parameters.from_unconstrained(embed(u_rest, pin))
    return residuals(problem, params)


def has_gaussian_residuals(problem) -> bool:
    """Whether `odeinfer.residuals` is defined for `problem` (Gaussian noise with fixed
    scales, no event-time or censored data): traced abstractly, no work done."""
    if not isinstance(problem, Problem):
        return False
    try:
        jax.eval_shape(lambda p: residuals(problem, p), problem.parameters.initial())
    except (ValueError, TypeError, NotImplementedError):
        return False
    return True


def is_least_squares(solver) -> bool:
    return isinstance(solver, optx.AbstractLeastSquaresSolver) and not isinstance(
        solver, optx.AbstractMinimiser
    )


def optimise(problem, priors, solver, u0, max_steps, pin=None):
    """One optimisation from `u0` (traceable, vmappable). Returns `(u, result, steps)`.

    Least-squares solvers (Levenberg–Marquardt, Gauss–Newton) minimise
    `0.5 * sum(residuals**2)` with forward-mode Jacobians; minimisers (BFGS) minimise the
    negative log-likelihood (plus negative log prior) with reverse-mode gradients.
    """
    if is_least_squares(solver):
        args = (forward_problem(problem), priors, pin)
        sol = optx.least_squares(
            residual_vector, solver, u0, args, max_steps=max_steps, throw=False
        )
    else:
        args = (reverse_problem(problem), priors, pin)
        sol = optx.minimise(
            negative_log_objective, solver, u0, args, max_steps=max_steps, throw=False
        )
    return sol.value, sol.result, sol.stats["num_steps"]


def check_names(kind: str, given, problem) -> None:
    names = free_names(problem)
    unknown = [n for n in given if n not in names]
    if unknown:
        raise ValueError(
            f"`{kind}` names unknown or fixed parameters {unknown}; the free parameters "
            f"are {list(names)}."
        )


def initial_unconstrained(problem, init) -> np.ndarray:
    """The unconstrained starting point from the space's initial values updated by
    `init`; a value outside a parameter's support is a ValueError naming it."""
    space = problem.parameters
    params = dict(space.initial())
    if init is not None:
        if not isinstance(init, Mapping):
            raise TypeError(
                "`init` must be a dict {parameter name: starting value}; got "
                f"{init!r:.200}."
            )
        check_names("init", init, problem)
        for name, value in init.items():
            try:
                value = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise TypeError(
                    f"`init['{name}']` must be a number (or an array of numbers); got "
                    f"{value!r:.100}."
                ) from None
            spec = space.specs[name]
            if value.shape != spec.shape:
                raise ValueError(
                    f"`init['{name}']` has shape {value.shape}; parameter `{name}` has "
                    f"shape {spec.shape}."
                )
            params[name] = jnp.asarray(value)
    for name in free_names(problem):
        spec = space.specs[name]
        value = np.asarray(params[name], dtype=float)
        u = np.asarray(spec.transform().inv(jnp.asarray(value)))
        if not spec.contains(value) or not np.all(np.isfinite(u)):
            raise ValueError(
                f"`init['{name}']` = {value} is outside the support of parameter "
                f"`{name}`, ({spec.lower}, {spec.upper}) for {type(spec).__name__}. "
                "Give a value strictly inside it."
            )
    return np.asarray(space.to_unconstrained(params), dtype=float)


def failure_point(problem, u) -> str:
    """`θ = {name: value, ...}` at unconstrained `u`, for messages."""
    params = problem.parameters.from_unconstrained(jnp.asarray(u))

    def text(value):
        value = np.asarray(value)
        if value.ndim == 0:
            return f"{float(value):.6g}"
        return np.array2string(value, precision=6)

    return (
        "θ = {"
        + ", ".join(f"{n}: {text(params[n])}" for n in free_names(problem))
        + "}"
    )


def check_priors(priors, problem) -> dict:
    """`priors` (or `None`) for MAP: numpyro distributions on some of the free
    parameters, checked as every estimator and sampler checks them."""
    return check_density_priors(priors, problem.parameters, complete=False)
