"""`Problem`: a model, its experiments and its parameters, checked once; and the
solver settings its solves use."""

import contextlib
from collections.abc import Mapping, Sequence

import diffrax
import equinox as eqx
import jax
import numpy as np

from .. import _validation as validate
from .._model import ODEModel
from .._observations import Experiment
from .._parameters import Parameters
from .._solvers import AbstractFusedSolver, FusedAuto, FusedRodas5P, Rodas5P

_DEFAULT_SOLVER = diffrax.Tsit5()
_DEFAULT_FUSED = FusedAuto()
_DEFAULT_ADJOINT = diffrax.RecursiveCheckpointAdjoint()


class Problem(eqx.Module):
    """A model, its experiments and its parameters: what [`odeinfer.log_likelihood`][],
    `fit` and `sample` take.

    **Arguments:**

    - `model`: an [`odeinfer.ODEModel`][].
    - `experiments`: one [`odeinfer.Experiment`][] or a list; they share parameters
        (experiment-specific values through each experiment's `overrides`).
        Experiments of the same structure are solved as one `jax.vmap`ped batch.
    - `parameters`: an [`odeinfer.Parameters`][] (or a dict of specs).
    - `solver`: `None` (default) is [`odeinfer.FusedAuto`][] for the observations
        (doses included): the fused forward-sensitivity loop, Dormand–Prince switching
        to Rodas5P when the problem turns stiff, so an optimiser or sampler that wanders
        into a stiff region keeps going, and a gradient costs a few solves instead of
        10–40 (see `benchmarks/gradient_speed.py`). Event-time observations that read
        one crossing take it from the same fused solver (a terminal first crossing,
        in the same vmapped batch); several crossings in one experiment are recorded
        by one [`odeinfer.solve`][] with `diffrax.Tsit5()`. A fused solver
        ([`odeinfer.FusedDopri5`][], [`odeinfer.FusedRodas5P`][]) is used in the same
        way, with its diffrax counterpart (`Tsit5`, [`odeinfer.Rodas5P`][]) for
        several crossings. A diffrax solver (e.g. [`odeinfer.Rodas5P`][] for stiff
        models) makes every solve use [`odeinfer.solve`][] with it.
    - `rtol`, `atol`, `max_steps`, `max_step_size`: passed to the solves (setting
        `max_step_size` makes the observations use the diffrax path too).
    - `adjoint`: how derivatives of the diffrax-path solves are taken (the fused
        solvers' forward sensitivities serve every mode):
        - `diffrax.RecursiveCheckpointAdjoint()` (default): reverse mode, for
          `jax.grad` (gradient-based samplers, BFGS).
        - `diffrax.ForwardMode()`: `jax.jacfwd` (Levenberg–Marquardt Jacobians) and
          Hessians as `jax.jacfwd(jax.jacfwd(f))`; cheapest for a few parameters.
        - `diffrax.DirectAdjoint()`: every mode, `jax.hessian` included (costlier).

    Bad input is reported here, before any work: unknown parameter names in noise scales
    or overrides, observables whose output does not match the data columns, zero or
    negative fixed noise scales.
    """

    model: ODEModel
    experiments: tuple[Experiment, ...]
    parameters: Parameters
    solver: diffrax.AbstractSolver | AbstractFusedSolver | None
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    max_step_size: float | None = eqx.field(static=True)
    adjoint: diffrax.AbstractAdjoint

    def __init__(
        self,
        model: ODEModel,
        experiments: Experiment | Sequence[Experiment],
        parameters: Parameters | Mapping,
        *,
        solver: diffrax.AbstractSolver | AbstractFusedSolver | None = None,
        rtol: float = 1e-8,
        atol: float = 1e-10,
        max_steps: int = 4096,
        max_step_size: float | None = None,
        adjoint: diffrax.AbstractAdjoint = _DEFAULT_ADJOINT,
    ):
        if not isinstance(model, ODEModel):
            raise TypeError(f"Problem: `model` must be an oi.ODEModel; got {model!r}.")
        if isinstance(experiments, Experiment):
            experiments = (experiments,)
        experiments = tuple(experiments)
        if not experiments or not all(isinstance(e, Experiment) for e in experiments):
            raise TypeError(
                "Problem: `experiments` must be one oi.Experiment or a list."
            )
        if not isinstance(parameters, Parameters):
            parameters = Parameters(parameters)
        if not (rtol > 0 and atol > 0):
            raise ValueError(
                f"Problem: need rtol > 0 and atol > 0; got {rtol}, {atol}."
            )
        self.model = model
        self.experiments = experiments
        self.parameters = parameters
        self.solver = solver
        self.rtol, self.atol = float(rtol), float(atol)
        self.max_steps = int(max_steps)
        self.max_step_size = max_step_size
        self.adjoint = adjoint
        self._check()

    def _check(self):
        known = set(self.parameters.specs)
        fixed = self.parameters.fixed
        params = self.parameters.initial()
        for e in self.experiments:
            unknown = sorted(e.parameter_names() - known)
            if unknown:
                raise ValueError(
                    f"Problem: experiment `{e.name}` refers to parameter(s) {unknown} (noise "
                    f"scales or overrides) that are not in `parameters` {sorted(known)}."
                )
            for noise in list(e.noise) + [o.noise for o in e.event_times]:
                for name in noise.parameter_names():
                    if name in fixed and not np.all(np.asarray(fixed[name]) > 0):
                        raise ValueError(
                            f"Problem: noise scale `{name}` is fixed at {fixed[name]}; it "
                            "must be positive."
                        )
            p = e.parameters_for(params)
            where = f"Problem: experiment `{e.name}`:"
            label = f"(experiment '{e.name}')"
            if e.y0_fn is not None:
                y_shape = validate.trace_user_function(
                    f"y0 {label}", e.initial_state, p
                )
            else:
                y_shape = jax.eval_shape(e.initial_state, p)
            with _unknown_names(f"{where} the model or its observables", known):
                validate.check_user_functions(self.model, (), y_shape, p, e.t0)
                if e.times.shape[0]:
                    _probe_observables(e, p, where)
                    _trace_observables(e, y_shape, p, where, label)


