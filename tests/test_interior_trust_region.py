"""`oi.InteriorTrustRegion`: bounded linear least squares with active bounds against
scipy's `lsq_linear` (BVLS), nonlinear bounded problems (Rosenbrock residuals with an
active bound, an exponential fit) against `scipy.optimize.least_squares(method="trf")`,
all at tight tolerances; failed solves (NaN residuals); the evaluation budget; jit and
vmap of a start; the multistart batches and threads."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest
import scipy.optimize

import odeinfer as oi
from odeinfer._estimation import _interior_trust_region as interior
from odeinfer._estimation._interior_steps import solve_nd

# Tolerances at the limit of float64 here: the change of ½‖r‖² never falls below
# 1e-15 relative, so the scaled gradient ends each run.
TIGHT = oi.InteriorTrustRegion(rtol=1e-15, atol=1e-15, gtol=1e-8)

RNG = np.random.default_rng(7)
A = RNG.standard_normal((40, 4))
B = A @ np.array([0.5, -1.0, 2.0, -2.5]) + 0.1 * RNG.standard_normal(40)
# The unconstrained optimum has x2 ≈ 2 > 1.5 and x3 ≈ -2.5 < -2: two active bounds.
LOWER, UPPER = np.array([-3.0, -3.0, -1.0, -2.0]), np.array([3.0, 3.0, 1.5, 3.0])

T = np.linspace(0.0, 4.0, 25)
Y = 2.0 * np.exp(-1.3 * T) + 0.3 + 0.01 * RNG.standard_normal(25)


def with_jacobian(residuals):
    return lambda v: (residuals(v), jax.jacfwd(residuals)(v))


def linear(v):
    return jnp.asarray(A) @ v - jnp.asarray(B)


def rosenbrock(v):
    return jnp.stack([10 * (v[1] - v[0] ** 2), 1 - v[0]])


def exponential(v):
    return v[0] * jnp.exp(-v[1] * jnp.asarray(T)) + v[2] - jnp.asarray(Y)


def solve(residuals, v0, lower, upper, budget=500, solver=TIGHT):
    fn = with_jacobian(residuals)
    return eqx.filter_jit(solver.solve)(
        fn, jnp.asarray(v0, float), jnp.asarray(lower), jnp.asarray(upper), budget
    )


def scipy_trf(residuals, v0, lower, upper):
    reference = scipy.optimize.least_squares(
        lambda v: np.asarray(residuals(jnp.asarray(v))),
        np.asarray(v0, float),
        jac=lambda v: np.asarray(jax.jacfwd(residuals)(jnp.asarray(v))),  # pyright: ignore[reportArgumentType]
        bounds=(lower, upper),
        method="trf",
        ftol=1e-15,
        xtol=1e-15,
        gtol=1e-15,
    )
    return reference


@pytest.mark.parametrize("v0", [np.zeros(4), np.array([2.9, -2.9, -0.9, 2.9])])
def test_linear_with_active_bounds_matches_bvls(v0):
    reference = scipy.optimize.lsq_linear(A, B, bounds=(LOWER, UPPER), tol=1e-14)
    assert reference.active_mask[2] == 1 and reference.active_mask[3] == -1
    out = solve(linear, v0, LOWER, UPPER)
    assert int(out.code) == interior.CONVERGED
    np.testing.assert_allclose(np.asarray(out.v), reference.x, atol=1e-9)
    # On a bound the gradient is not zero: ½‖r‖² is first order in the distance.
    assert float(out.cost) == pytest.approx(reference.cost, rel=1e-10)


@pytest.mark.parametrize(
    "residuals, v0, lower, upper",
    [
        # The bound x0 ≤ 0.8 cuts off the minimum at (1, 1): the optimum is (0.8, 0.64).
        (rosenbrock, [-1.2, 1.0], [-2.0, -2.0], [0.8, 2.0]),
        (rosenbrock, [0.5, -1.5], [-2.0, -2.0], [0.8, 2.0]),
        # The offset is bounded by 0.25 < 0.3: active at the optimum.
        (exponential, [1.0, 0.5, 0.1], [0.0, 0.0, 0.0], [5.0, 5.0, 0.25]),
        # An interior optimum.
        (exponential, [1.0, 0.5, 0.1], [0.0, 0.0, -1.0], [5.0, 5.0, 1.0]),
    ],
)
def test_nonlinear_matches_scipy_trf(residuals, v0, lower, upper):
    lower, upper = np.asarray(lower), np.asarray(upper)
    reference = scipy_trf(residuals, v0, lower, upper)
    assert reference.status > 0
    out = solve(residuals, v0, lower, upper)
    assert int(out.code) == interior.CONVERGED
    np.testing.assert_allclose(np.asarray(out.v), reference.x, atol=1e-7)
    assert float(out.cost) == pytest.approx(reference.cost, rel=1e-10, abs=1e-14)


def test_fit_on_a_bound_matches_bvls():
    class Linear(oi.AbstractResidualLikelihood):
        def __init__(self):
            self.parameters = oi.Parameters(
                {
                    f"x{i}": oi.Bounded(lo, hi, init=0.0)
                    for i, (lo, hi) in enumerate(zip(LOWER, UPPER, strict=True))
                }
            )

        def residuals(self, params):
            return linear(jnp.stack([params[f"x{i}"] for i in range(4)]))

        def log_likelihood(self, params):
            r = self.residuals(params)
            return -0.5 * jnp.sum(r**2) - 0.5 * r.shape[0] * jnp.log(2 * jnp.pi)

        def check_residuals(self):
            return None

    reference = scipy.optimize.lsq_linear(A, B, bounds=(LOWER, UPPER), tol=1e-14)
    result = oi.fit(Linear(), solver=TIGHT)
    assert result.solver == "InteriorTrustRegion" and bool(result.successful)
    assert result.num_evaluations is not None and int(result.num_evaluations) > 1
    estimate = np.array([float(result.params[f"x{i}"]) for i in range(4)])
    np.testing.assert_allclose(estimate, reference.x, atol=1e-9)
    r = A @ reference.x - B
    expected = -0.5 * r @ r - 20 * np.log(2 * np.pi)
    assert float(result.log_likelihood) == pytest.approx(expected, abs=1e-9)


def nan_above(residuals, index, threshold):
    """`residuals`, NaN where `v[index] > threshold` (a solve that fails there)."""

    def fn(v):
        r = residuals(v)
        return jnp.where(v[index] > threshold, jnp.nan, r)

    return fn


def test_failed_solves_reject_the_step():
    # The optimum (0.8, 0.64) lies where the "solve" fails (x0 > 0.7): every step
    # there is rejected and the trust region shrinks; the result is the best finite
    # point, which tends to the edge of the failing region, where the constrained
    # optimum is: Rosenbrock's valley minimum at x0 = 0.7, i.e. (0.7, 0.49).
    fn = nan_above(rosenbrock, 0, 0.7)
    out = solve(fn, [-1.2, 1.0], [-2.0, -2.0], [0.8, 2.0], budget=300)
    assert np.all(np.isfinite(np.asarray(out.v))) and np.isfinite(float(out.cost))
    assert float(out.v[0]) <= 0.7
    np.testing.assert_allclose(np.asarray(out.v), [0.7, 0.49], atol=1e-3)
    expected = 0.5 * float(np.sum(np.asarray(rosenbrock(out.v)) ** 2))
    assert float(out.cost) == pytest.approx(expected, rel=1e-12)
    assert int(out.evaluations) > int(out.accepted)  # some steps were rejected


def test_a_failed_start_ends_at_once():
    fn = nan_above(rosenbrock, 0, 0.0)
    out = solve(fn, [0.5, 0.5], [-2.0, -2.0], [0.8, 2.0])
    assert int(out.code) == interior.START_FAILED
    assert int(out.evaluations) == 1 and int(out.accepted) == 0
    assert float(out.cost) == np.inf


@pytest.mark.parametrize("budget", [1, 2, 7])
def test_budget_exhaustion(budget):
    out = solve(rosenbrock, [-1.2, 1.0], [-2.0, -2.0], [0.8, 2.0], budget=budget)
    assert int(out.code) == interior.BUDGET_SPENT
    assert int(out.evaluations) == budget
    # The fit reports it as max steps reached, with the evaluations it used.
    result = oi.fit(
        Rosenbrock(), solver=oi.InteriorTrustRegion(), max_steps=budget, throw=False
    )
    assert result.result == optx.RESULTS.nonlinear_max_steps_reached
    assert result.num_evaluations is not None
    assert int(result.num_evaluations) == budget
    with pytest.raises(oi.FitError, match="max"):
        oi.fit(Rosenbrock(), solver=oi.InteriorTrustRegion(), max_steps=budget)


class Rosenbrock(oi.AbstractResidualLikelihood):
    """Rosenbrock's residuals with x0 ≤ 0.8, as a residual likelihood."""

    def __init__(self):
        self.parameters = oi.Parameters(
            {
                "x0": oi.Bounded(-2.0, 0.8, init=-1.2),
                "x1": oi.Bounded(-2.0, 2.0, init=1.0),
            }
        )

    def residuals(self, params):
        return rosenbrock(jnp.stack([params["x0"], params["x1"]]))

    def log_likelihood(self, params):
        r = self.residuals(params)
        return -0.5 * jnp.sum(r**2)

    def check_residuals(self):
        return None


