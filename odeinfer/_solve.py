"""`solve`: an event-aware, differentiable ODE solve built on `diffrax.diffeqsolve`.

diffrax stops at the first event and has no resets or preset-time jumps. odeinfer
splits the interval into *segments*: each segment is one `diffeqsolve` from the current
time to the next dose time (or `t1`), stopped early by the first crossing. At the end of a
segment the crossing is recorded, its reset or the dose is applied, and the next segment
starts from there. The segments run in a `lax.scan` of fixed length
`max_events + number of doses + 1`, so the whole solve has fixed shapes (jit, vmap) and is
reverse- and forward-mode differentiable; finished segments are zero-length solves.

Restarting exactly on a crossing would detect it again. So in the next segment that
crossing's condition function reports, at the segment's first point only, the sign it has
just after the crossing (`sign(d fn/dt)` there, or the jump a reset made).
"""

import dataclasses
from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import ArrayLike

from . import _validation as validate
from ._custom_types import Params, ScalarLike, State
from ._events import Crossing, Dose
from ._events._guard import CrossingGuard, crossing_probe
from ._fast._entry import solve_fused
from ._model import ODEModel
from ._results import RESULTS, SolveError, describe
from ._solution import EventLog, Segments, Solution
from ._solvers import AbstractRosenbrock
from ._solvers._counts import work_counts
from ._solvers._fused import AbstractFusedSolver
from ._solvers._jacobian import model_jacobian

# A crossing is tangent when (d fn/dt)^2 <= _GRAZING_SAFETY * 2 |d^2 fn/dt^2| * tol_fn:
# a perturbation of the trajectory of the size of the solver error could remove it.
_GRAZING_SAFETY = 100.0


def _tree_where(pred, a, b):
    return jtu.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _time_derivatives(crossing: Crossing, model: ODEModel, t, y, params):
    """`fn`, `d fn/dt` and `d^2 fn/dt^2` along the flow at `(t, y)`."""

    def along_flow(g):
        def dg(t_, y_):
            return jax.jvp(g, (t_, y_), (jnp.ones_like(t_), model(t_, y_, params)))[1]

        return dg

    def value(t_, y_):
        return crossing.value(t_, y_, params)

    slope = along_flow(value)
    return value(t, y), slope(t, y), along_flow(slope)(t, y)


def _dose_schedule(doses: Sequence[Dose]):
    times = jnp.concatenate([d.times for d in doses])
    amounts = jnp.concatenate([d.amounts for d in doses])
    owner = jnp.concatenate(
        [jnp.full(d.times.shape, i, dtype=jnp.int32) for i, d in enumerate(doses)]
    )
    order = jnp.argsort(times, stable=True)
    return times[order], amounts[order], owner[order]


