"""Bounded trust-region least squares on the box of the parameters' bounds, for
likelihoods with standardised residuals: `TrustRegionReflective` (scipy) and `Fides`
(the optional `fides` package), both `AbstractBoxLeastSquares` strategies.

Neither optimistix nor lineax has a bounded least-squares solver (optimistix's
Levenberg–Marquardt works on the unconstrained scale, where the logit transform of a
parameter bounded over 16 decades flattens the objective near the bounds, and
Fujita_SciSignal2010's scaling parameters sit there). So this wraps
`scipy.optimize.least_squares(method="trf")` (Branch, Coleman & Li 1999, the
reflective interior trust-region method pyPESTO's Fides also builds on) on a jitted
residual and a jitted forward-mode Jacobian; the host loop costs ~0.1 ms per iteration
against 1-130 ms per Jacobian on the PEtab benchmark problems.
"""

import abc
import logging
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


class AbstractBoxLeastSquares(eqx.Module):
    """A least-squares optimiser on the box of the `Bounded` parameters: run on the
    host with jitted residuals and Jacobians ([`odeinfer.AbstractHostBoxLeastSquares`][]:
    [`odeinfer.TrustRegionReflective`][], [`odeinfer.Fides`][]) or each optimisation
    one compiled program ([`odeinfer.InteriorTrustRegion`][])."""


class AbstractHostBoxLeastSquares(AbstractBoxLeastSquares):
    """A bounded least-squares optimiser whose iterations run on the host, calling a
    jitted residual and Jacobian: [`odeinfer.TrustRegionReflective`][],
    [`odeinfer.Fides`][]."""

    @abc.abstractmethod
    def minimise(
        self, fun, jac, fun_and_jac, v0, lower, upper, max_evaluations: int
    ) -> tuple[np.ndarray, int, int, int, str]:
        """Minimise ½‖fun(v)‖² from `v0` within `[lower, upper]`. `fun(v)` gives the
        residuals, `jac(v)` their Jacobian, `fun_and_jac(v)` both. Returns the end
        point, a status (1 converged, 0 budget spent, -1 failed), the residual and
        Jacobian evaluation counts and a message."""


class TrustRegionReflective(AbstractHostBoxLeastSquares):
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

    def minimise(self, fun, jac, fun_and_jac, v0, lower, upper, max_evaluations):
        sol = scipy.optimize.least_squares(
            fun,
            v0,
            jac=jac,  # pyright: ignore[reportArgumentType]  (a callable is allowed)
            bounds=(lower, upper),
            method="trf",
            x_scale=self.x_scale,  # pyright: ignore[reportArgumentType]
            ftol=self.rtol,
            xtol=self.rtol,
            gtol=self.atol,
            max_nfev=int(max_evaluations),
        )
        status = 1 if sol.status > 0 else (0 if sol.status == 0 else -1)
        return sol.x, status, int(sol.nfev), int(sol.njev), str(sol.message)


