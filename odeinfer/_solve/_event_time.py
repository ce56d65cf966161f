"""The time and state of a crossing inside the step over which it happened, with exact
derivatives by the implicit function theorem.

diffrax stops a segment at the end `t_b` of the first accepted step over which a
crossing function changed sign (its event has no root finder here); the step began at
`t_a` (recorded by the step-size controller, `_events/_guard.py`). One solver step
back from `(t_b, y_b)` to `t_a` gives an interpolant `y(t)` over the step, as accurate
as diffrax's own dense output. The crossing time `t*` solves
`G(t) = fn(t, y(t), params) - level = 0` there: safeguarded Newton iterations on values
without derivatives find it, and its derivatives are those of the implicit function
theorem, `dt* = -(∂G/∂inputs · d inputs) / (∂G/∂t)`, given by a custom JVP whose
tangent rule is itself differentiable (forward over forward is exact too). The state
at the crossing is the interpolant at `t*`. Used with `RecursiveCheckpointAdjoint` and
`ForwardMode`; `DirectAdjoint` keeps diffrax's root find (`_integrator.py`).

Compared with root finding inside diffrax (optimistix's Newton with an implicit
derivative through lineax) the gradient program carries no host callback, so it
reaches the persistent compilation cache; it compiles in about the same time (the
README's `jax.grad` of `first_crossing`: 6.8 s CPU against 7.4 s cold, 3.0 s against
4.3 s with the cache warm, at load 6 on 2 cores).
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int

from .._events import Crossing
from .._events._root import bracketed_root


class _CrossingFunction(eqx.Module):
    """`G(t) = fn_which(t, y(t), params) - level_which` on the step's interpolant
    (`inputs = (t_b, y_b, h, args)`, `h = t_a - t_b < 0` without derivative)."""

    solver: diffrax.AbstractSolver
    term: diffrax.AbstractTerm
    crossings: tuple[Crossing, ...]

    def interpolant(self, inputs) -> diffrax.AbstractLocalInterpolation:
        t_b, y_b, h, args = inputs
        t_a = t_b + h
        state = self.solver.init(self.term, t_b, t_a, y_b, args)
        _, _, dense_info, _, _ = self.solver.step(
            self.term, t_b, t_a, y_b, args, state, made_jump=False
        )
        return self.solver.interpolation_cls(t0=t_b, t1=t_a, **dense_info)  # pyright: ignore[reportCallIssue]

    def value(self, t, interpolant, args, which) -> Float[Array, ""]:
        params, levels = args[0], args[1]
        y = interpolant.evaluate(t)
        values = jnp.stack([c.fn(t, y, params) for c in self.crossings]) - levels
        return values[which]


def _newton(fn: _CrossingFunction, inputs, which, t_a, t_b) -> Float[Array, ""]:
    """The root of `G` in `[t_a, t_b]` (no derivatives): Newton from `t_b`,
    bisection where a Newton step leaves the bracket."""
    inputs, t_a, t_b = lax.stop_gradient((inputs, t_a, t_b))
    interpolant = fn.interpolant(inputs)
    args = inputs[3]

    def g(t):
        return fn.value(t, interpolant, args, which)

    return bracketed_root(g, t_a, t_b)


@eqx.filter_custom_jvp
def _crossing_point(t_root, point: Callable, inputs, which):
    """`(t_root, y(t_root))` for `t_root` a root of `G`, with the implicit function
    theorem's derivatives with respect to `inputs` and to the arrays `point` holds.

    `point(s, inputs, which) = (G(s), y(s))`, closure-converted: the tracers that the
    vector field, the crossing functions or a Rosenbrock Jacobian close over (a model
    built inside the user's `jax.grad`, `jax.vmap` or `jax.jit`) are its leaves, so
    they enter here as inputs with tangents. Closed over instead, they would be
    constants of the tangent rule ("No constant handler for type: LinearizeTracer")."""
    return t_root, point(t_root, inputs, which)[1]


@_crossing_point.def_jvp
def _crossing_point_jvp(primals, tangents):
    t_root, point, inputs, which = primals
    _, t_point, t_inputs, _ = tangents
    # The primal through `_crossing_point` itself, so that the rule below is
    # differentiable again (higher orders).
    t, y = _crossing_point(t_root, point, inputs, which)
    # Differentiated: the arrays with a tangent (`None` marks a symbolic zero; the
    # constants `point` holds, a tableau say, have none).
    primal, t_primal = (point, inputs), (t_point, t_inputs)
    perturbed = jtu.tree_map(
        lambda _, dx: dx is not None, primal, t_primal, is_leaf=lambda x: x is None
    )
    diff, static = eqx.partition(primal, perturbed)
    t_diff = eqx.filter(t_primal, perturbed)

    def at(s, diff_):
        """`(G(s), y(s))` on the step's interpolant."""
        point_, inputs_ = eqx.combine(diff_, static)
        return point_(s, inputs_, which)

    # One linearisation of the step: at fixed time, then along the interpolant.
    _, (d_value, d_y) = jax.jvp(lambda d: at(t, d), (diff,), (t_diff,))
    _, (slope, velocity) = jax.jvp(lambda s: at(s, diff), (t,), (jnp.ones_like(t),))
    # A grazing crossing has slope 0 (flagged as `tangent_crossing` by the caller).
    d_t = -d_value / jnp.where(slope == 0, 1.0, slope)
    d_y = jtu.tree_map(lambda a, v: a + v * d_t, d_y, velocity)
    return (t, y), (d_t, d_y)


def step_solver(
    solver: diffrax.AbstractSolver, adjoint: diffrax.AbstractAdjoint
) -> diffrax.AbstractSolver:
    """`solver` with its stages looped so that the tangent rule can take a JVP of the
    step: diffrax's default loop (checkpointed, a custom VJP) has no forward mode, even
    inside a reverse-mode rule once `jax.vmap`ped. `ForwardMode`: a plain loop;
    otherwise a bounded one (forward and reverse), as diffrax's `DirectAdjoint`."""
    if isinstance(solver, diffrax.AbstractRungeKutta) and solver.scan_kind is None:
        kind = "lax" if isinstance(adjoint, diffrax.ForwardMode) else "bounded"
        return eqx.tree_at(
            lambda s: s.scan_kind, solver, kind, is_leaf=lambda x: x is None
        )
    return solver


def locate_crossing(
    solver: diffrax.AbstractSolver,
    term: diffrax.AbstractTerm,
    crossings: tuple[Crossing, ...],
    args,
    which: Int[Array, ""],
    fired: Bool[Array, ""],
    t_a: Float[Array, ""],
    t_b: Float[Array, ""],
    y_b,
):
    """The crossing `which` inside the step `[t_a, t_b]` at whose end the segment
    stopped: `(t*, y(t*))`, differentiable (first and higher orders). Where not
    `fired`, `(t_b, y_b)`. `solver` is the segment's, through `step_solver`."""
    t_a = lax.stop_gradient(t_a)
    # A finite step in every case, so that the branch not taken stays finite (a NaN
    # there would reach the derivatives through `where`).
    h = jnp.where(fired & (t_a < t_b), t_a - lax.stop_gradient(t_b), -1e-6)
    h = lax.stop_gradient(h)
    fn = _CrossingFunction(solver=solver, term=term, crossings=crossings)
    inputs = (t_b, y_b, h, args)
    t_root = _newton(fn, inputs, which, lax.stop_gradient(t_b) + h, t_b)

    def point(s, inputs_, which_):
        interpolant = fn.interpolant(inputs_)
        return fn.value(s, interpolant, inputs_[3], which_), interpolant.evaluate(s)

    point = eqx.filter_closure_convert(point, t_b, inputs, which)
    t_star, y_star = _crossing_point(lax.stop_gradient(t_root), point, inputs, which)
    t_end = jnp.where(fired, t_star, t_b)
    y_end = jtu.tree_map(lambda a, b: jnp.where(fired, a, b), y_star, y_b)
    return t_end, y_end
