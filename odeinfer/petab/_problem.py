"""`load`: a PEtab v1 problem → `PEtabProblem`, a compiled log-likelihood on PEtab's
parameter scale with its `oi.Parameters`, priors and simulation table."""

import os
import time
from collections.abc import Mapping
from typing import final

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, ArrayLike, Float
from petab.v1 import C
from petab.v1.math import sympify_petab

from .._jit import jit_unless_traced
from .._parameters import Bounded, Parameters
from .._residual_likelihood import AbstractResidualLikelihood
from .._results import SolveError
from .._solvers import AbstractFusedSolver, FusedRodas5P, Rodas5P
from ..sbml import SBMLError, UnsupportedSBMLError
from ..sbml import load as load_sbml
from ._errors import PEtabError
from ._forward import forward_derivatives
from ._groups import group
from ._layout import Layout, build, scale
from ._likelihood import Simulator
from ._objective import (
    fisher_from_noise_residuals,
    log_density,
    log_likelihood_fn,
    noise_residual_rows,
    residuals_fn,
)
from ._priors import log_prior_fn, numpyro_priors
from ._tables import Tables, read


@final
class PEtabProblem(AbstractResidualLikelihood):
    """A PEtab problem imported by [`odeinfer.petab.load`][].

    Parameters are the PEtab problem's **estimated** parameters, keyed by
    `parameterId`, **on their PEtab scale** (`log10(k)` for a log10-scaled `k`), as
    in pyPESTO; the others stay at their nominal values.

    **Attributes:**

    - `parameters`: an [`odeinfer.Parameters`][] of [`odeinfer.Bounded`][] specs on the
        PEtab scale (bounds from the table, starting at the nominal values): pass it
        with `log_likelihood` to `oi.fit`, `oi.multistart`, `oi.profile`.
    - `nominal`: the nominal values of the estimated parameters (PEtab scale).
    - `sbml`: the imported [`odeinfer.sbml.SBMLModel`][].
    - `measurements`: the measurement table (a `pandas.DataFrame`).
    - `experiments`: the `(preequilibrationConditionId, simulationConditionId)` pairs,
        in the order they are solved (one `jax.vmap`).
    - `import_seconds`: the time `load` took.
    - `fisher_from_residuals`: `False` when `residuals` carries noise residuals
        (some σ is estimated), so that `JᵀJ` is not the Fisher information.

    It is an [`odeinfer.AbstractResidualLikelihood`][]: pass the problem itself to
    `oi.fit` / `oi.multistart` and, when every noise model is normal, they fit it by
    bounded trust-region least squares ([`odeinfer.TrustRegionReflective`][]) on the
    box of the PEtab bounds; with Laplace noise they maximise `log_likelihood` with
    BFGS.

    !!! Example

        ```python
        import odeinfer as oi
        import odeinfer.petab

        problem = odeinfer.petab.load("Boehm_JProteomeRes2014.yaml")
        problem.log_likelihood(problem.nominal)      # -138.222 (AMICI: -138.222)
        fits = oi.multistart(problem, n_starts=20, key=0)
        problem.simulation_table(fits.best.params)    # PEtab simulation table
        ```
    """

    def __init__(self, tables: Tables, sbml, simulator: Simulator, seconds: float):
        self._tables = tables
        self.sbml = sbml
        self._simulator = simulator
        layout: Layout = simulator.layout
        self._layout = layout
        self.measurements = tables.measurements
        self.experiments = tuple(tuple(e) for e in layout.experiments)
        self.import_seconds = seconds
        nominal = scale(layout.nominal[layout.estimated_index], layout.scale_code)
        self.nominal = {
            p: float(v) for p, v in zip(layout.estimated, nominal, strict=True)
        }
        specs = {}
        for name, lo, hi, x in zip(
            layout.estimated, layout.lower, layout.upper, nominal, strict=True
        ):
            margin = 1e-9 * (hi - lo)
            specs[name] = Bounded(
                lo, hi, init=float(np.clip(x, lo + margin, hi - margin))
            )
        self.parameters = Parameters(specs)
        # Where the simulator solves in forward mode, every derivative is taken
        # forward, outside the jit: `jax.grad` then traces the solves once, under the
        # JVP (`_forward.py`).
        derivatives = forward_derivatives if simulator.forward else _as_is
        self._llh = derivatives(jit_unless_traced(log_likelihood_fn(simulator)))
        self._no_residuals = _why_no_residuals(tables)
        sigma_residuals = _estimated_noise(tables, layout)
        self.fisher_from_residuals = not sigma_residuals
        self._residuals = derivatives(
            jit_unless_traced(residuals_fn(simulator, sigma_residuals))
        )
        self._noise_rows = noise_residual_rows(simulator, sigma_residuals)
        self._prior = log_prior_fn(tables.parameters, layout)
        self._predict = jax.jit(simulator.predictions)

    # --- parameter vectors ------------------------------------------------------------
    def vector(self, params: Mapping[str, ArrayLike]) -> Float[Array, " n"]:
        """The estimated parameters `params` (PEtab scale) as one vector, in table
        order; a missing or unknown name raises `KeyError` naming it."""
        names = self._layout.estimated
        if not isinstance(params, Mapping):
            raise TypeError(
                "PEtabProblem: `params` must be a dict {parameterId: value on the "
                f"PEtab scale}}; got {type(params).__name__}."
            )
        unknown = sorted(set(params) - set(names))
        if unknown:
            fixed = [p for p in unknown if p in self._layout.parameter_ids]
            raise KeyError(
                f"PEtabProblem: {unknown} are not estimated parameters"
                + (f" ({fixed} are fixed in the parameter table)" if fixed else "")
                + f"; the estimated ones are {list(names)}."
            )
        missing = [n for n in names if n not in params]
        if missing:
            raise KeyError(
                f"PEtabProblem: `params` lacks {missing}; start from "
                "`problem.nominal` and change what you need."
            )
        return jnp.stack([jnp.asarray(params[n], dtype=float) for n in names])

    # --- objective ----------------------------------------------------------------------
    def log_likelihood(self, params: Mapping[str, ArrayLike]) -> Float[Array, ""]:
        """The log-likelihood (natural log, normalisation constants and the Jacobian
        terms of log/log10 observables included: AMICI's and pyPESTO's scale, where
        pyPESTO's `fval` is its negative). `-inf` when a solve fails or a prediction is
        not finite (e.g. a log-transformed observable at or below 0). Differentiable
        (`jax.grad`) and jittable; the first call compiles."""
        value, ok = self._llh(self.vector(params))
        return jnp.where(ok, value, -jnp.inf)

    def residuals(self, params: Mapping[str, ArrayLike]) -> Float[Array, " m"]:
        """The standardised residuals `r` with `log_likelihood = constant − ½‖r‖²`
        (all noise normal; otherwise `PEtabError`). One entry per measurement row,
        grouped by observable in the observable table's order: `(data − simulation)/σ`
        on the observable's transformed scale (lin/log/log10; the log transforms'
        Jacobian terms are constants). When some σ depends on an estimated parameter
        (a noise parameter or a formula of states), one more entry per row of those
        observables, `sqrt(log(2πσ²) + 50)` (Data2Dynamics' augmentation), so the
        identity still holds. NaN where a solve fails. Jittable; `jax.jacfwd` gives
        the Jacobian through the forward-sensitivity solver."""
        self.check_residuals()
        r, ok = self._residuals(self.vector(params))
        return jnp.where(ok, r, jnp.nan)

    @property
    def has_fisher_information(self) -> bool:
        """`True`: with or without estimated σ (see `fisher_information`)."""
        return True

    def fisher_information(
        self, r: Float[Array, " m"], jacobian: Float[Array, "m n"]
    ) -> Float[Array, "n n"]:
        """The Fisher information from `residuals` and their Jacobian (with respect
        to any parameter vector), first derivatives only: `JᵀJ` when no σ is
        estimated; otherwise `Σ ∇μ∇μᵀ/σ² + 2 ∇σ∇σᵀ/σ²` per measurement row, read
        from the data and noise residuals (what AMICI and pyPESTO call the FIM).
        `oi.fit` and `oi.multistart` report it by default."""
        if self.fisher_from_residuals:
            return jacobian.T @ jacobian
        return fisher_from_noise_residuals(r, jacobian, self._noise_rows)

    def check_residuals(self) -> None:
        """Raise `PEtabError` if the problem has no least-squares form (Laplace
        noise), saying which observables."""
        if self._no_residuals:
            raise PEtabError(self._no_residuals)

    def log_prior(self, params: Mapping[str, ArrayLike]) -> Float[Array, ""]:
        """The sum of the parameter table's objective priors (0 without priors); see
        the PEtab page of the docs for the conventions."""
        return self._prior(self.vector(params))

    def log_posterior(self, params: Mapping[str, ArrayLike]) -> Float[Array, ""]:
        """`log_likelihood + log_prior`: the negative of pyPESTO's objective."""
        return self.log_likelihood(params) + self.log_prior(params)

    def priors(self) -> dict:
        """numpyro distributions on the PEtab scale for `oi.sample`: the objective prior
        where the table gives one on the parameter scale, otherwise uniform between
        the bounds (pyPESTO's convention for sampling)."""
        return numpyro_priors(self._tables.parameters, self._layout)

    # --- simulations ----------------------------------------------------------------------
    def simulation_table(
        self, params: Mapping[str, ArrayLike] | None = None
    ) -> pd.DataFrame:
        """The PEtab simulation table at `params` (default: nominal): the measurement
        table with `measurement` replaced by `simulation`, plus the noise `sigma` and
        the row's log-likelihood term `llh`."""
        x = self.vector(self.nominal if params is None else params)
        predictions, ok = self._predict(x)
        frame = self.measurements.copy()
        simulation = np.full(len(frame), np.nan)
        sigma = np.full(len(frame), np.nan)
        llh = np.full(len(frame), np.nan)
        for g, (sim, sd) in zip(self._simulator.groups, predictions, strict=True):
            simulation[g.rows.rows] = np.asarray(sim)
            sigma[g.rows.rows] = np.asarray(sd)
            llh[g.rows.rows] = np.asarray(
                log_density(
                    g.observable.transformation,
                    g.observable.distribution,
                    jnp.asarray(g.rows.measurement),
                    sim,
                    sd,
                )
            )
        if not bool(jnp.all(ok)):
            failed = [
                e
                for e, good in zip(self.experiments, np.asarray(ok), strict=True)
                if not good
            ]
            raise SolveError(
                f"PEtabProblem.simulation_table: the solve failed for the experiments "
                f"{failed} (preequilibration, condition) at these parameters."
            )
        frame = frame.rename(columns={C.MEASUREMENT: C.SIMULATION})
        frame[C.SIMULATION] = simulation
        frame["sigma"] = sigma
        frame["llh"] = llh
        return frame

    def to_linear(self, params: Mapping[str, ArrayLike]) -> dict[str, float]:
        """Estimated parameters on the PEtab scale → linear values."""
        x = np.asarray(self.vector(params))
        code = self._layout.scale_code
        lin = np.where(code == 1, np.exp(x), np.where(code == 2, 10.0**x, x))
        return dict(zip(self._layout.estimated, map(float, lin), strict=True))

    def __repr__(self) -> str:
        return (
            f"PEtabProblem({os.path.basename(self._tables.yaml)!r}: "
            f"{len(self.sbml.state_ids)} states, {len(self.experiments)} experiments, "
            f"{len(self.measurements)} measurements, {len(self.nominal)} estimated "
            "parameters)"
        )


