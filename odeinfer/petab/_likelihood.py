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
from .._model import ODEModel
from .._solve import solve
from .._solvers import AbstractFusedSolver, FusedRodas5P
from .._steady_state import steady_state
from ._directions import states_and_jacobian
from ._experiments import one_after_another, over_experiments
from ._forward import FORWARD_MAX_PARAMETERS, forward_derivatives
from ._groups import ObservableGroup
from ._layout import Layout
from ._values import (
    distinct_preequilibrations,
    resolve,
    resolve_columns,
    unscale,
)


@final
class Simulator:
    """The model, the layout, the observables and the solver settings of one problem,
    built once by `load`; its methods are traced into the compiled likelihood."""

    def __init__(
        self,
        sbml,
        layout: Layout,
        groups: tuple[ObservableGroup, ...],
        solver,
        rtol,
        atol,
        max_steps,
        directions: str = "auto",
    ):
        self.sbml = sbml
        self.layout = layout
        self.groups = groups
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
        # The vector field with the model parameters as one array (`layout.model_ids`
        # order) for the fused solves and the steady states: their loops then carry one
        # operand, not one scalar per parameter (Raimundez_PCB2020, 79 parameters:
        # 250 of the gradient's 1,950 XLA kernels were those scalars' slices and
        # copies).
        ids = layout.model_ids
        field = sbml.model

        def vector_field(t, y, p):
            return field(t, y, dict(zip(ids, _unstack(p), strict=True)))

        self.array_model = ODEModel(vector_field, name=field.name)
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

    def initial_state(
        self, params: dict, species: Sequence[Array], species_set: np.ndarray
    ) -> Array:
        """The initial state of an experiment with model parameters `params`: the
        SBML initial values and assignments, then the condition's species overrides
        (`species[j]` where `species_set[j]`)."""
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

    def steady(self, y: Float[Array, " n"], p: Float[Array, " n_model_parameters"]):
        """The steady state of `array_model` with the model parameters `p` reached
        from `y` (`throw=False`)."""
        # The steady-state integration is not differentiated: the fused Rosenbrock
        # loop compiles less than diffrax's; a diffrax solver keeps its own choice.
        fused = isinstance(self.solver, AbstractFusedSolver)
        return steady_state(
            self.array_model,
            y,
            p,
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
        steady_from = self.steady

        def preequilibrate(p_pre, sp_pre, set_pre):
            params_pre = dict(zip(ids, p_pre, strict=True))
            steady = steady_from(
                self.initial_state(params_pre, sp_pre, set_pre), jnp.stack(p_pre)
            )
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
            first, which = distinct_preequilibrations(layout)
            y_steady, ok_steady = over(
                preequilibrate,
                jax.tree_util.tree_map(lambda a: a[first], (pre, pre_sp, pre_set)),
            )
            y_steady, ok_steady = y_steady[which], ok_steady[which]

        def one(p_main, sp_main, set_main, y_pre, ok_pre, keep_e, pre_e, ts, t1):
            params = dict(zip(ids, p_main, strict=True))
            y0 = self.initial_state(params, sp_main, set_main)
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
                steady = steady_from(sol.y_final, jnp.stack(p_main))
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
        """`(ys, J, ok)`: `states_of(x)` and its Jacobian `dys/dx`, from one fused
        solve per experiment with one direction per estimated parameter that reaches
        the model (`_directions.states_and_jacobian`)."""
        return states_and_jacobian(self, x)

    def predictions(self, x: Float[Array, " n"]):
        """Per observable group (`self.groups`): `(simulation, sigma)` at its
        measurement rows; and `ok`."""
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
        out = []
        for g in self.groups:
            rows, spec = g.rows, g.observable
            y = ys[jnp.asarray(rows.experiment), jnp.asarray(rows.slot)]
            p = model_params[jnp.asarray(rows.experiment)]

            def row(t, y_r, p_r, o_r, n_r, h=g.formula, noise=g.noise, spec=spec):
                # `unstack`, not iteration over the array: one operation instead
                # of an indexing per parameter (Raimundez_PCB2020, 79 observables of
                # 80 parameters: gradient trace 6.0 -> 3.8 s).
                params = dict(zip(layout.model_ids, _unstack(p_r), strict=True))
                params.update(extra)
                params.update(
                    zip(spec.observable_placeholders, _unstack(o_r), strict=True)
                )
                value = h(t, y_r, params)
                params.update(zip(spec.noise_placeholders, _unstack(n_r), strict=True))
                params[spec.id] = value  # a noise formula may read the observable
                return value, noise(t, y_r, params)

            out.append(
                jax.vmap(row)(
                    jnp.asarray(rows.time),
                    y,
                    p,
                    resolve(rows.observable_refs, values),
                    resolve(rows.noise_refs, values),
                )
            )
        return tuple(out), ok


def _unstack(a: Array) -> list[Array]:
    return list(jnp.unstack(a)) if a.shape[0] else []


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
