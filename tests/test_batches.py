"""Experiments of the same structure as one vmapped batch (`odeinfer/_likelihood/
_batches.py`): the batched likelihood equals a hand-written loop of `oi.solve` and
`oi.first_crossing` calls over the experiments, value and gradient, to 1e-10 in
float64; ragged times, masks, doses, named overrides and event-time observations
included. Truth for the several-observations-in-one-solve path is the spring's closed
form."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import odeinfer as oi
from odeinfer._likelihood._batches import structure

DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
SPACE = oi.Parameters(
    {"k_a": oi.Positive(0.5), "k_b": oi.Positive(0.5), "sigma": oi.Positive(0.05)}
)
PARAMS = {"k_a": 0.7, "k_b": 0.4, "sigma": 0.05}
SOURCES = ("k_a", "k_b", "k_a")
HALF = oi.Crossing(lambda t, y, p: y, 1.0)


def _experiments(with_events: bool):
    """Three experiments of one structure: 4, 6 and 7 observation times, a missing
    value, different initial states, dose times and amounts, and `k` read from
    different parameters."""
    rng = np.random.default_rng(1)
    out = []
    for i, n in enumerate((4, 6, 7)):
        times = np.linspace(0.3 + 0.1 * i, 5.0, n)
        data = (2.0 + i) * np.exp(-0.6 * times) + 0.05 * rng.normal(size=n)
        mask = np.ones(n, dtype=bool)
        if i == 1:
            data[2], mask[2] = np.nan, False
        events = []
        if with_events:
            observed = (1.0, 2.7, 2.0)[i]  # k = 0.7, 0.4, 0.7: before the first dose
            events = [oi.EventTimeObservation(HALF, observed, oi.Gaussian(0.1))]
        out.append(
            oi.Experiment(
                times,
                data,
                mask=mask,
                noise=oi.Gaussian("sigma"),
                y0=2.0 + i,
                doses=oi.Dose([2.5 + 0.5 * i, 4.0], [0.5 + i, 0.25], target=()),
                overrides={"k": SOURCES[i]},
                event_times=events,
                name=f"experiment {i}",
            )
        )
    return out


def _loop(experiments, params):
    """The log-likelihood as a hand-written loop: one `oi.solve` per experiment and one
    `oi.first_crossing` per event-time observation, both with the problem's default
    fused solver and tolerances."""
    total = 0.0
    for experiment in experiments:
        p = experiment.parameters_for(params)
        y0 = experiment.initial_state(p)
        solution = oi.solve(DECAY, y0, p, t0=0.0, t1=experiment.times[-1],
                            saveat=experiment.times, doses=experiment.doses,
                            solver=oi.FusedAuto(), throw=False)  # fmt: skip
        mask = experiment.mask[:, 0]
        lp = jax.scipy.stats.norm.logpdf(experiment.data[:, 0], solution.ys, p["sigma"])
        total = total + jnp.sum(jnp.where(mask, lp, 0.0))
        for observation in experiment.event_times:
            hit = oi.first_crossing(DECAY, y0, p, observation.crossing, t0=0.0,
                                    t1=observation.horizon(0.0),
                                    doses=experiment.doses,
                                    solver=oi.FusedAuto(), throw=False)  # fmt: skip
            total = total + observation.log_prob(hit.time, hit.found, p)
    return total


def test_experiments_share_one_structure():
    experiments = _experiments(with_events=True)
    keys = {structure(e, PARAMS) for e in experiments}
    assert len(keys) == 1
    other_noise = oi.Experiment([1.0, 2.0], [1.0, 0.5], noise=oi.LogNormal(0.1),
                                y0=1.0, overrides={"k": "k_a"})  # fmt: skip
    assert structure(other_noise, PARAMS) not in keys


def test_batch_equals_loop_value_and_gradient():
    experiments = _experiments(with_events=False)
    problem = oi.Problem(DECAY, experiments, SPACE)
    value = oi.log_likelihood(problem, PARAMS)
    simulations = oi.simulate(problem, PARAMS)
    assert len(simulations) == 3 and all(bool(s.ok) for s in simulations)
    assert all(s.result == oi.RESULTS.successful for s in simulations)
    # The loop as one jitted program (eagerly, each solve compiles on its own).
    expected, grad_loop = jax.jit(jax.value_and_grad(lambda p: _loop(experiments, p)))(
        PARAMS
    )
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    grad = jax.grad(lambda p: oi.log_likelihood(problem, p))(PARAMS)
    for name in PARAMS:
        np.testing.assert_allclose(
            grad[name], grad_loop[name], rtol=1e-10, err_msg=name
        )
    # The simulations come back trimmed to each experiment's own times.
    simulations = oi.simulate(problem, PARAMS)
    for experiment, simulation in zip(experiments, simulations, strict=True):
        assert simulation.observables.shape == (experiment.times.shape[0], 1)
        np.testing.assert_array_equal(simulation.times, experiment.times)
    # Residuals: one per data entry, in the experiments' order, padding dropped.
    fixed = oi.Problem(DECAY, [oi.Experiment(e.times, e.data[:, 0], mask=e.mask[:, 0],
                       noise=oi.Gaussian(0.05), y0=e.y0, doses=e.doses,
                       overrides={"k": s}) for e, s in zip(experiments, SOURCES,
                       strict=True)], SPACE)  # fmt: skip
    r = oi.residuals(fixed, PARAMS)
    assert r.shape == (4 + 6 + 7,)
    np.testing.assert_allclose(
        -0.5 * jnp.sum(r**2),
        _loop(experiments, {**PARAMS, "sigma": 0.05})
        + 16 * np.log(np.sqrt(2 * np.pi) * 0.05),
        rtol=1e-10,
    )


def test_batch_with_event_times_equals_loop():
    experiments = _experiments(with_events=True)
    # One crossing per experiment: its event times come from the fused solver's
    # terminal crossing, batched with the observations' solves.
    problem = oi.Problem(DECAY, experiments, SPACE)
    value = oi.log_likelihood(problem, PARAMS)
    expected, grad_loop = jax.jit(jax.value_and_grad(lambda p: _loop(experiments, p)))(
        PARAMS
    )
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    grad = jax.grad(lambda p: oi.log_likelihood(problem, p))(PARAMS)
    for name in PARAMS:
        np.testing.assert_allclose(
            grad[name], grad_loop[name], rtol=1e-10, err_msg=name
        )


def test_padding_changes_nothing():
    """An experiment padded to more times (the last repeated, masked out) has the same
    likelihood and gradient, bit for bit up to rounding."""
    (experiment,) = _experiments(with_events=False)[:1]
    padded = experiment.padded(9)
    assert padded.times.shape == (9,) and not bool(padded.mask[4:].any())
    values = [
        jax.value_and_grad(
            lambda p, e=e: oi.log_likelihood(oi.Problem(DECAY, e, SPACE), p)
        )(PARAMS)
        for e in (experiment, padded)
    ]
    np.testing.assert_allclose(values[0][0], values[1][0], rtol=1e-12)
    for name in PARAMS:
        np.testing.assert_allclose(values[0][1][name], values[1][1][name], rtol=1e-12)


SPRING = oi.ODEModel(lambda t, y, p: jnp.stack([y[1], -p["k"] * y[0]]), name="spring")


def _position(t, y, p):
    return y[0]


def test_several_event_times_from_one_solve_against_closed_form():
    """Two experiments (amplitudes 1 and 1.5), each with three event-time observations
    of two crossings read from one solve: y = a cos(sqrt(k) t) reaches level L at
    arccos(L / a) / sqrt(k)."""
    up, down = oi.Crossing(_position, 0.5), oi.Crossing(_position, -0.5)
    experiments = [
        oi.Experiment(
            [0.2, 0.4, 0.6][: 2 + i],
            [0.9, 0.7, 0.4][: 2 + i],
            observables=_position,
            noise=oi.Gaussian(0.05),
            y0=jnp.array([1.0 + 0.5 * i, 0.0]),
            event_times=[
                oi.EventTimeObservation(up, 0.5 + 0.2 * i, oi.Gaussian(0.01)),
                oi.EventTimeObservation(down, 1.1, oi.Gaussian(0.02)),
                oi.EventTimeObservation(
                    up, noise=oi.Gaussian(0.05), censoring="right", end_time=0.45
                ),  # fmt: skip
            ],
            name=f"spring {i}",
        )
        for i in range(2)
    ]
    space = oi.Parameters({"k": oi.Positive(3.0)})
    k = 4.2
    problem = oi.Problem(SPRING, experiments, space, adjoint=diffrax.ForwardMode())

    def closed(k):
        total = 0.0
        for i in range(2):
            a = 1.0 + 0.5 * i
            times = jnp.array([0.2, 0.4, 0.6][: 2 + i])
            data = jnp.array([0.9, 0.7, 0.4][: 2 + i])
            total += jnp.sum(jax.scipy.stats.norm.logpdf(
                data, a * jnp.cos(jnp.sqrt(k) * times), 0.05))  # fmt: skip
            t_up = jnp.arccos(0.5 / a) / jnp.sqrt(k)
            t_down = jnp.arccos(-0.5 / a) / jnp.sqrt(k)
            total += jax.scipy.stats.norm.logpdf(0.5 + 0.2 * i, t_up, 0.01)
            total += jax.scipy.stats.norm.logpdf(1.1, t_down, 0.02)
            total += jax.scipy.stats.norm.logsf(0.45, t_up, 0.05)
        return total

    value = oi.log_likelihood(problem, {"k": k})
    assert all(bool(s.ok) for s in oi.simulate(problem, {"k": k}))
    np.testing.assert_allclose(value, closed(k), rtol=1e-7)
    grad = jax.jacfwd(lambda k_: oi.log_likelihood(problem, {"k": k_}))(k)
    np.testing.assert_allclose(grad, jax.grad(closed)(k), rtol=1e-6)
