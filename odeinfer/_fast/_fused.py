"""The fused solve: state and forward sensitivities in one loop, with doses, behind a
`jax.custom_jvp`; the engine of [`odeinfer.FusedDopri5`][], [`odeinfer.FusedRodas5P`][]
and [`odeinfer.FusedAuto`][].

Written by hand, not with `diffrax.diffeqsolve`, because diffrax's general per-step
machinery (solver state, controller, saving, event and progress hooks, adjoints) costs
about 10x the arithmetic on small ODEs: on the lynx–hare Lotka–Volterra log-density
a value costs ~43 µs with diffrax and its gradient 510–740 µs (forward/reverse mode),
where this loop takes a fraction of that (see `benchmarks/gradient_speed.py`).

Derivatives (`jax.jvp`, `jax.jacfwd`, `jax.grad`, `jax.jacrev`) come from the forward
sensitivities `S = dy/d(direction)` integrated with the state on the same steps, for all
directions at once: the initial state's components, the parameters the vector field
reads, and the dose amounts. Reverse mode transposes that linear map.
"""

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .._model import ODEModel
from . import _crossing as crossing
from ._loop import depending_on, integrate_segment
from ._methods import AutoRows, Dopri5Rows, RosenbrockRows
from ._sensitivity import sensitivity_stage, state_stage


class Flattener(eqx.Module):
    """Flat array <-> pytree, hashable (same structure = same compiled program)."""

    treedef: object = eqx.field(static=True)
    shapes: tuple = eqx.field(static=True)

    @staticmethod
    def of(tree) -> "Flattener":
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return Flattener(treedef, tuple(tuple(jnp.shape(x)) for x in leaves))

    def flatten(self, tree, dtype):
        return _concatenate(self.parts(tree, dtype), dtype)

    def parts(self, tree, dtype) -> tuple:
        """The leaves of `tree`, each raveled: `flatten` before the concatenation, so
        that a leaf that is not differentiated keeps its symbolic zero tangent."""
        return tuple(
            jnp.ravel(jnp.asarray(x, dtype)) for x in jax.tree_util.tree_leaves(tree)
        )

    def unflatten(self, flat):
        leaves, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape, dtype=int))
            leaves.append(flat[start : start + size].reshape(shape))
            start += size
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


class FusedConfig(eqx.Module):
    """Static configuration of one fused solve (hashable: a `nondiff_argnum`)."""

    model: ODEModel = eqx.field(static=True)
    y: Flattener
    params: Flattener
    method: str = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    sensitivity_error_control: bool = eqx.field(static=True)
    sensitivity_mode: str = eqx.field(static=True, default="jvp")
    refine_stages: bool = eqx.field(static=True, default=True)
    crossing_fn: Callable | None = eqx.field(static=True, default=None)
    direction: str = eqx.field(static=True, default="either")

    def flat_field(self, t, y, theta):
        dy = self.model(t, self.y.unflatten(y), self.params.unflatten(theta))
        return self.y.flatten(dy, y.dtype)

    def flat_event(self, t, y, theta, level):
        """`crossing_fn(t, y, params) - level` on the flat state and parameters."""
        assert self.crossing_fn is not None
        value = self.crossing_fn(t, self.y.unflatten(y), self.params.unflatten(theta))
        return jnp.asarray(value, y.dtype) - level

    def flat_jacobian(self):
        user_jacobian = self.model.jacobian
        if user_jacobian is None:
            return None

        def jacobian(t, y, theta):
            J = user_jacobian(t, self.y.unflatten(y), self.params.unflatten(theta))
            return jnp.asarray(J, y.dtype).reshape(y.shape[0], y.shape[0])

        return jacobian

    def make_method(self, theta, theta_directions):
        def f(t, y):
            return self.flat_field(t, y, theta)

        if theta_directions is None:
            F = state_stage(f)
        else:
            F = sensitivity_stage(
                self.flat_field, theta, theta_directions, self.sensitivity_mode
            )
        if self.method == "dopri5":
            return Dopri5Rows(F), f
        stiff = RosenbrockRows(
            self.flat_field,
            theta,
            theta_directions,
            self.flat_jacobian(),
            refine=self.refine_stages,
        )
        if self.method == "rodas5p":
            return stiff, f
        return AutoRows(Dopri5Rows(F), stiff), f