@eqx.filter_jit
def _solve(
    model: ODEModel,
    y0,
    params,
    t0,
    t1,
    ts,
    crossings: tuple[Crossing, ...],
    doses: tuple[Dose, ...],
    solver: diffrax.AbstractSolver,
    rtol,
    atol,
    max_step_size,
    adjoint: diffrax.AbstractAdjoint,
    max_events: int,
    max_steps: int,
    dense: bool,
    throw: bool,
) -> Solution:
    n_crossings = len(crossings)
    y0 = jtu.tree_map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)), y0)
    levels = jnp.stack([c.level for c in crossings]) if crossings else jnp.zeros((0,))
    n_doses = sum(int(d.times.shape[0]) for d in doses)
    if n_doses:
        dose_times, dose_amounts, dose_owner = _dose_schedule(doses)
    # Without crossings only the doses split the interval.
    max_segments = (max_events if crossings else 0) + n_doses + 1

    term = diffrax.ODETerm(lambda t, y, args: model(t, y, args[0]))
    if isinstance(solver, AbstractRosenbrock) and model.jacobian is not None:
        solver = dataclasses.replace(
            solver, jacobian=lambda t, y, args: model.jacobian(t, y, args[0])
        )
    controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmax=max_step_size)
    if crossings:
        # Rejects steps over which a crossing function may reach its level and come
        # back (two crossings hidden in one step); one vector-field evaluation a step.
        controller = CrossingGuard(
            controller, crossing_probe(model, crossings, rtol, atol)
        )

    def condition(index):
        def cond_fn(t, y, args, *, t0, **kwargs):
            del kwargs
            params_, levels_, override, active = args
            value = crossings[index].fn(t, y, params_) - levels_[index]
            return jnp.where(active[index] & (t == t0), override[index], value)

        return cond_fn

    event = None
    if crossings:
        event = diffrax.Event(
            cond_fn=tuple(condition(i) for i in range(n_crossings)),
            root_finder=optx.Newton(rtol=1e-12, atol=1e-12),
            direction=tuple(c.diffrax_direction for c in crossings),
        )

    # Inputs that cannot be checked outside jit (traced values) become a result code.
    valid = (
        (t1 > t0)
        & _all_finite((y0, params, levels, doses))
        & jnp.all(rtol > 0)
        & jnp.all(atol > 0)
    )
    if max_step_size is not None:
        valid = valid & (max_step_size > 0)
    result0 = RESULTS.where(valid, RESULTS.successful, RESULTS.invalid_input)

    def fill(tree, size):
        return jtu.tree_map(lambda x: jnp.full((size,) + jnp.shape(x), jnp.inf), tree)

    log0 = EventLog(
        times=jnp.full((max_events,), jnp.inf),
        which=jnp.full((max_events,), -1, dtype=jnp.int32),
        states=fill(y0, max_events),
        states_after=fill(y0, max_events),
        slopes=jnp.full((max_events,), jnp.nan),
        count=jnp.array(0, dtype=jnp.int32),
    )
    zero = jnp.array(0, dtype=jnp.int32)
    carry0 = dict(
        t=t0,
        y=y0,
        done=jnp.invert(valid),
        log=log0,
        dose_index=zero,
        override=jnp.zeros((n_crossings,)),
        active=jnp.zeros((n_crossings,), dtype=bool),
        ys=None if ts is None else fill(y0, ts.shape[0]),
        result=result0,
        num_steps=zero,
        num_accepted_steps=zero,
        num_rejected_steps=zero,
        num_segments=zero,
    )

    def segment(carry, _):
        t, y, done = carry["t"], carry["y"], carry["done"]
        if n_doses:
            dose_pending = carry["dose_index"] < n_doses
            dose_slot = jnp.minimum(carry["dose_index"], n_doses - 1)
            next_dose = jnp.where(dose_pending, dose_times[dose_slot], jnp.inf)
        else:
            next_dose = jnp.inf
        # diffrax cannot differentiate with respect to its `t1` (it takes `nextafter`
        # of it), so the stop time enters as a constant and its derivative is restored
        # below through `dy(t_stop)/dt_stop = f(t_stop, y)`.
        t_stop_traced = jnp.where(done, t, jnp.minimum(next_dose, t1))
        t_stop = lax.stop_gradient(t_stop_traced)
        subs = [diffrax.SubSaveAt(t1=True)]
        if ts is not None:
            subs.append(diffrax.SubSaveAt(ts=jnp.clip(ts, t, t_stop)))
        saveat = diffrax.SaveAt(subs=subs, dense=dense)
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t,
            t_stop,
            None,
            y,
            args=(params, levels, carry["override"], carry["active"]),
            saveat=saveat,
            stepsize_controller=controller,
            adjoint=adjoint,
            event=event,
            max_steps=max_steps,
            throw=False,
        )
        fired = sol.result == diffrax.RESULTS.event_occurred
        t_end = sol.ts[0][-1]
        y_end = _take_last(sol.ys[0])
        shift = jnp.where(fired, 0.0, t_stop_traced - t_stop)  # zero, with a tangent
        t_end = t_end + shift
        y_end = jtu.tree_map(
            lambda y_, f_: y_ + f_ * shift, y_end, model(t_end, y_end, params)
        )
        failed = jnp.invert(fired | (sol.result == diffrax.RESULTS.successful))

        # Which crossing fired, its reset, and its behaviour around the crossing.
        y_after = y_end
        overrides, slopes, grazing, accumulating = [], [], [], []
        if n_crossings:
            mask = jnp.stack(jtu.tree_leaves(sol.event_mask)) & fired
            which = jnp.argmax(mask).astype(jnp.int32)
            for i, crossing in enumerate(crossings):
                if crossing.reset is not None:
                    reset_y = crossing.reset(t_end, y_end, params)
                    y_after = _tree_where(mask[i], reset_y, y_after)
            terminal = jnp.any(mask & jnp.array([c.terminal for c in crossings]))
            for crossing in crossings:
                value, slope, curvature = _time_derivatives(
                    crossing, model, t_end, y_end, params
                )
                value_after, slope_after, curvature_after = _time_derivatives(
                    crossing, model, t_end, y_after, params
                )
                jump = value_after - value
                tol_fn = atol + rtol * jnp.abs(crossing.level)
                # Which way the flow moves the crossing function just after the event:
                # the sign of its slope, or of its curvature where the slope is too small
                # to matter at the solver tolerance.
                flat = slope_after**2 <= (
                    _GRAZING_SAFETY * 2 * jnp.abs(curvature_after) * tol_fn
                )
                motion = jnp.sign(jnp.where(flat, curvature_after, slope_after))
                on_level = jnp.abs(value_after) <= tol_fn
                fallback = jnp.where(jump != 0, jump, jnp.sign(slope_after))
                overrides.append(
                    jnp.where(on_level & (motion != 0), motion, fallback)
                )
                slopes.append(slope)
                grazing.append(
                    slope**2 <= _GRAZING_SAFETY * 2 * jnp.abs(curvature) * tol_fn
                )
                # Zeno: a reset that changed the crossing's motion but leaves the state
                # on the level, pushed on through it in the direction just crossed.
                if crossing.reset is None:
                    accumulating.append(jnp.array(False))
                else:
                    changed = (slope_after != slope) | (jnp.abs(jump) > tol_fn)
                    accumulating.append(
                        on_level & changed & (motion != 0) & (motion == jnp.sign(slope))
                    )
            slope = jnp.stack(slopes)[which]
            tangent = fired & lax.stop_gradient(jnp.stack(grazing)[which])
            zeno = fired & lax.stop_gradient(jnp.stack(accumulating)[which])
            # The same crossing again at the same time (to rounding): accumulation too.
            last = jnp.maximum(carry["log"].count - 1, 0)
            previous_time = carry["log"].times[last]
            repeated = (carry["log"].which[last] == which) & (
                t_end - previous_time
                <= 64 * jnp.finfo(t_end.dtype).eps * jnp.maximum(jnp.abs(t_end), 1.0)
            )
            zeno = zeno | (fired & (carry["log"].count > 0) & repeated)
            override = jnp.stack(overrides)
            active = mask
        else:
            which = jnp.array(-1, dtype=jnp.int32)
            terminal = jnp.array(False)
            slope = jnp.array(jnp.nan)
            tangent = jnp.array(False)
            zeno = jnp.array(False)
            override = carry["override"]
            active = carry["active"]

        # A dose is due where the segment ran to its stop time without an event.
        log = carry["log"]
        reached_dose = jnp.array(False)
        dose_index = carry["dose_index"]
        if n_doses:
            reached_dose = jnp.invert(fired | failed | done) & (t_end == next_dose)
            dosed = y_after
            for owner, dose in enumerate(doses):
                given = dose.apply(y_after, dose_amounts[dose_slot])
                dosed = _tree_where(dose_owner[dose_slot] == owner, given, dosed)
            y_after = _tree_where(reached_dose, dosed, y_after)
            dose_index = dose_index + reached_dose.astype(jnp.int32)

        record = fired & jnp.invert(done)
        overflow = record & (log.count >= max_events)
        record = record & jnp.invert(overflow)
        slot = jnp.minimum(log.count, max_events - 1)

        def write(buffer, value):
            return jtu.tree_map(
                lambda b, v: b.at[slot].set(jnp.where(record, v, b[slot])),
                buffer,
                value,
            )

        log = EventLog(
            times=write(log.times, t_end),
            which=write(log.which, which),
            states=write(log.states, y_end),
            states_after=write(log.states_after, y_after),
            slopes=write(log.slopes, slope),
            count=log.count + record.astype(jnp.int32),
        )

        nonfinite = jnp.invert(_all_finite(y_after))
        # Running out of steps where the solution blows up, or where the vector field
        # is not defined just ahead (sqrt of a state reaching 0), is a non-finite state.
        singular = failed & (sol.result == diffrax.RESULTS.max_steps_reached)
        singular = singular & _singular(model, t_end, y_end, params)
        reached_end = (t_end >= t1) & jnp.invert(fired | reached_dose)
        finished = jnp.invert(done) & (
            failed | terminal | overflow | nonfinite | reached_end | zeno
        )
        code = RESULTS.where(failed, RESULTS.promote(sol.result), RESULTS.successful)
        code = RESULTS.where(
            (nonfinite & jnp.invert(failed)) | singular, RESULTS.nonfinite_state, code
        )
        code = RESULTS.where(overflow, RESULTS.event_buffer_full, code)
        code = RESULTS.where(record & tangent, RESULTS.tangent_crossing, code)
        code = RESULTS.where(record & zeno, RESULTS.zeno_events, code)
        keep_first = (carry["result"] == RESULTS.successful) & jnp.invert(done)
        result = RESULTS.where(keep_first, code, carry["result"])

        ys = carry["ys"]
        if ts is not None:
            in_segment = (ts >= t) & ((ts < t_end) | (finished & (ts <= t_end)))
            in_segment = in_segment & jnp.invert(done)
            ys = jtu.tree_map(
                lambda new, old: jnp.where(
                    in_segment.reshape((-1,) + (1,) * (new.ndim - 1)), new, old
                ),
                sol.ys[1],
                ys,
            )

        running = jnp.invert(done).astype(jnp.int32)
        new_carry = dict(
            t=jnp.where(done, t, t_end),
            y=_tree_where(done, y, y_after),
            done=done | finished,
            log=log,
            dose_index=dose_index,
            override=override,
            active=active & jnp.invert(done),
            ys=ys,
            result=result,
            num_steps=carry["num_steps"] + running * sol.stats["num_steps"],
            num_accepted_steps=carry["num_accepted_steps"]
            + running * sol.stats["num_accepted_steps"],
            num_rejected_steps=carry["num_rejected_steps"]
            + running * sol.stats["num_rejected_steps"],
            num_segments=carry["num_segments"] + running,
        )
        dense_out = (t, t_end, sol.interpolation) if dense else None
        return new_carry, dense_out

    carry, dense_out = lax.scan(segment, carry0, xs=None, length=max_segments)
    result = RESULTS.where(
        carry["done"] | (carry["result"] != RESULTS.successful),
        carry["result"],
        RESULTS.event_buffer_full,
    )
    if isinstance(solver, diffrax.AbstractERK):
        # An explicit solver out of steps: stiff if its average step was limited by
        # stability, h_avg |λ|max > 1 at the state reached (DP5/Tsit5: ~3.3 at the edge).
        hit = result == RESULTS.max_steps_reached
        stiff = lax.cond(
            hit,
            lambda: _looks_stiff(
                model, carry["t"], carry["y"], params, t0, carry["num_steps"]
            ),
            lambda: jnp.array(False),
        )
        result = RESULTS.where(hit & stiff, RESULTS.looks_stiff, result)
    counts = work_counts(solver, carry["num_steps"], carry["num_segments"])
    segments = None
    if dense:
        starts, ends, interpolations = dense_out
        segments = Segments(starts=starts, ends=ends, interpolations=interpolations)
    solution = Solution(
        t0=t0,
        t1=t1,
        ts=ts,
        ys=carry["ys"],
        t_final=carry["t"],
        y_final=carry["y"],
        events=carry["log"],
        result=result,
        stats=dict(
            num_steps=carry["num_steps"],
            num_accepted_steps=carry["num_accepted_steps"],
            num_rejected_steps=carry["num_rejected_steps"],
            num_segments=carry["num_segments"],
            **counts,
        ),
        segments=segments,
    )
    if throw:
        solution = result.error_if(solution, jnp.invert(solution.successful))
    return solution


