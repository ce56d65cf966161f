"""The PEtab log-likelihood as one traceable function of the estimated parameters (on
their PEtab scale): every experiment solved in one `jax.vmap`, every observable
evaluated in one `jax.vmap` over its measurement rows.

Conventions are AMICI's and pyPESTO's, so values compare directly: natural log,
normalisation constants included, and for log/log10 observables the density of the
measurement itself (the Jacobian term −log(y) or −log(y·ln 10))."""

import math
from collections.abc import Callable
from typing import final

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._events import Dose
from .._solve import solve
from .._solvers import AbstractFusedSolver, FusedRodas5P
from .._steady_state import steady_state
from ._layout import Layout, Refs


def resolve(refs: Refs, values: Float[Array, " p"]) -> Array:
    """References → values: the PEtab parameter vector where `index >= 0`."""
    index = jnp.asarray(refs.index)
    read = values[jnp.maximum(index, 0)]
    return jnp.where(index >= 0, read, jnp.asarray(refs.constant))


def unscale(x: Float[Array, " n"], code) -> Float[Array, " n"]:
    code = jnp.asarray(code)
    return jnp.where(code == 1, jnp.exp(x), jnp.where(code == 2, 10.0**x, x))


@final
class Simulator:
    """The model, the layout, the observables and the solver settings of one problem,
    built once by `load`; its methods are traced into the compiled likelihood."""

    def __init__(
        self, sbml, layout: Layout, observable_fns: dict, solver, rtol, atol, max_steps
    ):
        self.sbml = sbml
        self.layout = layout
        # observable id -> (observable fn, noise fn, tables.Observable)
        self.observable_fns = observable_fns
        self.solver = solver
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)

    def all_values(self, x: Float[Array, " n"]) -> Float[Array, " p"]:
        """Every PEtab parameter on the linear scale, from the estimated ones `x` on
        their parameter scale."""
        layout = self.layout
        values = jnp.asarray(layout.nominal)
        return values.at[jnp.asarray(layout.estimated_index)].set(
            unscale(x, layout.scale_code)
        )

    def _initial(self, params: dict, species: Array, species_set: Array) -> Array:
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

    def simulate(self, values: Float[Array, " p"]):
        """States at the saved times of every experiment, `(n_exp, T + 1, n)` (the last
        slot: the steady state, for t = inf data), the model parameters per experiment
        `(n_exp, n_model_parameters)`, and whether every solve succeeded."""
        layout, sbml = self.layout, self.sbml
        ids = layout.model_ids
        main = resolve(layout.main, values)
        pre = resolve(layout.pre, values)
        main_sp = resolve(layout.main_species, values)
        pre_sp = resolve(layout.pre_species, values)
        main_set = jnp.isfinite(main_sp)
        pre_set = jnp.isfinite(pre_sp)
        keep = jnp.asarray(layout.from_steady_state)
        preequilibrated = jnp.asarray(
            [e.preequilibration is not None for e in layout.experiments]
        )
        fused = isinstance(self.solver, AbstractFusedSolver)
        # The steady-state integration is not differentiated: the fused Rosenbrock
        # loop compiles less than diffrax's; a diffrax solver keeps its own choice.
        integrator = FusedRodas5P() if fused else self.solver

        def steady_from(y, params):
            return steady_state(
                sbml.model,
                y,
                params,
                solver=integrator,  # pyright: ignore[reportArgumentType]  (fused solvers too)
                rtol=self.rtol,
                atol=self.atol,
                max_steps=self.max_steps,
                throw=False,
            )

        def one(
            p_main, p_pre, sp_main, set_main, sp_pre, set_pre, keep_e, pre_e, ts, t1
        ):
            params = dict(zip(ids, p_main, strict=True))
            y0 = self._initial(params, sp_main, set_main)
            ok = jnp.array(True)
            if layout.has_preequilibration:
                params_pre = dict(zip(ids, p_pre, strict=True))
                y_pre = self._initial(params_pre, sp_pre, set_pre)
                steady = steady_from(y_pre, params_pre)
                y0 = jnp.where(keep_e, steady.y, y0)
                ok = ok & (steady.successful | ~pre_e)
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

        ys, ok = jax.vmap(one)(
            main,
            pre,
            main_sp,
            main_set,
            pre_sp,
            pre_set,
            keep,
            preequilibrated,
            jnp.asarray(layout.times),
            jnp.asarray(layout.t1),
        )
        return ys, main, ok

    def predictions(self, x: Float[Array, " n"]):
        """Per observable: `(simulation, sigma)` at its measurement rows; and `ok`."""
        values = self.all_values(x)
        ys, model_params, ok = self.simulate(values)
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


