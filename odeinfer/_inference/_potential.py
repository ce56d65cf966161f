"""Priors + parameter transforms + log-likelihood -> one potential on the
unconstrained space, shared by `sample`, `variational` and `prior_stress_test`.

A failed solve (max steps, non-finite state, event overflow) is turned into a
potential of `+inf` (log density `-inf`) with a zero gradient, so that a sampler sees a
rejected/divergent proposal instead of NaNs; failures are counted on the host through
`jax.debug.callback`.
"""

import itertools
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.custom_batching import custom_vmap
from numpyro.distributions.transforms import biject_to

from .._likelihood import Problem
from .._validation import trace_user_function

_MAX_RECORDED_FAILURES = 1000
# Failure logs by id: a compiled program refers to its log through a traced id, so the
# same program serves later runs (new data, new priors' values) with their own logs.
_LOGS: "weakref.WeakValueDictionary[int, FailureLog]" = weakref.WeakValueDictionary()
_LOG_IDS = itertools.count()


def _is_problem(problem) -> bool:
    return isinstance(problem, Problem)


def _support_bounds(constraint) -> tuple[float, float] | None:
    """`(lower, upper)` of a numpyro constraint on the real line, or `None` when the
    constraint is not an interval (e.g. simplex)."""
    name = type(constraint).__name__
    if name in ("_Real", "_RealVector", "_IndependentConstraint") and not hasattr(
        constraint, "lower_bound"
    ):
        if name == "_IndependentConstraint":
            return _support_bounds(constraint.base_constraint)
        return (-math.inf, math.inf)
    lower = getattr(constraint, "lower_bound", None)
    upper = getattr(constraint, "upper_bound", None)
    if lower is None and upper is None:
        return None
    lower = -math.inf if lower is None else float(np.asarray(lower))
    upper = math.inf if upper is None else float(np.asarray(upper))
    return (lower, upper)


def _spec_bounds(spec) -> tuple[float, float] | None:
    """The range of a parameter spec of [`odeinfer.Parameters`][] (its transform's
    image), read from `.support` (a numpyro constraint or a `(lower, upper)` pair) or
    from `.lower`/`.upper`, or from the class name."""
    support = getattr(spec, "support", None)
    if support is not None:
        if isinstance(support, tuple) and len(support) == 2:
            return (float(support[0]), float(support[1]))
        bounds = _support_bounds(support)
        if bounds is not None:
            return bounds
    lower = getattr(spec, "lower", None)
    upper = getattr(spec, "upper", None)
    if lower is not None or upper is not None:
        return (
            -math.inf if lower is None else float(lower),
            math.inf if upper is None else float(upper),
        )
    name = type(spec).__name__
    if name == "Positive":
        return (0.0, math.inf)
    if name == "Real":
        return (-math.inf, math.inf)
    return None


class _PriorSpace:
    """An unconstrained parameterisation built from the priors' supports (numpyro's
    `biject_to`), used when the likelihood is a plain callable without
    [`odeinfer.Parameters`][]. Same interface as the subset of `Parameters` used here."""

    def __init__(self, priors: Mapping[str, dist.Distribution], names: tuple[str, ...]):
        # `names` fixes the order of the unconstrained vector. It is passed, never read
        # from `priors`: a dict that went through a JAX program comes back in sorted
        # key order, which would silently swap the parameters.
        self.names = tuple(names)
        self._transforms = {n: biject_to(priors[n].support) for n in self.names}

    def from_unconstrained(self, u):
        return {n: self._transforms[n](u[i]) for i, n in enumerate(self.names)}

    def to_unconstrained(self, params):
        return jnp.stack(
            [
                jnp.asarray(self._transforms[n].inv(jnp.asarray(params[n])), float)
                for n in self.names
            ]
        )

    def log_abs_det_jacobian(self, u):
        total = 0.0
        for i, n in enumerate(self.names):
            t = self._transforms[n]
            total = total + jnp.sum(t.log_abs_det_jacobian(u[i], t(u[i])))
        return total


