"""`prior_stress_test`: where in the prior does the solve fail?"""

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .._density import (
    check_callable_likelihood,
    log_density,
    log_likelihood_and_status,
)
from ._random import as_key
from ._sample import check_count


class StressTestResult(eqx.Module):
    """The result of [`odeinfer.prior_stress_test`][].

    **Attributes:**

    - `names`: free parameter names; `params`: name -> the `n` prior draws.
    - `failed`: `(n,)` booleans, the solve failed (or the log-likelihood is NaN/-inf).
    - `failure_rate`: the share of failed draws.
    - `log_likelihood`: `(n,)` values (`-inf` where failed).
    - `failed_params`: name -> the draws that failed.
    - `table`: per parameter, the quantiles (5/50/95%) of the failed and of the
        successful draws — where the failures are.
    """

    names: tuple[str, ...]
    params: Mapping[str, np.ndarray]
    failed: np.ndarray
    failure_rate: float
    log_likelihood: np.ndarray
    failed_params: Mapping[str, np.ndarray]
    table: object

    def __str__(self):
        return (
            f"prior stress test: {int(self.failed.sum())}/{self.failed.size} failed "
            f"({100 * self.failure_rate:.1f}%)\n{self.table}"
        )


def prior_stress_test(
    problem,
    priors: Mapping[str, dist.Distribution],
    n: int = 200,
    seed: int | None = None,
    *,
    batch_size: int = 256,
    key=None,
) -> StressTestResult:
    """Draw `n` parameter sets from the priors, solve and evaluate the likelihood for
    each, and report the share and the location of failures (max steps, non-finite
    state, event overflow, NaN likelihood), so that a sampler does not meet them first.

    **Arguments:**

    - `problem`, `priors`: as for [`odeinfer.sample`][].
    - `n`: number of prior draws.
    - `key`: a JAX PRNG key or an int (default 0); `seed` (an int) is deprecated.
    - `batch_size`: draws per vectorised batch (bounds memory).

    **Returns:** a [`odeinfer.StressTestResult`][].
    """
    import pandas as pd

    check_count("n", n, 1)
    check_count("batch_size", batch_size, 1)
    key, _ = as_key(key, seed)
    density = log_density(problem, priors, jacobian=True, complete=True)
    check_callable_likelihood(density.likelihood)
    space = density.parameters
    keys = jax.random.split(key, len(density.names))
    params = {
        name: np.asarray(density.priors[name].sample(k, (n,)))
        for name, k in zip(density.names, keys, strict=True)
    }

    @jax.jit
    @jax.vmap
    def evaluate(p):
        full = space.from_unconstrained(space.to_unconstrained(p))
        value, ok = log_likelihood_and_status(density.likelihood, full)
        return value, ok

    values, oks = [], []
    for start in range(0, n, batch_size):
        batch = {
            k: jnp.asarray(v[start : start + batch_size]) for k, v in params.items()
        }
        value, ok = evaluate(batch)
        values.append(np.asarray(value))
        oks.append(np.asarray(ok))
    values = np.concatenate(values)
    ok = np.concatenate(oks) & ~np.isnan(values) & (values > -np.inf)
    failed = ~ok
    rows = {}
    for name in density.names:
        row = {}
        for label, mask in (("failed", failed), ("ok", ok)):
            for q in (0.05, 0.5, 0.95):
                row[f"{label}_q{int(q * 100)}"] = (
                    float(np.quantile(params[name][mask], q)) if mask.any() else np.nan
                )
        rows[name] = row
    return StressTestResult(
        names=density.names,
        params=params,
        failed=failed,
        failure_rate=float(failed.mean()),
        log_likelihood=np.where(ok, values, -np.inf),
        failed_params={k: v[failed] for k, v in params.items()},
        table=pd.DataFrame(rows).T,
    )
