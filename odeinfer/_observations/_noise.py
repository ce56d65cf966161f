"""Noise models: the distribution of a measurement given the model's prediction.

Each is an `eqx.Module` that builds a numpyro distribution (`numpyro.distributions`
supplies the densities, so values agree with numpyro models); scales are numbers or the
names of parameters to estimate.
"""

import abc
from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.stats as jstats
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float


class Scale(eqx.Module):
    """A positive noise parameter: a fixed number or the name of a parameter."""

    value: Float[Array, ""] | None
    name: str | None = eqx.field(static=True)

    def __init__(self, value, what: str):
        if isinstance(value, str):
            self.value, self.name = None, value
            return
        try:
            number = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{what} must be a positive number or the name of a parameter; got {value!r}."
            ) from None
        if number.shape != () or not np.isfinite(number) or number <= 0:
            raise ValueError(
                f"{what} must be a positive finite number (or a parameter name); got "
                f"{value!r}. A zero or negative noise scale has no likelihood."
            )
        self.value, self.name = jnp.asarray(number), None

    def resolve(self, params: Mapping) -> Float[Array, ""]:
        if self.name is not None:
            return params[self.name]
        assert self.value is not None  # a Scale holds a name or a value
        return self.value


def _scale(value, what):
    return None if value is None else Scale(value, what)


class AbstractNoise(eqx.Module):
    """A noise model: `distribution(prediction, params)` is a numpyro distribution of
    the measurement. Continuous ones also serve event-time observations."""

    continuous: ClassVar[bool] = True

    @abc.abstractmethod
    def distribution(self, prediction, params: Mapping) -> dist.Distribution: ...

    def scales(self) -> tuple[Scale, ...]:
        """The scales (fixed or named) this model uses."""
        return tuple(
            v
            for v in (getattr(self, f) for f in self.__dataclass_fields__)
            if isinstance(v, Scale)
        )

    def parameter_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.scales() if s.name is not None)

    def _valid(self, prediction, params) -> Array:
        ok = jnp.ones(jnp.shape(prediction), dtype=bool)
        for s in self.scales():
            ok = ok & (s.resolve(params) > 0)
        return ok

    def _safe_prediction(self, prediction):
        return prediction

    def check_data(self, data: np.ndarray, what: str) -> None:
        """Raise `ValueError` if observed (concrete, unmasked) `data` lie outside this
        model's support, where every parameter value would give `-inf`. Called by
        [`odeinfer.Experiment`][] when it is built; `what` names the data column."""
        del data, what

    def log_prob(self, data, prediction, params: Mapping) -> Array:
        """Elementwise log density (mass) of `data` given `prediction`; `-inf` where the
        prediction or a scale is outside the model's domain (never NaN)."""
        prediction = jnp.asarray(prediction, dtype=float)
        valid = self._valid(prediction, params)
        safe = jnp.where(valid, self._safe_prediction(prediction), 1.0)
        safe_params = {
            **params,
            **{
                s.name: jnp.where(params[s.name] > 0, params[s.name], 1.0)
                for s in self.scales()
                if s.name is not None
            },
        }
        value = self.distribution(safe, safe_params).log_prob(data)
        return jnp.where(valid, value, -jnp.inf)

    # Event times need the distribution function too (censoring). Continuous only.
    def log_cdf(self, value, prediction, params: Mapping) -> Array:
        raise TypeError(
            f"{type(self).__name__} has no distribution function for censoring."
        )

    def log_survival(self, value, prediction, params: Mapping) -> Array:
        raise TypeError(
            f"{type(self).__name__} has no distribution function for censoring."
        )

    def standardized(self, data, prediction, params: Mapping) -> Array:
        """Residuals `r` with `log_prob = -r**2/2 + constant` (Gaussian noise with fixed
        scales only; used by Levenberg–Marquardt)."""
        raise TypeError(
            f"odeinfer.residuals needs Gaussian noise with fixed scales; got {self!r}. Use "
            "odeinfer.log_likelihood (and a minimiser such as BFGS) instead."
        )


class Gaussian(AbstractNoise):
    """Gaussian noise with standard deviation `sqrt(sigma**2 + (proportional*|f|)**2)`
    for a prediction `f`: additive (`sigma` only), proportional (`proportional` only) or
    combined (both).

    **Arguments:**

    - `sigma`: the additive standard deviation: a positive number or a parameter name.
    - `proportional`: the proportional coefficient (number or parameter name), or `None`.
    """

    sigma: Scale | None
    proportional: Scale | None

    def __init__(self, sigma=None, *, proportional=None):
        if sigma is None and proportional is None:
            raise ValueError("Gaussian: give `sigma`, `proportional`, or both.")
        self.sigma = _scale(sigma, "Gaussian: `sigma`")
        self.proportional = _scale(proportional, "Gaussian: `proportional`")

    def sd(self, prediction, params):
        var = jnp.zeros(jnp.shape(prediction))
        if self.sigma is not None:
            var = var + self.sigma.resolve(params) ** 2
        if self.proportional is not None:
            var = var + (self.proportional.resolve(params) * prediction) ** 2
        return jnp.sqrt(var)

    def _valid(self, prediction, params):
        ok = super()._valid(prediction, params) & jnp.isfinite(prediction)
        if self.sigma is None:
            ok = ok & (prediction != 0)
        return ok

    def distribution(self, prediction, params):
        return dist.Normal(prediction, self.sd(prediction, params))

    def log_cdf(self, value, prediction, params):
        return jstats.norm.logcdf(value, prediction, self.sd(prediction, params))

    def log_survival(self, value, prediction, params):
        return jstats.norm.logsf(value, prediction, self.sd(prediction, params))

    def standardized(self, data, prediction, params):
        if (
            self.proportional is not None
            or self.sigma is None
            or self.sigma.name is not None
        ):
            return super().standardized(data, prediction, params)
        return (data - prediction) / self.sigma.resolve(params)


