"""`solve` with a fused solver: validation is `solve`'s; this builds the flat problem,
calls the jitted fused loop and returns the same `Solution` as the diffrax path."""

import types
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.core
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array

from .._events import Crossing, Dose
from .._model import ODEModel
from .._results import RESULTS
from .._solution import EventLog, Solution
from .._solvers._fused import AbstractFusedSolver
from .._solvers._tableaus import RODAS5P
from ._crossing import GRAZING_SAFETY, along_flow
from ._fused import Flattener, FusedConfig, fused_solve


def fused(config: FusedConfig, y0, theta: Array | tuple[Array, ...], inputs):
    """The fused solve. `theta`: the flat parameters, or one flat array per parameter
    leaf (`Flattener.parts`: then no sensitivities for leaves that are not
    differentiated).

    Not jitted itself: `solve_fused` is, as a whole (`fused_jitted` for callers that
    are not). A `jit` inside another is linearised separately under `jax.grad`
    (Alkan's gradient: 0.2 s more tracing)."""
    parts = theta if isinstance(theta, tuple) else (theta,)
    return fused_solve(config, y0, parts, inputs)


fused_jitted = eqx.filter_jit(fused)


# What the flat float parameters hold exactly (integers up to 2**53 in float64).
_REAL_KINDS = (jnp.floating, jnp.integer, jnp.bool_)


def _closes_over_nothing(fn) -> bool:
    """A plain function with no closure cells and no default values reads no tracer
    (short of a global one): it need not be traced to find out."""
    return (
        isinstance(fn, types.FunctionType)
        and fn.__closure__ is None
        and not fn.__defaults__
        and not fn.__kwdefaults__
    )


def _hoist(label: str, fn: Callable, example_args, hoisted: list) -> Callable | None:
    """`fn(t, y, params)` rewritten as `g(t, y, (params, hoisted))` that reads the
    tracers `fn` closes over from `hoisted` (appending those not there yet, matched by
    identity), or `None` when it closes over none.

    `fn` is traced once to a jaxpr at `example_args`; its constants that are tracers
    (of an enclosing `jax.grad`, `jax.vmap` or `jax.jit`) become inputs, the concrete
    ones stay constants. A tracer left inside the fused solve's `custom_jvp` fails
    ("No constant handler for type: LinearizeTracer") or loses its derivative."""
    if _closes_over_nothing(fn):
        return None
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*example_args)
    slots: list[int | None] = []
    for const in closed.consts:
        if not isinstance(const, jax.core.Tracer):
            slots.append(None)
            continue
        if not any(jnp.issubdtype(const.dtype, kind) for kind in _REAL_KINDS):
            raise TypeError(
                f"The {label} closes over a traced array of dtype {const.dtype} "
                f"(shape {const.shape}), which the fused solvers cannot take as a "
                "parameter: pass it in `params`, or use a diffrax solver such as "
                "`solver=diffrax.Tsit5()`."
            )
        where = next((i for i, h in enumerate(hoisted) if h is const), None)
        if where is None:
            where = len(hoisted)
            hoisted.append(const)
        slots.append(where)
    if all(slot is None for slot in slots):
        return None
    out_tree = jax.tree_util.tree_structure(out_shape)
    jaxpr, consts = closed.jaxpr, closed.consts

    def reading_hoisted(t, y, params_and_hoisted):
        params, values = params_and_hoisted
        # The flat parameters are floats: each value back to its dtype.
        inputs = [
            const if slot is None else jnp.asarray(values[slot]).astype(const.dtype)
            for const, slot in zip(consts, slots, strict=True)
        ]
        flat = jax.tree_util.tree_leaves((t, y, params))
        return jax.tree_util.tree_unflatten(
            out_tree, jax.core.eval_jaxpr(jaxpr, inputs, *flat)
        )

    return reading_hoisted