def run(config: FusedConfig, Y0, theta, theta_directions, dose_jumps, inputs):
    """Integrate the rows `Y0` (state, then sensitivities) from `t0` to `t1`, saving at
    `ts` and `t1`, applying the doses, stopping at the crossing (if any).

    **Arguments:** `dose_jumps`: `(n_doses, rows - 1, n)` increments of the sensitivity
    rows at each dose (the dose-amount directions), or `None`. `inputs`: the dict of
    `ts, t0, t1, dose_times, dose_amounts, dose_effects, rtol, atol` and, with a
    crossing, its `level`.

    **Returns:** `(Ys, ok, stats, t, found)`, `Ys` of shape `(len(ts) + 1, rows, n)`
    (the last at `t1`, or at the crossing where `found`; the save times after the
    crossing hold finite values for `_mask_after_crossing`), `stats = [steps, accepted,
    stiff, max_steps_hit]` (int32), `t` the time reached (`t1` on success, the
    crossing's time where `found`).
    """
    method, f = config.make_method(theta, theta_directions)
    ts = jnp.concatenate([inputs["ts"], inputs["t1"][None]])
    t0, t1 = inputs["t0"], inputs["t1"]
    rows = Y0.shape[0]
    error_rows = rows if config.sensitivity_error_control else 1
    Ys = jnp.broadcast_to(Y0, ts.shape + Y0.shape)
    watch: Callable | None = None
    if config.crossing_fn is not None:
        level = inputs["level"]
        watch = crossing.watch(
            lambda t, y: config.flat_event(t, y, theta, level),
            config.direction,
            inputs["atol"] + inputs["rtol"] * jnp.abs(level),
        )
    options = dict(
        rtol=inputs["rtol"],
        atol=inputs["atol"],
        max_steps=config.max_steps,
        error_rows=error_rows,
    )
    dose_times = inputs["dose_times"]
    n_doses = dose_times.shape[0]
    if n_doses == 0:
        end = integrate_segment(
            method, f, Y0, ts, Ys, 0, t0, t1, jnp.asarray(True), stiff0=False,
            crossing=watch, **options,
        )  # fmt: skip
        Ys, t, found = end.Ys, end.t, end.crossed
        ok, steps, accepted, stiff = end.ok, end.steps, end.accepted, end.stiff
        hit = steps >= config.max_steps
        at_crossing = (end.Y, end.aux, end.h, end.crossed_stiff)
    else:

        def segment(carry, k):
            t, Y, Ys, i, ok, steps, accepted, stiff, hit, found, at_crossing = carry
            final = k == n_doses
            slot = jnp.minimum(k, n_doses - 1)
            t_stop = jnp.where(final, t1, jnp.minimum(dose_times[slot], t1))
            # After a failure or a crossing, nothing more is solved.
            t_stop = jnp.where(ok & ~found, t_stop, t)
            end = integrate_segment(
                method, f, Y, ts, Ys, i, t, t_stop, final, stiff0=stiff,
                crossing=watch, **options,
            )  # fmt: skip
            hit = hit | (end.steps >= config.max_steps)
            ok = ok & end.ok
            Y = end.Y
            given = ~final & ok & ~found & ~end.crossed & (dose_times[slot] <= t1)
            jump_state = inputs["dose_amounts"][slot] * inputs["dose_effects"][slot]
            Y = Y.at[0].add(jnp.where(given, jump_state, 0.0))
            if dose_jumps is not None:
                Y = Y.at[1:].add(jnp.where(given, dose_jumps[slot], 0.0))
            at_crossing = jax.tree_util.tree_map(
                lambda new, old: jnp.where(end.crossed, new, old),
                (end.Y, end.aux, end.h, end.crossed_stiff),
                at_crossing,
            )
            carry = (end.t, Y, end.Ys, end.i, ok, steps + end.steps,
                     accepted + end.accepted, end.stiff, hit, found | end.crossed,
                     at_crossing)  # fmt: skip
            return carry, None

        zero = jnp.zeros((), jnp.int32)
        false = jnp.asarray(False)
        at_crossing0 = (Y0, jnp.zeros_like(Y0), jnp.zeros_like(t0), false)
        carry0 = (t0, Y0, Ys, zero, jnp.asarray(True), zero, zero, false, false,
                  false, at_crossing0)  # fmt: skip
        # Batched like the carry after a segment (`depending_on`): `jax.vmap`'s rule
        # for the scan then batches the segment (the whole step loop) once.
        carry0 = depending_on(carry0, (Y0, ts, t0, t1, inputs["dose_amounts"]))
        carry, _ = lax.scan(segment, carry0, jnp.arange(n_doses + 1))
        t, _, Ys, _, ok, steps, accepted, stiff, hit, found, at_crossing = carry
    stats = jnp.stack([steps, accepted, stiff.astype(jnp.int32), hit.astype(int)])
    if config.crossing_fn is not None:
        Y, aux, h, crossed_stiff = at_crossing
        # Where not found, a short finite step from the end keeps the unused branch
        # finite (a NaN there would reach the derivatives through `where`).
        h = jnp.where(found & (h > 0), h, 1e-6 * jnp.maximum(jnp.abs(t), 1.0))
        if isinstance(method, AutoRows):
            dense = method.dense(t, h, Y, aux, crossed_stiff)
        else:
            dense = method.dense(t, h, Y, aux)
        interpolant = crossing.StepInterpolant(t, h, Y, dense, method.evaluate)
        t_star, rows = crossing.locate(
            config.flat_event, interpolant, (theta, inputs["level"])
        )
        Ys = Ys.at[-1].set(jnp.where(found, rows, Ys[-1]))
        t = jnp.where(found, t_star, t)
    return Ys, ok, stats.astype(jnp.int32), t, found


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


