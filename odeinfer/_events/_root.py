"""`bracketed_root`: the root of a scalar function of time on a bracket, the search both
solve paths use to locate a crossing on one step's interpolant (the diffrax segment loop
in `_solve/_event_time.py`, the fused loop in `_fast/_crossing.py`)."""

from collections.abc import Callable

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Float

# Newton's stopping rule, as the root finder diffrax used before: |Δt| below
# _RTOL |t| + _ATOL; bisection takes over where Newton leaves the bracket.
_RTOL = 1e-12
_ATOL = 1e-12
_MAX_ITERATIONS = 64


def bracketed_root(
    g: Callable[[Float[Array, ""]], Float[Array, ""]], t_a, t_b
) -> Float[Array, ""]:
    """A root of `g` in `[t_a, t_b]` (`g(t_a)` and `g(t_b)` on either side of 0):
    Newton from `t_b` with `g'` by `jax.jvp`, bisection where a Newton step leaves the
    bracket, at most 64 iterations. Not differentiated: the callers give the root its
    derivatives by the implicit function theorem."""
    side_a = jnp.sign(g(t_a))

    def cond(carry):
        _, _, _, step, i = carry
        return (i < _MAX_ITERATIONS) & (step > 0)

    def body(carry):
        t, lo, hi, _, i = carry
        value, slope = jax.jvp(g, (t,), (jnp.ones_like(t),))
        # Keep the bracket: `lo` on `t_a`'s side of the level, `hi` on the other.
        on_a_side = jnp.sign(value) == side_a
        lo = jnp.where(on_a_side, t, lo)
        hi = jnp.where(on_a_side, hi, t)
        newton = t - value / jnp.where(slope == 0, jnp.inf, slope)
        inside = (newton >= jnp.minimum(lo, hi)) & (newton <= jnp.maximum(lo, hi))
        t_next = jnp.where(inside & jnp.isfinite(newton), newton, 0.5 * (lo + hi))
        step = jnp.abs(t_next - t)
        step = jnp.where(step <= _RTOL * jnp.abs(t_next) + _ATOL, 0.0, step)
        step = jnp.where(value == 0, 0.0, step)
        return jnp.where(value == 0, t, t_next), lo, hi, step, i + 1

    carry = (t_b, t_a, t_b, jnp.ones_like(t_b), jnp.array(0))
    return lax.while_loop(cond, body, carry)[0]
