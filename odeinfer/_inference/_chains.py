"""The chains of `sample` as pure functions of (settings, log density, state), compiled
with `eqx.filter_jit` and held as explicit compiled objects for one run.

A chain runs in chunks of iterations: the host calls the same compiled chunk program
again with the state it returned, and prints progress between calls. Failed solves are
counted in the state (a count and a fixed-size buffer of the points), never on the
host. JAX's own compilation cache makes a second run with new data, new prior values or
new initial points of the same shapes reuse the programs: the log density is an
argument whose arrays are inputs, not constants.
"""

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int
from numpyro.infer.hmc import HMCState

from .._density import LogDensity, masked_potential
from ._kernel import KernelSettings, initial_state, transition

# At most this many failed points are kept per chain (all are counted).
MAX_RECORDED_FAILURES = 1000


class ChainState(NamedTuple):
    """What a chain carries from one iteration (and one chunk) to the next."""

    hmc: HMCState
    num_failures: Int[Array, ""]
    failed_points: Float[Array, "max n"]  # unconstrained; the first `num_failures`


class Draws(NamedTuple):
    """Per iteration of a chunk."""

    z: Float[Array, "iterations n"]
    diverging: Bool[Array, " iterations"]
    num_steps: Int[Array, " iterations"]
    accept_prob: Float[Array, " iterations"]
    potential_energy: Float[Array, " iterations"]


def _potential_fn(density: LogDensity) -> Callable:
    return lambda u: masked_potential(density, u)


def start(settings: KernelSettings, density: LogDensity, key, u0) -> ChainState:
    hmc_state = initial_state(_potential_fn(density), settings, u0, key)
    return ChainState(
        hmc_state,
        jnp.zeros((), jnp.int32),
        jnp.zeros((MAX_RECORDED_FAILURES, u0.shape[0]), u0.dtype),
    )


def advance(
    settings: KernelSettings, length: int, density: LogDensity, state: ChainState
) -> tuple[ChainState, Draws]:
    """`length` transitions from `state` in one `lax.scan`."""
    potential_fn = _potential_fn(density)

    def step(state: ChainState, _):
        hmc_state, count, points = state
        out = transition(potential_fn, settings, hmc_state)
        index = jnp.minimum(count, MAX_RECORDED_FAILURES - 1)
        keep = out.failed & (count < MAX_RECORDED_FAILURES)
        points = points.at[index].set(jnp.where(keep, out.failed_at, points[index]))
        count = count + out.failed.astype(count.dtype)
        new = out.state
        draws = Draws(
            new.z, new.diverging, new.num_steps, new.accept_prob, new.potential_energy
        )
        return ChainState(new, count, points), draws

    return jax.lax.scan(step, state, length=length)


def first_chunk(settings, length, density, key, u0):
    return advance(settings, length, density, start(settings, density, key, u0))


def first_chunks(settings, length, density, keys, u0):
    return jax.vmap(lambda k, u: first_chunk(settings, length, density, k, u))(keys, u0)


def next_chunks(settings, length, density, state):
    return jax.vmap(lambda s: advance(settings, length, density, s))(state)


