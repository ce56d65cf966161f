"""`log_likelihood` and `residuals`: all experiments' data given the parameters, the
experiments of one structure evaluated as one vmapped batch."""

import warnings
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp

from .._jit import jit_unless_traced
from .._observations import Experiment
from ._batches import map_experiments
from ._problem import Problem
from ._simulate import Simulation, check_problem, simulate_experiment


def experiment_log_likelihood(
    experiment: Experiment, simulation: Simulation, p
) -> jnp.ndarray:
    """One experiment's log-likelihood given its predictions (masked entries, padded
    ones included, never enter it)."""
    total = jnp.zeros(())
    for j, noise in enumerate(experiment.noise):
        mask = experiment.mask[:, j]
        # Masked predictions may be anything (even NaN); keep them out of the density.
        prediction = jnp.where(
            mask, simulation.observables[:, j], experiment.data[:, j]
        )
        prediction = jnp.where(
            jnp.isfinite(prediction), prediction, experiment.data[:, j]
        )
        lp = noise.log_prob(experiment.data[:, j], prediction, p)
        bad = mask & jnp.invert(jnp.isfinite(simulation.observables[:, j]))
        total = (
            total
            + jnp.sum(jnp.where(mask, lp, 0.0))
            + jnp.where(jnp.any(bad), -jnp.inf, 0.0)
        )
    for k, observation in enumerate(experiment.event_times):
        total = total + observation.log_prob(
            simulation.event_times[k], simulation.event_found[k], p
        )
    return total


@jit_unless_traced
def _log_likelihood(problem, params):
    def one(experiment, p):
        simulation = simulate_experiment(problem, experiment, p)
        return experiment_log_likelihood(experiment, simulation, p), simulation.ok

    values, oks = zip(*map_experiments(one, problem.experiments, params), strict=True)
    # Outside a parameter's declared support (reachable only with traced values; concrete
    # ones raise in `log_likelihood`) the likelihood is -inf and no experiment is ok.
    ok = jnp.stack(oks) & problem.parameters.inside(params)
    value = jnp.sum(jnp.stack(values))
    good = jnp.all(ok) & jnp.invert(jnp.isnan(value))
    value = jnp.where(good, value, -jnp.inf)
    return value, ok


_WITH_STATUS = (
    "`with_status=` is deprecated (it changes the return type) and will be removed: "
    "the log-likelihood is -inf where a solve fails; for the reason, "
    "`odeinfer.simulate(problem, params)` gives each experiment's `Simulation.result` "
    "(an `odeinfer.RESULTS` code) and `Simulation.ok`."
)


def _warn_with_status(with_status) -> bool:
    if with_status is None:
        return False
    warnings.warn(_WITH_STATUS, DeprecationWarning, stacklevel=3)
    return bool(with_status)


def log_likelihood_ok(problem: Problem, params: Mapping):
    """`(value, ok)`: the log-likelihood and whether each experiment's solves
    succeeded (for the estimators' failure reports)."""
    params = check_problem(problem, params)
    problem.parameters.check_inside(params)
    return _log_likelihood(problem, params)


