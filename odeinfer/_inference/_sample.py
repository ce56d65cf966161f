"""`sample`: NUTS/HMC over the parameters of a problem, through numpyro's functional
HMC kernels, with sequential, threaded, vectorised or device-parallel chains."""

import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc

from .._estimation import FitResult
from ._posterior import Posterior, warn_if_unreliable
from ._potential import Potential, _spec_bounds, _support_bounds
from ._programs import Progress, Target, compiled, make_target, potential_of
from ._random import as_key

_MAX_INIT_TRIES = 100
# `dense_mass=None` adapts a dense metric up to this many unconstrained dimensions.
_DENSE_MASS_MAX_DIM = 50
_CHAIN_METHODS = ("auto", "sequential", "threaded", "vectorized", "parallel")


def _num_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


def _auto_chain_method(num_chains: int) -> str:
    """Device-parallel chains where there is a device per chain (several GPUs, or host
    devices made with `XLA_FLAGS`); otherwise threads on a CPU, one `vmap`ed program
    on a single accelerator."""
    if num_chains > 1 and jax.device_count() >= num_chains:
        return "parallel"
    if jax.default_backend() == "cpu":
        return "threaded"
    return "vectorized"


def _potentials(settings, target: Target, u):
    return jax.vmap(potential_of(target, False).potential)(u)


def _potentials_and_gradients(settings, target: Target, u):
    return jax.vmap(jax.value_and_grad(potential_of(target, False).potential))(u)


def _constrain(settings, target: Target, u):
    space = potential_of(target, False).space
    return jax.vmap(jax.vmap(space.from_unconstrained))(u)


def _prior_init(potential: Potential, target, key, num_chains: int) -> np.ndarray:
    """Draw each chain's start from the priors, redrawing (up to 100 times) where the
    potential is not finite."""
    space = potential.space
    u_shape = jnp.zeros((num_chains, potential.size))
    pot, _ = compiled(_potentials, None, target, u_shape)
    keys = jax.random.split(key, len(potential.names))

    def draw(k, size):
        params = {
            n: potential.priors[n].sample(keys_k, (size,))
            for n, keys_k in zip(
                potential.names, jax.random.split(k, len(keys)), strict=True
            )
        }
        return jax.vmap(
            lambda *xs: space.to_unconstrained(
                dict(zip(potential.names, xs, strict=True))
            )
        )(*[params[n] for n in potential.names])

    chosen = np.zeros((num_chains, potential.size))
    done = np.zeros(num_chains, bool)
    for attempt in range(_MAX_INIT_TRIES):
        u = np.asarray(draw(jax.random.fold_in(key, attempt), num_chains))
        ok = np.isfinite(np.asarray(pot(jnp.asarray(u))))
        take = ok & ~done
        chosen[take] = u[take]
        done |= ok
        if done.all():
            return chosen
    raise ValueError(
        f"`init='prior'`: no finite log density in {_MAX_INIT_TRIES} prior draws for "
        f"{int((~done).sum())} chain(s). The solve fails or the likelihood is -inf over "
        "most of the prior: run `oi.prior_stress_test` to find where, tighten the "
        "priors, or pass `init=` a dict of parameter values or a `FitResult`."
    )