def _max_abs(tree):
    leaves = [jnp.max(jnp.abs(x), initial=0.0) for x in jtu.tree_leaves(tree)]
    return jnp.max(jnp.stack(leaves)) if leaves else jnp.array(0.0)


def _singular(model: ODEModel, t, y, params):
    """Whether the solution at `(t, y)` changes on a time scale below the resolution of
    `t` (finite-time blow-up), or the vector field is not finite there or one short
    explicit step ahead (it is not defined past the point reached)."""
    t, y, params = lax.stop_gradient((t, y, params))
    dy = model(t, y, params)
    eps = jnp.finfo(t.dtype).eps
    scale = jnp.maximum(jnp.abs(t), 1.0)
    blow_up = _max_abs(y) <= 1e3 * eps * scale * _max_abs(dy)
    h = jnp.sqrt(eps) * scale
    ahead = jtu.tree_map(lambda y_, f_: y_ + h * f_, y, dy)
    undefined = jnp.invert(_all_finite((dy, model(t + h, ahead, params))))
    return blow_up | undefined


def _looks_stiff(model, t, y, params, t0, num_steps):
    """Whether the steps taken were stability-limited: the average step times the
    largest eigenvalue modulus of ∂f/∂y at `(t, y)` (30 power iterations) exceeds 1."""
    y, params = lax.stop_gradient((y, params))
    flat, unravel = ravel_pytree(y)

    def jvp(v):
        tangent = jax.jvp(lambda z: model(t, unravel(z), params), (flat,), (v,))[1]
        return ravel_pytree(tangent)[0]

    def power(_, v):
        w = jvp(v)
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-300)

    v0 = jnp.ones_like(flat) / jnp.sqrt(flat.size)
    v = lax.fori_loop(0, 30, power, v0)
    rho = jnp.linalg.norm(jvp(v))
    h_average = (t - t0) / jnp.maximum(num_steps, 1)
    return lax.stop_gradient(jnp.isfinite(rho) & (h_average * rho > 1.0))