def _as_is(fn):
    return fn


def _why_no_residuals(tables: Tables) -> str:
    """Empty when every noise model is normal; otherwise why there are no residuals."""
    laplace = [
        o for o, obs in tables.observables.items() if obs.distribution != "normal"
    ]
    if not laplace:
        return ""
    return (
        f"{tables.files['observables']}: the observables {laplace} have Laplace noise, "
        "whose log-likelihood is not a sum of squares: no residuals. Fit "
        "`problem.log_likelihood` with `parameters=problem.parameters` (BFGS; "
        "`oi.fit(problem)` does this by itself)."
    )


def _estimated_noise(tables: Tables, layout: Layout) -> tuple[str, ...]:
    """The observables whose σ can move with the estimated parameters: a noise
    placeholder refers to an estimated parameter in some row, or the noise formula
    names anything but its placeholders and parameters that are not estimated (a
    state, the observable, an estimated parameter)."""
    estimated_positions = set(np.asarray(layout.estimated_index).tolist())
    fixed_ids = set(layout.parameter_ids) - set(layout.estimated)
    out = []
    for oid, observable in tables.observables.items():
        if oid not in layout.observables:  # no measurements
            continue
        refs = np.asarray(layout.observables[oid].noise_refs.index).ravel()
        symbols = {str(s) for s in sympify_petab(observable.noise_formula).free_symbols}
        loose = symbols - set(observable.noise_placeholders) - fixed_ids
        if loose or estimated_positions & set(refs.tolist()):
            out.append(oid)
    return tuple(out)


