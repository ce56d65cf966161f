"""Cumulative integrals `Q(t) = ∫_{t0}^t g(s, y(s), params) ds` along a solution.

Two ways:

- `method="adaptive"`: augment the ODE with `dQ/dt = g(t, y, params)` (see
  [`odeinfer.with_integral`][]), so the solver's error control covers `Q` too. Accurate to
  the solve's tolerances, differentiable like any solve.
- fixed rules on a grid (`"trapezoid"`, `"simpson"`, `"gauss_legendre"`): save `y` at the
  grid (or Gauss–Legendre nodes) and apply the rule. Cheaper when `g` is smooth and the
  grid fine, with a known error order: O(h²), O(h⁴), O(h^{2n}) for `n` nodes per interval.
"""

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from . import _validation as validate
from ._custom_types import Params, ScalarLike, State
from ._model import ODEModel
from ._solve import solve

Method = Literal["adaptive", "trapezoid", "simpson", "gauss_legendre"]


def with_integral(
    model: ODEModel, integrand: Callable, name: str | None = None
) -> ODEModel:
    """The model augmented with the running integral of `integrand`.

    The new state is a tuple `(y, Q)` with `dQ/dt = integrand(t, y, params)` (`Q` has
    the structure of the integrand's output). Start it with
    [`odeinfer.integral_initial_state`][]. Observables of the augmented model see
    `(y, Q)`, so a prediction can be an integral: `h = lambda t, yq, p: yq[1]`.

    Keep one augmented model per problem (a new one recompiles).
    """
    if not isinstance(model, ODEModel):
        raise TypeError(
            f"with_integral: `model` must be an oi.ODEModel; got {model!r}."
        )
    if not callable(integrand):
        raise TypeError("with_integral: `integrand` must be callable g(t, y, params).")

    def vector_field(t, state, params):
        y, _ = state
        return model(t, y, params), integrand(t, y, params)

    return ODEModel(vector_field, name=name or f"{model.name}+integral")


def integral_initial_state(
    integrand: Callable, y0: State, params: Params, t0: ScalarLike = 0.0
):
    """`(y0, 0)`: the initial state of [`odeinfer.with_integral`][]'s model."""
    shape = jax.eval_shape(integrand, jnp.asarray(t0, dtype=float), y0, params)
    return y0, jtu.tree_map(lambda s: jnp.zeros(s.shape, dtype=float), shape)


def _check_samples(name: str, values, ts) -> None:
    """`ts` 1-D with one entry per leading entry of `values`; finite and increasing
    where concrete."""
    if jnp.ndim(ts) != 1 or jnp.ndim(values) < 1 or jnp.shape(values)[0] != len(ts):
        raise ValueError(
            f"{name}: `ts` must be 1-D with one time per entry of `values`' leading "
            f"axis; got ts shape {jnp.shape(ts)} and values shape {jnp.shape(values)}."
        )
    if validate.is_concrete(ts):
        ts_np = np.asarray(ts, dtype=float)
        if not np.all(np.isfinite(ts_np)) or np.any(np.diff(ts_np) <= 0):
            raise ValueError(
                f"{name}: `ts` must be finite and strictly increasing; got {ts_np}."
            )


def cumulative_trapezoid(values, ts) -> Array:
    """Cumulative trapezoid rule: `out[i] ≈ ∫_{ts[0]}^{ts[i]}` of the sampled function
    (`values` has `ts` as its leading axis). Error O(h²).

    Written here because `jax.scipy.integrate` has only the total `trapezoid`.
    """
    values = jnp.asarray(values, dtype=float)
    ts = jnp.asarray(ts, dtype=float)
    _check_samples("cumulative_trapezoid", values, ts)
    h = jnp.diff(ts).reshape((-1,) + (1,) * (values.ndim - 1))
    pieces = 0.5 * h * (values[1:] + values[:-1])
    return jnp.concatenate([jnp.zeros_like(values[:1]), jnp.cumsum(pieces, axis=0)])


