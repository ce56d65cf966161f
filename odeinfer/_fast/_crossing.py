"""A terminal crossing in the fused loop: its detection over a step, and its time and
state inside that step, with derivatives by the implicit function theorem.

The loop (`_loop.py`) stops after the first accepted step over which
`G = fn(t, y, params) - level` changed sign in the crossing's direction (diffrax's
rule on the signs at the step's ends, as the diffrax path uses). The crossing lies in
that step: its dense output (recomputed once from the step's start, `_methods.py`)
gives the rows `Y(t)` (state and sensitivities) over it, and the crossing time `t*`
solves `G(t, Y(t)[0]) = 0` there, found by safeguarded Newton iterations on values
(as `_solve/_event_time.py` does on a diffrax step).

`crossing_point` returns `(t*, Y(t*))` with the implicit function theorem's
derivatives with respect to the interpolant's coefficients and `(theta, level)`, by a
custom JVP whose rule is differentiable again: the fused solve's own JVP
(`_fused.py`) computes the first derivatives from the sensitivity rows, and this rule
serves the derivative of that computation (forward over forward, `jax.hessian`).
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, PyTree

from .._events._guard import hidden_crossing
from .._events._root import bracketed_root

# A crossing is tangent when (d fn/dt)^2 <= GRAZING_SAFETY * 2 |d^2 fn/dt^2| * tol_fn:
# the diffrax path's test and constant (`_solve/_crossing.py`).
GRAZING_SAFETY = 100.0


def crossed(direction: str, g0, g1) -> Bool[Array, ""]:
    """Whether `G` crossed its level from `g0` (step start) to `g1` (step end) in
    `direction`: diffrax's rule (`rising`: `sign(g0) <= 0 < sign(g1)`)."""
    if direction == "rising":
        return (jnp.sign(g0) <= 0) & (jnp.sign(g1) > 0)
    if direction == "falling":
        return (jnp.sign(g0) > 0) & (jnp.sign(g1) <= 0)
    return jnp.sign(g0) != jnp.sign(g1)


def watch(event: Callable, direction: str, tol) -> Callable:
    """What the loop (`_loop.py`) checks after each step, for `event(t, y)` the
    crossing function minus its level on the flat state, crossed in `direction`, and
    `tol` the distance from the level below which its sign is not resolved.

    **Returns:** `check(t, y, dy, t1, y1, dy1, h) -> (crossed, hidden, fraction)` for a
    step from `(t, y)` to `(t1, y1)` of size `h` (`dy`, `dy1`: the vector field at its
    ends): the crossing happened over the step; the step may hide two crossings (the
    diffrax path's `CrossingGuard` test); the fraction of the step to retry with.
    """

    def check(t, y, dy, t1, y1, dy1, h):
        v0, s0 = jax.jvp(event, (t, y), (jnp.ones_like(t), dy))
        v1, s1 = jax.jvp(event, (t1, y1), (jnp.ones_like(t1), dy1))
        hidden, closest_at = hidden_crossing(v0, s0, v1, s1, h, tol)
        fraction = 0.5 * jnp.clip(jnp.where(hidden, closest_at, 1.0), 0.1, 1.0)
        return crossed(direction, v0, v1), hidden, fraction

    return check


class StepInterpolant(eqx.Module):
    """The dense output of one step from `t` of size `h` (both without derivatives):
    `self(s)` is the rows at time `s`."""

    t: Float[Array, ""]
    h: Float[Array, ""]
    Y: Float[Array, "rows n"]
    dense: PyTree[Array]
    evaluate: Callable = eqx.field(static=True)

    def __call__(self, s) -> Float[Array, "rows n"]:
        return self.evaluate(self.Y, self.dense, (s - self.t) / self.h)


def _newton(event: Callable, interpolant: StepInterpolant, args) -> Float[Array, ""]:
    """The root of `event(s, Y(s)[0], *args)` in the step (no derivatives): Newton from
    the step's end, bisection where a Newton step leaves the bracket."""
    interpolant, args = lax.stop_gradient((interpolant, args))

    def g(s):
        return event(s, interpolant(s)[0], *args)

    return bracketed_root(g, interpolant.t, interpolant.t + interpolant.h)


@eqx.filter_custom_jvp
def crossing_point(t_root, interpolant: StepInterpolant, args, *, event: Callable):
    """`(t_root, Y(t_root))` for `t_root` a root of `event(·, Y(·)[0], *args)`, with
    the implicit function theorem's derivatives with respect to `interpolant` and
    `args`."""
    return t_root, interpolant(t_root)


@crossing_point.def_jvp
def _crossing_point_jvp(primals, tangents, *, event: Callable):
    t_root, interpolant, args = primals
    _, t_interpolant, t_args = tangents
    # The primal through `crossing_point` itself, so that this rule is differentiable
    # again (higher orders).
    t, rows = crossing_point(t_root, interpolant, args, event=event)
    inputs = (interpolant, args)
    diff, static = eqx.partition(inputs, eqx.is_inexact_array)
    # Tangents of the floating-point inputs (`None` marks a symbolic zero).
    t_diff = jtu.tree_map(
        lambda x, dx: dx if x is None or dx is not None else jnp.zeros_like(x),
        diff,
        eqx.filter((t_interpolant, t_args), jtu.tree_map(eqx.is_inexact_array, inputs)),
        is_leaf=lambda x: x is None,
    )

    def point(s, diff_):
        interpolant_, args_ = eqx.combine(diff_, static)
        rows_ = interpolant_(s)
        return event(s, rows_[0], *args_), rows_

    _, (d_value, d_rows) = jax.jvp(lambda d: point(t, d), (diff,), (t_diff,))
    _, (slope, velocity) = jax.jvp(lambda s: point(s, diff), (t,), (jnp.ones_like(t),))
    # A grazing crossing has slope 0 (flagged as `tangent_crossing` by the caller).
    d_t = -d_value / jnp.where(slope == 0, 1.0, slope)
    return (t, rows), (d_t, d_rows + velocity * d_t)


def locate(event: Callable, interpolant: StepInterpolant, args):
    """`(t*, Y(t*))`: the crossing in the step of `interpolant`, differentiable (first
    and higher orders) with respect to the interpolant's coefficients and `args`
    (`event(t, y, *args)` is `fn - level` on the flat state)."""
    interpolant = eqx.tree_at(
        lambda i: (i.t, i.h),
        interpolant,
        lax.stop_gradient((interpolant.t, interpolant.h)),
    )
    t_root = _newton(event, interpolant, args)
    return crossing_point(lax.stop_gradient(t_root), interpolant, args, event=event)


def along_flow(event: Callable, field: Callable, t, y, args):
    """`d G/dt` and `d^2 G/dt^2` along the flow `dy/dt = field(t, y)` at `(t, y)`."""

    def derivative(g):
        def dg(t_, y_):
            direction = (jnp.ones_like(t_), field(t_, y_))
            return jax.jvp(g, (t_, y_), direction)[1]

        return dg

    def value(t_, y_):
        return event(t_, y_, *args)

    slope = derivative(value)
    return slope(t, y), derivative(slope)(t, y)
