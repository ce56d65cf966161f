"""`FitResult`: the immutable result of [`odeinfer.fit`][]."""

from statistics import NormalDist

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int


class FitResult(eqx.Module):
    """The result of [`odeinfer.fit`][] (and the best start of
    [`odeinfer.multistart`][]). Immutable; array fields are JAX arrays.

    **Attributes:**

    - `names`: the free parameter names, in the order of every vector and matrix here.
    - `params`: all parameters at the optimum (constrained scale), fixed ones included.
    - `unconstrained`: the optimum on the unconstrained scale (the optimiser's space).
    - `log_likelihood`: the log-likelihood at the optimum.
    - `log_posterior`: log-likelihood + log prior (MAP fits); equal to `log_likelihood`
        for maximum likelihood.
    - `result`: the `optimistix.RESULTS` code of the optimisation.
    - `solve_ok`: whether the log-likelihood at the optimum is finite. It is `False`
        where the ODE solve failed there (or a prediction left a noise model's
        domain): the log-likelihood is then `-inf` and its gradient exactly 0, which an
        optimiser can mistake for a stationary point. `message` says where.
    - `successful`: `result` is successful *and* `solve_ok`.
    - `num_steps`: optimiser iterations (for [`odeinfer.TrustRegionReflective`][]:
        Jacobian evaluations, one per accepted step plus the first; for
        [`odeinfer.InteriorTrustRegion`][] every evaluation is a residual and its
        Jacobian, so its evaluations).
    - `num_evaluations`: objective (residual) evaluations, where the optimiser counts
        them apart from its iterations (the bounded least-squares solvers);
        `None` otherwise.
    - `method`: `"mle"` or `"map"`; `solver`: the solver's class name;
        `information`: `"hessian"` (observed) or `"fisher"` (Gauss–Newton `JᵀJ`).
    - `gradient`: gradient of the log objective w.r.t. `unconstrained` (≈ 0 at an optimum).
    - `information_matrix`: the information matrix in the unconstrained space.
    - `covariance`: the Laplace covariance of the constrained free parameters (delta
        method); NaN where the information matrix is not positive definite.
    - `covariance_unconstrained`: its inverse-information form in the unconstrained space.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    params: dict
    unconstrained: Float[Array, " n"]
    log_likelihood: Float[Array, ""]
    log_posterior: Float[Array, ""]
    result: optx.RESULTS
    num_steps: Int[Array, ""]
    gradient: Float[Array, " n"]
    information_matrix: Float[Array, "n n"]
    covariance: Float[Array, "n n"]
    covariance_unconstrained: Float[Array, "n n"]
    method: str = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    information: str = eqx.field(static=True)
    solve_ok: Bool[Array, ""] | bool = True
    failure: str = eqx.field(static=True, default="")
    num_evaluations: Int[Array, ""] | None = None

    @property
    def successful(self) -> jax.Array:
        return (self.result == optx.RESULTS.successful) & jnp.asarray(self.solve_ok)

    @property
    def message(self) -> str:
        """The outcome in words: `"converged"`, or what failed and where."""
        if not bool(jnp.asarray(self.solve_ok)):
            return self.failure or "the ODE solve failed at the optimum"
        if bool(self.result == optx.RESULTS.successful):
            return "converged"
        return f"the optimiser did not converge: {self.result}"

    @property
    def estimates(self) -> dict[str, jax.Array]:
        """The free parameters at the optimum (constrained scale)."""
        return {n: self.params[n] for n in self.names}

    @property
    def standard_errors(self) -> dict[str, jax.Array]:
        """Laplace standard errors, `sqrt(diag(covariance))`, by name."""
        se = jnp.sqrt(jnp.diag(self.covariance))
        return {n: se[i] for i, n in enumerate(self.names)}

    @property
    def correlation(self) -> Float[Array, "n n"]:
        """The correlation matrix of the Laplace approximation."""
        se = jnp.sqrt(jnp.diag(self.covariance))
        return self.covariance / jnp.outer(se, se)

    def intervals(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Laplace (Wald) intervals `estimate ± z · standard error`, by name.

        **Arguments:**

        - `level`: the coverage, in (0, 1).

        **Returns:**

        `{name: (lower, upper)}`. Use [`odeinfer.profile`][] for likelihood-ratio
        intervals, which respect bounds and skewness.
        """
        if not 0 < level < 1:
            raise ValueError(f"`level` must lie in (0, 1); got {level}.")
        z = NormalDist().inv_cdf(0.5 + level / 2)
        out = {}
        for name in self.names:
            est = float(self.params[name])
            se = float(self.standard_errors[name])
            out[name] = (est - z * se, est + z * se)
        return out

    def summary(self, level: float = 0.95) -> str:
        """A readable table: estimate, standard error, Wald interval per parameter,
        followed by the objective and convergence."""
        z_pct = f"{100 * level:g}%"
        intervals = self.intervals(level)
        width = max(9, *(len(n) for n in self.names))
        lines = [
            f"{'parameter':<{width}}  {'estimate':>12}  {'std. error':>11}  "
            f"{z_pct + ' Wald interval':>27}"
        ]
        for name in self.names:
            lo, hi = intervals[name]
            lines.append(
                f"{name:<{width}}  {float(self.params[name]):>12.6g}  "
                f"{float(self.standard_errors[name]):>11.4g}  "
                f"[{lo:>11.5g}, {hi:>11.5g}]"
            )
        message = "converged" if bool(self.successful) else f"NOT OK: {self.message}"
        lines.append(
            f"log-likelihood {float(self.log_likelihood):.6f}"
            + (
                f", log-posterior {float(self.log_posterior):.6f}"
                if self.method == "map"
                else ""
            )
            + f"; {self.method.upper()} by {self.solver}, {int(self.num_steps)} steps"
            + (
                ""
                if self.num_evaluations is None
                else f" ({int(self.num_evaluations)} evaluations)"
            )
            + f", {message}; SEs from the {self.information} in the unconstrained space "
            "(delta method)."
        )
        if not np.all(np.isfinite(np.asarray(self.covariance))):
            lines.append(
                "warning: information matrix not positive definite; SEs are NaN."
            )
        return "\n".join(lines)
