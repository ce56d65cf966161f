"""`variational`: stochastic variational inference with numpyro's autoguides."""

import time
from collections.abc import Callable, Mapping
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import (
    AutoGuide,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)

from .._density import (
    LogDensity,
    check_callable_likelihood,
    log_density,
    masked_potential,
)
from ._random import as_key
from ._sample import check_count

_GUIDES = {
    "meanfield": AutoNormal,
    "fullrank": AutoMultivariateNormal,
    "lowrank": AutoLowRankMultivariateNormal,
}

#: The numpyro site holding the unconstrained parameter vector; a custom guide must
#: sample this site (shape `(n,)`, event dimension 1).
SITE = "u"


def unconstrained_model(density: LogDensity) -> Callable:
    """A numpyro model over the single site `"u"` (the unconstrained parameter vector)
    whose log density is `density(u)`: the same target, priors, Jacobian and
    failure handling as [`odeinfer.sample`][]."""
    n = density.size

    def model():
        u = jnp.asarray(
            numpyro.sample(
                SITE, dist.ImproperUniform(dist.constraints.real_vector, (), (n,))
            )
        )
        numpyro.factor("log_density", -masked_potential(density, u))

    return model


class VariationalResult(eqx.Module):
    """The result of [`odeinfer.variational`][].

    **Attributes:**

    - `names`: free parameter names.
    - `elbo`: the ELBO estimate at every step (`-loss`), shape `(num_steps,)`.
    - `guide_params`: the fitted guide parameters (numpyro's `svi.get_params`).
    - `draws`: name -> `num_draws` constrained draws from the fitted guide.
    - `unconstrained`: those draws on the unconstrained scale, `(num_draws, n)`.
    - `guide`: the guide name (or class name); `num_failures`: failed solves met.
    - `timing`: seconds for `"total"`.
    """

    names: tuple[str, ...]
    elbo: np.ndarray
    guide_params: dict
    draws: Mapping[str, np.ndarray]
    unconstrained: np.ndarray
    guide: str
    num_failures: int
    timing: Mapping[str, float]

    def mean(self) -> dict[str, float]:
        return {n: float(np.mean(self.draws[n])) for n in self.names}

    def std(self) -> dict[str, float]:
        return {n: float(np.std(self.draws[n], ddof=1)) for n in self.names}


def _make_guide(guide, model):
    if isinstance(guide, str):
        if guide not in _GUIDES:
            raise ValueError(
                f"`guide` must be one of {sorted(_GUIDES)}, an AutoGuide class or a "
                f"numpyro guide function sampling the site '{SITE}'; got {guide!r}."
            )
        return _GUIDES[guide](model), guide
    if isinstance(guide, type) and issubclass(guide, AutoGuide):
        return guide(model), guide.__name__
    if callable(guide):
        return guide, getattr(guide, "__name__", type(guide).__name__)
    raise TypeError(
        f"`guide` must be a string, an AutoGuide class or a callable, got {type(guide).__name__}."
    )


def variational(
    problem,
    priors: Mapping[str, dist.Distribution],
    *,
    guide: Literal["meanfield", "fullrank", "lowrank"] | type | Callable = "meanfield",
    num_steps: int = 5000,
    learning_rate: float = 1e-2,
    num_particles: int = 1,
    seed: int | None = None,
    num_draws: int = 1000,
    key=None,
) -> VariationalResult:
    """Fit a variational approximation `q(u)` to the posterior on the unconstrained
    space by maximising the ELBO `E_q[log p(u, data)] + H[q]` with numpyro's SVI
    (`Trace_ELBO`, pathwise/reparameterised gradients) and Adam.

    **Arguments:**

    - `problem`, `priors`: as for [`odeinfer.sample`][].
    - `guide`: `"meanfield"` (`AutoNormal`), `"fullrank"` (`AutoMultivariateNormal`),
        `"lowrank"` (`AutoLowRankMultivariateNormal`), any numpyro `AutoGuide` class,
        or a guide function that samples the site `"u"` (the unconstrained vector, event
        shape `(n,)`).
    - `num_steps`, `learning_rate`: Adam steps and step size.
    - `num_particles`: Monte Carlo samples per ELBO estimate.
    - `num_draws`: draws from the fitted guide (at least 2, for `std()`).
    - `key`: a JAX PRNG key or an int (default 0); `seed` (an int) is deprecated.

    **Returns:** a [`odeinfer.VariationalResult`][].

    **Raises:** `ValueError`/`TypeError` naming the argument, before anything is
    compiled, for bad options or priors, and for a callable log-likelihood as
    [`odeinfer.sample`][] does.
    """
    check_count("num_steps", num_steps, 1)
    check_count("num_particles", num_particles, 1)
    check_count("num_draws", num_draws, 2)
    if not (
        isinstance(learning_rate, int | float | np.integer | np.floating)
        and not isinstance(learning_rate, bool)
        and np.isfinite(learning_rate)
        and learning_rate > 0
    ):
        raise ValueError(
            "`learning_rate` must be a finite number > 0 (Adam's step size, typical "
            f"1e-3 to 1e-1); got {learning_rate!r}."
        )
    key, _ = as_key(key, seed)
    density = log_density(problem, priors, jacobian=True, complete=True)
    check_callable_likelihood(density.likelihood)
    model = unconstrained_model(density)
    guide_obj, guide_name = _make_guide(guide, model)
    svi = SVI(
        model, guide_obj, numpyro.optim.Adam(learning_rate), Trace_ELBO(num_particles)
    )
    key_fit, key_draw = jax.random.split(key)
    start = time.perf_counter()
    result = svi.run(key_fit, num_steps, progress_bar=False)
    params = result.params
    u = numpyro.infer.Predictive(guide_obj, params=params, num_samples=num_draws)(
        key_draw
    )[SITE]
    constrained = jax.jit(jax.vmap(density.params))(u)
    elapsed = time.perf_counter() - start
    return VariationalResult(
        names=density.names,
        elbo=-np.asarray(result.losses),
        guide_params={k: np.asarray(v) for k, v in params.items()},
        draws={n: np.asarray(constrained[n]) for n in density.names},
        unconstrained=np.asarray(u),
        guide=guide_name,
        # steps whose ELBO estimate met a failed solve (a loss of +inf)
        num_failures=int(np.sum(~np.isfinite(np.asarray(result.losses)))),
        timing={"total": elapsed},
    )
