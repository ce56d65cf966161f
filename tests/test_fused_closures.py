"""Fused solvers (`FusedDopri5`, `FusedRodas5P`, `FusedAuto`) on functions that close
over traced values (`odeinfer/_fast/_entry.py`, `closures_as_parameters`): a vector
field, a user Jacobian or a crossing function built inside `jax.grad`, `jax.jacfwd`,
`jax.vmap` or `jax.jit` of the user's function. Truth: closed forms (the logistic's
threshold time `ln 4 / k` and its derivative, exponential decay) and the same
problems with the value passed in `params`."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi

LN4 = np.log(4.0)
REACH = oi.Crossing(lambda t, y, p: y, 0.8, direction="rising")
# FusedAuto in the slow tier (7-17 s of compilation each); the closure hoisting is the
# same code for every fused solver, and Problem's default FusedAuto is tested below.
DEFAULT_FUSED = [oi.FusedDopri5(), pytest.param(oi.FusedAuto(), marks=pytest.mark.slow)]
DEFAULT_IDS = ["FusedDopri5", "FusedAuto"]


def _threshold(solver, counter=None):
    """The time the logistic `dy/dt = k y (1 - y)`, `y0 = 1/2`, reaches 0.8, with `k`
    closed over by the vector field: `ln 4 / k`."""

    def threshold_time(k):
        def field(t, y, p):
            if counter is not None:
                counter.append(1)
            return k * y * (1 - y)

        model = oi.ODEModel(field)
        return oi.first_crossing(
            model, 0.5, {}, REACH, t0=0.0, t1=1000.0, solver=solver
        ).time

    return threshold_time


@pytest.mark.parametrize("solver", DEFAULT_FUSED, ids=DEFAULT_IDS)
def test_logistic_threshold_closed_over_rate(solver):
    """t* = 100 ln 4 at k = 0.01, dt*/dk = -ln 4 / k^2 (grad and jacfwd)."""
    f = _threshold(solver)
    k = 0.01
    np.testing.assert_allclose(f(k), LN4 / k, rtol=1e-7)
    np.testing.assert_allclose(jax.grad(f)(k), -LN4 / k**2, rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(f)(k), -LN4 / k**2, rtol=1e-6)


@pytest.mark.parametrize("solver", DEFAULT_FUSED, ids=DEFAULT_IDS)
def test_logistic_threshold_under_vmap_and_jit(solver):
    """`jax.vmap` over the closed-over rate (BatchTracer), `jax.jit` of the outer
    function (DynamicJaxprTracer) and both around `jax.grad`; a jitted gradient called
    again at another rate is not traced again."""
    ks = jnp.array([0.01, 0.02, 0.05])
    f = _threshold(solver)
    np.testing.assert_allclose(jax.vmap(f)(ks), LN4 / ks, rtol=1e-7)
    np.testing.assert_allclose(jax.vmap(jax.grad(f))(ks), -LN4 / ks**2, rtol=1e-6)
    np.testing.assert_allclose(
        jax.grad(lambda k: jax.vmap(f)(k).sum())(ks), -LN4 / ks**2, rtol=1e-6
    )
    traces = []
    f = _threshold(solver, traces)
    np.testing.assert_allclose(jax.jit(f)(0.02), LN4 / 0.02, rtol=1e-7)
    gradient = jax.jit(jax.grad(f))
    np.testing.assert_allclose(gradient(0.01), -LN4 / 0.01**2, rtol=1e-6)
    count = len(traces)
    np.testing.assert_allclose(gradient(0.05), -LN4 / 0.05**2, rtol=1e-6)
    assert len(traces) == count


def test_no_closure_reuses_the_compiled_program():
    """Without closed-over tracers the static configuration is the model's own: a
    second gradient of the same model does not trace the vector field again."""
    traces = []

    def field(t, y, p):
        traces.append(1)
        return p["k"] * y * (1 - y)

    model = oi.ODEModel(field)

    def threshold_time(k):
        return oi.first_crossing(
            model, 0.5, {"k": k}, REACH, t0=0.0, t1=1000.0, solver=oi.FusedDopri5()
        ).time

    np.testing.assert_allclose(jax.grad(threshold_time)(0.01), -LN4 / 0.01**2, 1e-6)
    count = len(traces)
    np.testing.assert_allclose(jax.grad(threshold_time)(0.02), -LN4 / 0.02**2, 1e-6)
    assert len(traces) == count


@pytest.mark.parametrize(
    "solver",
    [oi.FusedDopri5(),
     pytest.param(oi.FusedRodas5P(), marks=pytest.mark.slow),
     pytest.param(oi.FusedAuto(), marks=pytest.mark.slow)],
    ids=["FusedDopri5", "FusedRodas5P", "FusedAuto"],
)  # fmt: skip
def test_decay_saved_states_with_closed_over_rate(solver):
    """y(t) = y0 exp(-k t) at the save times, dy/dk = -t y(t) (jacfwd, jacrev, jitted
    jacfwd), with `k` closed over, also under `jax.vmap`."""
    ts = jnp.array([0.5, 1.0, 2.0, 4.0])
    y0 = jnp.array([2.0])

    def states(k):
        model = oi.ODEModel(lambda t, y, p: -k * y)
        return oi.solve(model, y0, {}, t0=0.0, t1=5.0, saveat=ts, solver=solver).ys[
            :, 0
        ]

    k = 0.7
    exact = 2.0 * jnp.exp(-k * ts)
    np.testing.assert_allclose(states(k), exact, rtol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(states)(k), -ts * exact, rtol=1e-6)
    np.testing.assert_allclose(jax.jacrev(states)(k), -ts * exact, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(states))(k), -ts * exact, rtol=1e-6)
    ks = jnp.array([0.3, 0.7])
    np.testing.assert_allclose(
        jax.vmap(jax.jacfwd(states))(ks),
        -ts * 2.0 * jnp.exp(-ks[:, None] * ts),
        rtol=1e-6,
    )


def test_closed_over_integer_index_under_vmap():
    """An integer tracer (a vmapped index into a table of rates) closed over by the
    vector field: the same states as with each rate given directly."""
    rates = jnp.array([0.3, 0.7, 1.1])
    ts = jnp.array([1.0, 2.0])

    def states(i):
        model = oi.ODEModel(lambda t, y, p: -rates[i] * y)
        return oi.solve(
            model, 1.0, {}, t0=0.0, t1=2.0, saveat=ts, solver=oi.FusedDopri5()
        ).ys

    got = jax.vmap(states)(jnp.arange(3))
    np.testing.assert_allclose(got, jnp.exp(-rates[:, None] * ts), rtol=1e-7)


def test_closed_over_crossing_level_function_and_jacobian():
    """A crossing function closing over `k` (`y k / c = 0.8`, the logistic reaches
    `y* = 0.8 c / k`: t* = ln(y*/(1 - y*)) / k) and a user Jacobian closing over `k`
    (FusedRodas5P: t* = ln 4 / k)."""
    c = 0.01

    def crossing_time(k, solver):
        model = oi.ODEModel(lambda t, y, p: k * y * (1 - y))
        reach = oi.Crossing(lambda t, y, p: y * k / c, 0.8, direction="rising")
        return oi.first_crossing(
            model, 0.5, {}, reach, t0=0.0, t1=1000.0, solver=solver
        ).time

    def exact(k):
        y_star = 0.8 * c / k
        return jnp.log(y_star / (1 - y_star)) / k

    k = 0.012
    for solver in (oi.FusedDopri5(), oi.FusedRodas5P()):
        np.testing.assert_allclose(crossing_time(k, solver), exact(k), rtol=1e-6)
        np.testing.assert_allclose(
            jax.grad(crossing_time)(k, solver), jax.grad(exact)(k), rtol=1e-6
        )

    def with_jacobian(k):
        model = oi.ODEModel(
            lambda t, y, p: k * y * (1 - y),
            jacobian=lambda t, y, p: jnp.reshape(k * (1 - 2 * y), (1, 1)),
        )
        return oi.first_crossing(
            model, 0.5, {}, REACH, t0=0.0, t1=1000.0, solver=oi.FusedRodas5P()
        ).time

    np.testing.assert_allclose(with_jacobian(k), LN4 / k, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(with_jacobian)(k), -LN4 / k**2, rtol=1e-6)


def test_problem_log_likelihood_closure_equals_parameter():
    """`oi.Problem` (default solver `FusedAuto`) whose model closes over the traced
    rate: the log-likelihood and its gradient equal those with the rate a parameter,
    and the closed form of the Gaussian log-likelihood of `2 exp(-k t)`; also under
    `jax.jit`."""
    times = np.linspace(0.5, 4.0, 6)
    data = 2.0 * np.exp(-0.6 * times) + 0.01 * np.cos(7 * times)
    sigma = 0.05
    experiment = oi.Experiment(times, data, noise=oi.Gaussian(sigma), y0=2.0)

    space = oi.Parameters({"scale": oi.Fixed(1.0)})

    def closed_over(k):
        model = oi.ODEModel(lambda t, y, p: -k * p["scale"] * y)
        return oi.log_likelihood(oi.Problem(model, [experiment], space), {})

    as_parameter = oi.Problem(
        oi.ODEModel(lambda t, y, p: -p["k"] * y),
        [experiment],
        oi.Parameters({"k": oi.Positive(0.5)}),
    )

    def given(k):
        return oi.log_likelihood(as_parameter, {"k": k})

    def exact(k):
        residual = data - 2.0 * jnp.exp(-k * times)
        return jnp.sum(
            -0.5 * (residual / sigma) ** 2 - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi)
        )

    k = 0.6
    np.testing.assert_allclose(closed_over(k), given(k), rtol=1e-9)
    np.testing.assert_allclose(closed_over(k), exact(k), rtol=1e-6)
    np.testing.assert_allclose(
        jax.grad(closed_over)(k), jax.grad(given)(k), rtol=1e-7, atol=1e-8
    )
    np.testing.assert_allclose(jax.grad(closed_over)(k), jax.grad(exact)(k), rtol=1e-5)
    np.testing.assert_allclose(
        jax.jit(jax.grad(closed_over))(k), jax.grad(given)(k), rtol=1e-7, atol=1e-8
    )


def test_closed_over_complex_tracer_is_a_clear_error():
    """A closed-over traced array the flat real parameters cannot hold: a TypeError
    naming the function and the fix, before any solve."""

    def final(x):
        rate = x * (1.0 + 0.0j)
        model = oi.ODEModel(lambda t, y, p: -jnp.real(rate) * y)
        return oi.solve(model, 1.0, {}, t0=0.0, t1=1.0, solver=oi.FusedDopri5()).y_final

    with pytest.raises(TypeError, match=r"vector field closes over .*`params`"):
        jax.grad(final)(0.5)
    # The diffrax path takes it.
    model_value = jax.grad(
        lambda x: oi.solve(
            oi.ODEModel(lambda t, y, p: -x * y), 1.0, {}, t0=0.0, t1=1.0,
            solver=diffrax.Tsit5(),
        ).y_final
    )(0.5)  # fmt: skip
    np.testing.assert_allclose(model_value, -np.exp(-0.5), rtol=1e-7)
