"""A fused solve with its forward sensitivities along directions the caller chooses.

The fused solve's own derivative (`_fused_solve_jvp`) cannot know how its inputs
depend on the quantities being differentiated, so it integrates fixed directions: one
per component of `y0` (starting at `S = I`) and one per parameter the vector field
reads, then contracts them with the tangents. A caller that knows its inputs are
functions of a few quantities `x` passes `dy0/dx`, `dθ/dx` and the dose amounts'
`d/dx` here instead, and gets `dy/dx` from one integration of `len(x)` directions
(AMICI's forward sensitivities: one direction per estimated parameter, started at the
initial state's derivative).

Why it matters: where `y0` is a preequilibrated steady state, each column of `S = I`
excites the fast modes the steady state has settled (their combination along
`dy_ss/dx` does not), and the sensitivity error test must resolve those transients:
Brannmark's experiment `Dose_0`, at its steady state, took 154 steps with the 25
fixed directions (11 states, 14 parameters) instead of 6.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._events import Dose
from .._model import ODEModel
from .._solution import Solution
from .._solvers._fused import AbstractFusedSolver
from ._entry import flat_problem, solution_of
from ._fused import run


@eqx.filter_jit
def solve_fused_along(
    model: ODEModel,
    y0,
    params,
    y0_directions,
    params_directions,
    *,
    t0,
    t1,
    saveat: Float[Array, " T"],
    doses: Sequence[Dose],
    dose_amount_directions: Float[Array, "D n_doses"] | None,
    solver: AbstractFusedSolver,
    rtol,
    atol,
    max_steps: int,
) -> tuple[Solution, PyTree, PyTree]:
    """`(solution, ys_directions, y_final_directions)`: the fused solve of
    `dy/dt = model(t, y, params)` from `y0` (no crossing) and the derivatives of its
    saved states `ys` and of `y_final` along `D` directions, one integration for all.

    **Arguments:**

    - `y0_directions`: the initial state's derivative along each direction, the
        structure of `y0` with a leading axis of size `D`.
    - `params_directions`: the parameters' derivative along each direction, the
        structure of `params` with a leading axis of size `D`.
    - `dose_amount_directions`: the derivatives of the doses' amounts, `(D, n)` for
        the `n` dose times in the order of `doses` (each dose's times in turn), or
        `None` where the amounts do not move along the directions. Dose times are
        constants.
    - the others as in [`odeinfer.solve`][] with a fused `solver`.

    **Returns:** the `Solution` of [`odeinfer.solve`][] (`throw=False`), and the
    derivatives: `ys_directions` with the structure of `solution.ys` and a leading
    axis `D`, `y_final_directions` that of `solution.y_final` likewise. These are the
    exact derivatives of the discrete solution on its steps (the steps themselves
    depend on the directions only where `solver.sensitivity_error_control`).

    A model that closes over traced values is refused (`ValueError`): their
    directions are unknown here.
    """
    config, y0_flat, theta_parts, inputs, hoisted = flat_problem(
        model, y0, params, t0=t0, t1=t1, saveat=saveat, doses=doses, solver=solver,
        rtol=rtol, atol=atol, max_steps=max_steps,
    )  # fmt: skip
    if hoisted:
        raise ValueError(
            "`solve_fused_along`: the vector field (or its Jacobian) closes over traced "
            "values, whose derivatives along the directions are unknown; pass them "
            "in `params`."
        )
    dtype = y0_flat.dtype
    theta = jnp.concatenate(theta_parts) if theta_parts else jnp.zeros((0,), dtype)
    S0 = jax.vmap(lambda d: config.y.flatten(d, dtype))(y0_directions)
    Theta = jax.vmap(lambda d: config.params.flatten(d, dtype))(params_directions)
    n_doses = inputs["dose_times"].shape[0]
    dose_jumps = None
    if n_doses:
        amounts = (
            jnp.zeros((S0.shape[0], n_doses), dtype)
            if dose_amount_directions is None
            else jnp.asarray(dose_amount_directions, dtype)
        )
        # Dose k adds `amount_k * effect_k`: direction d moves by `d amount_k * effect_k`.
        # `_dose_inputs` sorts the doses by time (stably): the same order here.
        order = jnp.argsort(_dose_times(doses, dtype), stable=True)
        amounts = amounts[:, order]
        dose_jumps = amounts.T[:, :, None] * inputs["dose_effects"][:, None, :]
    Y0 = jnp.concatenate([y0_flat[None], S0])
    Ys, ok, stats, t_reached, found = run(config, Y0, theta, Theta, dose_jumps, inputs)
    solution = solution_of(
        Ys[:, 0], ok, stats, t_reached, found, model=model, y0=y0, params=params,
        t0=t0, t1=t1, saveat=saveat, inputs=inputs, solver=solver, rtol=rtol,
        atol=atol, crossing=None, max_events=1, throw=False,
    )  # fmt: skip
    S = jnp.moveaxis(Ys[:, 1:], 1, 0)  # (D, len(ts) + 1, n)
    unflatten = jax.vmap(config.y.unflatten)
    ys_directions = jax.vmap(unflatten)(S[:, :-1])
    return solution, ys_directions, unflatten(S[:, -1])


def _dose_times(doses: Sequence[Dose], dtype) -> Array:
    if not doses:
        return jnp.zeros((0,), dtype)
    return jnp.concatenate([jnp.ravel(d.times) for d in doses]).astype(dtype)