def _take_last(ys):
    return jtu.tree_map(lambda x: x[-1], ys)


def _as_tuple(items, kind, name):
    if items is None:
        return ()
    if isinstance(items, kind):
        return (items,)
    items = tuple(items)
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(
                f"`{name}` must be a {kind.__name__} or a sequence of them; got "
                f"{type(item).__name__}."
            )
    return items


def solve(
    model: ODEModel,
    y0: State,
    params: Params,
    *,
    t0: ScalarLike,
    t1: ScalarLike,
    saveat: ArrayLike | None = None,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    rtol: ScalarLike = 1e-8,
    atol: ScalarLike = 1e-10,
    events: Crossing | Sequence[Crossing] | None = None,
    doses: Dose | Sequence[Dose] | None = None,
    max_events: int = 16,
    max_steps: int = 4096,
    max_step_size: ScalarLike | None = None,
    dense: bool = False,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    throw: bool = True,
) -> Solution:
    """Solve `dy/dt = model(t, y, params)` on `[t0, t1]`, recording crossings, applying
    their resets and the doses, differentiably.

    **Arguments:**

    - `model`: an [`odeinfer.ODEModel`][].
    - `y0`: the initial state (any pytree of arrays).
    - `params`: the parameters (any pytree; a dict of named parameters is usual).
    - `t0`, `t1`: the interval, `t0 < t1`, both finite.
    - `saveat`: sorted times in `[t0, t1]` at which to save the state, or `None`.
    - `solver`: a strategy object (see the [solver guide](../stiff.md)):
        - a diffrax solver: the default `diffrax.Tsit5()` for non-stiff problems;
          [`odeinfer.Rodas5P`][] (or [`odeinfer.Rodas4`][] at rtol ≥ 1e-5) for stiff
          ones — 5–35× faster than `diffrax.Kvaerno5()` on the Bari stiff set, and it
          solves Van der Pol, which Kvaerno5 does not. Everything (crossings, resets,
          doses, dense output, every adjoint) works with these. IMEX solvers
          (`KenCarp4`) need a split vector field, which `solve` does not take.
        - a fused forward-sensitivity solver ([`odeinfer.FusedDopri5`][],
          [`odeinfer.FusedRodas5P`][], [`odeinfer.FusedAuto`][]): the fast choice for
          derivatives of saved states of small models (a gradient costs a few solves);
          doses yes, crossings, `dense` and `max_step_size` no; `adjoint` is not used
          (every derivative mode comes from the forward sensitivities).
    - `rtol`, `atol`: tolerances of the PID step-size controller. Traced: changing them
        does not recompile.
    - `events`: one [`odeinfer.Crossing`][] or a sequence; each occurrence is recorded in
        `solution.events`, its `reset` applied, and a `terminal` one stops the solve.
    - `doses`: one [`odeinfer.Dose`][] or a sequence: jumps at preset times.
    - `max_events`: size of the event buffers. More crossings give
        `RESULTS.event_buffer_full`.
    - `max_steps`: the step budget of each segment between events and doses; running
        out gives `RESULTS.max_steps_reached`. Every solve is bounded by
        `max_steps * (max_events + number of doses + 1)` steps.
    - `max_step_size`: an upper bound on the step (`None`: no bound). Use it when a
        crossing function can cross and come back within one step.
    - `dense`: keep the dense output for `solution.evaluate(t)` (memory grows with
        `max_steps` per segment).
    - `adjoint`: how derivatives are taken (a diffrax adjoint):
        - `diffrax.RecursiveCheckpointAdjoint()` (default): reverse mode (`jax.grad`,
          `jax.jacrev`, `jax.vjp`) with checkpointing. No forward mode.
        - `diffrax.ForwardMode()`: forward mode (`jax.jvp`, `jax.jacfwd`) and
          forward-over-forward Hessians `jax.jacfwd(jax.jacfwd(f))`; the cheapest for a
          few parameters.
        - `diffrax.DirectAdjoint()`: every mode and order, `jax.hessian` included, at
          a higher cost (and much higher under `jax.vmap`).
        - `diffrax.BacksolveAdjoint` is refused (diffrax cannot use it with events
          or split saving).
    - `throw`: raise on failure. Under `jax.vmap` set `throw=False` and read
        `solution.result`.

    **Returns:**

    An [`odeinfer.Solution`][].

    **Raises:**

    `ValueError`/`TypeError` before any work for invalid input (a non-increasing or
    non-finite time span, non-finite `y0` or `params`, non-positive tolerances, a
    crossing function that is not scalar, a vector field whose output does not match
    `y0`), and [`odeinfer.NumpyInTracedCodeError`][] for a vector field, crossing or
    reset written with numpy instead of `jax.numpy`.
    """
    if not isinstance(model, ODEModel):
        raise TypeError(
            f"`model` must be an odeinfer.ODEModel; got {type(model).__name__}. Wrap the "
            "vector field: `odeinfer.ODEModel(lambda t, y, params: ...)`."
        )
    crossings = _as_tuple(events, Crossing, "events")
    dose_list = _as_tuple(doses, Dose, "doses")
    validate.check_time_span(t0, t1)
    validate.check_tolerances(rtol, atol)
    validate.check_finite("y0", y0)
    validate.check_finite("params", params)
    validate.check_max("max_events", max_events, 1)
    validate.check_max("max_steps", max_steps, 1)
    if not isinstance(solver, diffrax.AbstractSolver | AbstractFusedSolver):
        raise TypeError(
            f"`solver` must be a solver instance such as diffrax.Tsit5(), oi.Rodas5P() "
            f"or oi.FusedAuto(); got {solver!r}."
        )
    if isinstance(solver, AbstractFusedSolver):
        for given, name, fix in (
            (crossings, "events", "oi.Rodas5P() or diffrax.Tsit5()"),
            (dense, "dense=True", "oi.Rodas5P() or diffrax.Tsit5()"),
            (max_step_size is not None, "max_step_size", "a diffrax solver"),
        ):
            if given:
                raise ValueError(
                    f"`solver={solver!r}` (a fused forward-sensitivity solver) takes "
                    f"no `{name}`: use {fix} for it."
                )
    if isinstance(adjoint, diffrax.BacksolveAdjoint):
        raise ValueError(
            "`adjoint=diffrax.BacksolveAdjoint()` is not supported by odeinfer.solve: "
            "diffrax refuses it with events and with the split saving that solve uses. "
            "Use diffrax.RecursiveCheckpointAdjoint() (reverse mode) or "
            "diffrax.ForwardMode() (forward mode), or call diffrax.diffeqsolve directly."
        )
    float_dtype = jnp.result_type(float)
    t0 = jnp.asarray(t0, dtype=float_dtype)
    t1 = jnp.asarray(t1, dtype=float_dtype)
    if saveat is not None:
        saveat = jnp.atleast_1d(jnp.asarray(saveat, dtype=float_dtype))
        if saveat.ndim != 1:
            raise ValueError(
                f"`saveat` must be a 1-D array of times; got {saveat.shape}."
            )
        if saveat.shape[0] == 0:
            raise ValueError(
                "`saveat` is empty; pass `saveat=None` to save only the final state."
            )
        validate.check_times("saveat", saveat, t0, t1)
    validate.check_max_step_size(max_step_size)
    for flag, value in (("dense", dense), ("throw", throw)):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be True or False; got {value!r}.")
    if not jtu.tree_leaves(y0) or any(jnp.size(x) == 0 for x in jtu.tree_leaves(y0)):
        raise ValueError(
            f"`y0` has no components ({y0!r}); give the initial state, e.g. "
            "`jnp.array([1.0, 0.0])`."
        )
    for i, crossing in enumerate(crossings):
        validate.check_finite(f"events[{i}].level", crossing.level)
    for i, dose in enumerate(dose_list):
        validate.check_finite(f"doses[{i}].times", dose.times)
        validate.check_finite(f"doses[{i}].amounts", dose.amounts)
        if validate.is_concrete((dose.times, t0)) and np.any(
            np.asarray(dose.times) < np.asarray(t0)
        ):
            raise ValueError(
                f"`doses`: a dose time {dose.times} lies before t0={float(t0)}; give "
                "the state after earlier doses as y0 instead."
            )
        dose.check_target(y0)  # a wrong `target` fails here, before any work.
    validate.check_user_functions(model, crossings, y0, params, t0)
    validate.check_precision(rtol, float_dtype)
    if isinstance(solver, AbstractRosenbrock):
        model_jacobian(model, y0, params, t0)
    y0 = validate.as_arrays(y0)
    params = validate.as_arrays(params)
    rtol = jnp.asarray(rtol, dtype=float_dtype)
    atol = jnp.asarray(atol, dtype=float_dtype)
    if max_step_size is not None:
        max_step_size = jnp.asarray(max_step_size, dtype=float_dtype)
    inputs = (y0, params, t0, t1, saveat, crossings, dose_list, rtol, atol)
    # With concrete inputs a failure is raised here, in Python, so that the first line
    # the user reads is the result's message (not a callback traceback from inside jit).
    raise_here = throw and validate.is_concrete((inputs, max_step_size))
    if isinstance(solver, AbstractFusedSolver):
        solution = solve_fused(
            model,
            y0,
            params,
            t0=t0,
            t1=t1,
            saveat=saveat,
            doses=dose_list,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            throw=throw and not raise_here,
        )
    else:
        solution = _solve(
            model,
            y0,
            params,
            t0,
            t1,
            saveat,
            crossings,
            dose_list,
            solver,
            rtol,
            atol,
            max_step_size,
            adjoint,
            max_events,
            max_steps,
            dense,
            throw and not raise_here,
        )
    if raise_here and not bool(solution.successful):
        raise SolveError(
            f"odeinfer.solve failed at t = {float(solution.t_final):.10g} "
            f"(t0 = {float(t0):g}, t1 = {float(t1):g}): {describe(solution.result)} "
            "(Pass `throw=False` to get the Solution and read `solution.result`.)"
        )
    return solution
