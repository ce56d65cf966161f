"""`predictive`: posterior (or prior) predictive simulations with quantile bands."""

from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


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


def _param_draws(posterior, num_draws, key):
    names = tuple(posterior.names)
    flat = {
        n: np.asarray(posterior.draws[n]).reshape(
            (-1,) + np.shape(posterior.draws[n])[2:]
        )
        for n in names
    }
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
    seed: int = 0,
    simulate: Callable | None = None,
    fixed: Mapping | None = None,
) -> PredictiveResult:
    """Simulate the model for posterior draws and summarise with quantile bands.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][] (simulated with [`odeinfer.simulate`][]:
        observables at the data times and event times), or `None` with `simulate`.
    - `posterior`: a [`odeinfer.Posterior`][] or [`odeinfer.VariationalResult`][]
        (anything with `names` and `draws`).
    - `num_draws`: how many draws to simulate (random subset without replacement;
        `None` for all).
    - `quantiles`: the band probabilities.
    - `simulate`: a callable `params -> pytree of arrays` replacing `oi.simulate`
        (e.g. a trajectory on a fine time grid, or first-crossing times).
    - `fixed`: extra parameter values passed to every simulation.

    **Returns:** a [`odeinfer.PredictiveResult`][].
    """
    if simulate is None:
        if problem is None:
            raise ValueError("Give `problem` (an oi.Problem) or `simulate=`.")
        from .. import simulate as _simulate

        def simulate(params):
            return _simulate(problem, params)

    quantiles = tuple(float(q) for q in quantiles)
    if not all(0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"`quantiles` must lie in [0, 1], got {quantiles}.")
    params = _param_draws(posterior, num_draws, jax.random.key(seed))
    fixed = dict(fixed or {})

    def one(p):
        return simulate({**fixed, **p})

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
            import warnings

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