def _trace_observables(e: Experiment, y_shape, p, where: str, label: str) -> None:
    """Trace the observables once on abstract values: numpy on traced values, and an
    output that does not match the data columns, named."""
    try:
        validate.trace_user_function(
            f"observable {', '.join(e.observable_names)} {label}",
            e.observe,
            e.times[0],
            y_shape,
            p,
        )
    except validate.NumpyInTracedCodeError:
        raise
    except TypeError as error:
        if "reshape" in str(error) or "size" in str(error):
            raise ValueError(
                f"{where} the observables {list(e.observable_names)} do not produce "
                f"{e.n_observables} value(s) per time to match the data columns. "
                f"({error})"
            ) from None
        raise


@contextlib.contextmanager
def _unknown_names(what: str, known):
    """A bare `KeyError` from a user function (a name that does not exist) as a
    message naming the known parameters; the tracing helper's own `KeyError`s already
    say this and pass through."""
    try:
        yield
    except KeyError as error:
        if type(error) is not KeyError or len(error.args) != 1:
            raise
        raise ValueError(
            f"{what} looks up {error.args[0]!r}, which is not defined: the parameters "
            f"are {sorted(known)}. Add it to `parameters` (oi.Fixed(value) for a "
            "constant), or fix the name (for a dict state, the state's keys)."
        ) from None


def _probe_observables(experiment: Experiment, params, where: str) -> None:
    """Evaluate each observable once on numpy copies of the initial state. JAX clamps an
    out-of-range index (`y[5]` of a 2-vector reads `y[1]`) without a word; numpy raises
    `IndexError`, reported here. Any other failure is left to the traced check."""
    try:
        y0 = jax.tree_util.tree_map(np.asarray, experiment.initial_state(params))
        p = jax.tree_util.tree_map(np.asarray, params)
    except Exception:  # e.g. y0(params) that needs traced input: nothing to probe
        return
    t = float(experiment.t0)
    for h in experiment.observables:
        name = getattr(h, "__name__", "h")
        try:
            h(t, y0, p)
        except IndexError as error:
            shapes = jax.tree_util.tree_map(np.shape, y0)
            raise ValueError(
                f"{where} observable `{name}` indexes the state out of range ({error}); "
                f"the state y0 has shape {shapes}. JAX would silently clamp the index and "
                "observe the wrong state: fix the index."
            ) from None
        except Exception:  # left to the traced check below
            pass


def solve_options(problem: Problem) -> dict:
    """Options of the diffrax-path solves (several crossings' event times;
    observations and event times when no fused solver applies)."""
    solver = problem.solver
    if solver is None:
        solver = _DEFAULT_SOLVER
    elif isinstance(solver, AbstractFusedSolver):
        solver = Rodas5P() if isinstance(solver, FusedRodas5P) else _DEFAULT_SOLVER
    return dict(
        solver=solver,
        rtol=problem.rtol,
        atol=problem.atol,
        max_steps=problem.max_steps,
        max_step_size=problem.max_step_size,
        adjoint=problem.adjoint,
        throw=False,
    )


def observation_solver(problem: Problem) -> AbstractFusedSolver | None:
    """The fused solver for the observations, or `None` for the diffrax path."""
    if problem.max_step_size is not None:
        return None
    if problem.solver is None:
        return _DEFAULT_FUSED
    if isinstance(problem.solver, AbstractFusedSolver):
        return problem.solver
    return None
