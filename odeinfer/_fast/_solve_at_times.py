"""`solve_at_times`: the fused Dormand–Prince solve saved at given times, returning
`(ys, ok)`; the array form of `oi.solve(..., solver=oi.FusedDopri5())`, kept for the
code written against it (the engine is `_fused.py`)."""

import warnings

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool

from .. import _validation as validate
from .._custom_types import Params, ScalarLike, State
from .._model import ODEModel
from ._entry import closures_as_parameters, fused_jitted
from ._fused import Flattener, FusedConfig


def solve_at_times(
    model: ODEModel,
    y0: State,
    params: Params,
    ts: ArrayLike,
    *,
    rtol: ScalarLike = 1e-6,
    atol: ScalarLike = 1e-8,
    max_steps: int = 4096,
    t0: ScalarLike | None = None,
    sensitivity_error_control: bool = False,
) -> tuple[State, Bool[Array, ""]]:
    """Solve a non-stiff ODE and return the state at the times `ts`, fast, with fast
    forward-sensitivity derivatives.

    !!! Warning "Deprecated"

        Use `oi.solve(..., saveat=ts, solver=oi.FusedDopri5())`: the same loop, with a
        result code, `throw`, doses, and the stiff [`odeinfer.FusedRodas5P`][] and
        [`odeinfer.FusedAuto`][] alongside. `solve_at_times` will be removed in the
        next release.

    Dormand–Prince 5(4) (FSAL) with Hairer's PI step-size control and initial-step
    heuristic; the state at each of `ts` comes from the method's dense output. Its
    derivatives (`jax.jvp`, `jax.jacfwd`, `jax.grad`, `jax.jacrev`, and so numpyro's NUTS)
    come from the forward sensitivity equations `S' = (df/dy) S + df/dθ`, integrated with
    the state in one loop on the same steps, for all the directions at once
    (`len(y0) + len(params)` of them, fewer when only some inputs are differentiated).
    Reverse mode transposes that linear map; it is the fast choice for models with few
    parameters and states, which is the point of this function (a gradient costs a few
    values, against 10–17 with diffrax here). Use [`odeinfer.solve`][] for events, doses,
    stiff problems or many parameters.

    **Arguments:**

    - `model`: an [`odeinfer.ODEModel`][].
    - `y0`: the initial state at `t0` (an array or any pytree of arrays).
    - `params`: the parameters (any pytree, e.g. a dict of named parameters).
    - `ts`: sorted save times, shape `(m,)`; the solve ends at `ts[-1]`.
    - `rtol`, `atol`: tolerances of the error control. Traced: changing them does not
        recompile.
    - `max_steps`: bound on the number of steps, accepted and rejected; running out
        gives `ok = False`, never an exception or a hang.
    - `t0`: the initial time; default `ts[0]`. Needs `t0 <= ts[0]`.
    - `sensitivity_error_control`: `False` (default): the step sizes are controlled by
        the error of the state only, so a derivative costs no extra steps and the value
        computed with derivatives is exactly the value computed without them. `True`:
        the sensitivities' errors are controlled too (same `rtol`, `atol`; the largest
        of the state's and each direction's error norms, as CVODES's `errconS`): more
        accurate derivatives for more steps; the value then comes from a different
        (finer) mesh when derivatives are taken.

    **Returns:**

    `(ys, ok)`: `ys` has a leading axis of length `m` over `ts` and the structure of
    `y0` (for a 1-D `y0`, shape `(m, n)`); `ok` is a boolean scalar, false when
    `max_steps` ran out, the step size underflowed, the state or vector field became
    non-finite (NaN parameters included), or `ts` had times before `t0`. After a
    failure `ys` holds the last good state at the unreached times, so it stays finite:
    use `jnp.where(ok, log_density, -jnp.inf)`.

    **Raises:**

    `TypeError`/`ValueError` before any work for a `model` that is not an `ODEModel`,
    `ts` that is not a non-empty 1-D array or not sorted, non-positive tolerances,
    `max_steps < 1`, or a vector field whose output does not match `y0`.

    !!! Example

        ```python
        import jax, jax.numpy as jnp
        import odeinfer as oi

        decay = oi.ODEModel(lambda t, y, p: -p["k"] * y)
        ts = jnp.linspace(0.0, 2.0, 5)
        ys, ok = oi.solve_at_times(decay, jnp.array([1.0]), {"k": 0.5}, ts)
        dk = jax.grad(lambda p: oi.solve_at_times(decay, jnp.array([1.0]), p, ts)[0].sum())
        ```
    """
    warnings.warn(
        "odeinfer.solve_at_times is deprecated and will be removed in the next release: "
        "use `oi.solve(model, y0, params, t0=..., t1=ts[-1], saveat=ts, "
        "solver=oi.FusedDopri5(), throw=False)` (the same fused loop, returning a "
        "Solution with `ys` and a `result` code; also `oi.FusedRodas5P()` for stiff "
        "problems and `oi.FusedAuto()`).",
        DeprecationWarning,
        stacklevel=2,
    )
    return _solve_at_times(
        model,
        y0,
        params,
        ts,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        t0=t0,
        sensitivity_error_control=sensitivity_error_control,
    )


