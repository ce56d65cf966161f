"""Derivatives of the PEtab predictions by forward mode, in every mode.

A PEtab problem on the diffrax path (events, state-dependent switches) estimates a few
parameters, so its solves run with `diffrax.ForwardMode()` and the Jacobian of the
predictions comes from one `jax.vmap` of `jax.jvp` over the estimated parameters.
`forward_derivatives` hides that behind a `jax.custom_jvp` whose tangent is the
Jacobian applied to the input tangent, a linear map that reverse mode transposes: so
`jax.grad` of the likelihood runs forward sensitivities instead of diffrax's
checkpointed reverse pass (which traces, linearises and transposes the segment loop
with its events, and compiles about twice as long).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PyTree

# Forward mode where at most this many parameters are estimated: measured faster than
# reverse mode per gradient at 9 and 12 (Liu, Oliveira), not measured above.
FORWARD_MAX_PARAMETERS = 16

Values = PyTree[Float[Array, "..."]]


def forward_derivatives(
    fn: Callable[[Float[Array, " n"]], tuple[Values, Bool[Array, ""]]],
    value_and_jacobian: Callable | None = None,
) -> Callable[[Float[Array, " n"]], tuple[Values, Bool[Array, ""]]]:
    """`fn(x) -> (values, ok)` (`values` floating arrays, `ok` a flag) with its
    derivatives taken by forward mode: the JVP computes `J = ∂values/∂x` by
    `jax.vmap(jax.jvp)` over the unit vectors and returns `J · dx`. Every derivative
    works: `jax.jvp`/`jax.jacfwd` (the Jacobian is computed once, not per direction),
    `jax.grad`/`jax.jacrev` (reverse mode transposes `J · dx`), and second orders where
    `fn` differentiates twice forward.

    `value_and_jacobian(x) -> (values, J, ok)` (each leaf of `J` that of `values`
    with a last axis `len(x)`), where given, computes the Jacobian instead of
    `jax.vmap(jax.jvp)`: e.g. one fused solve with a sensitivity direction per
    component of `x` (`Simulator.states_and_jacobian`)."""
    jacobian_of = passed_through(
        _jvp_columns(fn) if value_and_jacobian is None else value_and_jacobian
    )

    @jax.custom_jvp
    def wrapped(x):
        return fn(x)

    @wrapped.defjvp
    def rule(primals, tangents):
        (x,), (dx,) = primals, tangents
        values, jacobian, ok = jacobian_of(x)
        d_values = jax.tree_util.tree_map(lambda j: j @ dx, jacobian)
        d_ok: Any = np.zeros(jnp.shape(ok), jax.dtypes.float0)  # a flag: no tangent
        return (values, ok), (d_values, d_ok)

    return wrapped


def _jvp_columns(fn: Callable) -> Callable:
    """`x -> (values, J, ok)` with `J` stacked on a last axis, by `jax.jvp` along
    each unit vector."""

    def value_and_jacobian(x):
        def along(v):
            return jax.jvp(fn, (x,), (v,), has_aux=True)

        directions = jnp.eye(x.shape[0], dtype=x.dtype)
        return jax.vmap(along, out_axes=(None, -1, None))(directions)

    return value_and_jacobian


def passed_through(value_and_jacobian: Callable) -> Callable:
    """`value_and_jacobian` behind a `custom_jvp` whose rule is the plain JVP. Reverse
    mode evaluates a JVP rule under partial evaluation, whose rules for `scan` and
    `while` re-trace their bodies even where every input is known (3.3 s of
    Oliveira's gradient); a `custom_jvp` call with known inputs is passed through as
    it is."""

    @jax.custom_jvp
    def wrapped(x):
        return value_and_jacobian(x)

    @wrapped.defjvp
    def rule(primals, tangents):
        return jax.jvp(value_and_jacobian, primals, tangents)

    return wrapped
