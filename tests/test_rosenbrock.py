"""Rosenbrock solvers (`oi.Rodas5P`, `oi.Rodas4`) against closed forms and published
reference solutions, in every path a diffrax solver takes through `oi.solve`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _references import ball_bounce_times, ball_rebound_speeds, bolus_amount

import odeinfer as oi
from odeinfer._benchmark._problems import benchmark_problem
from odeinfer._solvers._rosenbrock import _ROS3P

# ------------------------------------------------------------ order of convergence
#
# y1' = -2 (y1 - sin t) + cos t  (non-autonomous: exercises the ∂f/∂t term)
#   y1 = sin t + y1(0) e^{-2t};
# y2' = y2 (1 - y2)              (nonlinear: exercises the Jacobian)
#   y2 = 1 / (1 + (1/y2(0) - 1) e^{-t}).

T_END = 2.0
Y0 = jnp.array([1.0, 0.2])


def _field(t, y, args):
    return jnp.stack([-2.0 * (y[0] - jnp.sin(t)) + jnp.cos(t), y[1] * (1 - y[1])])


def _exact(t):
    t = np.asarray(t)
    return np.stack(
        [np.sin(t) + 1.0 * np.exp(-2 * t), 1 / (1 + (1 / 0.2 - 1) * np.exp(-t))],
        axis=-1,
    )


@eqx.filter_jit
def _fixed_step_solve(solver, dt, ts):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(_field),
        solver,
        0.0,
        T_END,
        dt,
        Y0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=1000,
    ).ys


def _observed_orders(solver, steps, where):
    errors = []
    for n in steps:
        dt = T_END / n
        ts = jnp.asarray(dt * (np.arange(n) + where) if where < 1 else [T_END])
        ys = _fixed_step_solve(solver, jnp.asarray(dt), ts)
        errors.append(np.max(np.abs(np.asarray(ys) - _exact(ts))))
    errors = np.asarray(errors)
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    return slope, errors


@pytest.mark.parametrize(
    "solver, order, steps",
    [
        (oi.Rodas5P(), 5, [8, 16, 32, 64]),
        (oi.Rodas4(), 4, [8, 16, 32, 64]),
        (_ROS3P(), 3, [16, 32, 64, 128]),
    ],
    ids=["Rodas5P", "Rodas4", "ROS3P"],
)
def test_convergence_order(solver, order, steps):
    """Observed order at t = 2 from four fixed step sizes, against theory."""
    slope, errors = _observed_orders(solver, steps, where=1.0)
    assert errors[-1] < 1e-6
    assert order - 0.3 < slope < order + 0.8, (slope, errors)


@pytest.mark.parametrize(
    "solver, order", [(oi.Rodas5P(), 4), (oi.Rodas4(), 3)], ids=["Rodas5P", "Rodas4"]
)
def test_dense_output_order(solver, order):
    """The stiff-aware dense output at the middle of every step: global order 4
    (Rodas5P) and 3 (Rodas4) — a wrong dense coefficient drops it to 1."""
    slope, errors = _observed_orders(solver, [8, 16, 32, 64], where=0.5)
    assert slope > order - 0.3, (slope, errors)


def test_time_derivative_term_matters():
    """Dropping ∂f/∂t would make the non-autonomous component first-order: the full
    method is exact to 1e-9 at 64 steps."""
    ys = _fixed_step_solve(oi.Rodas5P(), jnp.asarray(T_END / 64), jnp.asarray([T_END]))
    np.testing.assert_allclose(ys[0], _exact(T_END), atol=1e-9)


# ------------------------------------------------------------ published references


def _bari_solve(name: str, solver, rtol: float):
    """A Bari problem solved to its end, and the relative error of `y(t1)` against the
    published reference (floored where the reference is tiny)."""
    problem = benchmark_problem(name)
    sol = oi.solve(
        problem.model,
        jnp.asarray(problem.y0),
        problem.params,
        t0=problem.t0,
        t1=problem.t1,
        solver=solver,
        rtol=rtol,
        atol=rtol * problem.atol_scale,
        max_steps=50_000,
    )
    reference = problem.reference.y_final
    error = np.abs(np.asarray(sol.y_final) - reference) / np.maximum(
        np.abs(reference), problem.error_floor
    )
    return sol, error


@pytest.mark.parametrize(
    "name, rtol, digits",
    [("rober", 1e-11, 8), ("hires", 1e-11, 8), ("vdpol", 1e-8, 6)],
)
def test_bari_reference(name, rtol, digits):
    """Bari IVP test set reference solutions (RADAU5 / MEBDFI at tight tolerance)."""
    sol, error = _bari_solve(name, oi.Rodas5P(), rtol)
    assert error.max() < 10.0**-digits, error
    steps = int(sol.stats["num_steps"])
    assert int(sol.stats["num_jacobians"]) == steps
    assert int(sol.stats["num_lu_decompositions"]) == steps
    # Per step 8 stages, each refined with one Jacobian-vector product.
    assert int(sol.stats["num_fevals"]) == 16 * steps + 2


@pytest.mark.parametrize("solver", [oi.Rodas5P(), oi.Rodas4(), oi.FusedRodas5P()])
def test_e5_reference(solver):
    """E5 (Bari set) to t = 1e13, where y2 and y3 (8.9e-23) are fixed by the linear
    invariant y2 - y3 - y4 = 0. Without the refined stage solves the invariant drifted
    by 2e-22 and the final y2, y3 were off by 0.96 (Rodas4) to 27 (FusedRodas5P) at this
    tolerance (`refine_stages=False`); refined 1e-3 (Rodas4) to 6e-3 (FusedRodas5P),
    an error set by round-off (1e-5...2e-2 at rtol 1e-7...1e-10, changing with the
    order of the stage sums). scipy Radau reaches 8.5e-5 here."""
    _, error = _bari_solve("e5", solver, rtol=1e-8)
    assert error.max() < 1e-2, error


# ------------------------------------------------------------ events, resets, doses

G, H0, E, N_BOUNCES = 9.81, 1.0, 0.7, 4
# Stop halfway between bounces 4 and 5.
T_BALL = float(np.mean(ball_bounce_times(H0, E, N_BOUNCES + 1, g=G)[-2:]))


def _ball(h0, e, adjoint=diffrax.RecursiveCheckpointAdjoint()):
    model = oi.ODEModel(
        lambda t, y, p: jnp.stack([y[1], -p["g"] * jnp.ones_like(y[0])]), name="ball"
    )
    bounce = oi.Crossing(
        lambda t, y, p: y[0],
        0.0,
        direction="falling",
        reset=lambda t, y, p: jnp.stack([y[0], -p["e"] * y[1]]),
    )
    return oi.solve(
        model,
        jnp.stack([h0, jnp.zeros_like(h0)]),
        {"g": jnp.asarray(G), "e": e},
        t0=0.0,
        t1=T_BALL,
        events=bounce,
        solver=oi.Rodas5P(),
        max_events=N_BOUNCES,
        adjoint=adjoint,
    )


def test_ball_with_resets():
    sol = _ball(jnp.asarray(H0), jnp.asarray(E))
    assert sol.result == oi.RESULTS.successful
    assert int(sol.events.count) == N_BOUNCES
    np.testing.assert_allclose(
        sol.events.times, ball_bounce_times(H0, E, N_BOUNCES, g=G), rtol=1e-10
    )
    np.testing.assert_allclose(
        sol.events.states_after[:, 1],
        ball_rebound_speeds(H0, E, N_BOUNCES, g=G),
        rtol=1e-9,
    )


def test_ball_event_time_gradients():
    """dT_n/dh0 = T_n / (2 h0) and dT_n/de = sqrt(2h0/g) Σ_{j<n} 2 j e^{j-1}, by
    forward mode (ForwardMode); reverse mode (the default adjoint) in the slow test."""

    def times(h0, e, adjoint):
        return _ball(h0, e, adjoint).events.times

    n = np.arange(1, N_BOUNCES + 1)
    expected_h = ball_bounce_times(H0, E, N_BOUNCES, g=G) / (2 * H0)
    t_first = np.sqrt(2 * H0 / G)
    expected_e = t_first * np.array(
        [sum(2 * j * E ** (j - 1) for j in range(1, m)) for m in n]
    )
    args = (jnp.asarray(H0), jnp.asarray(E))
    forward = jax.jacfwd(times, argnums=(0, 1))(*args, diffrax.ForwardMode())
    np.testing.assert_allclose(forward[0], expected_h, rtol=1e-8)
    np.testing.assert_allclose(forward[1], expected_e, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_ball_event_time_gradient_reverse_mode():
    args = (jnp.asarray(H0), jnp.asarray(E))
    expected_h = ball_bounce_times(H0, E, N_BOUNCES, g=G)[-1] / (2 * H0)
    t_first = np.sqrt(2 * H0 / G)
    expected_e = t_first * sum(2 * j * E ** (j - 1) for j in range(1, N_BOUNCES))

    def times(h0, e, adjoint):
        return _ball(h0, e, adjoint).events.times

    reverse = jax.grad(
        lambda h0, e: times(h0, e, diffrax.RecursiveCheckpointAdjoint())[-1],
        argnums=(0, 1),
    )(*args)
    np.testing.assert_allclose(reverse, [expected_h, expected_e], rtol=1e-8)


DOSE_TIMES_BOLUS = np.array([0.0, 6.0, 12.0, 18.0])
DOSE_AMOUNTS_BOLUS = np.array([100.0, 50.0, 80.0, 20.0])


def test_bolus_doses_and_gradient():
    """One-compartment bolus schedule (superposition of exponentials) and d/dCL."""
    model = oi.ODEModel(lambda t, y, p: -(p["CL"] / p["V"]) * y, name="bolus")
    save = jnp.linspace(0.0, 24.0, 13)

    def amounts(cl):
        return oi.solve(
            model,
            jnp.array(0.0),
            {"CL": cl, "V": jnp.asarray(10.0)},
            t0=0.0,
            t1=24.0,
            saveat=save,
            doses=oi.Dose(
                jnp.asarray(DOSE_TIMES_BOLUS),
                jnp.asarray(DOSE_AMOUNTS_BOLUS),
                target=(),
            ),
            solver=oi.Rodas5P(),
            adjoint=diffrax.ForwardMode(),
        ).ys

    ys = amounts(jnp.asarray(2.0))
    expected = bolus_amount(save, DOSE_TIMES_BOLUS, DOSE_AMOUNTS_BOLUS, 0.2)
    np.testing.assert_allclose(ys, expected, rtol=1e-8, atol=1e-10)
    tau = np.asarray(save)[:, None] - DOSE_TIMES_BOLUS[None, :]
    decay = np.where(tau >= 0, np.exp(-0.2 * np.maximum(tau, 0.0)), 0.0)
    d_cl = -(decay * np.maximum(tau, 0.0)) @ DOSE_AMOUNTS_BOLUS / 10.0
    np.testing.assert_allclose(
        jax.jacfwd(amounts)(jnp.asarray(2.0)), d_cl, rtol=1e-7, atol=1e-10
    )


# ------------------------------------------------------------ a stiff linear system
#
# y' = A y with eigenvalues -k and -1000 (stiffness ratio 1000/k): y(t) = expm(tA) y0,
# so y(t) and its derivative with respect to k are known exactly.

STIFF = oi.ODEModel(
    lambda t, y, p: jnp.stack(
        [-p["k"] * y[0] + 0.0 * y[1], (1000.0 - p["k"]) * y[0] - 1000.0 * y[1]]
    ),
    name="stiff_linear",
)


def _stiff_exact(t, k):
    # y(0) = (1, 2): y1 = e^{-kt}, y2 = e^{-kt} + e^{-1000 t}.
    return np.array([np.exp(-k * t), np.exp(-k * t) + np.exp(-1000.0 * t)])


def _stiff_final(k, solver=oi.Rodas5P(), adjoint=diffrax.RecursiveCheckpointAdjoint()):
    return oi.solve(
        STIFF,
        jnp.array([1.0, 2.0]),
        {"k": k},
        t0=0.0,
        t1=1.0,
        solver=solver,
        adjoint=adjoint,
        throw=False,
    ).y_final


def test_stiff_linear_jit_vmap_grad_jacfwd():
    ks = jnp.array([0.5, 1.0, 2.0])
    ys = jax.jit(jax.vmap(_stiff_final))(ks)
    for k, y in zip(np.asarray(ks), np.asarray(ys), strict=True):
        np.testing.assert_allclose(y, _stiff_exact(1.0, k), rtol=1e-8)
    k = jnp.asarray(1.0)
    # d/dk e^{-k} = -e^{-k}; d²/dk² = e^{-k}.
    grad = jax.grad(lambda k: _stiff_final(k)[0])(k)
    np.testing.assert_allclose(grad, -np.exp(-1.0), rtol=1e-7)
    forward = jax.jacfwd(lambda k: _stiff_final(k, adjoint=diffrax.ForwardMode()))(k)
    np.testing.assert_allclose(forward, [-np.exp(-1.0)] * 2, rtol=1e-7)


@pytest.mark.slow
def test_stiff_linear_hessian():
    k = jnp.asarray(1.0)
    hessian = jax.hessian(
        lambda k: _stiff_final(k, adjoint=diffrax.DirectAdjoint())[0]
    )(k)
    np.testing.assert_allclose(hessian, np.exp(-1.0), rtol=1e-6)


def test_user_jacobian_matches_jacfwd_and_is_checked():
    def jac(t, y, p):
        return jnp.array([[-p["k"], 0.0], [1000.0 - p["k"], -1000.0]])

    with_jacobian = oi.ODEModel(STIFF.vector_field, name="stiff_jac", jacobian=jac)
    report = oi.check_jacobian(with_jacobian, jnp.array([1.0, 2.0]), {"k": 1.0})
    assert report.ok and report.max_error < 1e-6
    sol = oi.solve(
        with_jacobian,
        jnp.array([1.0, 2.0]),
        {"k": jnp.asarray(1.0)},
        t0=0.0,
        t1=1.0,
        solver=oi.Rodas5P(),
    )
    np.testing.assert_allclose(sol.y_final, _stiff_exact(1.0, 1.0), rtol=1e-8)

    wrong = oi.ODEModel(
        STIFF.vector_field, jacobian=lambda t, y, p: jac(t, y, p).T, name="wrong"
    )
    with pytest.raises(ValueError, match=r"disagrees with jax.jacfwd.*entry \(0, 1\)"):
        oi.check_jacobian(wrong, jnp.array([1.0, 2.0]), {"k": 1.0})
    assert not oi.check_jacobian(
        wrong, jnp.array([1.0, 2.0]), {"k": 1.0}, throw=False
    ).ok


@pytest.mark.parametrize(
    "jacobian, match",
    [
        (lambda t, y, p: jnp.eye(3), r"returns shape \(3, 3\) for a state of 2"),
        (lambda t, y, p: jnp.ones(2), r"returns shape \(2,\)"),
        (lambda t, y, p: jnp.full((2, 2), jnp.nan), "not finite"),
    ],
    ids=["wrong-size", "vector", "nan"],
)
def test_bad_user_jacobian_is_refused_before_solving(jacobian, match):
    model = oi.ODEModel(STIFF.vector_field, jacobian=jacobian, name="bad_jac")
    with pytest.raises(ValueError, match=match):
        oi.solve(
            model,
            jnp.array([1.0, 2.0]),
            {"k": 1.0},
            t0=0.0,
            t1=1.0,
            solver=oi.Rodas5P(),
        )


def test_check_jacobian_needs_a_jacobian():
    with pytest.raises(ValueError, match="has no `jacobian`"):
        oi.check_jacobian(STIFF, jnp.array([1.0, 2.0]), {"k": 1.0})


def test_nonfinite_vector_field_is_a_failure_not_a_success():
    """A vector field that turns NaN past y = 2 (the solution crosses it at t = ln 2):
    the steps are rejected until the step size underflows; never `successful` with a
    NaN or a state past the blow-up."""
    model = oi.ODEModel(
        lambda t, y, p: jnp.where(y < 2.0, y, jnp.nan), name="nan_past_2"
    )
    sol = oi.solve(
        model,
        jnp.array(1.0),
        {},
        t0=0.0,
        t1=2.0,
        solver=oi.Rodas5P(),
        throw=False,
        max_steps=500,
    )
    assert sol.result != oi.RESULTS.successful
    with pytest.raises(eqx.EquinoxRuntimeError):
        oi.solve(
            model,
            jnp.array(1.0),
            {},
            t0=0.0,
            t1=2.0,
            solver=oi.Rodas5P(),
            max_steps=500,
        )


def test_explicit_solver_out_of_steps_on_a_stiff_problem_says_looks_stiff():
    """Tsit5 crawling on ROBER reports `looks_stiff` (naming Rodas5P); Tsit5 out of
    steps on a long non-stiff orbit still reports `max_steps_reached`."""
    rober = benchmark_problem("rober")
    sol = oi.solve(rober.model, jnp.asarray(rober.y0), rober.params, t0=0.0, t1=1e5,
                   max_steps=2000, throw=False)  # fmt: skip
    assert sol.result == oi.RESULTS.looks_stiff
    assert "Rodas5P" in oi.describe(sol.result)
    lv = benchmark_problem("lotka_volterra")
    sol = oi.solve(lv.model, jnp.asarray(lv.y0), lv.params, t0=0.0, t1=1e4,
                   max_steps=200, throw=False)  # fmt: skip
    assert sol.result == oi.RESULTS.max_steps_reached


def test_dopri5_tableau_order():
    """The fused loop's Dormand–Prince step (`_fast/_dopri5.py`) at fixed steps on the
    closed-form problem above: observed order 5 (error of the 5th-order solution)."""
    from odeinfer._fast._dopri5 import dopri5_step

    def F(t, Y):
        return _field(t, Y[0], None)[None]

    errors = []
    steps = [8, 16, 32, 64]
    for n in steps:
        h = T_END / n
        t, Y = 0.0, Y0[None]
        k1 = F(t, Y)
        for _ in range(n):
            Y, k1, _, _, _ = dopri5_step(F, t, h, Y, k1)
            t = t + h
        errors.append(np.max(np.abs(np.asarray(Y[0]) - _exact(T_END))))
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 4.7 < slope < 5.8, (slope, errors)


def test_problem_with_rodas5p_matches_closed_form_and_gradient():
    """`Problem(solver=oi.Rodas5P())`: the diffrax path for every solve, with its
    gradient, against the closed form of a stiff-rate exponential decay."""
    times = np.linspace(0.01, 0.1, 5)
    data = 2.0 * np.exp(-50.0 * times)
    experiment = oi.Experiment(times, data, noise=oi.Gaussian(0.1),
                               y0=lambda p: p["A"], name="decay")  # fmt: skip
    space = oi.Parameters({"k": oi.Positive(50.0), "A": oi.Real(2.0)})
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay_rodas")
    problem = oi.Problem(model, experiment, space, solver=oi.Rodas5P())
    params = {"k": 45.0, "A": 1.9}

    def closed(p):
        prediction = p["A"] * jnp.exp(-p["k"] * times)
        return jnp.sum(jax.scipy.stats.norm.logpdf(data, prediction, 0.1))

    np.testing.assert_allclose(oi.log_likelihood(problem, params), closed(params),
                               rtol=1e-8)  # fmt: skip
    grad = jax.grad(lambda p: oi.log_likelihood(problem, p))(params)
    expected = jax.grad(closed)(params)
    for name in params:
        np.testing.assert_allclose(grad[name], expected[name], rtol=1e-6)
