"""`sample`: NUTS/HMC over the parameters of a problem, through numpyro's functional
HMC kernels, with sequential, threaded, vectorised or device-parallel chains."""

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .._density import check_callable_likelihood, log_density
from .._estimation import FitResult
from ._chains import Progress, chunk_lengths, compile_chains
from ._init import check_initial, constrain, initial_points
from ._kernel import KernelSettings
from ._posterior import Posterior, warn_if_unreliable
from ._random import as_key

# `dense_mass=None` adapts a dense metric up to this many unconstrained dimensions.
# Measured (`benchmarks/dense_metric.py`, min bulk ESS per 1,000 leapfrog steps, 4
# chains × 1000 + 1000): dense 5–30× diagonal at 4 and 8 dimensions (SIR, one_comp,
# lynx–hare), diagonal 1.7× dense at 43 (a 12-subject hierarchical PK model); 20 lies
# between the measured sizes.
_DENSE_MASS_MAX_DIM = 20
_CHAIN_METHODS = ("auto", "sequential", "threaded", "vectorized", "parallel")


def _auto_chain_method(
    num_chains: int,
) -> Literal["parallel", "threaded", "vectorized"]:
    """Device-parallel chains where there is a device per chain (several GPUs, or host
    devices made with `XLA_FLAGS`); otherwise threads on a CPU, one `vmap`ed program
    on a single accelerator."""
    if num_chains > 1 and jax.device_count() >= num_chains:
        return "parallel"
    if jax.default_backend() == "cpu":
        return "threaded"
    return "vectorized"