def load(
    path: "str | os.PathLike",
    *,
    solver=None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 10_000,
) -> PEtabProblem:
    """Imports a PEtab v1 problem (its yaml file) as an
    [`odeinfer.petab.PEtabProblem`][].

    **Arguments:**

    - `path`: the problem's yaml file.
    - `solver`: `None` (default) is [`odeinfer.FusedRodas5P`][] (forward
        sensitivities fused into the Rosenbrock solve; piecewise switches in time
        become doses at their switch times), or [`odeinfer.Rodas5P`][] with the model's
        crossings when it has SBML events or switches that depend on the state. Any
        solver `oi.solve` takes may be given.
    - `rtol`, `atol`: the solver tolerances (AMICI's benchmark settings by default).
    - `max_steps`: the step budget of each solve (AMICI's default, 10,000: a start of
        a multistart that wanders into a region where the model is much stiffer fails
        fast instead of costing 10× more).

    Everything is checked here, before any compilation: malformed tables, ids
    referenced but not defined, unsupported SBML or PEtab features and parameters
    outside their bounds raise [`odeinfer.petab.PEtabError`][] naming the file, the row
    or id, and the fix.
    """
    start = time.perf_counter()
    tables = read(path)
    try:
        sbml = load_sbml(tables.sbml_file)
    except UnsupportedSBMLError as error:
        raise PEtabError(
            f"{tables.yaml}: the SBML model is not supported: {error}"
        ) from None
    except SBMLError as error:
        raise PEtabError(f"{tables.yaml}: the SBML model is invalid: {error}") from None
    layout = build(tables, sbml)
    # Switch times that move with estimated parameters need their derivatives: the
    # crossings of a diffrax solver give them, the fused solvers' doses do not.
    moving = sbml.switch_time_parameters & set(layout.estimated_model_ids)
    if solver is None:
        solver = Rodas5P() if sbml.needs_crossings or moving else FusedRodas5P()
    elif isinstance(solver, AbstractFusedSolver) and (sbml.needs_crossings or moving):
        raise PEtabError(
            f"{tables.yaml}: `solver` {type(solver).__name__} is a fused solver, but the "
            + (
                "model has SBML events or state-dependent switches"
                if sbml.needs_crossings
                else f"switch times depend on the estimated parameters {sorted(moving)}"
            )
            + "; use a diffrax solver such as oi.Rodas5P() (the default here)."
        )
    extra = tuple(p for p in layout.extra_ids)

    def translate(observable):
        try:
            formula = sbml.expression(
                observable.formula,
                extra_parameters=extra + observable.observable_placeholders,
            )
            noise = sbml.expression(
                observable.noise_formula,
                extra_parameters=extra
                + observable.observable_placeholders
                + observable.noise_placeholders
                + (observable.id,),
            )
        except SBMLError as error:
            where = f"{tables.files['observables']}, observable {observable.id!r}"
            raise PEtabError(f"{where}: {error}") from None
        return formula, noise

    # Every observable, measured or not, so that each formula's error names its own
    # observable; the groups then take their representatives' (`_groups.py`).
    translated = {o: translate(o) for o in tables.observables.values()}
    simulator = Simulator(
        sbml=sbml,
        layout=layout,
        groups=group(tables.observables, layout.observables, translated.__getitem__),
        solver=solver,
        rtol=float(rtol),
        atol=float(atol),
        max_steps=int(max_steps),
    )
    return PEtabProblem(tables, sbml, simulator, time.perf_counter() - start)