class Fides(AbstractHostBoxLeastSquares):
    """Fides (Fröhlich & Sorger 2022, PLoS Comput. Biol. 18:e1010322), the
    interior trust-region optimiser pyPESTO uses by default, for [`odeinfer.fit`][] and
    [`odeinfer.multistart`][]: on the box of the `Bounded` parameters, with the
    Gauss–Newton matrix `JᵀJ` of the standardised residuals as Hessian until the
    trust region has stayed the same for `switch_iteration` iterations in a row and a
    BFGS update afterwards (Fides' `HybridFixed`, pyPESTO's default with a Fisher
    information; [`odeinfer.InteriorTrustRegion`][] is the same algorithm compiled),
    which captures the
    curvature of the narrow curved valleys of sloppy models that Gauss–Newton alone
    crawls along. Each evaluation is a residual and its forward-mode Jacobian. Needs
    the optional `fides` package (`pip install fides`).

    **Arguments:**

    - `rtol`, `atol`: Fides' `frtol` and `fatol` (relative and absolute change of ½‖r‖²).
    - `gtol`: Fides' `gatol` (gradient norm; its default 1e-6).
    - `switch_iteration`: iterations in a row without a change of the trust region
        after which the BFGS update takes over (Fides' default, 20).

    `fit`'s `max_steps` caps the iterations (Fides' `maxiter`).
    """

    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-8)
    gtol: float = eqx.field(static=True, default=1e-6)
    switch_iteration: int = eqx.field(static=True, default=20)

    def minimise(self, fun, jac, fun_and_jac, v0, lower, upper, max_evaluations):
        try:
            import fides
        except ImportError:
            raise ImportError(
                "oi.Fides needs the fides package: `pip install fides` (or use "
                "oi.TrustRegionReflective(), which needs only scipy)."
            ) from None
        count = [0]

        def objective(v):
            count[0] += 1
            r, jacobian = fun_and_jac(v)
            if not (np.all(np.isfinite(r)) and np.all(np.isfinite(jacobian))):
                n = len(v)
                return np.nan, np.full(n, np.nan), np.full((n, n), np.nan)
            return 0.5 * float(r @ r), jacobian.T @ r, jacobian.T @ jacobian

        optimizer = fides.Optimizer(
            objective,
            ub=upper,
            lb=lower,
            verbose=logging.WARNING,
            options={
                fides.Options.MAXITER: int(max_evaluations),
                fides.Options.FRTOL: self.rtol,
                fides.Options.FATOL: self.atol,
                fides.Options.GATOL: self.gtol,
            },
            hessian_update=fides.HybridFixed(switch_iteration=self.switch_iteration),
        )
        optimizer.minimize(v0)
        flag = optimizer.exitflag
        status = 1 if flag.value > 0 else (0 if flag == fides.ExitFlag.MAXITER else -1)
        return optimizer.x_min, status, count[0], count[0], f"fides: {flag.name}"


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
    def has_fisher_information(self) -> bool:
        if isinstance(self.likelihood, Problem):
            return True
        return self.likelihood.has_fisher_information

    def fisher_information(self, r, jacobian) -> Float[Array, "n n"]:
        """The Fisher information from `r` and `J = ∂r/∂v` (in `v`)."""
        if isinstance(self.likelihood, Problem):
            return jacobian.T @ jacobian
        return self.likelihood.fisher_information(r, jacobian)


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
def residuals_and_jacobian_at(model: Residuals, v):
    def both(v_):
        r = model.residuals(v_)
        return r, r

    jacobian, r = jax.jacfwd(both, has_aux=True)(v)
    return r, jacobian


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
    model: Residuals, solver: AbstractHostBoxLeastSquares, v0, max_evaluations: int
) -> Outcome:
    """One bounded least-squares optimisation from the box vector `v0`: a start where
    the residuals are not finite ends at once, a Jacobian that is not finite where the
    residuals are ends the optimisation (never a step on a wrong model), and the end
    point is moved strictly inside the box."""
    lower, upper = box(model.parameters)
    v0 = inside(np.asarray(v0, float), lower, upper)
    start = time.perf_counter()
    jacobian_failed = []

    def fun(v):
        return np.asarray(residuals_at(model, jnp.asarray(v)))

    def jac(v):
        matrix = np.asarray(jacobian_at(model, jnp.asarray(v)))
        if not np.all(np.isfinite(matrix)):
            jacobian_failed.append(np.asarray(v))
            raise FloatingPointError
        return matrix

    def fun_and_jac(v):
        r, matrix = residuals_and_jacobian_at(model, jnp.asarray(v))
        return np.asarray(r), np.asarray(matrix)

    def outcome(v, result, num_steps, num_evaluations, message):
        v = inside(np.asarray(v, float), lower, upper)
        value = float(log_likelihood_at(model, jnp.asarray(v)))
        return Outcome(
            v,
            result,
            num_steps,
            num_evaluations,
            value if np.isfinite(value) else -math.inf,
            time.perf_counter() - start,
            message,
        )

    if not np.all(np.isfinite(fun(v0))):
        return outcome(
            v0,
            optx.RESULTS.nonlinear_divergence,
            0,
            1,
            "the residuals are not finite at the starting point (the solve failed)",
        )
    try:
        v, status, nfev, njev, message = solver.minimise(
            fun, jac, fun_and_jac, v0, lower, upper, max_evaluations
        )
    except FloatingPointError:
        return outcome(
            jacobian_failed[-1],
            optx.RESULTS.nonlinear_divergence,
            0,
            0,
            "the Jacobian of the residuals is not finite at a point where the "
            "residuals are (a sensitivity solve failed)",
        )
    result = (
        optx.RESULTS.successful
        if status > 0
        else optx.RESULTS.nonlinear_max_steps_reached
        if status == 0
        else optx.RESULTS.nonlinear_divergence
    )
    return outcome(v, result, njev, nfev, message)
