"""The PEtab model's states as one traceable function of the estimated parameters
(on their PEtab scale): `Simulator` (experiments, preequilibrations, observables and
their derivatives). The log-likelihood and residuals built on it: `_objective.py`."""

from collections.abc import Sequence
from typing import final

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._events import Dose
from .._fast._along import solve_fused_along
from .._solve import solve
from .._solvers import AbstractFusedSolver, FusedRodas5P
from .._steady_state import steady_state
from ._experiments import one_after_another, over_experiments
from ._forward import FORWARD_MAX_PARAMETERS, forward_derivatives
from ._layout import Layout, Refs


def resolve(refs: Refs, values: Float[Array, " p"]) -> Array:
    """References → values: the PEtab parameter vector where `index >= 0`."""
    index = jnp.asarray(refs.index)
    read = values[jnp.maximum(index, 0)]
    return jnp.where(index >= 0, read, jnp.asarray(refs.constant))


def resolve_columns(
    refs: Refs, values: Float[Array, " p"], nominal: np.ndarray, estimated: np.ndarray
) -> tuple[Array, ...]:
    """`resolve(refs, values)` of `(n_exp, k)` references as `k` columns `(n_exp,)`;
    the columns that read no estimated parameter are constants (from `nominal`), not
    functions of `values`: the solves then integrate no sensitivities for them (a
    constant parameter, or an initial state computed from constants only, has a
    symbolic zero tangent)."""
    index = np.asarray(refs.index)
    traced = resolve(refs, values)
    constant = np.where(index >= 0, nominal[np.maximum(index, 0)], refs.constant)
    reads: list[bool] = [
        bool(np.isin(index[:, j], estimated).any()) for j in range(index.shape[1])
    ]
    return tuple(
        traced[:, j] if read else jnp.asarray(constant[:, j])
        for j, read in enumerate(reads)
    )


def unscale(x: Float[Array, " n"], code) -> Float[Array, " n"]:
    code = jnp.asarray(code)
    return jnp.where(code == 1, jnp.exp(x), jnp.where(code == 2, 10.0**x, x))