def _init_values(potential: Potential, init: Mapping) -> dict:
    """Check an `init` dict before anything is compiled: known names, a value for
    every free parameter, finite numbers of the right shape inside each parameter's
    support (where the transform to the sampler's scale is finite)."""
    space = potential.space
    if potential.problem is not None:
        known = space.all_names
    else:
        known = potential.names
    unknown = [n for n in init if n not in known]
    if unknown:
        raise ValueError(
            f"`init` names {unknown}, which are not parameters of the problem "
            f"(parameters: {list(known)}). Remove them or check the spelling."
        )
    missing = [n for n in potential.names if n not in init]
    if missing:
        raise ValueError(
            f"`init` lacks values for the free parameter(s) {missing}; give a value for "
            f"each of {list(potential.names)}, or use `init='prior'`."
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
        if name not in potential.names:
            continue  # a fixed parameter's value: checked by the problem
        if potential.problem is not None:
            spec = space.specs[name]
            shape, transform = spec.shape, spec.transform()
            bounds = _spec_bounds(spec)
        else:
            prior = potential.priors[name]
            shape, transform = (), biject_to(prior.support)
            bounds = _support_bounds(prior.support)
        if value.shape != tuple(shape):
            raise ValueError(
                f"`init['{name}']` has shape {value.shape}; the parameter has shape "
                f"{tuple(shape)}."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"`init['{name}']` must be finite; got {value}.")
        unconstrained = np.asarray(transform.inv(jnp.asarray(value)))
        if not np.all(np.isfinite(unconstrained)):
            support = "its support" if bounds is None else f"({bounds[0]}, {bounds[1]})"
            raise ValueError(
                f"`init['{name}']` = {value} is outside the support of '{name}', "
                f"{support} (the open interval: boundary values map to ±inf on the "
                "sampler's scale). Give a value strictly inside it."
            )
    return values


def _initial_points(potential: Potential, target, init, key, num_chains, jitter):
    space = potential.space
    if isinstance(init, str):
        if init != "prior":
            raise ValueError(
                f"`init` must be None, 'prior', a dict or a FitResult; got {init!r}."
            )
        return _prior_init(potential, target, key, num_chains)
    if init is None:
        if potential.problem is None:
            return _prior_init(potential, target, key, num_chains)
        u0 = space.to_unconstrained(space.initial())
    elif isinstance(init, FitResult):
        u0 = space.to_unconstrained(_init_values(potential, dict(init.params)))
    elif isinstance(init, Mapping):
        u0 = space.to_unconstrained(_init_values(potential, init))
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


def _check_initial(potential: Potential, target, u: np.ndarray):
    value_and_grad, _ = compiled(
        _potentials_and_gradients, None, target, jnp.asarray(u)
    )
    # Without failure handling, to tell NaN from a failed solve.
    raw = jax.jit(jax.vmap(potential.log_density))
    values, grads = value_and_grad(jnp.asarray(u))
    values, grads = np.asarray(values), np.asarray(grads)
    bad = ~np.isfinite(values) | ~np.isfinite(grads).all(axis=1)
    if bad.any():
        chain = int(np.argmax(bad))
        params = {
            k: float(v)
            for k, v in potential.params(jnp.asarray(u[chain])).items()
            if k in potential.names
        }
        lp, ok = raw(jnp.asarray(u[chain : chain + 1]))
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


class _ChainSettings(NamedTuple):
    """The static settings of a compiled chain (hashable: they select the program)."""

    kernel: str
    num_warmup: int
    num_samples: int
    options: tuple
    record_failures: bool
    progress_every: int  # 0: no progress bar


def _chain(settings: _ChainSettings, target: Target, key, u0):
    """One chain: warm-up and draws in one `lax.scan` (two scans would compile the
    NUTS kernel twice)."""
    potential = potential_of(target, settings.record_failures)
    init_kernel, sample_kernel = hmc(
        potential_fn=potential.potential, algo=settings.kernel.upper()
    )
    total = settings.num_warmup + settings.num_samples
    every = settings.progress_every
    state = init_kernel(u0, settings.num_warmup, rng_key=key, **dict(settings.options))

    def step(state, i):
        state = sample_kernel(state)
        if every:
            jax.lax.cond(
                ((i + 1) % every == 0) | (i + 1 == total),
                lambda: jax.debug.callback(Progress.report, target.progress_id, i),
                lambda: None,
            )
        out = (
            state.z,
            state.diverging,
            state.num_steps,
            state.accept_prob,
            state.potential_energy,
        )
        return state, out

    state, draws = jax.lax.scan(step, state, jnp.arange(total))
    draws = jax.tree.map(lambda x: x[settings.num_warmup :], draws)
    adapt = state.adapt_state
    return draws, adapt.step_size, adapt.inverse_mass_matrix


def _chains(settings: _ChainSettings, target: Target, keys, u0):
    return jax.vmap(lambda key, u: _chain(settings, target, key, u))(keys, u0)


def _compile_chains(chain_method, settings, target, keys, u0):
    """The chains' program, compiled (or cached).

    **Returns:** `(run, compile seconds)`; `run()` runs all chains and returns their
    outputs stacked over chains."""
    num_chains = u0.shape[0]
    if chain_method in ("sequential", "threaded"):
        run, seconds = compiled(_chain, settings, target, keys[0], u0[0])
        workers = 1 if chain_method == "sequential" else min(num_chains, _num_cores())

        def run_one(c):
            return jax.block_until_ready(run(keys[c], u0[c]))

        def run_all():
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outs = list(pool.map(run_one, range(num_chains)))
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

        return run_all, seconds
    if chain_method == "vectorized":
        run, seconds = compiled(_chains, settings, target, keys, u0)
        return (lambda: run(keys, u0)), seconds
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    # The vectorised program with the chain axis sharded over devices (GSPMD). Not
    # `shard_map`/`pmap`: equinox's closure conversion inside diffrax rejects the
    # per-device (varying-axis) types they give traced values, which is how numpyro's
    # chain_method="parallel" crashes inside diffrax.
    mesh = Mesh(np.array(jax.devices()[:num_chains]), ("chains",))
    chains = NamedSharding(mesh, PartitionSpec("chains"))
    replicated = NamedSharding(mesh, PartitionSpec())
    keys, u0 = jax.device_put(keys, chains), jax.device_put(u0, chains)
    run, seconds = compiled(
        _chains,
        settings,
        target,
        keys,
        u0,
        in_shardings=(replicated, chains, chains),
        out_shardings=chains,
    )
    return (lambda: run(keys, u0)), seconds


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
    init=None,
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
        log_likelihood` (or `-> (log_likelihood, ok)`); for a callable the unconstrained
        space is numpyro's `biject_to(prior.support)`.
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
    - `key`: a JAX PRNG key (`jax.random.key(0)`) or an int; or `seed`: an int (the
        older spelling; give one of them, default seed 0).
    - `init`: `None` (the parameters' initial values for a Problem, prior draws for a
        callable), `"prior"`, a dict of values or a `FitResult`; jittered by
        `uniform(-init_jitter, init_jitter)` on the unconstrained scale per chain
        (except `"prior"`).
    - `progress_bar`: print progress to stderr.
    - `target_accept_prob`, `max_tree_depth`: as in numpyro.
    - `dense_mass`: adapt a dense mass matrix (`True`) or a diagonal one (`False`);
        `None` (default) is dense up to 50 unconstrained dimensions, diagonal above.
        ODE parameters are few and strongly correlated (rates trade off along the
        data), where a dense metric needs several times fewer leapfrog steps per
        draw than Stan's and numpyro's diagonal default; its O(d²) cost per step is
        negligible next to an ODE solve at this size. Its window adaptation needs a
        few hundred warm-up draws to estimate the covariance.
    - `record_failures`: count failed solves on the host (a cheap callback on failure).

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
    potential = Potential(problem, priors, record_failures=record_failures)
    total = num_warmup + num_samples
    every = max(total // 20, 1)
    progress = None
    if progress_bar:
        progress = Progress(
            total,
            num_chains,
            every,
            weight=num_chains if chain_method in ("vectorized", "parallel") else 1,
            label=f"{kernel}, {num_chains} chains ({chain_method})",
        )
    target = make_target(potential, progress.id if progress is not None else 0)
    init_key, run_key = jax.random.split(key)
    u0 = _initial_points(potential, target, init, init_key, num_chains, init_jitter)
    if dense_mass is None:
        dense_mass = u0.shape[1] <= _DENSE_MASS_MAX_DIM
    options = dict(
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
    )
    if kernel == "hmc":
        options["num_steps"] = num_steps
        if trajectory_length is not None and num_steps is None:
            options["trajectory_length"] = trajectory_length
    settings = _ChainSettings(
        kernel=kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        options=tuple(sorted(options.items())),
        record_failures=record_failures,
        progress_every=every if progress_bar else 0,
    )
    keys = jax.random.split(run_key, num_chains)
    u0 = jnp.asarray(u0)
    # The chains compile in the background while the initial points are checked (both
    # mostly XLA compilation, which runs outside the GIL).
    pool = ThreadPoolExecutor(max_workers=1)
    compiling = pool.submit(_compile_chains, chain_method, settings, target, keys, u0)
    try:
        _check_initial(potential, target, u0)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    run_chains, compile_time = compiling.result()
    pool.shutdown()
    ready = time.perf_counter()
    outs = jax.block_until_ready(run_chains())
    sampling_time = time.perf_counter() - ready
    total_time = time.perf_counter() - start
    (z, diverging, steps, accept, energy), step_size, inverse_mass = outs

    constrain, _ = compiled(_constrain, None, target, z)
    params = constrain(z)
    draws = {n: np.asarray(params[n]) for n in potential.names}
    posterior = Posterior(
        names=potential.names,
        draws=draws,
        unconstrained=np.asarray(z),
        divergences=np.asarray(diverging),
        num_steps=np.asarray(steps),
        accept_prob=np.asarray(accept),
        potential_energy=np.asarray(energy),
        step_size=np.asarray(step_size),
        inverse_mass_matrix=np.asarray(inverse_mass),
        num_failures=potential.failures.count,
        failed_params=potential.failures.as_array(),
        kernel=kernel,
        chain_method=chain_method,
        num_warmup=num_warmup,
        seed=seed,
        timing={
            "compile": compile_time,
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
