"""One log density on the unconstrained vector `u`, built once and used by every
estimator and sampler: `fit` (MLE and MAP), `multistart`, `profile`, `sample`,
`variational` and `prior_stress_test`.

    log p(u) = log L(θ(u)) + Σ log pᵢ(θᵢ(u)) [+ log |dθ/du|]

The likelihood is an [`odeinfer.Problem`][] or a plain function `fn(params) -> value`
(or `-> (value, ok)`) with the [`odeinfer.Parameters`][] it is a function of; the
priors are numpyro distributions; the transforms and their Jacobian are those of the
`Parameters`. The Jacobian term is included for sampling (a density in `u`) and left out
for MAP (the mode of the density of the constrained parameters does not depend on the
transforms).

A failed solve, `ok=False` from a function, a NaN or a value outside a parameter's
range gives `-inf` and `ok=False`, never an exception: `masked_potential` turns that
into a potential of `+inf` with gradient exactly 0, which samplers reject.
"""

from collections.abc import Callable, Mapping
from typing import cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Bool, Float

from ._likelihood import Problem, log_likelihood
from ._parameters import Parameters, parameters_from_priors, support_bounds
from ._validation import trace_user_function


class CallableLikelihood(eqx.Module):
    """A plain log-likelihood function `fn(params) -> value` (or `-> (value, ok)`) with
    the [`odeinfer.Parameters`][] it is a function of."""

    fn: Callable
    parameters: Parameters


Likelihood = Problem | CallableLikelihood


def _check_priors_mapping(priors) -> Mapping[str, dist.Distribution]:
    """`priors` itself, checked to be a mapping with string keys."""
    if not isinstance(priors, Mapping):
        raise TypeError(
            "`priors` must be a dict mapping each free parameter name to a numpyro "
            f"distribution, e.g. {{'k': dist.LogNormal(0.0, 1.0)}}; got "
            f"{type(priors).__name__}."
        )
    for name in priors:
        if not isinstance(name, str):
            raise TypeError(
                f"`priors` keys must be parameter names (strings); got {name!r}."
            )
    return priors


def as_likelihood(problem, parameters=None, priors=None) -> Likelihood:
    """`problem` as a `Likelihood`: an `oi.Problem` as it is; a function with its
    `parameters` (a `Parameters` or a dict of specs) or, without them, with
    `Parameters` derived from the priors' supports (in the priors' order).

    **Raises:** `TypeError`/`ValueError` naming the argument."""
    if isinstance(problem, Problem | CallableLikelihood):
        if parameters is not None:
            raise ValueError(
                "`parameters` is only for a plain log-likelihood function; an "
                "oi.Problem carries its own parameters (leave `parameters=None`)."
            )
        return problem
    if not callable(problem):
        raise TypeError(
            "`problem` must be an `oi.Problem` or a callable "
            "`fn(params: dict) -> log_likelihood`, got "
            f"{type(problem).__name__}."
        )
    if parameters is not None:
        return CallableLikelihood(problem, Parameters(parameters))
    if priors is None:
        raise TypeError(
            "`problem` is a plain function, so the estimator does not know its "
            "parameters: pass `parameters=` a dict of specs, e.g. "
            "`parameters={'k': oi.Positive(init=1.0), 'sigma': oi.Positive(0.1)}` "
            "(the function gets a dict of those names), or pass an oi.Problem."
        )
    priors = _check_priors_mapping(priors)
    if not priors:
        raise ValueError(
            "`priors` is empty: a callable log-likelihood takes its parameter names "
            "from `priors`, so give one numpyro distribution per parameter the callable "
            "reads, e.g. `priors={'k': dist.LogNormal(0.0, 1.0)}`."
        )
    names = tuple(priors)
    for name in names:
        _check_prior(name, priors[name])
    return CallableLikelihood(problem, parameters_from_priors(priors, names))


def _check_prior(name: str, prior) -> None:
    if not isinstance(prior, dist.Distribution):
        raise TypeError(
            f"`priors['{name}']` must be a numpyro distribution (with `log_prob`), got "
            f"{type(prior).__name__} {prior!r}. Pass e.g. "
            f"`priors={{'{name}': dist.Normal(0.0, 1.0)}}` (`import "
            "numpyro.distributions as dist`); to hold a parameter at a value, make "
            "it `oi.Fixed(value)` in the problem's parameters, or close over it in "
            "a callable log-likelihood."
        )
    # numpyro types `support` as optional; every distribution class defines one.
    assert prior.support is not None, f"`priors['{name}']` has no support"
    if prior.support.is_discrete:
        raise ValueError(
            f"`priors['{name}']` is a discrete distribution "
            f"({type(prior).__name__}); HMC/NUTS, optimisers and the variational "
            "guides need a continuous prior on an interval (e.g. `dist.Normal`, "
            "`dist.LogNormal`, `dist.Uniform`)."
        )


