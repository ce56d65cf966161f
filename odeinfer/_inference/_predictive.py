"""`predictive`: posterior (or prior) predictive simulations with quantile bands."""

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._likelihood import Problem
from .._likelihood import simulate as simulate_problem
from .._validation import trace_user_function
from ._posterior import Posterior
from ._random import as_key
from ._sample import check_count
from ._variational import VariationalResult


class PredictiveResult(eqx.Module):
    """The result of [`odeinfer.predictive`][].

    **Attributes:**

    - `draws`: the simulated output (same pytree as `oi.simulate(problem, params)` or
        your `simulate` callable) with a leading axis of size `num_draws`.
    - `quantiles`: the probabilities of the bands, e.g. `(0.05, 0.5, 0.95)`.
    - `bands`: the same pytree with a leading axis `len(quantiles)` (NaN-aware
        quantiles over the draws; non-finite values, e.g. `inf` for an event not
        found, are ignored).
    - `params`: name -> the parameter draws used, `(num_draws,)`.
    - `num_failed`: draws whose simulation returned non-finite values.
    """

    draws: object
    quantiles: tuple[float, ...]
    bands: object
    params: Mapping[str, np.ndarray]
    num_failed: int


def _draws_of(posterior) -> dict[str, np.ndarray]:
    """name -> draws with one leading sample axis (chains flattened)."""
    if isinstance(posterior, Posterior):
        return {
            n: np.asarray(posterior.draws[n]).reshape(
                (-1,) + np.shape(posterior.draws[n])[2:]
            )
            for n in posterior.names
        }
    if isinstance(posterior, VariationalResult):
        return {n: np.asarray(posterior.draws[n]) for n in posterior.names}
    if isinstance(posterior, Mapping) and posterior:
        draws = {}
        for n, value in posterior.items():
            value = np.asarray(value, dtype=float)
            if value.ndim == 0:
                raise ValueError(
                    f"`posterior['{n}']` is a single number; give an array of draws "
                    "(leading axis: draws)."
                )
            draws[n] = value
        sizes = {n: v.shape[0] for n, v in draws.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"`posterior` arrays must have the same number of draws; got {sizes}."
            )
        return draws
    raise TypeError(
        "`posterior` must be an odeinfer.Posterior (from `oi.sample`), a "
        "VariationalResult (from `oi.variational`) or a non-empty dict name -> array "
        f"of draws; got {type(posterior).__name__}."
    )


def _param_draws(posterior, num_draws, key):
    flat = _draws_of(posterior)
    names = tuple(flat)
    total = next(iter(flat.values())).shape[0]
    if num_draws is None or num_draws >= total:
        index = np.arange(total)
    else:
        index = np.sort(
            np.asarray(jax.random.choice(key, total, (num_draws,), replace=False))
        )
    return {n: flat[n][index] for n in names}


def predictive(
    problem,
    posterior,
    *,
    num_draws: int | None = 200,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    seed: int | None = None,
    simulate: Callable | None = None,
    fixed: Mapping | None = None,
    key=None,
) -> PredictiveResult:
    """Simulate the model for posterior draws and summarise with quantile bands.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][] (simulated with [`odeinfer.simulate`][]:
        observables at the data times and event times), or `None` with `simulate`.
    - `posterior`: a [`odeinfer.Posterior`][], a [`odeinfer.VariationalResult`][],
        or a dict name -> array of draws (leading axis: draws).
    - `num_draws`: how many draws to simulate (random subset without replacement;
        `None` for all).
    - `quantiles`: the band probabilities.
    - `simulate`: a callable `params -> pytree of arrays` replacing `oi.simulate`
        (e.g. a trajectory on a fine time grid, or first-crossing times).
    - `fixed`: extra parameter values passed to every simulation (names the posterior
        does not have).
    - `key`: a JAX PRNG key or an int (default 0); `seed` (an int) is deprecated.

    **Returns:** a [`odeinfer.PredictiveResult`][].
    """
    if simulate is None:
        if problem is None:
            raise ValueError(
                "Give `problem` (an oi.Problem) or `simulate=` (a callable params -> "
                "pytree of arrays)."
            )
        if not isinstance(problem, Problem):
            raise TypeError(
                f"`problem` must be an oi.Problem (or None with `simulate=`); got "
                f"{type(problem).__name__}. To simulate with your own function, pass "
                "`oi.predictive(None, posterior, simulate=fn)`."
            )
        # (a partial has no `__name__`: error messages call it "simulate")
        simulate = functools.partial(simulate_problem, problem)

    elif not callable(simulate):
        raise TypeError(
            f"`simulate` must be a callable params -> pytree of arrays; got "
            f"{type(simulate).__name__}."
        )
    if num_draws is not None:
        check_count("num_draws", num_draws, 1)
    try:
        quantiles = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise TypeError(
            f"`quantiles` must be a sequence of numbers in [0, 1]; got {quantiles!r}."
        ) from None
    if not quantiles or not all(0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(
            "`quantiles` must be a non-empty sequence of numbers in [0, 1], e.g. "
            f"(0.05, 0.5, 0.95); got {quantiles}."
        )
    if fixed is not None and not isinstance(fixed, Mapping):
        raise TypeError(
            f"`fixed` must be a dict name -> value; got {type(fixed).__name__}."
        )
    fixed = dict(fixed or {})
    key, _ = as_key(key, seed)
    params = _param_draws(posterior, num_draws, key)
    both = sorted(set(fixed) & set(params))
    if both:
        raise ValueError(
            f"`fixed` gives {both}, which the posterior also has draws of; a fixed "
            "value would be ignored. Remove them from `fixed`."
        )

    def one(p):
        return simulate({**fixed, **p})

    label = getattr(simulate, "__name__", "simulate")
    trace_user_function(
        label,
        one,
        jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), params),
    )

    draws = jax.jit(jax.vmap(one))(jax.tree.map(jnp.asarray, params))
    draws = jax.tree.map(np.asarray, draws)
    leaves = jax.tree.leaves(draws)
    failed = np.zeros(next(iter(params.values())).shape[0], bool)
    for leaf in leaves:
        if np.issubdtype(leaf.dtype, np.floating):
            failed |= np.isnan(leaf.reshape(leaf.shape[0], -1)).any(axis=1)

    def band(leaf):
        if not np.issubdtype(leaf.dtype, np.floating):
            return leaf
        finite = np.where(np.isfinite(leaf), leaf, np.nan)
        with np.errstate(all="ignore"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanquantile(finite, quantiles, axis=0)

    bands = jax.tree.map(band, draws)
    return PredictiveResult(
        draws=draws,
        quantiles=quantiles,
        bands=bands,
        params=params,
        num_failed=int(failed.sum()),
    )