def closures_as_parameters(
    model: ODEModel, crossing_fn: Callable | None, params, example_args: Callable
) -> tuple[ODEModel, Callable | None, object]:
    """`(model, crossing_fn, params)` where the vector field, the user Jacobian and
    the crossing function read the tracers they close over from the parameters:
    `params` becomes `(params, hoisted)`, so the fused solve integrates sensitivities
    with respect to them like any parameter (and `_used_parameters` sees which the
    field reads). Unchanged (the same static objects, the same compiled program)
    when they close over no tracer.

    `example_args()`: `(t, y, params)` of the dtypes and shapes of the solve's, built
    only when a function has to be traced to find out."""
    hoisted: list = []
    functions = {
        "vector field": model.vector_field,
        "Jacobian": model.jacobian,
        "crossing function": crossing_fn,
    }
    if all(fn is None or _closes_over_nothing(fn) for fn in functions.values()):
        return model, crossing_fn, params
    example = example_args()
    rewritten = {
        label: None if fn is None else _hoist(label, fn, example, hoisted)
        for label, fn in functions.items()
    }
    if not hoisted:
        return model, crossing_fn, params

    def reading_params(label: str) -> Callable | None:
        fn, rewritten_fn = functions[label], rewritten[label]
        if rewritten_fn is not None or fn is None:
            return rewritten_fn
        return lambda t_, y_, p: fn(t_, y_, p[0])

    field = reading_params("vector field")
    assert field is not None
    fused_model = ODEModel(field, name=model.name, jacobian=reading_params("Jacobian"))
    return fused_model, reading_params("crossing function"), (params, tuple(hoisted))


def _dose_inputs(doses: Sequence[Dose], y0, flattener: Flattener, dtype):
    if not doses:
        empty = jnp.zeros((0,), dtype)
        return empty, empty, jnp.zeros((0, flattener.flatten(y0, dtype).shape[0]))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, y0)
    times, amounts, effects = [], [], []
    for dose in doses:
        # The dose adds `amount * effect` to the flat state (Dose.apply is linear).
        effect = flattener.flatten(dose.apply(zeros, 1.0), dtype)
        times.append(dose.times)
        amounts.append(dose.amounts)
        effects.append(jnp.broadcast_to(effect, dose.times.shape + effect.shape))
    times = jnp.concatenate(times).astype(dtype)
    order = jnp.argsort(times, stable=True)
    return (
        times[order],
        jnp.concatenate(amounts).astype(dtype)[order],
        jnp.concatenate(effects).astype(dtype)[order],
    )


def empty_log(y0, max_events: int, dtype) -> EventLog:
    """An event log of `max_events` unused slots (`inf` times and states)."""
    return EventLog(
        times=jnp.full((max_events,), jnp.inf, dtype),
        which=jnp.full((max_events,), -1, jnp.int32),
        states=jax.tree_util.tree_map(
            lambda x: jnp.full((max_events,) + jnp.shape(x), jnp.inf, dtype), y0
        ),
        states_after=jax.tree_util.tree_map(
            lambda x: jnp.full((max_events,) + jnp.shape(x), jnp.inf, dtype), y0
        ),
        slopes=jnp.full((max_events,), jnp.nan, dtype),
        count=jnp.array(0, jnp.int32),
    )


def crossing_log(
    crossing: Crossing, model: ODEModel, params, t, y, found, rtol, atol, max_events
):
    """The event log of a solve that stopped at `(t, y)` where `found`, and whether the
    crossing was tangent there (the diffrax path's test, `_solve/_crossing.py`)."""

    def event(t_, y_):
        return crossing.value(t_, y_, params)

    def field(t_, y_):
        return model(t_, y_, params)

    slope, curvature = along_flow(event, field, t, y, ())
    tol_fn = atol + rtol * jnp.abs(crossing.level)
    grazing = slope**2 <= GRAZING_SAFETY * 2 * jnp.abs(curvature) * tol_fn
    tangent = found & lax.stop_gradient(grazing)
    log = empty_log(y, max_events, jnp.result_type(t))

    def first(buffer, value):
        return buffer.at[0].set(jnp.where(found, value, buffer[0]))

    states = jax.tree_util.tree_map(first, log.states, y)
    log = EventLog(
        times=first(log.times, t),
        which=first(log.which, 0),
        states=states,
        states_after=states,
        slopes=first(log.slopes, slope),
        count=found.astype(jnp.int32),
    )
    return log, tangent


