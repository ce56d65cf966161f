"""`TrustRegionReflective`: bounded trust-region least squares on the box of the
parameters' bounds, for likelihoods with standardised residuals.

Neither optimistix nor lineax has a bounded least-squares solver (optimistix's
Levenberg–Marquardt works on the unconstrained scale, where the logit transform of a
parameter bounded over 16 decades flattens the objective near the bounds, and
Fujita_SciSignal2010's scaling parameters sit there). So this wraps
`scipy.optimize.least_squares(method="trf")` (Branch, Coleman & Li 1999, the
reflective interior trust-region method pyPESTO's Fides also builds on) on a jitted
residual and a jitted forward-mode Jacobian; the host loop costs ~0.1 ms per iteration
against 1-130 ms per Jacobian on the PEtab benchmark problems.
"""

import math
import time
from typing import NamedTuple, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import scipy.optimize
from jaxtyping import Array, Float

from .._likelihood import Problem, residuals
from .._parameters import Bounded, Parameters
from .._residual_likelihood import AbstractResidualLikelihood
from . import _objective as objective


class TrustRegionReflective(eqx.Module):
    """Bounded trust-region least squares for [`odeinfer.fit`][] and
    [`odeinfer.multistart`][]: minimises ½‖r(θ)‖² of the standardised residuals with
    `scipy.optimize.least_squares(method="trf")` (trust-region reflective, Branch,
    Coleman & Li 1999, SIAM J. Sci. Comput. 21:1), a jitted residual and a jitted
    forward-mode Jacobian (`jax.jacfwd`, which suits the forward-sensitivity solvers).

    It works **on the box** of [`odeinfer.Bounded`][] parameters directly (no logit
    transform, so the objective keeps its shape up to the bounds, where optima of
    PEtab problems often lie); other parameters are optimised on their unconstrained
    scale (log for [`odeinfer.Positive`][]). A residual vector that is not finite
    (a failed solve) rejects the step and shrinks the trust region.

    The default of `oi.fit` / `oi.multistart` for an
    [`odeinfer.AbstractResidualLikelihood`][] (an imported PEtab problem) with
    residuals and without priors; pass it as `solver=` for an [`odeinfer.Problem`][]
    with Gaussian noise of fixed scale.

    **Arguments:**

    - `rtol`: scipy's `ftol` and `xtol` (relative change of the cost and of the
        parameters).
    - `atol`: scipy's `gtol` (scaled gradient norm).
    - `x_scale`: scipy's `x_scale`; `"jac"` (default) scales each parameter by its
        Jacobian column norm (Moré 1978), which suits parameters of very different
        sensitivity.

    `fit`'s `max_steps` caps the residual evaluations (scipy's `max_nfev`).
    """

    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-8)
    x_scale: str | float = eqx.field(static=True, default="jac")


class Residuals(eqx.Module):
    """A likelihood with residuals and the parameters its box is made of."""

    likelihood: AbstractResidualLikelihood | Problem
    parameters: Parameters

    def params(self, v: Float[Array, " n"]) -> dict:
        """All parameters at the box vector `v` (constrained for `Bounded`,
        unconstrained for the others)."""
        out = dict(self.parameters.fixed)
        for name, spec, piece in self.parameters._split(v):
            out[name] = piece if isinstance(spec, Bounded) else spec.transform()(piece)
        return {n: out[n] for n in self.parameters.order}

    def residuals(self, v: Float[Array, " n"]) -> Float[Array, " m"]:
        params = self.params(v)
        if isinstance(self.likelihood, Problem):
            r = residuals(objective.forward_problem(self.likelihood), params)
            return cast(Float[Array, " m"], r)  # without `with_status`: `r` alone
        return self.likelihood.residuals(params)

    def log_likelihood(self, v: Float[Array, " n"]) -> Float[Array, ""]:
        params = self.params(v)
        if isinstance(self.likelihood, Problem):
            return objective.log_likelihood(self.likelihood, params)
        value = self.likelihood.log_likelihood(params)
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    @property
    def fisher_from_residuals(self) -> bool:
        if isinstance(self.likelihood, Problem):
            return True
        return self.likelihood.fisher_from_residuals


