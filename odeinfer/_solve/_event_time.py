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

The step is taken once, differentiated as any other computation; the custom JVP holds
only `G` on the step's interpolant (its coefficients are inputs), so the solver step is
traced once per segment, not once more for the root find and twice more in the tangent
rule.

Compared with root finding inside diffrax (optimistix's Newton with an implicit
derivative through lineax) the gradient program carries no host callback, so it
reaches the persistent compilation cache.
"""

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int

from .._events import Crossing
from .._events._root import bracketed_root


def _step_interpolant(
    solver: diffrax.AbstractSolver, term: diffrax.AbstractTerm, t_b, y_b, h, args
) -> diffrax.AbstractLocalInterpolation:
    """The interpolant of one step from `(t_b, y_b)` to `t_a = t_b + h` (`h < 0`)."""
    t_a = t_b + h
    state = solver.init(term, t_b, t_a, y_b, args)
    _, _, dense_info, _, _ = solver.step(term, t_b, t_a, y_b, args, state, False)
    return solver.interpolation_cls(t0=t_b, t1=t_a, **dense_info)  # pyright: ignore[reportCallIssue]


def _crossing_values(crossings: tuple[Crossing, ...]):
    """`G(s, interpolant, args, which)`: crossing `which`'s `fn - level` on the
    interpolant at time `s`."""

    def value(s, interpolant, args, which) -> Float[Array, ""]:
        params, levels = args[0], args[1]
        y = interpolant.evaluate(s)
        values = jnp.stack([c.fn(s, y, params) for c in crossings]) - levels
        return values[which]

    return value


@eqx.filter_custom_jvp
def _crossing_time(t_root, value, inputs, which):
    """`t_root`, a root of `value(s, *inputs, which)`, with the implicit function
    theorem's derivatives with respect to `inputs` and to the arrays `value` holds.

    `value` is closure-converted: the tracers that the crossing functions close over
    (a model built inside the user's `jax.grad`, `jax.vmap` or `jax.jit`) are its
    leaves, so they enter here as inputs with tangents. Closed over instead, they would
    be constants of the tangent rule ("No constant handler for type:
    LinearizeTracer")."""
    del value, inputs, which
    return t_root


@_crossing_time.def_jvp
def _crossing_time_jvp(primals, tangents):
    t_root, value, inputs, which = primals
    _, t_value, t_inputs, _ = tangents
    # The primal through `_crossing_time` itself, so that the rule below is
    # differentiable again (higher orders).
    t = _crossing_time(t_root, value, inputs, which)
    # Differentiated: the arrays with a tangent (`None` marks a symbolic zero; the
    # constants `value` holds have none).
    primal, t_primal = (value, inputs), (t_value, t_inputs)
    perturbed = jtu.tree_map(
        lambda _, dx: dx is not None, primal, t_primal, is_leaf=lambda x: x is None
    )
    diff, static = eqx.partition(primal, perturbed)
    t_diff = eqx.filter(t_primal, perturbed)

    def at(s, diff_):
        value_, inputs_ = eqx.combine(diff_, static)
        return value_(s, *inputs_, which)

    _, d_value = jax.jvp(lambda d: at(t, d), (diff,), (t_diff,))
    _, slope = jax.jvp(lambda s: at(s, diff), (t,), (jnp.ones_like(t),))
    # A grazing crossing has slope 0 (flagged as `tangent_crossing` by the caller).
    return t, -d_value / jnp.where(slope == 0, 1.0, slope)


def step_solver(
    solver: diffrax.AbstractSolver, adjoint: diffrax.AbstractAdjoint
) -> diffrax.AbstractSolver:
    """`solver` with its stages looped so that the step can be differentiated in
    forward mode: diffrax's default loop (checkpointed, a custom VJP) has none.
    `ForwardMode`: a plain loop; otherwise a bounded one (forward and reverse), as
    diffrax's `DirectAdjoint`."""
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
    interpolant = _step_interpolant(solver, term, t_b, y_b, h, args)
    value = _crossing_values(crossings)
    inputs = (interpolant, args)
    # Newton on values without derivatives, from the step's end.
    fixed_interpolant, fixed_args = jtu.tree_map(
        lambda x: lax.stop_gradient(x) if eqx.is_array(x) else x, inputs
    )
    t_root = bracketed_root(
        lambda s: value(s, fixed_interpolant, fixed_args, which),
        lax.stop_gradient(t_b) + h,
        lax.stop_gradient(t_b),
    )
    value = eqx.filter_closure_convert(value, t_b, *inputs, which)
    t_star = _crossing_time(lax.stop_gradient(t_root), value, inputs, which)
    y_star = interpolant.evaluate(t_star)
    t_end = jnp.where(fired, t_star, t_b)
    y_end = jtu.tree_map(lambda a, b: jnp.where(fired, a, b), y_star, y_b)
    return t_end, y_end