def flat_problem(
    model: ODEModel,
    y0,
    params,
    *,
    t0,
    t1,
    saveat,
    doses: Sequence[Dose],
    solver: AbstractFusedSolver,
    rtol,
    atol,
    max_steps: int,
    crossing: Crossing | None = None,
) -> tuple[FusedConfig, Array, tuple[Array, ...], dict, bool]:
    """`(config, y0_flat, theta_parts, inputs, hoisted)`: the flat problem the fused
    loop solves; `hoisted` where the model or crossing closes over traced values,
    which then travel as extra parameters (`closures_as_parameters`)."""
    dtype = jnp.result_type(float)
    y_flat_of = Flattener.of(y0)
    y0_flat = y_flat_of.flatten(y0, dtype)
    params_flat_of = Flattener.of(params)
    fused_model, crossing_fn, fused_params = closures_as_parameters(
        model,
        None if crossing is None else crossing.fn,
        params,
        lambda: (
            t0,
            y_flat_of.unflatten(y0_flat),
            params_flat_of.unflatten(params_flat_of.flatten(params, dtype)),
        ),
    )
    p_flat_of = Flattener.of(fused_params)
    theta_parts = p_flat_of.parts(fused_params, dtype)
    dose_times, dose_amounts, dose_effects = _dose_inputs(doses, y0, y_flat_of, dtype)
    ts = jnp.zeros((0,), dtype) if saveat is None else saveat
    inputs = dict(
        ts=ts,
        t0=t0,
        t1=t1,
        dose_times=dose_times,
        dose_amounts=dose_amounts,
        dose_effects=dose_effects,
        rtol=rtol,
        atol=atol,
    )
    if crossing is not None:
        inputs["level"] = jnp.asarray(crossing.level, dtype)
    config = FusedConfig(
        model=fused_model,
        y=y_flat_of,
        params=p_flat_of,
        method=solver.method,
        max_steps=max_steps,
        sensitivity_error_control=solver.sensitivity_error_control,
        refine_stages=solver.refine_stages,
        crossing_fn=crossing_fn,
        direction="either" if crossing is None else crossing.direction,
    )
    hoisted = fused_params is not params
    return config, y0_flat, theta_parts, inputs, hoisted


