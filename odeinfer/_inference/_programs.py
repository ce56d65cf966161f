"""Compiled programs that outlive one run: `sample` called again with new data, new
prior parameters or new initial points of the same shapes reuses the compiled chain
instead of compiling it again.

The problem and the priors enter a program as an argument (a pytree `Target`) rather
than as constants closed over, so that their arrays are inputs of the compiled program;
their non-array parts (the model's functions, static options) select the program. Host
callbacks (failure log, progress) are found through traced integer ids, not closed
over, for the same reason.
"""

import collections
import itertools
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from ._potential import Potential

_CACHE_SIZE = 16
_CACHE: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()  # programs compile in a background thread too


class Target(eqx.Module):
    """What a compiled program is run on: the problem (an `oi.Problem` or a callable),
    the priors, the free parameter names in the order of the unconstrained vector, and
    the ids of the host-side failure log and progress bar."""

    problem: Any
    priors: dict
    log_id: Int[Array, ""]
    progress_id: Int[Array, ""]
    # JAX flattens dicts in sorted key order, so `priors` comes back sorted inside a
    # program: the order of the unconstrained vector is kept here, as outside.
    names: tuple[str, ...] = eqx.field(static=True)


def _as_array(x):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return jnp.asarray(x, float)
    return x


def make_target(potential: Potential, progress_id: int) -> Target:
    """The `Target` of `potential`'s problem, priors, names and failure log."""
    # Python numbers inside the priors (`Normal(1.0, 0.5)`) become arrays: inputs of
    # the program, not constants compiled into it.
    priors = {n: jax.tree.map(_as_array, d) for n, d in potential.priors.items()}
    return Target(
        potential.problem if potential.problem is not None else potential.callable,
        priors,
        jnp.asarray(potential.failures.id, jnp.int32),
        jnp.asarray(progress_id, jnp.int32),
        potential.names,
    )


def potential_of(target: Target, record_failures: bool) -> Potential:
    """The potential inside a program (the outer `Potential` validated the priors)."""
    return Potential(
        target.problem,
        target.priors,
        names=target.names,
        record_failures=record_failures,
        validate=False,
        log_id=target.log_id,
    )


class _Static:
    """The non-array part of a pytree, hashable: equal when the tree structure and every
    leaf (functions by identity, numbers by value) are equal."""

    def __init__(self, tree):
        leaves, self.treedef = jax.tree.flatten(tree)
        self.leaves = tuple(leaves)
        self.hash = hash((self.treedef, self.leaves))

    def __hash__(self):
        return self.hash

    def __eq__(self, other):
        return (
            isinstance(other, _Static)
            and self.treedef == other.treedef
            and len(self.leaves) == len(other.leaves)
            and all(
                a is b or a == b for a, b in zip(self.leaves, other.leaves, strict=True)
            )
        )


def _signature(tree):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(
        (np.shape(x), jnp.result_type(x), bool(getattr(x, "weak_type", False)))
        for x in leaves
    )


def compiled(
    fn: Callable,
    settings,
    target: Target,
    *args,
    in_shardings=None,
    out_shardings=None,
) -> tuple[Callable, float]:
    """`fn(settings, target, *args)` compiled, or taken from the cache when a program
    for the same `fn`, `settings`, non-array part of `target` and input shapes exists.

    **Returns:** `(run, seconds)`: `run(*args)` runs it on this `target`; `seconds` is
    the time spent tracing and compiling (0 for a cached program).
    """
    dynamic, static = eqx.partition(target, eqx.is_array)
    try:
        key = (fn, settings, _Static(static), _signature((dynamic, args)))
        key += (repr(in_shardings), repr(out_shardings))
        hash(key)
    except TypeError:  # an unhashable static part: compile without caching
        key = None
    with _CACHE_LOCK:
        program = _CACHE.get(key) if key is not None else None
        if program is not None:
            _CACHE.move_to_end(key)
    if program is not None:
        seconds = 0.0
    else:
        start = time.perf_counter()

        def run(dynamic, *args):
            return fn(settings, eqx.combine(dynamic, static), *args)

        options = {}
        if in_shardings is not None:
            options = dict(in_shardings=in_shardings, out_shardings=out_shardings)
        program = jax.jit(run, **options).lower(dynamic, *args).compile()
        seconds = time.perf_counter() - start
        if key is not None:
            with _CACHE_LOCK:
                _CACHE[key] = program
                if len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
    return (lambda *args: program(dynamic, *args)), seconds


class Progress:
    """One progress line on stderr for all the chains of a run, updated from inside the
    compiled chains through `report(progress_id, i)`: a chain calls it after every
    `every`-th iteration `i` and after its last one.

    - `per_chain`: iterations per chain (warm-up + draws); `num_chains`: chains.
    - `weight`: chains advanced by one call (all of them in a `vmap`ed program,
        whose iteration counter is shared; 1 when chains run as separate programs).
    """

    _ids = itertools.count(1)
    _live: "weakref.WeakValueDictionary[int, Progress]" = weakref.WeakValueDictionary()

    def __init__(self, per_chain: int, num_chains: int, every: int, weight: int, label):
        self.per_chain, self.every, self.weight = per_chain, every, weight
        self.total = per_chain * num_chains
        self.done = 0
        self.label = label
        self.start = time.perf_counter()
        self._lock = threading.Lock()
        self.id = next(self._ids)
        Progress._live[self.id] = self

    def update(self, i):
        i = int(np.asarray(i).reshape(-1)[0]) + 1
        step = self.every if i % self.every == 0 else i % self.every
        with self._lock:  # chains in threads call this concurrently
            self.done = min(self.done + step * self.weight, self.total)
            elapsed = time.perf_counter() - self.start
            print(
                f"\r{self.label}: {self.done}/{self.total} iterations ({elapsed:.1f} s)",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if self.done >= self.total:
                print(file=sys.stderr)

    @staticmethod
    def report(progress_id, i):
        progress = Progress._live.get(int(np.asarray(progress_id).reshape(-1)[0]))
        if progress is not None:
            progress.update(i)
