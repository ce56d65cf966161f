"""`Posterior`: the immutable result of [`odeinfer.sample`][]."""

import json
import types
from collections.abc import Mapping

import equinox as eqx
import numpy as np


def _frozen(array) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


# The array fields that `Posterior.save` writes and `load_posterior` reads.
_ARRAY_FIELDS = (
    "unconstrained",
    "divergences",
    "num_steps",
    "accept_prob",
    "potential_energy",
    "step_size",
    "inverse_mass_matrix",
    "failed_params",
)


class Posterior(eqx.Module):
    """Draws from [`odeinfer.sample`][], by chain. Immutable: arrays are read-only NumPy
    arrays and `draws` is a read-only mapping.

    **Attributes:**

    - `names`: the free parameter names.
    - `draws`: name -> constrained draws of shape `(num_chains, num_samples)`.
    - `unconstrained`: `(num_chains, num_samples, n)` draws on the sampler's scale.
    - `divergences`: `(num_chains, num_samples)` booleans (post-warm-up divergent
        transitions); `num_divergences` is their sum.
    - `num_steps`: leapfrog steps per draw; `accept_prob`, `potential_energy` likewise.
    - `step_size`: adapted step size per chain; `inverse_mass_matrix`: per chain.
    - `num_failures`: potential evaluations (warm-up included) whose solve failed and
        were given log density `-inf`; `failed_params`: `(k, n)` the constrained free
        parameters of (up to 1000 of) them.
    - `kernel`, `chain_method`, `num_warmup`, `seed`; `timing`: seconds for
        `"compile"` (the chains' program; 0 when a compiled one was reused),
        `"until_sampling"` (from the call to the start of sampling: checks,
        initial points and the compile, which overlap), `"sampling"` (warm-up +
        draws) and `"total"`.
    """

    names: tuple[str, ...]
    draws: Mapping[str, np.ndarray]
    unconstrained: np.ndarray
    divergences: np.ndarray
    num_steps: np.ndarray
    accept_prob: np.ndarray
    potential_energy: np.ndarray
    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray
    num_failures: int
    failed_params: np.ndarray
    kernel: str
    chain_method: str
    num_warmup: int
    seed: int
    timing: Mapping[str, float]

    def __init__(
        self,
        *,
        names,
        draws,
        unconstrained,
        divergences,
        num_steps,
        accept_prob,
        potential_energy,
        step_size,
        inverse_mass_matrix,
        num_failures,
        failed_params,
        kernel,
        chain_method,
        num_warmup,
        seed,
        timing,
    ):
        self.names = tuple(names)
        self.draws = types.MappingProxyType({n: _frozen(draws[n]) for n in self.names})
        self.unconstrained = _frozen(unconstrained)
        self.divergences = _frozen(np.asarray(divergences, bool))
        self.num_steps = _frozen(num_steps)
        self.accept_prob = _frozen(accept_prob)
        self.potential_energy = _frozen(potential_energy)
        self.step_size = _frozen(step_size)
        self.inverse_mass_matrix = _frozen(inverse_mass_matrix)
        self.num_failures = int(num_failures)
        self.failed_params = _frozen(failed_params)
        self.kernel = str(kernel)
        self.chain_method = str(chain_method)
        self.num_warmup = int(num_warmup)
        self.seed = int(seed)
        self.timing = types.MappingProxyType({k: float(v) for k, v in timing.items()})

    @property
    def num_chains(self) -> int:
        return self.unconstrained.shape[0]

    @property
    def num_samples(self) -> int:
        return self.unconstrained.shape[1]

    @property
    def num_divergences(self) -> int:
        return int(self.divergences.sum())

    def flat(self, name: str) -> np.ndarray:
        """All draws of `name`, chains concatenated."""
        return self.draws[name].reshape(-1)

    def mean(self) -> dict[str, float]:
        return {n: float(self.draws[n].mean()) for n in self.names}

    def std(self) -> dict[str, float]:
        return {n: float(self.draws[n].std(ddof=1)) for n in self.names}

    def to_arviz(self):
        """An `arviz.InferenceData` with `posterior` (the draws) and `sample_stats`
        (`diverging`, `n_steps`, `acceptance_rate`, `lp`)."""
        import arviz as az

        return az.from_dict(
            posterior={n: np.asarray(self.draws[n]) for n in self.names},
            sample_stats={
                "diverging": np.asarray(self.divergences),
                "n_steps": np.asarray(self.num_steps),
                "acceptance_rate": np.asarray(self.accept_prob),
                "lp": -np.asarray(self.potential_energy),
            },
        )

    def summary(self, hdi_prob: float = 0.9):
        """A pandas table per parameter: mean, sd, the 5/50/95% quantiles, MCSE of
        mean and sd, bulk and tail ESS and split R-hat (rank-normalised, via arviz),
        unrounded. With one chain R-hat is NaN (arviz needs two chains)."""
        import arviz as az
        import pandas as pd

        idata = self.to_arviz()
        table = az.summary(
            idata, var_names=list(self.names), hdi_prob=hdi_prob, round_to="none"
        )
        quantiles = {
            f"q{int(q * 100)}": [np.quantile(self.draws[n], q) for n in self.names]
            for q in (0.05, 0.5, 0.95)
        }
        extra = pd.DataFrame(quantiles, index=list(self.names))
        return pd.concat([table, extra], axis=1)

    def min_bulk_ess(self) -> float:
        import arviz as az

        ess = az.ess(self.to_arviz(), method="bulk", var_names=list(self.names))
        return float(min(float(ess[n]) for n in self.names))

    def save(self, path) -> None:
        """Write every array and field to a `.npz` file (lossless; read back with
        [`odeinfer.load_posterior`][])."""
        meta = {
            "names": list(self.names),
            "num_failures": self.num_failures,
            "kernel": self.kernel,
            "chain_method": self.chain_method,
            "num_warmup": self.num_warmup,
            "seed": self.seed,
            "timing": dict(self.timing),
        }
        arrays = {f"draws/{n}": self.draws[n] for n in self.names}
        for field in _ARRAY_FIELDS:
            arrays[field] = getattr(self, field)
        with open(path, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)

    # plots (lazy matplotlib/arviz)
    def plot_trace(self, **kwargs):
        from ._plots import plot_trace

        return plot_trace(self, **kwargs)

    def plot_rank(self, **kwargs):
        from ._plots import plot_rank

        return plot_rank(self, **kwargs)


def load_posterior(path) -> Posterior:
    """Read a [`odeinfer.Posterior`][] written by `Posterior.save`; draws are bit-exact.

    **Arguments:**

    - `path`: the `.npz` file.

    **Returns:** the `Posterior`.
    """
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        names = meta["names"]
        draws = {n: data[f"draws/{n}"] for n in names}
        fields = {k: data[k] for k in _ARRAY_FIELDS}
    return Posterior(
        names=names,
        draws=draws,
        num_failures=meta["num_failures"],
        kernel=meta["kernel"],
        chain_method=meta["chain_method"],
        num_warmup=meta["num_warmup"],
        seed=meta["seed"],
        timing=meta["timing"],
        **fields,
    )