class FailureLog:
    """Host-side record of the potential evaluations whose solve failed: a count and
    (up to 1000) the constrained parameters that caused them. Filled through
    `jax.debug.callback`, so it works under `jit`, `vmap` and device sharding."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.count = 0
        self.params: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.id = next(_LOG_IDS)
        _LOGS[self.id] = self

    def record(self, failed, params_vector):
        failed = np.asarray(failed).reshape(-1)
        params_vector = np.asarray(params_vector).reshape(failed.shape[0], -1)
        if not failed.any():
            return
        with self._lock:
            self.count += int(failed.sum())
            room = _MAX_RECORDED_FAILURES - len(self.params)
            for row in params_vector[failed][: max(room, 0)]:
                self.params.append(np.array(row))

    def as_array(self) -> np.ndarray:
        if not self.params:
            return np.zeros((0, len(self.names)))
        return np.stack(self.params)


def _check_priors_mapping(priors, *, from_callable: bool) -> None:
    """`priors` is a non-empty dict with string keys (for a callable log-likelihood the
    parameter names come from it)."""
    if not isinstance(priors, Mapping):
        raise TypeError(
            "`priors` must be a dict mapping each free parameter name to a numpyro "
            f"distribution, e.g. {{'k': dist.LogNormal(0.0, 1.0)}}; got "
            f"{type(priors).__name__}."
        )
    if from_callable and not priors:
        raise ValueError(
            "`priors` is empty: a callable log-likelihood takes its parameter names "
            "from `priors`, so give one numpyro distribution per parameter the callable "
            "reads, e.g. `priors={'k': dist.LogNormal(0.0, 1.0)}`."
        )
    for name in priors:
        if not isinstance(name, str):
            raise TypeError(
                f"`priors` keys must be parameter names (strings); got {name!r}."
            )


def _validate_priors(names, priors, specs=None):
    _check_priors_mapping(priors, from_callable=False)
    missing = [n for n in names if n not in priors]
    if missing:
        raise ValueError(
            f"`priors` has no entry for the free parameter(s) {missing}. Add a numpyro "
            "distribution for each, e.g. `priors={"
            + ", ".join(f"'{n}': dist.Normal(0.0, 1.0)" for n in missing)
            + "}`, or make the parameter `oi.Fixed(...)`."
        )
    extra = [n for n in priors if n not in names]
    if extra:
        raise ValueError(
            f"`priors` names {extra}, which are not free parameters (free: "
            f"{list(names)}). Remove them or check the spelling."
        )
    for n in names:
        prior = priors[n]
        if not isinstance(prior, dist.Distribution):
            raise TypeError(
                f"`priors['{n}']` must be a numpyro distribution, got "
                f"{type(prior).__name__} {prior!r}. Pass e.g. "
                f"`priors={{'{n}': dist.Normal(0.0, 1.0)}}` (`import "
                "numpyro.distributions as dist`); to hold a parameter at a value, make "
                "it `oi.Fixed(value)` in the problem's parameters, or close over it in "
                "a callable log-likelihood."
            )
        if prior.support.is_discrete:
            raise ValueError(
                f"`priors['{n}']` is a discrete distribution "
                f"({type(prior).__name__}); HMC/NUTS and the variational guides need a "
                "continuous prior on an interval (e.g. `dist.Normal`, "
                "`dist.LogNormal`, `dist.Uniform`)."
            )
        if prior.event_shape != () or prior.batch_shape != ():
            raise ValueError(
                f"`priors['{n}']` must be a scalar distribution (batch and event shape "
                f"()), got batch_shape={prior.batch_shape}, "
                f"event_shape={prior.event_shape}."
            )
        if specs is None:
            continue
        param_bounds = _spec_bounds(specs[n])
        prior_bounds = _support_bounds(prior.support)
        if param_bounds is None or prior_bounds is None:
            continue
        if not np.allclose(param_bounds, prior_bounds, rtol=1e-12, atol=0.0):
            raise ValueError(
                f"The prior for '{n}' has support {prior_bounds} but the parameter's "
                f"transform maps onto {param_bounds}. The supports must be equal: "
                "odeinfer does not silently truncate a prior. Use a prior on the same "
                "range (e.g. `dist.TruncatedNormal(loc, scale, low=0.0)`, "
                "`dist.HalfNormal`, `dist.LogNormal` for a Positive parameter; "
                "`dist.Uniform(a, b)`/`dist.Beta` for Bounded) or change the "
                "parameter's transform."
            )


def _record(log_id, failed, params):
    log = _LOGS.get(int(np.asarray(log_id).reshape(-1)[0]))
    if log is not None:
        log.record(failed, params)


@custom_vmap
def _report(failed, params, log_id):
    """Record `params` in the failure log `log_id` on the host, only when `failed`.

    Under `vmap` a `lax.cond` on a batched predicate becomes a select that would call
    the host on every evaluation (measured: 70x slower sampling), so a custom batching
    rule gates the callback on `any(failed)` over the batch instead."""
    jax.lax.cond(
        failed,
        lambda: jax.debug.callback(_record, log_id, failed, params),
        lambda: None,
    )
    return failed


@_report.def_vmap
def _report_batched(axis_size, in_batched, failed, params, log_id):
    if not in_batched[0]:
        failed = jnp.broadcast_to(failed, (axis_size,))
    if not in_batched[1]:
        params = jnp.broadcast_to(params, (axis_size,) + params.shape)
    if in_batched[2]:
        log_id = log_id[0]
    jax.lax.cond(
        jnp.any(failed),
        lambda: jax.debug.callback(_record, log_id, failed, params),
        lambda: None,
    )
    return failed, True


def _check_log_likelihood_callable(fn, loglik, names) -> None:
    """Trace a callable log-likelihood once on abstract scalars, before anything is
    compiled: numpy on traced values, names it reads that `priors` lacks, and a
    non-scalar result are reported here, naming the fix."""
    label = getattr(fn, "__name__", type(fn).__name__)
    abstract = {n: jax.ShapeDtypeStruct((), jnp.result_type(float)) for n in names}
    try:
        value, ok = trace_user_function(label, loglik, abstract)
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


class Potential:
    """The negative log posterior density on the unconstrained space,

    `U(u) = -[log L(θ(u)) + Σ log p(θᵢ(u)) + log|dθ/du|]`,

    with a failed solve mapped to `U = +inf` and gradient zero. Built from an
    [`odeinfer.Problem`][] or a callable `fn(params) -> log_likelihood` (or
    `-> (log_likelihood, ok)`).

    Failures go to `self.failures`, a new [`FailureLog`][], or, inside a compiled
    program that outlives one run, to the log whose (traced) id is `log_id`; the
    priors are validated against the transforms unless `validate=False` (inside such
    a program, where the outer `Potential` has validated them).
    """

    def __init__(
        self,
        problem,
        priors: Mapping[str, dist.Distribution],
        *,
        names: tuple[str, ...] | None = None,
        record_failures: bool = True,
        validate: bool = True,
        log_id=None,
    ):
        if _is_problem(problem):
            from .. import log_likelihood as _log_likelihood

            space = problem.parameters
            if validate:
                _validate_priors(space.names, priors, space.specs)

            def loglik(params):
                value, ok = _log_likelihood(problem, params, with_status=True)
                return value, jnp.all(ok)

            self.problem = problem
            self.callable = None
        elif callable(problem):
            if validate:
                _check_priors_mapping(priors, from_callable=True)
            names = tuple(priors) if names is None else tuple(names)
            if validate:
                _validate_priors(names, priors)
            space = _PriorSpace(priors, names)

            def loglik(params):
                out = problem(params)
                if isinstance(out, tuple):
                    value, ok = out
                    return jnp.asarray(value), jnp.all(ok)
                return jnp.asarray(out), jnp.asarray(True)

            if validate:
                _check_log_likelihood_callable(problem, loglik, names)
            self.problem = None
            self.callable = problem
        else:
            raise TypeError(
                "`problem` must be an `oi.Problem` or a callable "
                "`fn(params: dict) -> log_likelihood`, got "
                f"{type(problem).__name__}."
            )
        self.space = space
        self.names = tuple(space.names)
        if self.problem is None:
            self.size = len(self.names)
        else:
            self.size = int(np.shape(space.to_unconstrained(space.initial()))[0])
        self.priors = {n: priors[n] for n in self.names}
        self.loglik = loglik
        self.failures = FailureLog(self.names)
        self.log_id = self.failures.id if log_id is None else log_id
        self.record_failures = record_failures
        self.potential = self._build()

    def params(self, u) -> dict:
        """Constrained parameters (all of them, fixed included) at `u`."""
        return self.space.from_unconstrained(u)

    def free_vector(self, params: Mapping[str, Any]):
        return jnp.concatenate(
            [jnp.ravel(jnp.asarray(params[n], float)) for n in self.names]
        )

    def log_density(self, u):
        """`(log posterior density, ok)` at `u`, without failure handling."""
        params = self.space.from_unconstrained(u)
        value, ok = self.loglik(params)
        log_prior = sum(jnp.sum(self.priors[n].log_prob(params[n])) for n in self.names)
        total = value + log_prior + self.space.log_abs_det_jacobian(u)
        return total, ok

    def _build(self) -> Callable:
        log_density = self.log_density

        def raw(u):
            value, ok = log_density(u)
            return -value, ok

        log_id = self.log_id
        record = self.record_failures
        free_vector = self.free_vector
        params_fn = self.space.from_unconstrained

        # A custom JVP so that a failed solve has value +inf and gradient exactly 0
        # (jnp.where alone would let NaN gradients of the failed branch leak through).
        @jax.custom_jvp
        def potential(u):
            value, ok = raw(u)
            return _mask(value, ok, u, record)

        @potential.defjvp
        def potential_jvp(primals, tangents):
            (u,), (du,) = primals, tangents
            (value, ok), grad = jax.value_and_grad(raw, has_aux=True)(u)
            good = ok & jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
            value = _mask(value, good, u, record)
            grad = jnp.where(good, grad, 0.0)
            return value, jnp.dot(grad, du)

        def _mask(value, ok, u, record):
            good = ok & jnp.isfinite(value)
            if record:
                _report(
                    ~good, free_vector(params_fn(u)), jnp.asarray(log_id, jnp.int32)
                )
            return jnp.where(good, value, jnp.inf)

        return potential
