"""`CrossingGuard`: a step-size controller that does not let a step hide two crossings.

Crossings are found from the sign of `fn - level` at the ends of each step, so a step
over which `fn` reaches the level and comes back (`x = sin t` against a level just below
1) shows no sign change, and the two crossings are lost. The guard wraps diffrax's
`PIDController` and, at every step the controller accepts, looks at the value and the
time derivative of each crossing function at both ends (one extra vector-field
evaluation per step; the start values are carried over from the previous step). If both
ends lie on the same side of the level, the function moves towards the level at the
start and away from it at the end, and the cubic Hermite interpolant of those four
numbers comes within a tenth of the end distances of the level (or crosses it), the
step is rejected and retried with half the size. The halving stops once an end lands
past the level (the crossing is then found as usual), the turning point is resolved, or
the ends come within the solver tolerance of the level (a touch at the tolerance is not
resolvable: see `RESULTS.tangent_crossing`).
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

# Reject when the interpolated closest approach is below this fraction of the distance of
# the step's ends from the level: the cubic is then not accurate enough to say on which
# side the turning point lies.
_CLOSE_FRACTION = 0.1


def _stop_gradient(tree):
    return jtu.tree_map(lambda x: lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def _cubic(v0, m0, v1, m1, u):
    """The cubic Hermite interpolant on [0, 1] with values v0, v1 and slopes m0, m1."""
    return (
        (2 * u**3 - 3 * u**2 + 1) * v0
        + (u**3 - 2 * u**2 + u) * m0
        + (-2 * u**3 + 3 * u**2) * v1
        + (u**3 - u**2) * m1
    )


def hidden_crossing(v0, s0, v1, s1, h, tol):
    """Per crossing: may the step `[t, t + h]` hide two crossings (see the module)? And
    where in the step (a fraction) the interpolant comes closest to the level."""
    same_side = (jnp.sign(v0) == jnp.sign(v1)) & (jnp.abs(v0) > tol)
    same_side = same_side & (jnp.abs(v1) > tol)
    turns = (v0 * s0 < 0) & (v1 * s1 > 0)
    m0, m1 = h * s0, h * s1
    # The interpolant's derivative a u^2 + b u + c vanishes at its extremum.
    a = 6 * (v0 - v1) + 3 * (m0 + m1)
    b = 6 * (v1 - v0) - 4 * m0 - 2 * m1
    c = m0
    disc = jnp.sqrt(jnp.maximum(b**2 - 4 * a * c, 0.0))
    q = -0.5 * (b + jnp.where(b >= 0, disc, -disc))
    candidates = [q / a, c / q, -c / b, jnp.full_like(v0, 0.5)]
    side = jnp.sign(v0)
    closest = jnp.minimum(jnp.abs(v0), jnp.abs(v1))
    where = jnp.full_like(v0, 0.5)
    for u in candidates:
        u = jnp.clip(jnp.where(jnp.isfinite(u), u, 0.5), 0.0, 1.0)
        distance = side * _cubic(v0, m0, v1, m1, u)
        where = jnp.where(distance < closest, u, where)
        closest = jnp.minimum(closest, distance)
    near = closest < _CLOSE_FRACTION * jnp.minimum(jnp.abs(v0), jnp.abs(v1))
    return same_side & turns & near, where


class CrossingGuard(diffrax.AbstractAdaptiveStepSizeController):
    """A `diffrax.PIDController` that also rejects steps that may hide two crossings.

    **Arguments:**

    - `controller`: the PID controller that chooses the steps.
    - `probe`: `probe(t, y, args) -> (values, slopes, tolerances)`, one entry per
        crossing: `fn - level`, its time derivative along the flow, and the distance
        from the level below which the sign is not resolved.

    Its state ends with the start of the last accepted step: where a segment stopped
    on a crossing, the crossing lies in that step (read through
    `diffrax.SaveAt(controller_state=True)`).
    """

    controller: diffrax.PIDController
    probe: Callable = eqx.field(static=True)

    @property
    def rtol(self):
        return self.controller.rtol

    @property
    def atol(self):
        return self.controller.atol

    @property
    def norm(self):
        return self.controller.norm

    def wrap(self, direction):
        # pyright counts the base class's abstract `rtol`/`atol`/`norm` (properties
        # here) as constructor fields.
        return CrossingGuard(self.controller.wrap(direction), self.probe)  # pyright: ignore[reportCallIssue]

    def _probe(self, t, y, args):
        """The probe without derivatives: the guard only chooses steps. Its inputs
        and its outputs, which also carry the derivatives of the tracers that a
        vector field or crossing function closes over (a model built inside the
        user's `jax.grad`; through the closest-approach `sqrt` they would be NaN)."""
        return _stop_gradient(self.probe(*_stop_gradient((t, y, args))))

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.controller.init(
            terms, t0, t1, y0, dt0, args, func, error_order
        )
        values, slopes, _ = self._probe(t0, y0, args)
        return tnext, (state, values, slopes, lax.stop_gradient(t0))

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        state, v0, s0, start = controller_state
        keep, next_t0, next_t1, made_jump, new_state, result = (
            self.controller.adapt_step_size(
                t0, t1, y0, y1_candidate, args, y_error, error_order, state
            )
        )
        v1, s1, tol = self._probe(t1, y1_candidate, args)
        step = lax.stop_gradient(t1 - t0)
        hidden, closest_at = hidden_crossing(v0, s0, v1, s1, step, tol)
        retry = keep & jnp.any(hidden)
        keep = keep & jnp.invert(retry)
        # Retry up to half-way to the turning point: a step that then ends past the
        # level ends before the turning point, where the root finder (Newton, started
        # at the step's end) converges to the first crossing.
        fraction = 0.5 * jnp.clip(jnp.min(jnp.where(hidden, closest_at, 1.0)), 0.1, 1.0)
        next_t0 = jnp.where(retry, t0, next_t0)
        next_t1 = jnp.where(retry, t0 + fraction * step, next_t1)
        made_jump = made_jump & keep
        new_state = jtu.tree_map(
            lambda new, old: jnp.where(retry, old, new), new_state, state
        )
        values = jnp.where(keep, v1, v0)
        slopes = jnp.where(keep, s1, s0)
        start = jnp.where(keep, lax.stop_gradient(t0), start)
        new_state = (new_state, values, slopes, start)
        return keep, next_t0, next_t1, made_jump, new_state, result


def crossing_probe(model, crossings, rtol, atol):
    """The `probe` of a [`CrossingGuard`][] for `solve`'s crossings (args are
    `(params, levels, ...)`)."""

    def probe(t, y, args):
        params, levels = args[0], args[1]

        def values(t_, y_):
            return jnp.stack([c.fn(t_, y_, params) for c in crossings]) - levels

        direction = model(t, y, params)
        v, s = jax.jvp(values, (t, y), (jnp.ones_like(t), direction))
        return v, s, atol + rtol * jnp.abs(levels)

    return probe