def log_likelihood(problem: Problem, params: Mapping, with_status: bool | None = None):
    """The log-likelihood of all experiments' data: a pure function of `params`.

    **Arguments:**

    - `problem`: an [`odeinfer.Problem`][].
    - `params`: a dict of constrained values of the free parameters (fixed ones filled
        in from `problem.parameters`).
    - `with_status`: deprecated; also return whether each experiment's solves
        succeeded. Use [`odeinfer.simulate`][]: each `Simulation` has a `result` code.

    **Returns:**

    The scalar log-likelihood, `-inf` (never NaN, never an exception) where a solve
    fails or a prediction is outside a noise model's domain ([`odeinfer.simulate`][]
    gives each experiment's `result` code, the reason); with the deprecated
    `with_status=True`, `(value, ok)` with `ok` a boolean array with one entry per
    experiment.

    A parameter value outside its declared support (`k = -1` for `oi.Positive`, NaN,
    outside a `oi.Bounded` interval) is a `ValueError` naming the parameter when the
    value is concrete; under `jit`/`vmap`/`grad` it gives `-inf`.

    Experiments of the same structure (same observables, noise models, event-time
    observations, dose and override layout; any data, times, initial states, override
    values, doses) are solved as one `jax.vmap`ped batch, so the compile time barely
    grows with their number (`benchmarks/compile_experiments.py`: 1.1–1.25× from 2 to
    16 experiments); a single experiment is not vmapped, and its gradient compiles in
    0.6–0.8× the time of a batch's (1.60× from 1 to 16 experiments).

    Works under `jax.jit`, `jax.vmap`, `jax.grad` (default adjoint) and, with
    `Problem(adjoint=diffrax.ForwardMode())`, `jax.jacfwd(jax.jacfwd(...))` Hessians
    (`diffrax.DirectAdjoint()` for `jax.hessian`). Unknown or missing parameter names
    raise `ValueError` before any work.
    """
    with_status = _warn_with_status(with_status)
    value, ok = log_likelihood_ok(problem, params)
    return (value, ok) if with_status else value


def _experiment_residuals(experiment: Experiment, simulation: Simulation, p):
    """Per data column the standardized residuals (zero where masked), and per
    event-time observation one."""
    columns = []
    for j, noise in enumerate(experiment.noise):
        mask = experiment.mask[:, j]
        prediction = jnp.where(
            mask, simulation.observables[:, j], experiment.data[:, j]
        )
        r = noise.standardized(experiment.data[:, j], prediction, p)
        columns.append(jnp.where(mask, r, 0.0))
    events = []
    for k, observation in enumerate(experiment.event_times):
        if observation.censoring is not None or observation.time is None:
            raise TypeError(
                "odeinfer.residuals: censored event-time observations have no "
                "residual; use odeinfer.log_likelihood."
            )
        found = simulation.event_found[k]
        predicted = jnp.where(found, simulation.event_times[k], observation.time)
        r = observation.noise.standardized(observation.time, predicted, p)
        events.append(jnp.where(found, r, jnp.inf))
    return columns, events, simulation.ok


@eqx.filter_jit
def _residuals(problem, params):
    def one(experiment, p):
        simulation = simulate_experiment(problem, experiment, p)
        return _experiment_residuals(experiment, simulation, p)

    out = map_experiments(one, problem.experiments, params)
    parts, oks = [], []
    for experiment, (columns, events, ok) in zip(problem.experiments, out, strict=True):
        n_times = experiment.times.shape[0]
        parts.extend(r[:n_times] for r in columns)  # padded entries dropped
        parts.extend(jnp.reshape(r, (1,)) for r in events)
        oks.append(ok)
    r = jnp.concatenate(parts) if parts else jnp.zeros((0,))
    ok = jnp.all(jnp.stack(oks)) & problem.parameters.inside(params)
    return jnp.where(ok & jnp.isfinite(r), r, jnp.inf), ok


def residuals(problem: Problem, params: Mapping, with_status: bool | None = None):
    """Standardized residuals `(data - prediction) / sigma`, one per data entry (zero
    at masked entries) and per exact event-time observation, such that
    `log_likelihood = -sum(r**2)/2 + constant`. For Levenberg–Marquardt/Gauss–Newton.

    Defined for Gaussian noise with a fixed additive `sigma` and for log-normal noise
    with fixed `sigma` (residuals on the log scale); other noise models raise
    `TypeError`. Entries are `inf` where a solve failed or (traced) a parameter is
    outside its support (the deprecated `with_status=True` also returns the overall
    ok flag; use [`odeinfer.simulate`][] for the solves' result codes); a concrete
    value outside its support is a `ValueError`, as in `log_likelihood`.
    """
    with_status = _warn_with_status(with_status)
    params = check_problem(problem, params)
    problem.parameters.check_inside(params)
    r, ok = _residuals(problem, params)
    return (r, ok) if with_status else r
