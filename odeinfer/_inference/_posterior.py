"""`Posterior`: the immutable result of [`odeinfer.sample`][]."""

import json
import types
import warnings
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import numpy as np


def _frozen(array) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


# Thresholds of `Posterior.diagnostics`: Vehtari, Gelman, Simpson, Carpenter, Bürkner
# (2021), "Rank-normalization, folding, and localization: an improved R-hat", Bayesian
# Analysis 16(2): split R-hat < 1.01 and bulk ESS > 100 per chain (400 for 4 chains).
_MAX_RHAT = 1.01
_MIN_ESS_PER_CHAIN = 100
# Failed evaluations per post-warm-up leapfrog step above which `sample` warns.
_MAX_FAILURE_RATE = 0.01


class SamplingWarning(UserWarning):
    """[`odeinfer.sample`][] finished, but its draws may not represent the posterior
    (chains that do not agree, too few effective draws, divergences, failed solves).
    The message names the cause and what to try; `Posterior.diagnostics()` lists the
    same findings."""


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
    - `num_failures`: transitions (warm-up included) whose trajectory ended at an
        evaluation that failed (a failed solve or a non-finite likelihood, given log
        density `-inf`: the trajectory stops there); `failed_params`: `(k, n)` the
        constrained free parameters of (up to 1000 per chain of) those evaluations.
    - `kernel`, `chain_method`, `num_warmup`, `seed` (`-1` when a JAX key was given
        as `key=`); `timing`: seconds for
        `"compile"` (the chains' programs; close to 0 when JAX's cache held them),
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
        assert isinstance(table, pd.DataFrame)  # the default fmt="wide"
        quantiles = {
            f"q{int(q * 100)}": [np.quantile(self.draws[n], q) for n in self.names]
            for q in (0.05, 0.5, 0.95)
        }
        extra = pd.DataFrame(quantiles, index=list(self.names))
        return pd.concat([table, extra], axis=1)

    def min_bulk_ess(self) -> float:
        import arviz as az
        import xarray as xr

        ess = az.ess(self.to_arviz(), method="bulk", var_names=list(self.names))
        assert isinstance(ess, xr.Dataset)  # arviz's answer for InferenceData
        return float(min(float(ess[n]) for n in self.names))

    def diagnostics(
        self,
        *,
        max_rhat: float = _MAX_RHAT,
        min_ess_per_chain: float = _MIN_ESS_PER_CHAIN,
        max_failure_rate: float = _MAX_FAILURE_RATE,
    ) -> list[str]:
        """Reasons to distrust these draws, one message each (empty when none):

        - split R-hat (rank-normalised, arviz) above `max_rhat` for any parameter
            (needs two or more chains);
        - bulk ESS below `min_ess_per_chain × num_chains`;
        - divergent transitions after warm-up;
        - failed solves (evaluations rejected with log density `-inf`, warm-up
            included) more than `max_failure_rate` times the post-warm-up leapfrog
            steps: a few while warm-up searches for a step size are harmless.

        [`odeinfer.sample`][] warns with each of them (`SamplingWarning`).
        """
        import arviz as az
        import xarray as xr

        found = []
        idata = self.to_arviz()
        names = list(self.names)
        if self.num_chains >= 2:
            rhat = az.rhat(idata, var_names=names)
            assert isinstance(rhat, xr.Dataset)  # arviz's answer for InferenceData
            worst = {n: float(np.nanmax(np.asarray(rhat[n]))) for n in names}
            bad = {n: r for n, r in worst.items() if not r <= max_rhat}
            if bad:
                found.append(
                    "split R-hat above "
                    f"{max_rhat} for {_describe(bad)}: the chains disagree, so the draws "
                    "are not from one posterior (a chain stuck in a mode or not yet "
                    "mixed). Run longer warm-up (`num_warmup`), start from a fit "
                    "(`init=oi.fit(...)`), or check for multimodality with "
                    "`Posterior.plot_trace()`."
                )
        ess = az.ess(idata, method="bulk", var_names=names)
        assert isinstance(ess, xr.Dataset)
        low = {n: float(np.nanmin(np.asarray(ess[n]))) for n in names}
        need = min_ess_per_chain * self.num_chains
        low = {n: e for n, e in low.items() if not e >= need}
        if low:
            found.append(
                f"bulk ESS below {need:g} ({min_ess_per_chain:g} per chain) for "
                f"{_describe(low)}: too few effective draws for reliable means and "
                "quantiles. Draw more (`num_samples`), or reparameterise."
            )
        if self.num_divergences:
            found.append(
                f"{self.num_divergences} divergent transition(s) after warm-up "
                f"(of {self.divergences.size} draws): the sampler could not follow the "
                "posterior's geometry there and the draws may be biased. Raise "
                "`target_accept_prob` (e.g. 0.95), reparameterise, or look for failed "
                "solves."
            )
        steps = int(np.sum(self.num_steps))
        if self.num_failures and self.num_failures > max_failure_rate * steps:
            found.append(
                f"{self.num_failures} evaluation(s) of the log density failed (a failed "
                "solve or a non-finite likelihood) and were rejected as -inf, against "
                f"{steps} leapfrog steps after warm-up; `Posterior.failed_params` "
                "holds where. They bias the draws away from that region: run "
                "`oi.prior_stress_test`, tighten the priors or raise `max_steps`."
            )
        return found

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
        # (`Any`: else pyright fits the unpacked arrays to savez's `allow_pickle`)
        arrays: dict[str, Any] = {f"draws/{n}": self.draws[n] for n in self.names}
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


def _describe(values: Mapping[str, float]) -> str:
    return ", ".join(f"{n!r} ({v:.3g})" for n, v in values.items())


def warn_if_unreliable(posterior: Posterior, stacklevel: int = 3) -> None:
    """One `SamplingWarning` per finding of `posterior.diagnostics()`."""
    for message in posterior.diagnostics():
        warnings.warn(message, SamplingWarning, stacklevel=stacklevel)


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
