"""The objectives that estimation optimises, as functions of the unconstrained vector `u`.

Everything here is a pure function of `u` (the free parameters on the unconstrained real
line, in `problem.parameters.names` order) so optimistix can take its Jacobians, gradients
and Hessians. A *pin* fixes one coordinate of `u` (for profile likelihoods): the optimiser
then sees the remaining coordinates only.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._likelihood import log_likelihood, residuals


def canonical(problem):
    """`problem` after a pytree round trip. JAX rebuilds dicts with sorted keys, so a
    problem seen inside `jax.jit` may list its parameters in another order than the one
    built by the user; estimation works on the round-tripped problem so that the
    unconstrained vectors mean the same inside and outside compiled code."""
    leaves, treedef = jax.tree_util.tree_flatten(problem)
    return jax.tree_util.tree_unflatten(treedef, leaves)


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
    current = getattr(problem, "adjoint", None)
    if current is None or type(current) is type(adjoint):
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
    """Log-likelihood (+ log prior for MAP) at unconstrained `u`. MAP is the mode of the
    posterior density of the *constrained* parameters (no Jacobian term), so it does not
    depend on the transforms used for optimisation."""
    params = problem.parameters.from_unconstrained(u)
    return log_likelihood(problem, params) + log_prior(priors, params)


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
    `init`; a value outside a parameter's support is a ValueError."""
    space = problem.parameters
    params = dict(space.initial())
    if init is not None:
        if not isinstance(init, dict):
            raise TypeError(f"`init` must be a dict of parameter values; got {init!r}.")
        check_names("init", init, problem)
        params.update({k: jnp.asarray(v, dtype=float) for k, v in init.items()})
    for name in free_names(problem):
        value = np.asarray(params[name], dtype=float)
        u = np.asarray(space.to_unconstrained({**params, name: value}))
        if not np.all(np.isfinite(value)) or not np.all(np.isfinite(u)):
            raise ValueError(
                f"Starting value {name}={value} is outside the support of parameter "
                f"`{name}` ({space.specs[name]!r}). Give a value strictly inside it."
            )
    return np.asarray(space.to_unconstrained(params), dtype=float)


def check_priors(priors, problem) -> dict:
    if priors is None:
        return {}
    if not isinstance(priors, dict):
        raise TypeError(
            "`priors` must be a dict {parameter name: numpyro distribution}; got "
            f"{type(priors).__name__}."
        )
    check_names("priors", priors, problem)
    for name, prior in priors.items():
        if not hasattr(prior, "log_prob"):
            raise TypeError(
                f"`priors[{name!r}]` must be a distribution with `log_prob` (e.g. "
                f"numpyro.distributions.LogNormal(0, 1)); got {prior!r}."
            )
    return dict(priors)
