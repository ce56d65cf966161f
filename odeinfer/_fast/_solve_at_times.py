"""`solve_at_times`: a fast Dormand–Prince solve saved at given times, with a forward-
sensitivity `jax.custom_jvp`.

Written by hand, not with `diffrax.diffeqsolve`, because diffrax's general per-step
machinery (solver state, controller, saving, event and progress hooks, adjoints) costs
about 10x the arithmetic on small ODEs: on the lynx–hare Lotka–Volterra log-density
a value costs ~43 µs with diffrax and its gradient 510–740 µs (forward/reverse mode),
where this loop takes a fraction of that (see `benchmarks/gradient_speed.py`). It
supports one job only: a non-stiff ODE, saved at fixed times, with first derivatives
with respect to the initial state, the parameters and the times. Everything else (events,
doses, stiff solvers, dense solutions) is `odeinfer.solve`.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Bool

from .. import _validation as validate
from .._custom_types import Params, ScalarLike, State
from .._model import ODEModel
from ._integrate import integrate
from ._sensitivity import sensitivity_stage, state_stage


class _Config(eqx.Module):
    """Static configuration of one solve (hashable, so it is a `nondiff_argnum`)."""

    model: ODEModel = eqx.field(static=True)
    unravel_y: object = eqx.field(static=True)
    unravel_params: object = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    sensitivity_error_control: bool = eqx.field(static=True)
    sensitivity_mode: str = eqx.field(static=True)

    def flat_field(self, t, y, theta):
        dy = self.model(t, self.unravel_y(y), self.unravel_params(theta))
        return ravel_pytree(dy)[0]


def _run(config: _Config, Y0, theta, theta_directions, ts, t0, rtol, atol):
    def f(t, y):
        return config.flat_field(t, y, theta)

    if theta_directions is None:
        F = state_stage(f)
        error_rows = 1
    else:
        F = sensitivity_stage(
            config.flat_field, theta, theta_directions, config.sensitivity_mode
        )
        error_rows = Y0.shape[0] if config.sensitivity_error_control else 1
    Ys, ok, _, _ = integrate(F, f, Y0, ts, t0, rtol, atol, config.max_steps, error_rows)
    return Ys, ok


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _solve(config: _Config, y0, theta, ts, t0, rtol, atol):
    Ys, ok = _run(config, y0[None], theta, None, ts, t0, rtol, atol)
    return Ys[:, 0], ok


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


@functools.partial(_solve.defjvp, symbolic_zeros=True)
def _solve_jvp(config: _Config, primals, tangents):
    y0, theta, ts, t0, rtol, atol = primals
    dy0, dtheta, dts, dt0, _, _ = tangents
    n, p = y0.shape[0], theta.shape[0]
    with_y0 = not (_is_zero(dy0) and _is_zero(dt0))
    # Parameters the vector field never reads (noise scales, observation parameters)
    # have zero sensitivity: no directions for them.
    used = np.asarray(_used_parameters(config, t0, y0, theta), dtype=int)
    with_theta = not _is_zero(dtheta) and used.size > 0
    # The directions: the components of y0 (if needed), then those of theta (if needed).
    # S starts at [I; 0] for y0 directions and 0 for theta directions; Θ is the theta part.
    S0, Theta, coefficients = [], [], []
    if with_y0:
        S0.append(jnp.eye(n, dtype=y0.dtype))
        Theta.append(jnp.zeros((n, p), theta.dtype))
        coefficients.append(jnp.zeros_like(y0) if _is_zero(dy0) else dy0)
    if with_theta:
        S0.append(jnp.zeros((used.size, n), y0.dtype))
        Theta.append(jnp.eye(p, dtype=theta.dtype)[used])
        coefficients.append(dtheta[used])
    if S0:
        Y0 = jnp.concatenate([y0[None]] + S0)
        Ys, ok = _run(config, Y0, theta, jnp.concatenate(Theta), ts, t0, rtol, atol)
        ys, S = Ys[:, 0], Ys[:, 1:]  # S: (len(ts), directions, n)
        # Linear in the input tangents, S depends on the primals only: transposable.
        dys = jnp.einsum("tdn,d->tn", S, jnp.concatenate(coefficients))
    else:
        ys, ok = _solve(config, y0, theta, ts, t0, rtol, atol)
        dys = jnp.zeros_like(ys)
    if not _is_zero(dt0):
        # dy(t)/dt0 = -Φ(t, t0) f(t0, y0) = -S_y0(t) f(t0, y0).
        f0 = config.flat_field(t0, y0, theta)
        dys = dys - dt0 * jnp.einsum("tdn,d->tn", S[:, :n], f0)
    if not _is_zero(dts):
        # dy(t)/dt = f(t, y(t)).
        slopes = jax.vmap(config.flat_field, in_axes=(0, 0, None))(ts, ys, theta)
        dys = dys + slopes * dts[:, None]
    dok = np.zeros(ok.shape, dtype=jax.dtypes.float0)
    return (ys, ok), (dys, dok)


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
        the sensitivities' errors are controlled too (same `rtol`, `atol`), like
        CVODES's `errconS`: more accurate derivatives for more steps; the value then
        comes from a different (finer) mesh when derivatives are taken.

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


def _used_parameters(config: _Config, t0, y0, theta) -> tuple[int, ...]:
    """The indices of the flat parameters `theta` that the vector field reads.

    A conservative structural analysis at trace time: the vector field is traced to a
    jaxpr with one input per leaf of the parameter pytree, and a leaf counts as read
    when any equation (or the output) refers to it. A leaf that is never referred to
    cannot change dy/dt, so its sensitivities are exactly zero and are not integrated.
    Likelihood parameters that sit in the same dict as the model's (noise scales, say)
    would otherwise each cost a row of sensitivities at every stage."""
    leaves, treedef = jax.tree_util.tree_flatten(config.unravel_params(theta))

    def field(t, y, *leaves):
        params = jax.tree_util.tree_unflatten(treedef, leaves)
        return config.model(t, config.unravel_y(y), params)

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
    y0_flat, unravel_y = ravel_pytree(y0)
    theta, unravel_params = ravel_pytree(params)
    theta = theta.astype(jnp.result_type(theta.dtype, float_dtype))
    config = _Config(
        model,
        unravel_y,
        unravel_params,
        max_steps,
        sensitivity_error_control,
        sensitivity_mode,
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
    rtol = jnp.asarray(rtol, float_dtype)
    atol = jnp.asarray(atol, float_dtype)
    ys, ok = _solve(config, y0_flat, theta, ts, t0, rtol, atol)
    return jax.vmap(unravel_y)(ys), ok