@final
class Simulator:
    """The model, the layout, the observables and the solver settings of one problem,
    built once by `load`; its methods are traced into the compiled likelihood."""

    def __init__(
        self,
        sbml,
        layout: Layout,
        observable_fns: dict,
        solver,
        rtol,
        atol,
        max_steps,
        directions: str = "auto",
    ):
        self.sbml = sbml
        self.layout = layout
        # observable id -> (observable fn, noise fn, tables.Observable)
        self.observable_fns = observable_fns
        self.solver = solver
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)
        # The diffrax path (events, switches) solves with `diffrax.ForwardMode()` where
        # few parameters are estimated; `load` then takes every derivative of the
        # likelihood forward (`_forward.py`). The fused solvers have their own forward
        # sensitivities.
        estimated = len(layout.estimated_index)
        self.forward = (
            not isinstance(solver, AbstractFusedSolver)
            and 0 < estimated <= FORWARD_MAX_PARAMETERS
        )
        # The fused solvers' own derivative integrates fixed directions: one per
        # state where the initial state moves, one per model parameter that moves.
        # With `"estimated"`, the states' derivative is one fused solve per
        # experiment with one direction per estimated parameter that reaches the
        # model (AMICI's), started at the initial state's derivative
        # (`states_and_jacobian`). `"auto"` takes it where some experiment starts
        # from a preequilibrated steady state (the fixed directions then carry fast
        # transients: Brannmark's `Dose_0`, at its steady state, took 154 steps with
        # them instead of 6) or where it has fewer directions (Fujita: 16 against
        # 26); where both have as many (Boehm: 6), the solver's own costs less
        # (1.87 against 1.95 ms per gradient).
        if directions not in ("auto", "estimated", "solver"):
            raise ValueError(
                f"`directions` must be 'auto', 'estimated' or 'solver'; got "
                f"{directions!r}."
            )
        self.reaching = reaching_parameters(layout)
        fixed = fixed_directions(sbml, layout)
        self.estimated_directions = (
            isinstance(solver, AbstractFusedSolver)
            and self.reaching.size > 0
            and (
                directions == "estimated"
                or directions == "auto"
                and (layout.has_preequilibration or self.reaching.size < fixed)
            )
        )
        self.states = (
            forward_derivatives(self.states_of, self.states_and_jacobian)
            if self.estimated_directions
            else self.states_of
        )

    def all_values(self, x: Float[Array, " n"]) -> Float[Array, " p"]:
        """Every PEtab parameter on the linear scale, from the estimated ones `x` on
        their parameter scale."""
        layout = self.layout
        values = jnp.asarray(layout.nominal)
        return values.at[jnp.asarray(layout.estimated_index)].set(
            unscale(x, layout.scale_code)
        )

    def _initial(
        self, params: dict, species: Sequence[Array], species_set: np.ndarray
    ) -> Array:
        sbml = self.sbml
        y = sbml.initial_state(params)
        if not self.layout.species:
            return y
        current = sbml.values(0.0, y, params)
        overrides = {
            sid: jnp.where(species_set[j], species[j], current[sid])
            for j, sid in enumerate(self.layout.species)
        }
        return sbml.initial_state(params, overrides=overrides)

    def _steady(self, y: Float[Array, " n"], params: dict):
        """The steady state reached from `y` (`throw=False`)."""
        # The steady-state integration is not differentiated: the fused Rosenbrock
        # loop compiles less than diffrax's; a diffrax solver keeps its own choice.
        fused = isinstance(self.solver, AbstractFusedSolver)
        return steady_state(
            self.sbml.model,
            y,
            params,
            solver=FusedRodas5P() if fused else self.solver,  # pyright: ignore[reportArgumentType]  (fused solvers too)
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            throw=False,
        )

    def simulate(self, values: Float[Array, " p"]):
        """States at the saved times of every experiment, `(n_exp, T + 1, n)` (the last
        slot: the steady state, for t = inf data), the model parameters per experiment
        `(n_exp, n_model_parameters)`, and whether every solve succeeded."""
        layout, sbml = self.layout, self.sbml
        ids = layout.model_ids
        main = resolve(layout.main, values)
        nominal, estimated = np.asarray(layout.nominal), layout.estimated_index
        main_columns = resolve_columns(layout.main, values, nominal, estimated)
        pre = resolve_columns(layout.pre, values, nominal, estimated)
        main_sp = resolve_columns(layout.main_species, values, nominal, estimated)
        pre_sp = resolve_columns(layout.pre_species, values, nominal, estimated)
        main_set = np.isfinite(layout.main_species.constant) | (
            layout.main_species.index >= 0
        )
        pre_set = np.isfinite(layout.pre_species.constant) | (
            layout.pre_species.index >= 0
        )
        keep = jnp.asarray(layout.from_steady_state)
        preequilibrated = jnp.asarray(
            [e.preequilibration is not None for e in layout.experiments]
        )
        fused = isinstance(self.solver, AbstractFusedSolver)
        steady_from = self._steady

        def preequilibrate(p_pre, sp_pre, set_pre):
            params_pre = dict(zip(ids, p_pre, strict=True))
            steady = steady_from(self._initial(params_pre, sp_pre, set_pre), params_pre)
            return steady.y, steady.successful

        # Forward mode (`_forward.py`) differentiates the experiments one after the
        # other anyway; their values then too, in one trace of the solve (Liu: value
        # 1.19 -> 0.63 ms, gradient trace 6.4 -> 3.8 s against `over_experiments`).
        over = one_after_another if self.forward else over_experiments
        n_states = len(sbml.state_ids)
        y_steady = jnp.zeros((len(layout.experiments), n_states))
        ok_steady = jnp.ones((len(layout.experiments),), bool)
        if layout.has_preequilibration:
            # One steady state per distinct preequilibration, not per experiment
            # (Brannmark: one for eight experiments).
            first, which = _distinct_preequilibrations(layout)
            y_steady, ok_steady = over(
                preequilibrate,
                jax.tree_util.tree_map(lambda a: a[first], (pre, pre_sp, pre_set)),
            )
            y_steady, ok_steady = y_steady[which], ok_steady[which]

        def one(p_main, sp_main, set_main, y_pre, ok_pre, keep_e, pre_e, ts, t1):
            params = dict(zip(ids, p_main, strict=True))
            y0 = self._initial(params, sp_main, set_main)
            ok = jnp.array(True)
            if layout.has_preequilibration:
                y0 = jnp.where(keep_e, y_pre, y0)
                ok = ok & (ok_pre | ~pre_e)
            kwargs = {}
            if fused:
                # `load` chose the fused path only where no switch time reads an
                # estimated parameter: their derivatives are zero.
                kwargs["doses"] = tuple(
                    Dose(jax.lax.stop_gradient(d.times), d.amounts, d.target)
                    for d in sbml.switch_doses(y0, params)
                )
            elif sbml.crossings:
                kwargs["events"] = sbml.crossings
                kwargs["max_events"] = 4 * len(sbml.crossings) + 16
            if self.forward:
                kwargs["adjoint"] = diffrax.ForwardMode()
            sol = solve(
                sbml.model,
                y0,
                params,
                t0=0.0,
                t1=t1,
                saveat=ts,
                solver=self.solver,
                rtol=self.rtol,
                atol=self.atol,
                max_steps=self.max_steps,
                throw=False,
                **kwargs,
            )
            ok = ok & sol.successful
            ys = sol.ys
            if layout.has_steady_state_data:
                steady = steady_from(sol.y_final, params)
                ok = ok & steady.successful
                last = steady.y
            else:
                last = sol.y_final
            return jnp.concatenate([ys, last[None]]), ok  # pyright: ignore[reportArgumentType, reportOptionalSubscript]

        inputs = (
            main_columns,
            main_sp,
            main_set,
            y_steady,
            ok_steady,
            keep,
            preequilibrated,
            jnp.asarray(layout.times),
            jnp.asarray(layout.t1),
        )
        ys, ok = over(one, inputs)
        return ys, main, ok

    def states_of(self, x: Float[Array, " n"]) -> tuple[Array, Bool[Array, " n_exp"]]:
        """`simulate`'s states `(n_exp, T + 1, n)` and `ok` per experiment, from the
        estimated parameters `x`."""
        ys, _, ok = self.simulate(self.all_values(x))
        return ys, ok

    def states_and_jacobian(
        self, x: Float[Array, " n"]
    ) -> tuple[Array, Float[Array, "n_exp T1 n_states n"], Bool[Array, " n_exp"]]:
        """`(ys, J, ok)`: `states_of(x)` and its Jacobian `dys/dx` (last axis), from
        one fused solve per experiment with one sensitivity direction per estimated
        parameter that reaches the model (`self.reaching`), started at the initial
        state's derivative: a preequilibrated steady state's by the implicit function
        theorem (`steady_state`), a condition's species override's, an initial
        assignment's. The experiments one after the other (`lax.map`: a vmapped
        solve takes the longest experiment's steps in each).

        Computed from the primal `x` alone, never from a tangent: `forward_derivatives`
        returns `J · dx`, so `jax.jacfwd` integrates once for all its tangents and
        `jax.grad` transposes `J · dx` (a solve whose directions were the tangents
        would be neither: under `jax.vmap` each tangent would integrate the state
        again, and with sensitivity error control its steps would depend on them)."""
        layout, sbml = self.layout, self.sbml
        ids = layout.model_ids
        values = self.all_values(x)
        # The directions are the estimated parameters on the linear scale, the
        # columns scaled to `x`'s scale afterwards: so AMICI does it
        # (`ReturnData::apply_chain_rule_factor_to_simulation_results`), and so the
        # sensitivity error test weighs what CVODES's does. Brannmark with
        # sensitivity error control, on `x`'s (log10) scale: 1,083 steps, gradient
        # error 1.8e-4; on the linear scale 2,297 steps, 2.0e-6 (AMICI: 1.8e-5).
        position = np.asarray(layout.estimated_index)[self.reaching]
        value_directions = jnp.eye(values.shape[0], dtype=x.dtype)[position]
        # d values / dx (`all_values` is elementwise in `x`).
        _, slope = jax.jvp(self.all_values, (x,), (jnp.ones_like(x),))
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
        if layout.has_preequilibration:
            first, which = _distinct_preequilibrations(layout)
            pre, d_pre = along(lambda v: resolve(layout.pre, v)[first])
            pre_sp, d_pre_sp = along(lambda v: resolve(layout.pre_species, v)[first])
            pre_set = (
                np.isfinite(layout.pre_species.constant)
                | (layout.pre_species.index >= 0)
            )[first]

            def preequilibrate(args):
                p, dp, sp, dsp, set_pre = args

                def steady(p_, sp_):
                    params = dict(zip(ids, p_, strict=True))
                    y0 = self._initial(params, sp_, set_pre)
                    result = self._steady(y0, params)
                    return result.y, result.successful

                y, dy, ok = jax.vmap(
                    lambda a, b: jax.jvp(steady, (p, sp), (a, b), has_aux=True),
                    out_axes=(None, 0, None),
                )(dp, dsp)
                return y, dy, ok

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
                y0 = self._initial(params, sp_, set_main)
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
            params = dict(zip(ids, p, strict=True))
            solution, d_ys, d_final = solve_fused_along(
                sbml.model,
                y0,
                params,
                dy0,
                dict(zip(ids, dp.T, strict=True)),
                t0=jnp.asarray(0.0),
                t1=t1,
                saveat=ts,
                doses=tuple(
                    Dose(jax.lax.stop_gradient(d.times), d.amounts, d.target)
                    for d in doses
                ),
                dose_amount_directions=(
                    jnp.concatenate(
                        [jnp.reshape(a, (directions, -1)) for a in d_amounts], axis=1
                    )
                    if doses
                    else None
                ),
                solver=self.solver,
                rtol=jnp.asarray(self.rtol),
                atol=jnp.asarray(self.atol),
                max_steps=self.max_steps,
            )
            ok = solution.successful
            if layout.has_preequilibration:
                ok = ok & (ok_pre | ~pre_e)
            last, d_last = solution.y_final, d_final
            if layout.has_steady_state_data:

                def steady(y_, p_):
                    result = self._steady(y_, dict(zip(ids, p_, strict=True)))
                    return result.y, result.successful

                last, d_last, ok_last = jax.vmap(
                    lambda a, b: jax.jvp(steady, (last, p), (a, b), has_aux=True),
                    out_axes=(None, 0, None),
                )(d_final, dp)
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
        jacobian = jacobian.at[..., jnp.asarray(self.reaching, int)].set(
            jnp.moveaxis(d_ys, 1, -1) * column_scale
        )
        return ys, jacobian, ok

    def predictions(self, x: Float[Array, " n"]):
        """Per observable: `(simulation, sigma)` at its measurement rows; and `ok`."""
        values = self.all_values(x)
        ys, ok = self.states(x)
        model_params = resolve(self.layout.main, values)
        layout = self.layout
        extra = dict(
            zip(
                layout.extra_ids,
                values[jnp.asarray(layout.extra_index, int)],
                strict=True,
            )
        )
        out = {}
        for oid, rows in layout.observables.items():
            h, noise, spec = self.observable_fns[oid]
            y = ys[jnp.asarray(rows.experiment), jnp.asarray(rows.slot)]
            p = model_params[jnp.asarray(rows.experiment)]

            def row(t, y_r, p_r, o_r, n_r, h=h, noise=noise, oid=oid, spec=spec):
                params = dict(zip(layout.model_ids, p_r, strict=True))
                params.update(extra)
                params.update(zip(spec.observable_placeholders, o_r, strict=True))
                value = h(t, y_r, params)
                params.update(zip(spec.noise_placeholders, n_r, strict=True))
                params[oid] = value  # a noise formula may read the observable
                return value, noise(t, y_r, params)

            out[oid] = jax.vmap(row)(
                jnp.asarray(rows.time),
                y,
                p,
                resolve(rows.observable_refs, values),
                resolve(rows.noise_refs, values),
            )
        return out, ok