def sample(
    problem,
    priors: Mapping[str, dist.Distribution],
    *,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    chain_method: Literal[
        "auto", "sequential", "threaded", "vectorized", "parallel"
    ] = "auto",
    kernel: Literal["nuts", "hmc"] = "nuts",
    seed: int | None = None,
    key=None,
    init: Mapping | FitResult | Literal["prior", "uniform", "optimize"] | None = None,
    init_jitter: float = 0.2,
    progress_bar: bool = False,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool | None = None,
    num_steps: int | None = None,
    trajectory_length: float | None = None,
    record_failures: bool = True,
) -> Posterior:
    """Draw from the posterior `p(θ | data) ∝ L(θ) Π p(θᵢ)` with NUTS (default) or
    static HMC, numpyro's kernels with its window adaptation of step size and
    (diagonal or dense) mass matrix, on the unconstrained space of the parameter
    transforms.

    A proposal whose solve fails (max steps, non-finite state, event buffer overflow) has
    log density `-inf`: it is rejected as a divergence, never crashes the run, and is
    counted in `Posterior.num_failures` with its parameters. Every solve is bounded by
    the problem's `max_steps`, so no chain can hang.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][], or a callable `fn(params: dict) ->
        log_likelihood` (or `-> (log_likelihood, ok)`); for a callable the parameters
        and their transforms are derived from the priors' supports.
    - `priors`: name -> scalar numpyro distribution, one per free parameter. Its support
        must equal the range of the parameter's transform (e.g. a Positive parameter
        needs `LogNormal`, `HalfNormal` or `TruncatedNormal(..., low=0.0)`, not
        `Normal`): odeinfer never truncates a prior silently.
    - `num_warmup`, `num_samples`, `num_chains`: per chain.
    - `chain_method`:
        - `"threaded"`: one compiled chain program, the chains run concurrently from a
            pool of threads, one per CPU core (XLA releases the GIL while it runs);
            each chain runs at its own pace, with no waiting for the slowest.
        - `"vectorized"`: all chains in one `vmap`ed program (the right choice on a
            single GPU; on a CPU it runs on one core, every NUTS tree as deep as the
            deepest chain's).
        - `"sequential"`: one compiled chain after another.
        - `"parallel"`: one chain per JAX device (GPUs, or on CPU host devices made
            with `XLA_FLAGS=--xla_force_host_platform_device_count=N` before jax is
            imported); `num_chains` must not exceed the device count.
        - `"auto"` (default): `"parallel"` when there is a device per chain, else
            `"threaded"` on a CPU and `"vectorized"` on an accelerator.
    - `kernel`: `"nuts"` or `"hmc"` (give `num_steps` or `trajectory_length`).
    - `key`: a JAX PRNG key (`jax.random.key(0)`) or an int (default 0); `seed` (an
        int) is the deprecated spelling.
    - `init`: `None` (the parameters' initial values for a Problem, `"uniform"` for a
        callable), `"prior"` (draws from the priors), `"uniform"` (uniform(-2, 2) on
        the unconstrained scale, Stan's and numpyro's default), `"optimize"` (a
        uniform draw, then up to 10 BFGS steps on the log density, per chain), a
        dict of values or a `FitResult`; a dict, a `FitResult` and `None` for a
        Problem are jittered by `uniform(-init_jitter, init_jitter)` on the
        unconstrained scale per chain. Every random start is redrawn (up to 100
        times) where the log density is not finite.
    - `progress_bar`: print progress to stderr.
    - `target_accept_prob`, `max_tree_depth`: as in numpyro.
    - `dense_mass`: adapt a dense mass matrix (`True`) or a diagonal one (`False`);
        `None` (default) is dense up to 20 unconstrained dimensions, diagonal above.
        ODE parameters are few and strongly correlated (rates trade off along the
        data), where a dense metric needs several times fewer leapfrog steps per
        draw than Stan's and numpyro's diagonal default; its O(d²) cost per step is
        negligible next to an ODE solve at this size. Its window adaptation needs a
        few hundred warm-up draws to estimate the covariance.
    - `record_failures`: kept for compatibility: failed solves are always counted,
        in the chains' own state (a count and the first 1000 points per chain).

    **Returns:** a [`odeinfer.Posterior`][].

    **Warns:** `SamplingWarning` (a `UserWarning`) when the draws may not represent
    the posterior: split R-hat above 1.01, bulk ESS below 100 per chain, divergent
    transitions after warm-up, or failed solves (see `Posterior.diagnostics()`).

    **Raises:** `ValueError`/`TypeError` naming the argument, before anything is
    compiled, for bad options, priors that are not scalar continuous numpyro
    distributions on the parameters' ranges, an `init` outside a parameter's support,
    or a callable log-likelihood that calls numpy on traced values
    ([`odeinfer.NumpyInTracedCodeError`][]), reads a name `priors` lacks, or does not
    return a scalar.
    """
    if kernel not in ("nuts", "hmc"):
        raise ValueError(f"`kernel` must be 'nuts' or 'hmc', got {kernel!r}.")
    if chain_method not in _CHAIN_METHODS:
        raise ValueError(
            f"`chain_method` must be one of {', '.join(map(repr, _CHAIN_METHODS))}, "
            f"got {chain_method!r}."
        )
    check_count("num_warmup", num_warmup, 0)
    check_count("num_samples", num_samples, 1)
    check_count("num_chains", num_chains, 1)
    check_count("max_tree_depth", max_tree_depth, 1)
    if num_steps is not None:
        check_count("num_steps", num_steps, 1)
    _check_options(
        target_accept_prob, init_jitter, dense_mass, trajectory_length, progress_bar
    )
    key, seed = as_key(key, seed)
    if chain_method == "parallel" and num_chains > jax.device_count():
        raise ValueError(
            f"`chain_method='parallel'` runs one chain per device but num_chains="
            f"{num_chains} > {jax.device_count()} device(s). Use num_chains <= "
            f"{jax.device_count()}, `chain_method='vectorized'`, or on CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={num_chains} before "
            "jax is imported."
        )
    if chain_method == "auto":
        chain_method = _auto_chain_method(num_chains)
    if kernel == "hmc" and num_steps is None and trajectory_length is None:
        trajectory_length = 2 * np.pi

    start = time.perf_counter()
    density = log_density(problem, priors, jacobian=True, complete=True)
    check_callable_likelihood(density.likelihood)
    total = num_warmup + num_samples
    every = max(total // 20, 1)
    init_key, run_key = jax.random.split(key)
    u0 = initial_points(density, init, init_key, num_chains, init_jitter)
    if dense_mass is None:
        dense_mass = bool(u0.shape[1] <= _DENSE_MASS_MAX_DIM)
    settings = KernelSettings(
        algo=kernel.upper(),
        num_warmup=num_warmup,
        target_accept_prob=float(target_accept_prob),
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
        num_steps=num_steps if kernel == "hmc" else None,
        trajectory_length=(
            float(trajectory_length)
            if kernel == "hmc" and trajectory_length is not None and num_steps is None
            else None
        ),
    )
    lengths = chunk_lengths(total, every) if progress_bar else [total]
    keys = jax.random.split(run_key, num_chains)
    u0 = jnp.asarray(u0)
    # The chains compile in the background while the initial points are checked (both
    # mostly XLA compilation, which runs outside the GIL).
    pool = ThreadPoolExecutor(max_workers=1)
    compiling = pool.submit(
        compile_chains, chain_method, settings, density, keys, u0, lengths
    )
    try:
        check_initial(density, u0)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    runner = compiling.result()
    pool.shutdown()
    progress = None
    if progress_bar:
        progress = Progress(
            total * num_chains, f"{kernel}, {num_chains} chains ({chain_method})"
        )
    ready = time.perf_counter()
    state, draws = runner.run(progress)
    sampling_time = time.perf_counter() - ready
    total_time = time.perf_counter() - start
    draws = jax.tree.map(lambda x: np.asarray(x)[:, num_warmup:], draws)
    adapt = state.hmc.adapt_state

    z = draws.z
    params = constrain(density, jnp.asarray(z))
    counts = np.asarray(state.num_failures)
    points = np.asarray(state.failed_points)
    failed = np.concatenate(
        [points[c, : min(int(counts[c]), points.shape[1])] for c in range(num_chains)]
    )
    if failed.shape[0]:
        failed_params = constrain(density, jnp.asarray(failed))
        failed = np.concatenate(
            [
                np.reshape(np.asarray(failed_params[n]), (failed.shape[0], -1))
                for n in density.names
            ],
            axis=1,
        )
    posterior = Posterior(
        names=density.names,
        draws={n: np.asarray(params[n]) for n in density.names},
        unconstrained=np.asarray(z),
        divergences=np.asarray(draws.diverging),
        num_steps=np.asarray(draws.num_steps),
        accept_prob=np.asarray(draws.accept_prob),
        potential_energy=np.asarray(draws.potential_energy),
        step_size=np.asarray(adapt.step_size),
        inverse_mass_matrix=np.asarray(adapt.inverse_mass_matrix),
        num_failures=int(counts.sum()),
        failed_params=failed,
        kernel=kernel,
        chain_method=chain_method,
        num_warmup=num_warmup,
        seed=seed,
        timing={
            "compile": runner.compile_seconds,
            "until_sampling": ready - start,
            "sampling": sampling_time,
            "total": total_time,
        },
    )
    warn_if_unreliable(posterior)
    return posterior


def check_count(name: str, value, minimum: int) -> None:
    """`value` is an integer `>= minimum` (a bool is not)."""
    if (
        not isinstance(value, int | np.integer)
        or isinstance(value, bool | np.bool_)
        or value < minimum
    ):
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _check_options(
    target_accept_prob, init_jitter, dense_mass, trajectory_length, progress_bar
):
    if not (_is_real(target_accept_prob) and 0.0 < target_accept_prob < 1.0):
        raise ValueError(
            "`target_accept_prob` must be a number strictly between 0 and 1 (typical: "
            f"0.8, or 0.95 against divergences); got {target_accept_prob!r}."
        )
    if not (_is_real(init_jitter) and np.isfinite(init_jitter) and init_jitter >= 0):
        raise ValueError(
            "`init_jitter` must be a finite number >= 0 (the half-width of the uniform "
            f"jitter on the unconstrained scale); got {init_jitter!r}."
        )
    if dense_mass is not None and not isinstance(dense_mass, bool):
        raise TypeError(
            f"`dense_mass` must be True, False or None (automatic); got {dense_mass!r}."
        )
    if trajectory_length is not None and not (
        _is_real(trajectory_length)
        and np.isfinite(trajectory_length)
        and trajectory_length > 0
    ):
        raise ValueError(
            "`trajectory_length` must be a finite number > 0 (or None); got "
            f"{trajectory_length!r}."
        )
    if not isinstance(progress_bar, bool):
        raise TypeError(f"`progress_bar` must be True or False; got {progress_bar!r}.")
