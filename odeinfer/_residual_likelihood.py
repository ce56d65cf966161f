"""`AbstractResidualLikelihood`: a log-likelihood that is a sum of squares, the interface
between a likelihood that knows its residuals (an imported PEtab problem) and the
least-squares estimators above it (`oi.fit`, `oi.multistart` with
`oi.TrustRegionReflective`), so that estimation does not import the importers."""

import abc
from collections.abc import Mapping

from jaxtyping import Array, ArrayLike, Float

from ._parameters import Parameters


class AbstractResidualLikelihood(abc.ABC):
    """A log-likelihood with standardised residuals `r(θ)`:

        log L(θ) = constant − ½‖r(θ)‖²

    [`odeinfer.fit`][] and [`odeinfer.multistart`][] take such an object directly as
    `problem`; by default they then minimise ½‖r‖² with
    [`odeinfer.TrustRegionReflective`][] (forward-mode Jacobians of `r`), and otherwise
    maximise `log_likelihood` as for any function. [`odeinfer.petab.PEtabProblem`][]
    implements it.

    **Attributes:**

    - `parameters`: the [`odeinfer.Parameters`][] that `log_likelihood` and
        `residuals` are functions of.
    - `fisher_from_residuals`: whether `JᵀJ` (`J = ∂r/∂θ`) is the Fisher information,
        as for Gaussian noise with fixed scales; `False` when `r` also carries
        residuals for estimated noise scales (then `fisher_information` must say how
        to form it from `r` and `J`).
    """

    parameters: Parameters
    fisher_from_residuals: bool = True

    @property
    def has_fisher_information(self) -> bool:
        """Whether `fisher_information` can form the Fisher information: where `JᵀJ`
        is it, or where a subclass overrides both (see
        [`odeinfer.petab.PEtabProblem`][]). `oi.fit` reports it by default where it
        can, and the observed information (the Hessian) otherwise."""
        return self.fisher_from_residuals

    def fisher_information(
        self, r: Float[Array, " m"], jacobian: Float[Array, "m n"]
    ) -> Float[Array, "n n"]:
        """The Fisher (expected) information from the residuals `r` and their
        Jacobian `J` with respect to any parameter vector: `JᵀJ` where
        `fisher_from_residuals`. A likelihood whose residuals carry noise residuals
        overrides this and `has_fisher_information`; here it raises."""
        if not self.fisher_from_residuals:
            raise NotImplementedError(
                f"{type(self).__name__} has noise residuals and does not say how to "
                "form the Fisher information from them; use information='hessian'."
            )
        return jacobian.T @ jacobian

    @abc.abstractmethod
    def log_likelihood(self, params: Mapping[str, ArrayLike]) -> Float[Array, ""]:
        """The log-likelihood at `params` (all free parameters, constrained scale);
        `-inf` where it cannot be computed (a failed solve). Traceable."""

    @abc.abstractmethod
    def residuals(self, params: Mapping[str, ArrayLike]) -> Float[Array, " m"]:
        """The residual vector `r` at `params`, NaN where it cannot be computed (a
        failed solve). Traceable and differentiable in forward mode (`jax.jacfwd`)."""

    @abc.abstractmethod
    def check_residuals(self) -> None:
        """Raise `ValueError` saying why, if this likelihood has no residuals (e.g.
        Laplace noise); return `None` if it has."""
