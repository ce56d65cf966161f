"""Initial points of the chains on the unconstrained scale, and their check."""

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float
from numpyro.infer.initialization import init_to_sample, init_to_uniform
from numpyro.infer.util import constrain_fn, find_valid_initial_params

from .._density import (
    CallableLikelihood,
    LogDensity,
    log_likelihood_and_status,
    masked_potential,
)
from .._estimation import FitResult

_MAX_INIT_TRIES = 100  # numpyro's find_valid_initial_params
_OPTIMISE_STEPS = 10  # BFGS steps of `init="optimize"`: a few, so chains still differ
INIT_STRATEGIES = ("prior", "uniform", "optimize")
# The default start of a callable likelihood's chains, chosen by
# benchmarks/nuts_init.py (benchmarks/results/nuts_init.json): from prior draws a
# lynx-hare chain stuck (R-hat 1.53, min bulk ESS 7) and SIR's warm-up took 2.6x as
# long; uniform(-2, 2) mixed on SIR, one_comp and lynx-hare (R-hat <= 1.013).
DEFAULT_RANDOM_INIT = "uniform"


@eqx.filter_jit
def potentials(density: LogDensity, u):
    """The masked potential at each row of `u`."""
    return jax.vmap(lambda x: masked_potential(density, x))(u)


@eqx.filter_jit
def _potentials_and_gradients(density: LogDensity, u):
    return jax.vmap(jax.value_and_grad(lambda x: masked_potential(density, x)))(u)


@eqx.filter_jit
def _log_densities(density: LogDensity, u):
    return jax.vmap(density)(u)


@eqx.filter_jit
def constrain(density: LogDensity, u):
    """The constrained parameters at `u` of any batch shape."""
    flat = jnp.reshape(u, (-1, u.shape[-1]))
    params = jax.vmap(density.params)(flat)
    return jax.tree.map(lambda x: jnp.reshape(x, u.shape[:-1] + x.shape[1:]), params)


def _prior_model(density: LogDensity):
    """The posterior as a numpyro model: one sample site per free parameter (its
    prior) and the log-likelihood as a factor."""

    def model():
        params: dict[str, ArrayLike] = dict(density.parameters.fixed)
        for name in density.names:
            params[name] = numpyro.sample(name, density.priors[name])
        value, _ = log_likelihood_and_status(density.likelihood, params)
        numpyro.factor("log_likelihood", value)

    return model


@eqx.filter_jit
def _numpyro_init(density: LogDensity, keys, kind: str):
    """numpyro's `find_valid_initial_params` per chain (up to 100 draws where the
    potential or its gradient is not finite), with `init_to_sample` (prior draws) or
    `init_to_uniform(radius=2)`, mapped to the unconstrained vector of `density`."""
    model = _prior_model(density)
    strategy = init_to_sample if kind == "prior" else init_to_uniform(radius=2)
    prototype = {n: jnp.zeros(density.priors[n].shape()) for n in density.names}

    def one(key):
        (params, _, _), valid = find_valid_initial_params(
            key, model, init_strategy=strategy, prototype_params=prototype
        )
        constrained = constrain_fn(model, (), {}, params)
        return density.parameters.to_unconstrained(constrained), valid

    return jax.vmap(one)(keys)


@eqx.filter_jit
def _optimise(density: LogDensity, u0, max_steps: int):
    """A few BFGS steps on the potential from each row of `u0` (the end point, or the
    start where the optimiser failed)."""

    def potential(x, scale):
        return masked_potential(density, x) / scale

    def one(u):
        # Scaled so that the first BFGS step (along the gradient, identity Hessian)
        # has length 1 on the unconstrained scale: an ODE posterior's gradient far
        # from the mode is large, and a unit-Hessian step of that size lands where
        # the solves fail, so the line search would reject every step.
        gradient = jax.grad(masked_potential, argnums=1)(density, u)
        scale = jnp.maximum(jnp.linalg.norm(gradient), 1.0)
        solution = optx.minimise(
            potential,
            optx.BFGS(rtol=1e-6, atol=1e-6),
            u,
            scale,
            max_steps=max_steps,
            throw=False,
        )
        end = solution.value
        good = jnp.isfinite(masked_potential(density, end))
        return jnp.where(good, end, u)

    return jax.vmap(one)(u0)


def random_init(
    density: LogDensity, key, num_chains: int, kind: str = "prior"
) -> np.ndarray:
    """Each chain's start drawn from the priors (`kind="prior"`) or uniformly from
    (-2, 2) on the unconstrained scale (`"uniform"`, Stan's and numpyro's default),
    by numpyro's `find_valid_initial_params`; `"optimize"`: a uniform draw followed
    by up to 10 BFGS steps on the potential."""
    u, valid = _numpyro_init(
        density,
        jax.random.split(key, num_chains),
        "prior" if kind == "prior" else "uniform",
    )
    valid = np.asarray(valid)
    if not valid.all():
        raise ValueError(
            f"`init='{kind}'`: no finite log density in {_MAX_INIT_TRIES} draws for "
            f"{int((~valid).sum())} chain(s). The solve fails or the likelihood is -inf "
            "over most of the prior: run `oi.prior_stress_test` to find where, tighten "
            "the priors, or pass `init=` a dict of parameter values or a `FitResult`."
        )
    if kind == "optimize":
        u = _optimise(density, u, _OPTIMISE_STEPS)
    return np.asarray(u)


