"""Checks of a model's own Jacobian (`ODEModel(..., jacobian=J)`)."""

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._custom_types import Params, ScalarLike, State
from .._model import ODEModel


class JacobianCheck(eqx.Module):
    """The result of [`odeinfer.check_jacobian`][].

    **Attributes:**

    - `jacobian`: the model's Jacobian at the point, `(n, n)`.
    - `reference`: `jax.jacfwd` of the vector field at the same point.
    - `max_error`: the largest `|J - J_ref| / (atol + rtol |J_ref|)`; `≤ 1` passes.
    - `worst`: `(row, column)` of that entry.
    - `ok`: whether every entry is within tolerance.
    """

    jacobian: Float[Array, "n n"]
    reference: Float[Array, "n n"]
    max_error: float
    worst: tuple[int, int]
    ok: bool


def _flat_problem(model: ODEModel, y0: State, params: Params, t):
    y, unravel = ravel_pytree(jax.tree_util.tree_map(jnp.asarray, y0))
    y = y.astype(jnp.result_type(y.dtype, float))

    def f(y_flat):
        return ravel_pytree(model(t, unravel(y_flat), params))[0]

    return y, unravel, f


def model_jacobian(model: ODEModel, y0: State, params: Params, t0) -> None:
    """Check `model.jacobian` at the initial point before any work: shape `(n, n)` for a
    state of `n` values, finite. Raises `ValueError` naming `jacobian` otherwise."""
    if model.jacobian is None:
        return
    y, unravel, _ = _flat_problem(model, y0, params, t0)
    n = y.shape[0]
    J = jnp.asarray(model.jacobian(t0, unravel(y), params))
    if J.shape != (n, n):
        raise ValueError(
            f"The `jacobian` of model {model.name!r} returns shape {J.shape} for a state "
            f"of {n} values: it must return the ({n}, {n}) matrix ∂f_i/∂y_j (row i = "
            "component of dy/dt, column j = component of y, in the order of the "
            "flattened state)."
        )
    if isinstance(J, jax.core.Tracer):
        return
    if not np.all(np.isfinite(np.asarray(J))):
        bad = np.argwhere(~np.isfinite(np.asarray(J)))[0]
        raise ValueError(
            f"The `jacobian` of model {model.name!r} is not finite at t0 and y0 (entry "
            f"{tuple(int(i) for i in bad)}): check it, or drop `jacobian=` to use "
            "jax.jacfwd of the vector field."
        )


def check_jacobian(
    model: ODEModel,
    y0: State,
    params: Params,
    *,
    t: ScalarLike = 0.0,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    throw: bool = True,
) -> JacobianCheck:
    """Compare a model's own Jacobian with `jax.jacfwd` of its vector field at one point.

    A Rosenbrock method ([`odeinfer.Rodas5P`][]) uses the Jacobian inside its formula,
    so a wrong Jacobian silently lowers its order (the solve still converges, slowly):
    check a hand-written `jacobian=` once, at a typical state.

    **Arguments:**

    - `model`: an [`odeinfer.ODEModel`][] with `jacobian=`.
    - `y0`, `params`, `t`: the point.
    - `rtol`, `atol`: the tolerance per entry, `|J - J_ref| ≤ atol + rtol |J_ref|`.
    - `throw`: raise a `ValueError` naming the worst entry when the check fails.

    **Returns:** a [`odeinfer.JacobianCheck`][].
    """
    if not isinstance(model, ODEModel):
        raise TypeError(f"`model` must be an odeinfer.ODEModel; got {type(model)}.")
    if model.jacobian is None:
        raise ValueError(
            f"Model {model.name!r} has no `jacobian` to check: pass one with "
            "`ODEModel(vector_field, jacobian=J)`."
        )
    t = jnp.asarray(t, dtype=float)
    model_jacobian(model, y0, params, t)
    y, unravel, f = _flat_problem(model, y0, params, t)
    J = np.asarray(model.jacobian(t, unravel(y), params), dtype=float)
    reference = np.asarray(jax.jacfwd(f)(y))
    scaled = np.abs(J - reference) / (atol + rtol * np.abs(reference))
    row, column = np.unravel_index(np.argmax(scaled), scaled.shape)
    worst = (int(row), int(column))
    max_error = float(scaled[worst])
    ok = bool(max_error <= 1.0)
    if throw and not ok:
        raise ValueError(
            f"The `jacobian` of model {model.name!r} disagrees with jax.jacfwd of its "
            f"vector field at entry {worst}: {float(J[worst]):.6g} against "
            f"{float(reference[worst]):.6g} "
            f"({max_error:.3g}× the tolerance atol={atol}, rtol={rtol}). Row i is "
            "∂(dy_i/dt), column j is ∂y_j. Fix it, or drop `jacobian=` to use jacfwd."
        )
    return JacobianCheck(
        jacobian=jnp.asarray(J),
        reference=jnp.asarray(reference),
        max_error=max_error,
        worst=worst,
        ok=ok,
    )