def reaching_parameters(layout: Layout) -> np.ndarray:
    """The positions in `x` of the estimated parameters that reach the model: read by
    some experiment as a model parameter or an initial species value (main or
    preequilibration condition). The others (observable, noise and scaling
    parameters) cannot move the states."""
    read = np.concatenate(
        [np.ravel(refs.index)
         for refs in (layout.main, layout.pre, layout.main_species, layout.pre_species)]
    )  # fmt: skip
    return np.flatnonzero(np.isin(np.asarray(layout.estimated_index), read))


def fixed_directions(sbml, layout: Layout) -> int:
    """How many directions the fused solvers' own derivative integrates (at most):
    the model parameters that read an estimated parameter, and every state where the
    initial state moves (a preequilibration, a species override or an initial
    assignment that reads an estimated parameter)."""
    estimated = np.asarray(layout.estimated_index)
    live = [
        j
        for j in range(len(layout.model_ids))
        if np.isin(layout.main.index[:, j], estimated).any()
        or np.isin(layout.pre.index[:, j], estimated).any()
    ]
    species = (
        np.isin(layout.main_species.index, estimated).any()
        or np.isin(layout.pre_species.index, estimated).any()
    )

    def initial(*p):
        return sbml.initial_state(dict(zip(layout.model_ids, p, strict=True)))

    # The inputs the output depends on: backwards from the outputs (the traced
    # initial state also computes rates it drops, which read every parameter).
    jaxpr = jax.make_jaxpr(initial)(*np.ones(len(layout.model_ids))).jaxpr
    needed = {id(v) for v in jaxpr.outvars}
    for eqn in reversed(jaxpr.eqns):
        if any(id(v) in needed for v in eqn.outvars):
            needed |= {id(v) for v in eqn.invars}
    reads = {j for j, v in enumerate(jaxpr.invars) if id(v) in needed}
    moves = layout.has_preequilibration or species or bool(reads & set(live))
    return len(live) + (len(sbml.state_ids) if moves else 0)


def _distinct_preequilibrations(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """`(first, which)`: the first experiment of each distinct preequilibration (the
    same references of its parameters and species) and, per experiment, the position
    of its own in `first` (experiments without one share the first: they ignore it)."""
    keys, first, which = {}, [], []
    for e, experiment in enumerate(layout.experiments):
        key = b"".join(
            np.ascontiguousarray(a[e]).tobytes()
            for a in (layout.pre.index, layout.pre.constant,
                      layout.pre_species.index, layout.pre_species.constant)
        ) if experiment.preequilibration is not None else None  # fmt: skip
        if key is not None and key not in keys:
            keys[key] = len(first)
            first.append(e)
        which.append(keys.get(key, 0))
    return np.asarray(first, int), np.asarray(which, int)
