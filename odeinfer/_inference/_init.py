"""Initial points of the chains on the unconstrained scale, and their check."""

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._density import CallableLikelihood, LogDensity, masked_potential
from .._estimation import FitResult

_MAX_INIT_TRIES = 100
INIT_STRATEGIES = ("prior", "uniform", "optimize")


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


def _prior_draws(density: LogDensity, key, size: int):
    keys = jax.random.split(key, len(density.names))
    params = {
        n: density.priors[n].sample(k, (size,))
        for n, k in zip(density.names, keys, strict=True)
    }
    return jax.vmap(density.parameters.to_unconstrained)(params)


def _uniform_draws(density: LogDensity, key, size: int, radius: float = 2.0):
    return jax.random.uniform(key, (size, density.size), minval=-radius, maxval=radius)


@eqx.filter_jit
def _optimise(density: LogDensity, u0, max_steps: int):
    """A few BFGS steps on the potential from each row of `u0` (the end point, or the
    start where the optimiser failed)."""

    def one(u):
        solution = optx.minimise(
            lambda x, _: masked_potential(density, x),
            optx.BFGS(rtol=1e-6, atol=1e-6),
            u,
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
    redrawn (up to 100 times) where the potential is not finite; `"optimize"`: a
    uniform draw followed by up to 50 BFGS steps on the potential."""
    draw = _prior_draws if kind == "prior" else _uniform_draws
    chosen = np.zeros((num_chains, density.size))
    done = np.zeros(num_chains, bool)
    for attempt in range(_MAX_INIT_TRIES):
        u = np.asarray(draw(density, jax.random.fold_in(key, attempt), num_chains))
        ok = np.isfinite(np.asarray(potentials(density, jnp.asarray(u))))
        take = ok & ~done
        chosen[take] = u[take]
        done |= ok
        if done.all():
            if kind == "optimize":
                chosen = np.asarray(_optimise(density, jnp.asarray(chosen), 50))
            return chosen
    raise ValueError(
        f"`init='{kind}'`: no finite log density in {_MAX_INIT_TRIES} draws for "
        f"{int((~done).sum())} chain(s). The solve fails or the likelihood is -inf over "
        "most of the prior: run `oi.prior_stress_test` to find where, tighten the "
        "priors, or pass `init=` a dict of parameter values or a `FitResult`."
    )


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
    """`(num_chains, n)` starting points: prior draws (`init='prior'`, and the default
    for a callable likelihood), or `init` (a dict, a `FitResult`, or the problem's
    initial values for `None`) with a uniform jitter of half-width `jitter`."""
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
            return random_init(density, key, num_chains, "prior")
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


def check_initial(density: LogDensity, u: np.ndarray) -> None:
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
