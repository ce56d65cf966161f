"""`jit_unless_traced`: compile a function where it is called with concrete values, and
inline it where a transformation of the caller already traces it."""

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.core

_F = TypeVar("_F", bound=Callable[..., Any])


def jit_unless_traced(fn: _F) -> _F:
    """`fn` under `eqx.filter_jit` where no argument holds a tracer, and `fn` itself
    where one does (the caller's `jax.jit`, `jax.grad` or `jax.vmap` compiles it
    anyway).

    Why: a `jit` inside the caller's `jax.grad` traces its primal program first and
    linearises that trace afterwards, while the solves' derivatives are `custom_jvp`
    rules that never use the primal trace. Measured: Alkan's PEtab gradient traced in
    3.4 s with the inner `jit`, 2.8 s without; the logistic `Problem` of
    `benchmarks/compile_experiments.py`, 2 experiments with an event time each,
    1.91 -> 1.64 s. Only for functions called once per trace: a `jit` caches its
    trace across repeated calls, inlining traces every call."""
    jitted = eqx.filter_jit(fn)

    def call(*args, **kwargs):
        leaves = jax.tree_util.tree_leaves((args, kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return fn(*args, **kwargs)
        return jitted(*args, **kwargs)

    return call  # pyright: ignore[reportReturnType]