def log_density(
    transformation: str, distribution: str, data, simulation, sigma
) -> Array:
    """The log density of each measurement (natural log, normalised)."""
    if transformation == "log":
        data_t, sim_t, jacobian = jnp.log(data), jnp.log(simulation), -jnp.log(data)
    elif transformation == "log10":
        data_t, sim_t = jnp.log10(data), jnp.log10(simulation)
        jacobian = -jnp.log(data * math.log(10.0))
    else:
        data_t, sim_t, jacobian = data, simulation, 0.0
    r = (data_t - sim_t) / sigma
    if distribution == "laplace":
        return -jnp.log(2.0 * sigma) - jnp.abs(r) + jacobian
    return -0.5 * jnp.log(2.0 * math.pi * sigma**2) - 0.5 * r**2 + jacobian


def log_likelihood_fn(simulator: Simulator) -> Callable:
    """`fn(x) -> (llh, ok)` for the estimated parameters `x` on their scale."""

    def fn(x: Float[Array, " n"]) -> tuple[Float[Array, ""], Bool[Array, ""]]:
        predictions, ok = simulator.predictions(x)
        total = jnp.zeros(())
        for oid, (simulation, sigma) in predictions.items():
            observable = simulator.observable_fns[oid][2]
            rows = simulator.layout.observables[oid]
            terms = log_density(
                observable.transformation,
                observable.distribution,
                jnp.asarray(rows.measurement),
                simulation,
                sigma,
            )
            total = total + jnp.sum(terms)
        ok = jnp.all(ok) & jnp.isfinite(total)
        return total, ok

    return fn


# Data2Dynamics' constant for the noise residuals (`ar.config.add_c`): with it,
# log(2πσ²) + C > 0 for every σ above exp(-C/2)/√(2π) ≈ 5.5e-12.
SIGMA_RESIDUAL_CONSTANT = 50.0


def residual_blocks(transformation: str, data, simulation, sigma) -> Array:
    """The standardised residual of each measurement on the transformed scale."""
    if transformation == "log":
        return (jnp.log(data) - jnp.log(simulation)) / sigma
    if transformation == "log10":
        return (jnp.log10(data) - jnp.log10(simulation)) / sigma
    return (data - simulation) / sigma


def residuals_fn(simulator: Simulator, sigma_residuals: tuple[str, ...]) -> Callable:
    """`fn(x) -> (r, ok)`: the standardised residuals of every measurement (observables
    in table order), followed by one noise residual `sqrt(log(2πσ²) + C)` per row of
    each observable in `sigma_residuals` (those whose σ moves with the estimated
    parameters: Data2Dynamics' augmentation, so that ½‖r‖² = −log L + constant with
    estimated σ too). Normal noise only; `ok` is `False` where a solve failed, a residual
    is not finite or a σ is so small that its noise residual does not exist."""

    def fn(x: Float[Array, " n"]) -> tuple[Float[Array, " m"], Bool[Array, ""]]:
        predictions, ok = simulator.predictions(x)
        data_parts, noise_parts = [], []
        for oid, (simulation, sigma) in predictions.items():
            observable = simulator.observable_fns[oid][2]
            rows = simulator.layout.observables[oid]
            data = jnp.asarray(rows.measurement)
            data_parts.append(
                residual_blocks(observable.transformation, data, simulation, sigma)
            )
            if oid in sigma_residuals:
                square = jnp.log(2.0 * math.pi * sigma**2) + SIGMA_RESIDUAL_CONSTANT
                ok = ok & jnp.all(square > 0)
                noise_parts.append(jnp.sqrt(jnp.maximum(square, 0.0)))
        r = jnp.concatenate(data_parts + noise_parts)
        return r, jnp.all(ok) & jnp.all(jnp.isfinite(r))

    return fn