def _solve_at_times(
    model,
    y0,
    params,
    ts,
    *,
    rtol,
    atol,
    max_steps,
    t0,
    sensitivity_error_control,
    sensitivity_mode: str = "jvp",
):
    if not isinstance(model, ODEModel):
        raise TypeError(
            f"`model` must be an odeinfer.ODEModel; got {type(model).__name__}. Wrap the "
            "vector field: `odeinfer.ODEModel(lambda t, y, params: ...)`."
        )
    validate.check_tolerances(rtol, atol)
    validate.check_max("max_steps", max_steps, 1)
    float_dtype = jnp.result_type(float)
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(
            f"`ts` must be a non-empty 1-D array of save times; got shape {ts.shape}."
        )
    ts = ts.astype(jnp.result_type(ts.dtype, float_dtype))
    validate.check_times("ts", ts)
    if t0 is not None:
        validate.check_finite("t0", t0)
    t0 = ts[0] if t0 is None else jnp.asarray(t0, ts.dtype)
    if validate.is_concrete((t0, ts)) and float(t0) > float(ts[0]):
        raise ValueError(
            f"`t0` ({float(t0)}) must not be after the first save time ({float(ts[0])})."
        )
    y0 = jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.result_type(jnp.asarray(x).dtype, float_dtype)), y0
    )
    # A vector field that closes over tracers (built inside the user's `jax.grad`,
    # `jax.vmap` or `jax.jit`) reads them from the parameters instead, as in `solve`.
    params_of = Flattener.of(params)
    model, _, params = closures_as_parameters(
        model,
        None,
        params,
        lambda: (t0, y0, params_of.unflatten(params_of.flatten(params, float_dtype))),
    )
    y_flat_of = Flattener.of(y0)
    p_flat_of = Flattener.of(params)
    y0_flat = y_flat_of.flatten(y0, float_dtype)
    theta = p_flat_of.flatten(params, float_dtype)
    config = FusedConfig(
        model=model,
        y=y_flat_of,
        params=p_flat_of,
        method="dopri5",
        max_steps=max_steps,
        sensitivity_error_control=sensitivity_error_control,
        sensitivity_mode=sensitivity_mode,
    )
    out = validate.trace_user_function(
        "vector_field", config.flat_field, t0, y0_flat, theta
    )
    if out.shape != y0_flat.shape:
        raise ValueError(
            f"The vector field of {model.name!r} returns {out.shape[0] if out.ndim else 1}"
            f" values for a state of {y0_flat.shape[0]}: it must return dy/dt with the "
            "structure and shapes of `y0`."
        )
    empty = jnp.zeros((0,), float_dtype)
    inputs = dict(
        ts=ts,
        t0=t0,
        t1=ts[-1],
        dose_times=empty,
        dose_amounts=empty,
        dose_effects=jnp.zeros((0, y0_flat.shape[0]), float_dtype),
        rtol=jnp.asarray(rtol, float_dtype),
        atol=jnp.asarray(atol, float_dtype),
    )
    ys, ok = fused_jitted(config, y0_flat, theta, inputs)[:2]
    return jax.vmap(y_flat_of.unflatten)(ys[:-1]), ok