def check_priors(
    priors, parameters: Parameters, *, complete: bool
) -> dict[str, dist.Distribution]:
    """Check `priors` against `parameters` and return them in the free parameters'
    order.

    - `complete=True` (a normalised posterior: sampling, variational inference): one
        scalar prior per free parameter, on exactly the range of its transform
        (odeinfer never truncates a prior silently).
    - `complete=False` (MAP): priors on some of the free parameters; the others are
        estimated by maximum likelihood. `None` means no priors.
    """
    if priors is None and not complete:
        return {}
    priors = _check_priors_mapping(priors)
    names = parameters.names
    extra = [n for n in priors if n not in names]
    if extra:
        raise ValueError(
            f"`priors` names unknown or fixed parameters {extra}, which are not free "
            f"parameters (free: {list(names)}). Remove them or check the spelling."
        )
    missing = [n for n in names if n not in priors]
    if complete and missing:
        raise ValueError(
            f"`priors` has no entry for the free parameter(s) {missing}. Add a numpyro "
            "distribution for each, e.g. `priors={"
            + ", ".join(f"'{n}': dist.Normal(0.0, 1.0)" for n in missing)
            + "}`, or make the parameter `oi.Fixed(...)`."
        )
    for name in priors:
        _check_prior(name, priors[name])
        if not complete:
            continue
        prior = priors[name]
        if prior.event_shape != () or prior.batch_shape != ():
            raise ValueError(
                f"`priors['{name}']` must be a scalar distribution (batch and event "
                f"shape ()), got batch_shape={prior.batch_shape}, "
                f"event_shape={prior.event_shape}."
            )
        spec = parameters.specs[name]
        prior_bounds = support_bounds(prior.support)
        if prior_bounds is None:
            continue
        if not np.allclose((spec.lower, spec.upper), prior_bounds, rtol=1e-12, atol=0):
            raise ValueError(
                f"The prior for '{name}' has support {prior_bounds} but the "
                f"parameter's transform maps onto {(spec.lower, spec.upper)}. The "
                "supports must be equal: odeinfer does not silently truncate a prior. "
                "Use a prior on the same range (e.g. `dist.TruncatedNormal(loc, "
                "scale, low=0.0)`, `dist.HalfNormal`, `dist.LogNormal` for a Positive "
                "parameter; `dist.Uniform(a, b)`/`dist.Beta` for Bounded) or change "
                "the parameter's transform."
            )
    return {n: priors[n] for n in names if n in priors}


def _as_array(x):
    if isinstance(x, int | float) and not isinstance(x, bool):
        return jnp.asarray(x, float)
    return x


def log_likelihood_and_status(
    likelihood: Likelihood, params
) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    """`(log-likelihood, ok)` at the constrained `params`: `-inf` and `ok=False` where
    a solve fails, a function reports failure or returns NaN, or a value lies outside
    its parameter's range."""
    if isinstance(likelihood, Problem):
        # Without `with_status`, `log_likelihood` returns the value alone.
        value = cast(Float[Array, ""], log_likelihood(likelihood, params))
        return value, jnp.isfinite(value)
    out = likelihood.fn(params)
    if isinstance(out, tuple):
        value, ok = out
        ok = jnp.all(ok)
    else:
        value, ok = out, jnp.asarray(True)
    value = jnp.reshape(jnp.asarray(value, dtype=float), ())
    ok = ok & likelihood.parameters.inside(params) & ~jnp.isnan(value)
    return jnp.where(ok, value, -jnp.inf), ok


class LogDensity(eqx.Module):
    """The log density of the free parameters on the unconstrained vector `u`: the
    log-likelihood, the priors' log densities and, with `jacobian=True`, the
    log-Jacobian of the transforms.

    **Arguments:**

    - `likelihood`: an [`odeinfer.Problem`][] or a `CallableLikelihood`.
    - `priors`: name -> numpyro distribution (checked with `check_priors`); Python
        numbers in them are stored as arrays, so that a compiled program takes them as
        inputs and serves new prior values without recompiling.
    - `jacobian`: include `log |dθ/du|` (sampling: `True`; MAP: `False`).

    Calling it gives `(log density, ok)`; `ok` is `False` (and the value `-inf`) where
    the likelihood failed or the density is not finite.
    """

    likelihood: Likelihood
    priors: dict[str, dist.Distribution]
    jacobian: bool = eqx.field(static=True)

    def __init__(self, likelihood: Likelihood, priors, *, jacobian: bool):
        self.likelihood = likelihood
        self.priors = {n: jax.tree.map(_as_array, d) for n, d in priors.items()}
        self.jacobian = jacobian

    @property
    def parameters(self) -> Parameters:
        return self.likelihood.parameters

    @property
    def names(self) -> tuple[str, ...]:
        """The free parameters, in the order of the unconstrained vector."""
        return self.parameters.names

    @property
    def size(self) -> int:
        return self.parameters.size

    def params(self, u: Float[Array, " n"]) -> dict[str, Array]:
        """All parameters (constrained, fixed ones included) at `u`."""
        return self.parameters.from_unconstrained(u)

    def free_vector(self, params: Mapping) -> Float[Array, " n"]:
        """The free parameters of `params` (constrained scale) as one vector."""
        return jnp.concatenate(
            [jnp.ravel(jnp.asarray(params[n], float)) for n in self.names]
        )

    def log_prior(self, params: Mapping) -> Float[Array, ""]:
        """Sum of the priors' log densities at the constrained `params`."""
        total = jnp.zeros(())
        for name in self.names:
            if name in self.priors:
                total = total + jnp.sum(self.priors[name].log_prob(params[name]))
        return total

    def __call__(
        self, u: Float[Array, " n"]
    ) -> tuple[Float[Array, ""], Bool[Array, ""]]:
        params = self.params(u)
        value, ok = log_likelihood_and_status(self.likelihood, params)
        value = value + self.log_prior(params)
        if self.jacobian:
            value = value + self.parameters.log_abs_det_jacobian(u)
        ok = ok & jnp.isfinite(value)
        return jnp.where(ok, value, -jnp.inf), ok