def cumulative_simpson(values, ts) -> Array:
    """Cumulative Simpson rule on a uniform grid (at least 3 points): composite Simpson
    at even nodes and the three-point formula `h/12 (5 f0 + 8 f1 - f2)` for the half
    step at odd nodes. Error O(h⁴).
    """
    values = jnp.asarray(values, dtype=float)
    ts_np = None
    try:
        ts_np = np.asarray(ts, dtype=float)
    except Exception:  # traced times: cannot check uniformity here
        pass
    _check_samples("cumulative_simpson", values, jnp.asarray(ts, dtype=float))
    n = values.shape[0]
    if n < 3:
        raise ValueError(f"cumulative_simpson needs at least 3 points; got {n}.")
    if ts_np is not None:
        steps = np.diff(ts_np)
        if not np.allclose(steps, steps[0], rtol=1e-9, atol=0):
            raise ValueError(
                "cumulative_simpson needs a uniform grid; use cumulative_trapezoid or "
                "method='gauss_legendre' for an uneven one."
            )
    ts = jnp.asarray(ts, dtype=float)
    h = (ts[-1] - ts[0]) / (n - 1)
    f = values
    # Integral over [t_i, t_{i+1}] from the quadratic through points i, i+1, i+2
    # (forward) or i-1, i, i+1 (for the last interval).
    forward = h / 12 * (5 * f[:-2] + 8 * f[1:-1] - f[2:])
    last = h / 12 * (-f[-3] + 8 * f[-2] + 5 * f[-1])
    half = jnp.concatenate([forward, last[None]])  # interval i -> i+1
    pairs = half[0:-1:2] + (h / 12 * (-f[:-2] + 8 * f[1:-1] + 5 * f[2:]))[0::2]
    # pairs[m] = Simpson over [t_{2m}, t_{2m+2}] = h/3 (f0 + 4 f1 + f2).
    even = jnp.concatenate([jnp.zeros_like(f[:1]), jnp.cumsum(pairs, axis=0)])
    out = jnp.zeros_like(f)
    out = out.at[0::2].set(even[: (n + 1) // 2])
    out = out.at[1::2].set(even[: n // 2] + half[0::2][: n // 2])
    return out


def _gauss_legendre_nodes(ts, order):
    x, w = np.polynomial.legendre.leggauss(order)
    mid = 0.5 * (ts[1:] + ts[:-1])
    half = 0.5 * (ts[1:] - ts[:-1])
    nodes = mid[:, None] + half[:, None] * jnp.asarray(x)[None, :]
    weights = half[:, None] * jnp.asarray(w)[None, :]
    return nodes, weights


def cumulative_integral(
    model: ODEModel,
    integrand: Callable,
    y0: State,
    params: Params,
    *,
    ts: Float[ArrayLike, " n"],
    t0=None,
    method: Method = "adaptive",
    order: int = 4,
    **solve_options,
) -> Float[Array, " n ..."]:
    """`Q(ts[i]) = ∫_{t0}^{ts[i]} integrand(s, y(s), params) ds` along the solution of
    `model` from `y0` at `t0`.

    **Arguments:**

    - `model`, `y0`, `params`: the ODE and its initial state and parameters.
    - `integrand`: `g(t, y, params)` returning an array.
    - `ts`: sorted output times (the grid, for the fixed rules).
    - `t0`: where the solution starts and the integral is zero (default `ts[0]`).
    - `method`: `"adaptive"` (augmented state, error-controlled), `"trapezoid"`
        (O(h²)), `"simpson"` (uniform grid, O(h⁴)) or `"gauss_legendre"` (`order`
        nodes per grid interval, O(h^{2 order})).
    - `order`: the Gauss–Legendre nodes per interval.
    - `solve_options`: passed to [`odeinfer.solve`][] (`rtol`, `atol`, `solver`,
        `adjoint`, `doses`, ...).

    **Returns:**

    An array with leading axis `len(ts)`. Differentiable with respect to `params` and
    `y0` (with the adjoint chosen in `solve_options`).
    """
    ts = jnp.atleast_1d(jnp.asarray(ts, dtype=float))
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(
            f"cumulative_integral: `ts` must be 1-D with >= 2 times; got {ts.shape}."
        )
    if method not in ("adaptive", "trapezoid", "simpson", "gauss_legendre"):
        raise ValueError(
            "cumulative_integral: `method` must be 'adaptive', 'trapezoid', 'simpson' or "
            f"'gauss_legendre'; got {method!r}."
        )
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or order < 1:
        raise ValueError(
            f"cumulative_integral: `order` must be a positive integer; got {order!r}."
        )
    if validate.is_concrete((ts, t0)):
        ts_np = np.asarray(ts)
        if not np.all(np.isfinite(ts_np)) or np.any(np.diff(ts_np) <= 0):
            raise ValueError(
                "cumulative_integral: `ts` must be finite and strictly increasing; got "
                f"{ts_np}."
            )
        if t0 is not None and not (np.isfinite(float(t0)) and float(t0) <= ts_np[0]):
            raise ValueError(
                f"cumulative_integral: `t0` must be finite and at or before `ts[0]`={ts_np[0]}"
                f"; got {t0!r} (leave it None to start at ts[0])."
            )
    prepend = t0 is not None
    start = ts[0] if t0 is None else jnp.asarray(t0, dtype=float)
    grid = jnp.concatenate([start[None], ts]) if prepend else ts
    t1 = grid[-1]
    if method == "adaptive":
        augmented = with_integral(model, integrand)
        state0 = integral_initial_state(integrand, y0, params, start)
        solution = solve(
            augmented, state0, params, t0=start, t1=t1, saveat=ts, **solve_options
        )
        assert solution.ys is not None  # saved at `ts`
        return solution.ys[1]
    g = jax.vmap(integrand, in_axes=(0, 0, None))
    if method == "gauss_legendre":
        nodes, weights = _gauss_legendre_nodes(grid, int(order))
        solution = solve(
            model, y0, params, t0=start, t1=t1, saveat=nodes.ravel(), **solve_options
        )
        values = g(nodes.ravel(), solution.ys, params)
        values = values.reshape(nodes.shape + values.shape[1:])
        w = weights.reshape(weights.shape + (1,) * (values.ndim - 2))
        pieces = jnp.sum(w * values, axis=1)
        out = jnp.concatenate([jnp.zeros_like(pieces[:1]), jnp.cumsum(pieces, axis=0)])
    else:
        solution = solve(
            model, y0, params, t0=start, t1=t1, saveat=grid, **solve_options
        )
        values = g(grid, solution.ys, params)
        rule = cumulative_trapezoid if method == "trapezoid" else cumulative_simpson
        out = rule(values, grid)
    return out[1:] if prepend else out
