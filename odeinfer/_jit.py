"""`jit_unless_traced`: compile a function where it is called eagerly, and inline it
where the caller's `jax.jit` traces it."""

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.core
from jax._src import core as _jax_core

_F = TypeVar("_F", bound=Callable[..., Any])

# JAX's test for a tracer that carries a concrete value (an eager `jax.grad` or
# `jax.jvp`); private, so where a JAX release lacks it every call is jitted.
_is_concrete: Callable[[Any], bool] | None = getattr(_jax_core, "is_concrete", None)


def _abstract(x) -> bool:
    """`x` is a tracer without a concrete value: traced for a `jax.jit` (or an eager
    `jax.vmap`)."""
    return (
        _is_concrete is not None
        and isinstance(x, jax.core.Tracer)
        and not _is_concrete(x)
    )


def jit_unless_traced(fn: _F) -> _F:
    """`fn` under `eqx.filter_jit`, except where an argument holds a tracer without a
    concrete value (the caller's `jax.jit` compiles `fn` with its own program): then
    `fn` itself, inlined.

    Why: a `jit` inside the caller's `jax.jit(jax.grad(...))` traces its primal program
    first and linearises that trace afterwards, while the solves' derivatives are
    `custom_jvp` rules that never use the primal trace. Measured: Alkan's PEtab
    gradient traced in 3.4 s with the inner `jit`, 2.8 s without; the logistic
    `Problem` of `benchmarks/compile_experiments.py`, 2 experiments with an event time
    each, 1.91 -> 1.64 s. An eager `jax.grad` (concrete values under the tracers) keeps
    the `jit`: inlined, every op would run on its own (the estimation page's first
    gradient 0.74 -> 1.77 s). Only for functions called once per trace: a `jit`
    caches its trace across repeated calls, inlining traces every call."""
    jitted = eqx.filter_jit(fn)

    def call(*args, **kwargs):
        if any(_abstract(x) for x in jax.tree_util.tree_leaves((args, kwargs))):
            return fn(*args, **kwargs)
        return jitted(*args, **kwargs)

    return call  # pyright: ignore[reportReturnType]