def masked_potential(density: LogDensity, u: Float[Array, " n"]) -> Float[Array, ""]:
    """The potential `-log p(u)` for samplers: `+inf` with gradient exactly 0 where the
    density failed (a `jnp.where` alone would let NaN gradients of the failed branch
    leak through)."""

    def raw(u):
        value, ok = density(u)
        return -value, ok

    @jax.custom_jvp
    def potential(u):
        value, ok = raw(u)
        return jnp.where(ok, value, jnp.inf)

    @potential.defjvp
    def potential_jvp(primals, tangents):
        (u,), (du,) = primals, tangents
        (value, ok), grad = jax.value_and_grad(raw, has_aux=True)(u)
        good = ok & jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        value = jnp.where(good, value, jnp.inf)
        grad = jnp.where(good, grad, 0.0)
        return value, jnp.dot(grad, du)

    return potential(u)


def check_callable_likelihood(likelihood: Likelihood) -> None:
    """Trace a callable log-likelihood once on abstract values, before anything is
    compiled: numpy on traced values, names it reads that its parameters lack, and a
    non-scalar result are reported here, naming the fix. (A `Problem` checks itself.)"""
    if not isinstance(likelihood, CallableLikelihood):
        return
    fn = likelihood.fn
    parameters = likelihood.parameters
    names = parameters.all_names
    label = getattr(fn, "__name__", type(fn).__name__)
    abstract = {
        n: jax.ShapeDtypeStruct(parameters.specs[n].shape, jnp.result_type(float))
        for n in names
    }

    def call(params):
        out = fn(params)
        if isinstance(out, tuple):
            value, ok = out
            return jnp.asarray(value), jnp.all(ok)
        return jnp.asarray(out), jnp.asarray(True)

    try:
        value, _ = trace_user_function(label, call, abstract)
    except KeyError as error:
        # A plain KeyError: a subclass already carries its own message.
        key = error.args[0] if error.args else None
        if type(error) is not KeyError or not isinstance(key, str) or key in names:
            raise
        raise ValueError(
            f"The log-likelihood `{label}` reads the parameter {key!r}, which `priors` "
            f"does not define (priors: {list(names)}). Add a prior for {key!r} or fix "
            "the name."
        ) from None
    if value.shape != ():
        raise ValueError(
            f"The log-likelihood `{label}` must return a scalar (or a pair `(scalar, "
            f"ok)`); it returned shape {value.shape}. Sum over the data points, e.g. "
            "`jnp.sum(norm.logpdf(y, mu, sigma))`."
        )
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(
            f"The log-likelihood `{label}` must return a float scalar; it returned "
            f"dtype {value.dtype}."
        )


def log_density(
    problem, priors, *, parameters=None, jacobian: bool = True, complete: bool = True
) -> LogDensity:
    """The `LogDensity` of `problem` (an `oi.Problem` or a log-likelihood function
    with `parameters=`, or without them on the priors' supports) and `priors`, checked:
    the one constructor every estimator and sampler calls.

    **Arguments:**

    - `problem`, `parameters`: as in `oi.fit`/`oi.sample`.
    - `priors`: name -> numpyro distribution (`None`: none, for MLE).
    - `jacobian`: include the transforms' log-Jacobian (sampling).
    - `complete`: require a prior on every free parameter's exact range.
    """
    if complete:
        _check_priors_mapping(priors)
    likelihood = as_likelihood(problem, parameters, priors)
    checked = check_priors(priors, likelihood.parameters, complete=complete)
    return LogDensity(likelihood, checked, jacobian=jacobian)