def solution_of(
    ys, ok, stats, t_reached, found, *, model, y0, params, t0, t1, saveat, inputs,
    solver: AbstractFusedSolver, rtol, atol, crossing, max_events, throw: bool,
) -> Solution:  # fmt: skip
    """The `Solution` of a fused solve from the loop's flat results (`fused`)."""
    dtype = jnp.result_type(float)
    y_flat_of = Flattener.of(y0)
    dose_times = inputs["dose_times"]
    steps, accepted, stiff, hit = stats[0], stats[1], stats[2], stats[3]
    result = RESULTS.where(ok, RESULTS.successful, RESULTS.nonfinite_state)
    result = RESULTS.where(~ok & hit.astype(bool), RESULTS.max_steps_reached, result)  # pyright: ignore[reportArgumentType]
    if solver.method == "dopri5":
        result = RESULTS.where(
            ~ok & hit.astype(bool) & stiff.astype(bool), RESULTS.looks_stiff, result
        )
    # Doses after the solve stopped (past `t1`, or after a terminal crossing) never
    # start a segment; one at `t1` does, as on the diffrax path.
    segments = 1 + jnp.sum(dose_times <= t_reached).astype(jnp.int32)
    unknown = jnp.array(-1, jnp.int32)
    if solver.method == "dopri5":
        # Per segment: the first stage and two evaluations for the initial step.
        counts = dict(
            num_fevals=6 * steps + 3 * segments,
            num_jacobians=jnp.zeros_like(steps),
            num_lu_decompositions=jnp.zeros_like(steps),
        )
    elif solver.method == "rodas5p":
        # A refined stage solve adds one Jacobian-vector product per stage.
        per_stage = 2 if solver.refine_stages else 1
        counts = dict(
            num_fevals=per_stage * RODAS5P.num_stages * steps + 2 * segments,
            num_jacobians=steps,
            num_lu_decompositions=steps,
        )
    else:
        counts = dict(
            num_fevals=unknown, num_jacobians=unknown, num_lu_decompositions=unknown
        )
    unflatten = y_flat_of.unflatten
    y_final = unflatten(ys[-1])
    if crossing is None:
        log = empty_log(y0, 0, dtype)
    else:
        log, tangent = crossing_log(
            crossing, model, params, t_reached, y_final, found, rtol, atol, max_events
        )
        result = RESULTS.where(tangent, RESULTS.tangent_crossing, result)
    solution = Solution(
        t0=t0,
        t1=t1,
        ts=saveat,
        ys=None if saveat is None else jax.vmap(unflatten)(ys[:-1]),
        t_final=t_reached,
        y_final=y_final,
        events=log,
        result=result,
        stats=dict(
            num_steps=steps,
            num_accepted_steps=accepted,
            num_rejected_steps=steps - accepted,
            num_segments=segments,
            switched_to_stiff=stiff.astype(bool)
            if solver.method == "auto"
            else jnp.array(False),
            **counts,
        ),
        segments=None,
    )
    if throw:
        solution = result.error_if(solution, jnp.invert(solution.successful))
    return solution


@eqx.filter_jit
def solve_fused(
    model: ODEModel,
    y0,
    params,
    *,
    t0,
    t1,
    saveat,
    doses: Sequence[Dose],
    solver: AbstractFusedSolver,
    rtol,
    atol,
    max_steps: int,
    throw: bool,
    crossing: Crossing | None = None,
    max_events: int = 1,
) -> Solution:
    """`oi.solve`'s fused path (inputs already validated and converted by `solve`;
    `crossing`: at most one, terminal, without reset).

    The solution has the diffrax path's fields: `ys` at `saveat` (`inf` after the
    crossing), `y_final` at `t1` or the crossing, `t_final` the time reached, `result`
    (`successful`, `max_steps_reached`, `looks_stiff` for Dormand–Prince on
    stability-limited steps, `nonfinite_state` for a step size that underflowed on
    non-finite stages, `tangent_crossing`), `stats` and the event log (`max_events`
    slots, the first holding the crossing where found).

    Jitted as a whole (one program per model, structure and options): run op by op,
    the assembly of the `Solution` around the loop (result codes, counts, the event
    log, unflattening) cost ~20 ms a call and, in a new process, ~0.3-1 s of first-call
    time for the README's `jax.grad` of `first_crossing`."""
    config, y0_flat, theta_parts, inputs, _ = flat_problem(
        model, y0, params, t0=t0, t1=t1, saveat=saveat, doses=doses, solver=solver,
        rtol=rtol, atol=atol, max_steps=max_steps, crossing=crossing,
    )  # fmt: skip
    ys, ok, stats, t_reached, found = fused(config, y0_flat, theta_parts, inputs)
    return solution_of(
        ys, ok, stats, t_reached, found, model=model, y0=y0, params=params, t0=t0,
        t1=t1, saveat=saveat, inputs=inputs, solver=solver, rtol=rtol, atol=atol,
        crossing=crossing, max_events=max_events, throw=throw,
    )  # fmt: skip