def box(parameters: Parameters) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the box vector."""
    lower, upper = [], []
    for name in parameters.names:
        spec = parameters.specs[name]
        bounded = isinstance(spec, Bounded)
        lower += [spec.lower if bounded else -math.inf] * spec.size
        upper += [spec.upper if bounded else math.inf] * spec.size
    return np.asarray(lower, float), np.asarray(upper, float)


def box_from_unconstrained(parameters: Parameters, u) -> Float[Array, " n"]:
    params = parameters.from_unconstrained(u)
    parts = [
        jnp.ravel(params[name]) if isinstance(spec, Bounded) else jnp.ravel(piece)
        for name, spec, piece in parameters._split(u)
    ]
    return jnp.concatenate(parts)


def unconstrained_from_box(model: Residuals, v) -> Float[Array, " n"]:
    return model.parameters.to_unconstrained(model.params(v))


@eqx.filter_jit
def residuals_at(model: Residuals, v):
    return model.residuals(v)


@eqx.filter_jit
def jacobian_at(model: Residuals, v):
    return jax.jacfwd(model.residuals)(v)


@eqx.filter_jit
def log_likelihood_at(model: Residuals, v):
    return model.log_likelihood(v)


class Outcome(NamedTuple):
    """One trust-region optimisation, on the host."""

    v: np.ndarray  # the end point (box vector)
    result: optx.RESULTS
    num_steps: int  # Jacobian evaluations (accepted iterations + 1)
    num_evaluations: int  # residual evaluations
    log_likelihood: float
    seconds: float
    message: str


def inside(v, lower, upper) -> np.ndarray:
    """`v` moved strictly inside the box by 1e-12 of its width (scipy keeps its iterates
    strictly feasible, but rounding can put one on a bound, where `Bounded`'s logit is
    infinite)."""
    width = np.where(np.isfinite(upper - lower), upper - lower, 0.0)
    return np.clip(v, lower + 1e-12 * width, upper - 1e-12 * width)


def optimise(
    model: Residuals, solver: TrustRegionReflective, v0, max_evaluations: int
) -> Outcome:
    """One bounded trust-region least-squares optimisation from the box vector `v0`."""
    lower, upper = box(model.parameters)
    v0 = inside(np.asarray(v0, float), lower, upper)
    start = time.perf_counter()

    def fun(v):
        return np.asarray(residuals_at(model, jnp.asarray(v)))

    def jac(v):
        return np.asarray(jacobian_at(model, jnp.asarray(v)))

    first = fun(v0)
    if not np.all(np.isfinite(first)):
        value = float(log_likelihood_at(model, jnp.asarray(v0)))
        return Outcome(
            v0,
            optx.RESULTS.nonlinear_divergence,
            0,
            1,
            value if np.isfinite(value) else -math.inf,
            time.perf_counter() - start,
            "the residuals are not finite at the starting point (the solve failed)",
        )
    jacobian_failed = []

    def checked_jac(v):
        matrix = jac(v)
        if not np.all(np.isfinite(matrix)):
            # A finite residual with a non-finite Jacobian: stop rather than step on
            # a wrong model of the objective.
            jacobian_failed.append(v)
            raise FloatingPointError
        return matrix

    try:
        sol = scipy.optimize.least_squares(
            fun,
            v0,
            jac=checked_jac,  # pyright: ignore[reportArgumentType]  (a callable is allowed)
            bounds=(lower, upper),
            method="trf",
            x_scale=solver.x_scale,  # pyright: ignore[reportArgumentType]
            ftol=solver.rtol,
            xtol=solver.rtol,
            gtol=solver.atol,
            max_nfev=int(max_evaluations),
        )
    except FloatingPointError:
        v = inside(np.asarray(jacobian_failed[-1]), lower, upper)
        return Outcome(
            v,
            optx.RESULTS.nonlinear_divergence,
            0,
            0,
            float(log_likelihood_at(model, jnp.asarray(v))),
            time.perf_counter() - start,
            "the Jacobian of the residuals is not finite at a point where the "
            "residuals are (a sensitivity solve failed)",
        )
    v = inside(sol.x, lower, upper)
    value = float(log_likelihood_at(model, jnp.asarray(v)))
    if sol.status > 0:
        result = optx.RESULTS.successful
    elif sol.status == 0:
        result = optx.RESULTS.nonlinear_max_steps_reached
    else:  # pragma: no cover (scipy's improper-input code: the box is checked above)
        result = optx.RESULTS.nonlinear_divergence
    return Outcome(
        v,
        result,
        int(sol.njev),
        int(sol.nfev),
        value if np.isfinite(value) else -math.inf,
        time.perf_counter() - start,
        str(sol.message),
    )