def test_vmap_of_starts_matches_one_at_a_time():
    lower, upper = jnp.asarray([0.0, 0.0, -1.0]), jnp.asarray([5.0, 5.0, 1.0])
    starts = jnp.asarray([[1.0, 0.5, 0.1], [4.0, 4.0, -0.9], [0.1, 2.0, 0.9]])
    fn = with_jacobian(exponential)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def one(v0, budget):
        return TIGHT.solve(fn, v0, lower, upper, budget)

    batched = jax.jit(jax.vmap(lambda v0: TIGHT.solve(fn, v0, lower, upper, 500)))(
        starts
    )
    evaluations = []
    for k in range(3):
        single = one(starts[k], jnp.asarray(500))
        np.testing.assert_allclose(
            np.asarray(batched.v[k]), np.asarray(single.v), atol=1e-12
        )
        assert int(batched.evaluations[k]) == int(single.evaluations)
        assert int(batched.code[k]) == interior.CONVERGED
        evaluations.append(int(single.evaluations))
    assert len(set(evaluations)) > 1  # the loop ran on for the batch's slowest start


def test_multistart_batches_and_threads_give_the_same_results():
    runs = [
        oi.multistart(
            Rosenbrock(),
            7,
            key=2,
            solver=oi.InteriorTrustRegion(),
            batch_size=batch_size,
            workers=workers,
        )
        for batch_size, workers in ((None, 1), (3, 1), (2, 2))
    ]
    reference = scipy_trf(rosenbrock, [-1.2, 1.0], [-2.0, -2.0], [0.8, 2.0])
    for run in runs:
        assert run.best.solver == "InteriorTrustRegion"
        assert run.num_converged == 7
        np.testing.assert_allclose(
            np.asarray(run.log_objective), -reference.cost, rtol=1e-8
        )
        assert run.elapsed is not None and np.all(np.asarray(run.elapsed) > 0)
        np.testing.assert_allclose(
            np.asarray(run.optima), np.asarray(runs[0].optima), atol=1e-10
        )
        np.testing.assert_array_equal(
            np.asarray(run.num_evaluations), np.asarray(runs[0].num_evaluations)
        )


def test_two_dimensional_subproblem_against_a_grid():
    # min ½sᵀBs + gᵀs on ‖s‖ ≤ Δ: indefinite, positive definite with the minimiser
    # outside and inside the ball; against a dense search of the disc's boundary and
    # the Newton point.
    angles = np.linspace(0, 2 * np.pi, 200001)
    for b, g, delta in [
        (np.array([[2.0, 0.5], [0.5, -1.0]]), np.array([0.3, -0.2]), 1.5),
        (np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([3.0, -4.0]), 0.5),
        (np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([0.1, -0.1]), 2.0),
    ]:
        s = np.asarray(solve_nd(jnp.asarray(b), jnp.asarray(g), delta))
        circle = delta * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        values = 0.5 * np.einsum("ki,ij,kj->k", circle, b, circle) + circle @ g
        best = values.min()
        if np.all(np.linalg.eigvalsh(b) > 0):
            newton = -np.linalg.solve(b, g)
            if np.linalg.norm(newton) <= delta:
                best = min(best, 0.5 * newton @ b @ newton + g @ newton)
        value = 0.5 * s @ b @ s + g @ s
        assert np.linalg.norm(s) <= delta * (1 + 1e-12)
        assert value == pytest.approx(best, abs=1e-9)