class LogNormal(AbstractNoise):
    """Log-normal noise: `log(data) ~ Normal(log(prediction), sigma)` (multiplicative
    error; predictions and data must be positive).

    **Arguments:**

    - `sigma`: standard deviation on the log scale (number or parameter name).
    """

    sigma: Scale

    def __init__(self, sigma):
        self.sigma = Scale(sigma, "LogNormal: `sigma`")

    def _valid(self, prediction, params):
        return (
            super()._valid(prediction, params)
            & (prediction > 0)
            & jnp.isfinite(prediction)
        )

    def distribution(self, prediction, params):
        return dist.LogNormal(jnp.log(prediction), self.sigma.resolve(params))

    def check_data(self, data, what):
        _check_support(
            data,
            data > 0,
            what,
            "LogNormal",
            "positive",
            "Use oi.Gaussian for data that can be zero or negative, or mask those "
            "entries (`mask=`) if they are below a detection limit.",
        )

    def _z(self, value, prediction, params):
        return (jnp.log(value) - jnp.log(prediction)) / self.sigma.resolve(params)

    def log_cdf(self, value, prediction, params):
        return jstats.norm.logcdf(self._z(value, prediction, params))

    def log_survival(self, value, prediction, params):
        return jstats.norm.logsf(self._z(value, prediction, params))

    def standardized(self, data, prediction, params):
        if self.sigma.name is not None:
            return super().standardized(data, prediction, params)
        return (jnp.log(data) - jnp.log(prediction)) / self.sigma.resolve(params)


class StudentT(AbstractNoise):
    """Student-t noise (heavy tails, robust to outliers): location the prediction.

    **Arguments:**

    - `df`: degrees of freedom (number or parameter name).
    - `sigma`: scale (number or parameter name).
    """

    df: Scale
    sigma: Scale

    def __init__(self, df, sigma):
        self.df = Scale(df, "StudentT: `df`")
        self.sigma = Scale(sigma, "StudentT: `sigma`")

    def _valid(self, prediction, params):
        return super()._valid(prediction, params) & jnp.isfinite(prediction)

    def distribution(self, prediction, params):
        return dist.StudentT(
            self.df.resolve(params), prediction, self.sigma.resolve(params)
        )

    def log_cdf(self, value, prediction, params):
        return jnp.log(self.distribution(prediction, params).cdf(value))

    def log_survival(self, value, prediction, params):
        return jnp.log1p(-self.distribution(prediction, params).cdf(value))


class Poisson(AbstractNoise):
    """Poisson counts with mean the prediction (which must be positive)."""

    continuous: ClassVar[bool] = False

    def __init__(self):
        pass

    def _valid(self, prediction, params):
        return (prediction > 0) & jnp.isfinite(prediction)

    def distribution(self, prediction, params):
        return dist.Poisson(prediction)

    def check_data(self, data, what):
        _check_counts(data, what, "Poisson")


class NegativeBinomial(AbstractNoise):
    """Negative-binomial counts with mean the prediction and variance
    `mean + mean**2 / concentration` (numpyro's `NegativeBinomial2`).

    **Arguments:**

    - `concentration`: the dispersion parameter (number or parameter name); large
        values approach Poisson.
    """

    continuous: ClassVar[bool] = False
    concentration: Scale

    def __init__(self, concentration):
        self.concentration = Scale(concentration, "NegativeBinomial: `concentration`")

    def _valid(self, prediction, params):
        return (
            super()._valid(prediction, params)
            & (prediction > 0)
            & jnp.isfinite(prediction)
        )

    def distribution(self, prediction, params):
        return dist.NegativeBinomial2(prediction, self.concentration.resolve(params))

    def check_data(self, data, what):
        _check_counts(data, what, "NegativeBinomial")


def _check_support(data, inside, what, model, kind, fix):
    bad = np.flatnonzero(~inside)
    if bad.size:
        raise ValueError(
            f"{what}: {model} noise needs {kind} data, but {bad.size} value(s) are not "
            f"(e.g. {float(data[bad[0]])!r}); the likelihood would be -inf for "
            f"every parameter value. {fix}"
        )


def _check_counts(data, what, model):
    _check_support(
        data,
        (data >= 0) & (data == np.round(data)),
        what,
        model,
        "non-negative integer (count)",
        "Counts must be 0, 1, 2, ...; for continuous data use oi.Gaussian or "
        "oi.LogNormal.",
    )
