"""The states of a PEtab problem and their Jacobian in the estimated parameters, from
one fused solve per experiment with one sensitivity direction per estimated parameter
that reaches the model (AMICI's directions), started at the initial state's
derivative."""

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._events import Dose
from .._fast._along import solve_fused_along
from .._steady_state import steady_state_tangents
from ._values import distinct_preequilibrations, resolve

if TYPE_CHECKING:
    from ._likelihood import Simulator


def states_and_jacobian(
    simulator: "Simulator", x: Float[Array, " n"]
) -> tuple[Array, Float[Array, "n_exp T1 n_states n"], Bool[Array, " n_exp"]]:
    """`(ys, J, ok)`: `states_of(x)` and its Jacobian `dys/dx` (last axis), from
    one fused solve per experiment with one sensitivity direction per estimated
    parameter that reaches the model (`simulator.reaching`), started at the initial
    state's derivative: a preequilibrated steady state's by the implicit function
    theorem (`steady_state_tangents`), a condition's species override's, an initial
    assignment's. The experiments one after the other (`lax.map`: a vmapped
    solve takes the longest experiment's steps in each).

    Computed from the primal `x` alone, never from a tangent: `forward_derivatives`
    returns `J · dx`, so `jax.jacfwd` integrates once for all its tangents and
    `jax.grad` transposes `J · dx` (a solve whose directions were the tangents
    would be neither: under `jax.vmap` each tangent would integrate the state
    again, and with sensitivity error control its steps would depend on them)."""
    layout, sbml = simulator.layout, simulator.sbml
    ids = layout.model_ids
    values = simulator.all_values(x)
    # The directions are the estimated parameters on the linear scale, the
    # columns scaled to `x`'s scale afterwards: so AMICI does it
    # (`ReturnData::apply_chain_rule_factor_to_simulation_results`), and so the
    # sensitivity error test weighs what CVODES's does. Brannmark with
    # sensitivity error control, on `x`'s (log10) scale: 1,083 steps, gradient
    # error 1.8e-4; on the linear scale 2,297 steps, 2.0e-6 (AMICI: 1.8e-5).
    position = np.asarray(layout.estimated_index)[simulator.reaching]
    value_directions = jnp.eye(values.shape[0], dtype=x.dtype)[position]
    # d values / dx (`all_values` is elementwise in `x`).
    _, slope = jax.jvp(simulator.all_values, (x,), (jnp.ones_like(x),))
    column_scale = slope[position]

    def along(fn, *args):
        """`fn(values, *args)` and its derivative along each direction."""
        return jax.vmap(
            lambda d: jax.jvp(lambda v: fn(v, *args), (values,), (d,)),
            out_axes=(None, 0),
        )(value_directions)

    main, d_main = along(lambda v: resolve(layout.main, v))
    main_sp, d_main_sp = along(lambda v: resolve(layout.main_species, v))
    main_set = np.isfinite(layout.main_species.constant) | (
        layout.main_species.index >= 0
    )
    n_exp, n_states = len(layout.experiments), len(sbml.state_ids)
    directions = value_directions.shape[0]
    y_steady = jnp.zeros((n_exp, n_states))
    dy_steady = jnp.zeros((n_exp, directions, n_states))
    ok_steady = jnp.ones((n_exp,), bool)

    def steady_along(y0, dy0, p, dp):
        """The steady state reached from `y0` with parameters `p`, and its derivatives
        along the directions `(dy0, dp)` (`steady_state_tangents`)."""
        result = simulator.steady(y0, p)
        dy = steady_state_tangents(simulator.array_model, result, p, dp, dy0)
        return result.y, dy, result.successful

    if layout.has_preequilibration:
        first, which = distinct_preequilibrations(layout)
        pre, d_pre = along(lambda v: resolve(layout.pre, v)[first])
        pre_sp, d_pre_sp = along(lambda v: resolve(layout.pre_species, v)[first])
        pre_set = (
            np.isfinite(layout.pre_species.constant) | (layout.pre_species.index >= 0)
        )[first]

        def preequilibrate(args):
            p, dp, sp, dsp, set_pre = args

            def start(p_, sp_):
                return simulator.initial_state(
                    dict(zip(ids, p_, strict=True)), sp_, set_pre
                )

            y0, dy0 = jax.vmap(
                lambda a, b: jax.jvp(start, (p, sp), (a, b)), out_axes=(None, 0)
            )(dp, dsp)
            return steady_along(y0, dy0, p, dp)

        y_steady, dy_steady, ok_steady = jax.lax.map(
            preequilibrate,
            (pre, jnp.moveaxis(d_pre, 0, 1), pre_sp, jnp.moveaxis(d_pre_sp, 0, 1),
             jnp.asarray(pre_set)),
        )  # fmt: skip
        y_steady, dy_steady, ok_steady = (
            y_steady[which],
            dy_steady[which],
            ok_steady[which],
        )

    def one(args):
        p, dp, sp, dsp, set_main, y_pre, dy_pre, ok_pre, keep, pre_e, ts, t1 = args

        def start(p_, sp_):
            params = dict(zip(ids, p_, strict=True))
            y0 = simulator.initial_state(params, sp_, set_main)
            if layout.has_preequilibration:
                y0 = jnp.where(keep, y_pre, y0)
            doses = sbml.switch_doses(y0, params)
            return (y0, tuple(d.amounts for d in doses)), doses

        (y0, _), (dy0, d_amounts), doses = jax.vmap(
            lambda a, b: jax.jvp(start, (p, sp), (a, b), has_aux=True),
            out_axes=(None, 0, None),
        )(dp, dsp)
        if layout.has_preequilibration:
            dy0 = jnp.where(keep, dy_pre, dy0)
        solution, d_ys, d_final = solve_fused_along(
            simulator.array_model,
            y0,
            p,
            dy0,
            dp,
            t0=jnp.asarray(0.0),
            t1=t1,
            saveat=ts,
            doses=tuple(
                Dose(jax.lax.stop_gradient(d.times), d.amounts, d.target) for d in doses
            ),
            dose_amount_directions=(
                jnp.concatenate(
                    [jnp.reshape(a, (directions, -1)) for a in d_amounts], axis=1
                )
                if doses
                else None
            ),
            solver=simulator.solver,
            rtol=jnp.asarray(simulator.rtol),
            atol=jnp.asarray(simulator.atol),
            max_steps=simulator.max_steps,
        )
        ok = solution.successful
        if layout.has_preequilibration:
            ok = ok & (ok_pre | ~pre_e)
        last, d_last = solution.y_final, d_final
        if layout.has_steady_state_data:
            last, d_last, ok_last = steady_along(last, d_final, p, dp)
            ok = ok & ok_last
        assert solution.ys is not None  # saved at `ts`
        ys = jnp.concatenate([solution.ys, last[None]])
        d_ys = jnp.concatenate([d_ys, d_last[:, None]], axis=1)
        return ys, d_ys, ok

    inputs = (
        main,
        jnp.moveaxis(d_main, 0, 1),
        main_sp,
        jnp.moveaxis(d_main_sp, 0, 1),
        jnp.asarray(main_set),
        y_steady,
        dy_steady,
        ok_steady,
        jnp.asarray(layout.from_steady_state),
        jnp.asarray([e.preequilibration is not None for e in layout.experiments]),
        jnp.asarray(layout.times),
        jnp.asarray(layout.t1),
    )
    ys, d_ys, ok = jax.lax.map(one, inputs)
    # (n_exp, D, T + 1, n) -> (n_exp, T + 1, n, len(x)), zero for the estimated
    # parameters that reach no state.
    jacobian = jnp.zeros(ys.shape + x.shape, ys.dtype)
    jacobian = jacobian.at[..., jnp.asarray(simulator.reaching, int)].set(
        jnp.moveaxis(d_ys, 1, -1) * column_scale
    )
    return ys, jacobian, ok