class Progress:
    """One progress line on stderr for all the chains of a run, updated by the host
    between chunks (threads update it concurrently, hence the lock of this run)."""

    def __init__(self, total: int, label: str):
        self.total, self.done, self.label = total, 0, label
        self.start = time.perf_counter()
        self._lock = threading.Lock()

    def advance(self, iterations: int) -> None:
        with self._lock:
            self.done = min(self.done + iterations, self.total)
            elapsed = time.perf_counter() - self.start
            print(
                f"\r{self.label}: {self.done}/{self.total} iterations ({elapsed:.1f} s)",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if self.done >= self.total:
                print(file=sys.stderr)


def chunk_lengths(total: int, every: int) -> list[int]:
    """Iterations per chunk: `every`, ..., and the remainder."""
    lengths = [every] * (total // every)
    if total % every:
        lengths.append(total % every)
    return lengths


class Runner(NamedTuple):
    """The compiled chunk programs of one run. `run(progress)` runs every chain and
    returns the final states and the draws of all iterations, stacked over chains."""

    run: Callable
    compile_seconds: float


def _num_cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # no affinity on this platform (macOS, Windows)
        return max(os.cpu_count() or 1, 1)


def _compile(fn, *args):
    return eqx.filter_jit(fn).lower(*args).compile()


def _placeholder(shape):
    """Zeros (or PRNG keys) of an abstract value: the argument to lower a program on."""
    if jnp.issubdtype(shape.dtype, jax.dtypes.prng_key):
        keys = jax.random.split(jax.random.key(0), int(np.prod(shape.shape)))
        return jnp.reshape(keys, shape.shape)
    return jnp.zeros(shape.shape, shape.dtype)


def compile_chains(
    chain_method: str,
    settings: KernelSettings,
    density: LogDensity,
    keys,
    u0,
    lengths: list[int],
) -> Runner:
    """Compile the chunk programs (JAX's cache returns programs compiled before) and
    return the runner for `chain_method` (`"sequential"`, `"threaded"`,
    `"vectorized"` or `"parallel"`)."""
    begin = time.perf_counter()
    num_chains = u0.shape[0]
    rest = sorted(set(lengths[1:]))
    if chain_method in ("sequential", "threaded"):
        first = _compile(first_chunk, settings, lengths[0], density, keys[0], u0[0])
        state_shape = jax.tree.map(
            _placeholder,
            jax.eval_shape(lambda: start(settings, density, keys[0], u0[0])),
        )
        nexts = {n: _compile(advance, settings, n, density, state_shape) for n in rest}
        seconds = time.perf_counter() - begin

        def run_one(c, progress):
            state, draws = first(settings, lengths[0], density, keys[c], u0[c])
            parts = [draws]
            if progress is not None:
                progress.advance(lengths[0])
            for n in lengths[1:]:
                state, draws = nexts[n](settings, n, density, state)
                parts.append(draws)
                if progress is not None:
                    progress.advance(n)
            draws = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
            return jax.block_until_ready((state, draws))

        def run_per_chain(progress):
            workers = (
                1 if chain_method == "sequential" else min(num_chains, _num_cores())
            )
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outs = list(pool.map(lambda c: run_one(c, progress), range(num_chains)))
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

        return Runner(run_per_chain, seconds)

    if chain_method == "parallel":
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        # The vectorised program with the chain axis sharded over devices (GSPMD).
        # Not `shard_map`/`pmap`: equinox's closure conversion inside diffrax rejects
        # the per-device (varying-axis) types they give traced values.
        mesh = Mesh(np.array(jax.devices()[:num_chains]), ("chains",))
        chains = NamedSharding(mesh, PartitionSpec("chains"))
        keys, u0 = jax.device_put(keys, chains), jax.device_put(u0, chains)
    first = _compile(first_chunks, settings, lengths[0], density, keys, u0)
    state_shape = jax.tree.map(
        _placeholder,
        jax.eval_shape(
            lambda: jax.vmap(lambda k, u: start(settings, density, k, u))(keys, u0)
        ),
    )
    if chain_method == "parallel":
        # the states come back sharded as the program chose: let jit match them
        nexts = {n: eqx.filter_jit(next_chunks) for n in rest}
    else:
        nexts = {
            n: _compile(next_chunks, settings, n, density, state_shape) for n in rest
        }
    seconds = time.perf_counter() - begin

    def run(progress):
        state, draws = first(settings, lengths[0], density, keys, u0)
        parts = [draws]
        if progress is not None:
            progress.advance(lengths[0] * num_chains)
        for n in lengths[1:]:
            state, draws = nexts[n](settings, n, density, state)
            parts.append(draws)
            if progress is not None:
                progress.advance(n * num_chains)
        draws = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *parts)
        return jax.block_until_ready((state, draws))

    return Runner(run, seconds)