def init_values(density: LogDensity, init: Mapping) -> dict:
    """Check an `init` dict before anything is compiled: known names, a value for
    every free parameter, finite numbers of the right shape inside each parameter's
    support (where the transform to the sampler's scale is finite)."""
    space = density.parameters
    if isinstance(density.likelihood, CallableLikelihood):
        known = density.names
    else:
        known = space.all_names
    unknown = [n for n in init if n not in known]
    if unknown:
        raise ValueError(
            f"`init` names {unknown}, which are not parameters of the problem "
            f"(parameters: {list(known)}). Remove them or check the spelling."
        )
    missing = [n for n in density.names if n not in init]
    if missing:
        raise ValueError(
            f"`init` lacks values for the free parameter(s) {missing}; give a value for "
            f"each of {list(density.names)}, or use `init='prior'`."
        )
    values = {}
    for name in init:
        try:
            value = np.asarray(init[name], dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"`init['{name}']` must be a number; got {init[name]!r}."
            ) from None
        values[name] = value
        if name not in density.names:
            continue  # a fixed parameter's value: checked by the problem
        spec = space.specs[name]
        if value.shape != tuple(spec.shape):
            raise ValueError(
                f"`init['{name}']` has shape {value.shape}; the parameter has shape "
                f"{tuple(spec.shape)}."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"`init['{name}']` must be finite; got {value}.")
        unconstrained = np.asarray(spec.transform().inv(jnp.asarray(value)))
        if not np.all(np.isfinite(unconstrained)):
            raise ValueError(
                f"`init['{name}']` = {value} is outside the support of '{name}', "
                f"({spec.lower}, {spec.upper}) (the open interval: boundary values map "
                "to ±inf on the sampler's scale). Give a value strictly inside it."
            )
    return values


def initial_points(density: LogDensity, init, key, num_chains: int, jitter: float):
    """`(num_chains, n)` starting points: random (`init='prior'`, `'uniform'`,
    `'optimize'`; `DEFAULT_RANDOM_INIT` for a callable likelihood without `init`), or
    `init` (a dict, a `FitResult`, or the problem's initial values for `None`) with a
    uniform jitter of half-width `jitter`."""
    space = density.parameters
    if isinstance(init, str):
        if init not in INIT_STRATEGIES:
            raise ValueError(
                "`init` must be None, 'prior', 'uniform', 'optimize', a dict or a "
                f"FitResult; got {init!r}."
            )
        return random_init(density, key, num_chains, init)
    if init is None:
        if isinstance(density.likelihood, CallableLikelihood):
            return random_init(density, key, num_chains, DEFAULT_RANDOM_INIT)
        u0 = space.to_unconstrained(space.initial())
    elif isinstance(init, FitResult):
        u0 = space.to_unconstrained(init_values(density, dict(init.params)))
    elif isinstance(init, Mapping):
        u0 = space.to_unconstrained(init_values(density, init))
    else:
        raise TypeError(
            "`init` must be None, 'prior', a dict of parameter values or a FitResult, "
            f"got {type(init).__name__}."
        )
    u0 = np.asarray(u0, float)
    noise = jax.random.uniform(
        key, (num_chains, u0.shape[0]), minval=-jitter, maxval=jitter
    )
    return u0[None, :] + np.asarray(noise)


def check_initial(density: LogDensity, u: Float[Array, "chains n"]) -> None:
    """Raise `ValueError` naming the chain and the reason where the potential or its
    gradient is not finite at a starting point."""
    values, grads = _potentials_and_gradients(density, jnp.asarray(u))
    values, grads = np.asarray(values), np.asarray(grads)
    bad = ~np.isfinite(values) | ~np.isfinite(grads).all(axis=1)
    if not bad.any():
        return
    chain = int(np.argmax(bad))
    params = {
        k: float(v)
        for k, v in density.params(jnp.asarray(u[chain])).items()
        if k in density.names
    }
    # Without failure handling, to tell a failed solve from a -inf density.
    lp, ok = _log_densities(density, jnp.asarray(u[chain : chain + 1]))
    reason = (
        "the solve failed"
        if not bool(np.asarray(ok).all())
        else f"the log density is {float(np.asarray(lp)[0])}"
    )
    raise ValueError(
        f"The log density is not finite at the initial point of chain {chain} "
        f"({reason}) at {params}. Pass `init=` values where the model solves and "
        "the likelihood is finite (e.g. a `FitResult` from `oi.fit`, or 'prior'), "
        "or check the data, the priors' supports and the solver's `max_steps`."
    )