def _mask_after_crossing(ys, inputs, t, found, fill):
    """`ys` (save times, then the end) with the save times after a crossing set to
    `fill`, as the diffrax path leaves them after a terminal crossing."""
    m = inputs["ts"].shape[0]
    times = jnp.concatenate([inputs["ts"], inputs["t1"][None]])
    after = found & (times > t) & (jnp.arange(m + 1) < m)
    return jnp.where(after.reshape((-1,) + (1,) * (ys.ndim - 1)), fill, ys)


def _concatenate(parts, dtype):
    return jnp.concatenate(parts) if parts else jnp.zeros((0,), dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def fused_solve(config: FusedConfig, y0, theta_parts: tuple, inputs):
    """`(ys, ok, stats, t, found)`: the flat state at `ts` and at the end, `t1` or the
    crossing (shape `(len(ts) + 1, n)`; `inf` at save times after the crossing),
    success, the counts, the time reached and whether the crossing was found.

    `theta_parts`: the flat parameters as one 1-D array per parameter leaf
    (`Flattener.parts`), so that the derivative sees which leaves are not
    differentiated (a symbolic zero tangent) and integrates no sensitivities for them."""
    theta = _concatenate(theta_parts, y0.dtype)
    Ys, ok, stats, t, found = run(config, y0[None], theta, None, None, inputs)
    return (
        _mask_after_crossing(Ys[:, 0], inputs, t, found, jnp.inf),
        ok,
        stats,
        t,
        found,
    )


@functools.partial(fused_solve.defjvp, symbolic_zeros=True)
def _fused_solve_jvp(config: FusedConfig, primals, tangents):
    y0, theta_parts, inputs = primals
    dy0, dtheta_parts, dinputs = tangents
    theta = _concatenate(theta_parts, y0.dtype)
    # Only the parameter leaves that are differentiated get directions.
    live = np.concatenate(
        [np.full(np.size(part), not _is_zero(d), bool)
         for part, d in zip(theta_parts, dtheta_parts, strict=True)]
        or [np.zeros((0,), bool)]
    )  # fmt: skip
    dtheta = _concatenate(
        [jnp.zeros_like(part) if _is_zero(d) else d
         for part, d in zip(theta_parts, dtheta_parts, strict=True)],
        y0.dtype,
    )  # fmt: skip
    if not _is_zero(dinputs["dose_times"]):
        raise ValueError(
            "The fused solvers do not differentiate with respect to dose times "
            "(derivatives with respect to dose amounts, parameters, y0, t0 and the "
            "save times are available). Use a diffrax solver, e.g. "
            "`solver=oi.Rodas5P()` or `diffrax.Tsit5()`, for dose-time derivatives."
        )
    n, p = y0.shape[0], theta.shape[0]
    dt0, dts, dt1 = dinputs["t0"], dinputs["ts"], dinputs["t1"]
    d_amounts = dinputs["dose_amounts"]
    n_doses = inputs["dose_times"].shape[0]
    with_y0 = not (_is_zero(dy0) and _is_zero(dt0))
    used = np.asarray(_used_parameters(config, inputs["t0"], y0, theta), dtype=int)
    used = used[live[used]]
    with_theta = used.size > 0
    with_doses = not _is_zero(d_amounts) and n_doses > 0
    # The directions: y0's components, the parameters read, the dose amounts. S starts
    # at I for y0 directions and 0 for the others; Θ is the parameter part.
    S0, Theta, coefficients = [], [], []
    if with_y0:
        S0.append(jnp.eye(n, dtype=y0.dtype))
        Theta.append(jnp.zeros((n, p), theta.dtype))
        coefficients.append(jnp.zeros_like(y0) if _is_zero(dy0) else dy0)
    if with_theta:
        S0.append(jnp.zeros((used.size, n), y0.dtype))
        Theta.append(jnp.eye(p, dtype=theta.dtype)[used])
        coefficients.append(dtheta[used])
    if with_doses:
        S0.append(jnp.zeros((n_doses, n), y0.dtype))
        Theta.append(jnp.zeros((n_doses, p), theta.dtype))
        coefficients.append(d_amounts)
    if S0:
        Y0 = jnp.concatenate([y0[None]] + S0)
        directions = Y0.shape[0] - 1
        dose_jumps = None
        if n_doses:
            # Dose k adds its effect vector to the row of its amount's direction.
            dose_jumps = jnp.zeros((n_doses, directions, n), y0.dtype)
            if with_doses:
                first = directions - n_doses
                rows = first + jnp.arange(n_doses)
                dose_jumps = dose_jumps.at[jnp.arange(n_doses), rows].set(
                    inputs["dose_effects"]
                )
        Ys, ok, stats, t_reached, found = run(
            config, Y0, theta, jnp.concatenate(Theta), dose_jumps, inputs
        )
        ys, S = Ys[:, 0], Ys[:, 1:]
        dys = jnp.einsum("tdn,d->tn", S, jnp.concatenate(coefficients))
    else:
        ys, ok, stats, t_reached, found = fused_solve(config, y0, theta_parts, inputs)
        dys = jnp.zeros_like(ys)
    if not _is_zero(dt0):
        # dy(t)/dt0 = -Φ(t, t0) f(t0, y0) = -S_y0(t) f(t0, y0).
        f0 = config.flat_field(inputs["t0"], y0, theta)
        dys = dys - dt0 * jnp.einsum("tdn,d->tn", S[:, :n], f0)
    dt_reached = jnp.zeros_like(t_reached)
    if config.crossing_fn is not None:
        dt_reached, dy_crossing = _crossing_tangents(
            config, ys[-1], dys[-1], t_reached, found, theta, dtheta, inputs, dinputs
        )
    if not (_is_zero(dts) and _is_zero(dt1)):
        # dy(t)/dt = f(t, y(t)) at the save times and at t1.
        times = jnp.concatenate([inputs["ts"], inputs["t1"][None]])
        slopes = jax.vmap(config.flat_field, in_axes=(0, 0, None))(times, ys, theta)
        d_times = jnp.concatenate(
            [
                jnp.zeros_like(inputs["ts"]) if _is_zero(dts) else dts,
                (jnp.zeros_like(inputs["t1"]) if _is_zero(dt1) else dt1)[None],
            ]
        )
        dys = dys + slopes * d_times[:, None]
    if config.crossing_fn is not None:
        dys = dys.at[-1].set(jnp.where(found, dy_crossing, dys[-1]))  # pyright: ignore[reportPossiblyUnboundVariable]
        ys = _mask_after_crossing(ys, inputs, t_reached, found, jnp.inf)
        dys = _mask_after_crossing(dys, inputs, t_reached, found, 0.0)
    dok = np.zeros(ok.shape, dtype=jax.dtypes.float0)
    dstats = np.zeros(stats.shape, dtype=jax.dtypes.float0)
    dfound = np.zeros(found.shape, dtype=jax.dtypes.float0)
    # Without a crossing the time reached is t1 on success; its derivative is not
    # propagated.
    return (ys, ok, stats, t_reached, found), (dys, dok, dstats, dt_reached, dfound)


def _crossing_tangents(config, y, dy_fixed, t, found, theta, dtheta, inputs, dinputs):
    """The tangents `(dt*, dy*)` of the crossing `(t*, y*)` by the implicit function
    theorem: `G(t*, y(t*)) = 0` with `dy(t*) = dy_fixed + f(t*, y*) dt*` gives
    `dt* = -(G_y dy_fixed + G_θ dθ - dlevel) / (G_t + G_y f)`. Zero where not `found`.

    `dy_fixed` is the state's tangent at the fixed time `t*` (from the sensitivity
    rows of the dense output there)."""
    level = inputs["level"]
    dlevel = dinputs["level"]
    dlevel = jnp.zeros_like(level) if _is_zero(dlevel) else dlevel
    dtheta = jnp.zeros_like(theta) if _is_zero(dtheta) else dtheta
    velocity = config.flat_field(t, y, theta)
    _, d_value = jax.jvp(
        config.flat_event,
        (t, y, theta, level),
        (jnp.zeros_like(t), dy_fixed, dtheta, dlevel),
    )
    _, slope = jax.jvp(
        lambda t_, y_: config.flat_event(t_, y_, theta, level),
        (t, y),
        (jnp.ones_like(t), velocity),
    )
    # A grazing crossing has slope 0 (reported as `tangent_crossing`).
    dt = jnp.where(found, -d_value / jnp.where(slope == 0, 1.0, slope), 0.0)
    return dt, dy_fixed + velocity * dt


def _used_parameters(config: FusedConfig, t0, y0, theta) -> tuple[int, ...]:
    """The indices of the flat parameters `theta` that the vector field reads.

    A conservative structural analysis at trace time: the vector field is traced to a
    jaxpr with one input per leaf of the parameter pytree, and a leaf counts as read
    when any equation (or the output) refers to it. A leaf never referred to cannot
    change dy/dt, so its sensitivities are exactly zero and are not integrated."""
    leaves, treedef = jax.tree_util.tree_flatten(config.params.unflatten(theta))

    def field(t, y, *leaves):
        params = jax.tree_util.tree_unflatten(treedef, leaves)
        return config.model(t, config.y.unflatten(y), params)

    jaxpr = jax.make_jaxpr(field)(t0, y0, *leaves).jaxpr
    referenced = {id(v) for eqn in jaxpr.eqns for v in eqn.invars}
    referenced |= {id(v) for v in jaxpr.outvars}
    used, start = [], 0
    for var, leaf in zip(jaxpr.invars[2:], leaves, strict=True):
        size = int(np.size(leaf))
        if id(var) in referenced:
            used.extend(range(start, start + size))
        start += size
    return tuple(used)
