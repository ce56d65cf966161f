"""`oi.TrustRegionReflective`: a bounded linear least-squares problem whose optimum
sits on a bound, against scipy's bounded-variable least squares (`lsq_linear`, BVLS,
an independent algorithm) and against the closed-form Gauss–Newton covariance; an
`oi.Problem` with Gaussian noise against Levenberg–Marquardt; misuse refused."""

import threading
import time

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.optimize
from _decay import noisy_data
from _decay import problem as decay_problem

import odeinfer as oi

RNG = np.random.default_rng(3)
A = RNG.standard_normal((30, 3))
TRUTH = np.array([0.5, -1.0, 2.0])
B = A @ TRUTH + 0.1 * RNG.standard_normal(30)
# The unconstrained optimum has x2 ≈ 2 > 1.5: the bound is active there.
LOWER, UPPER = np.array([-3.0, -3.0, -1.0]), np.array([3.0, 3.0, 1.5])


class Linear(oi.AbstractResidualLikelihood):
    """r(x) = A x − b with unit noise: log L = −½‖r‖² − (m/2) log 2π."""

    def __init__(self):
        self.parameters = oi.Parameters(
            {
                f"x{i}": oi.Bounded(lo, hi, init=0.0)
                for i, (lo, hi) in enumerate(zip(LOWER, UPPER, strict=True))
            }
        )

    def residuals(self, params):
        x = jnp.stack([params[f"x{i}"] for i in range(3)])
        return jnp.asarray(A) @ x - jnp.asarray(B)

    def log_likelihood(self, params):
        r = self.residuals(params)
        return -0.5 * jnp.sum(r**2) - 0.5 * r.shape[0] * jnp.log(2 * jnp.pi)

    def check_residuals(self):
        return None


def test_optimum_on_a_bound_matches_bvls():
    reference = scipy.optimize.lsq_linear(A, B, bounds=(LOWER, UPPER), tol=1e-14)
    assert reference.active_mask[2] == 1  # the upper bound of x2 is active
    result = oi.fit(Linear(), solver=oi.TrustRegionReflective())
    assert result.solver == "TrustRegionReflective"
    assert bool(result.successful)
    estimate = np.array([float(result.params[f"x{i}"]) for i in range(3)])
    np.testing.assert_allclose(estimate, reference.x, atol=1e-6)
    r = A @ reference.x - B
    expected = -0.5 * r @ r - 15 * np.log(2 * np.pi)
    assert float(result.log_likelihood) == pytest.approx(expected, abs=1e-9)
    assert result.num_evaluations is not None
    assert int(result.num_evaluations) >= int(result.num_steps) >= 1
    # Fisher information JᵀJ = AᵀA: the covariance of the free fit is (AᵀA)⁻¹.
    np.testing.assert_allclose(
        np.asarray(result.covariance), np.linalg.inv(A.T @ A), rtol=1e-10
    )


class NoFisher(Linear):
    """As `Linear`, but saying its residuals are not enough for the Fisher
    information (as a likelihood with noise residuals and no formula would)."""

    fisher_from_residuals = False


def test_without_fisher_information_the_default_is_the_hessian():
    wide = oi.Parameters({f"x{i}": oi.Bounded(-10.0, 10.0) for i in range(3)})
    result = oi.fit(NoFisher(), parameters=wide, solver=oi.TrustRegionReflective())
    assert result.information == "hessian"
    # An interior optimum of a quadratic log-likelihood: its Hessian is AᵀA as well.
    np.testing.assert_allclose(
        np.asarray(result.covariance), np.linalg.inv(A.T @ A), rtol=1e-8
    )
    with pytest.raises(ValueError, match='information="fisher"'):
        oi.fit(NoFisher(), information="fisher")


def test_interior_optimum_matches_normal_equations():
    wide = oi.Parameters({f"x{i}": oi.Bounded(-10.0, 10.0) for i in range(3)})
    result = oi.fit(
        Linear(),
        parameters=wide,
        init={"x0": 1.0, "x1": 1.0, "x2": 1.0},
        solver=oi.TrustRegionReflective(),
    )
    exact = np.linalg.solve(A.T @ A, A.T @ B)
    estimate = np.array([float(result.params[f"x{i}"]) for i in range(3)])
    np.testing.assert_allclose(estimate, exact, atol=1e-7)
    np.testing.assert_allclose(np.asarray(result.gradient), 0.0, atol=1e-6)


def test_multistart_reports_every_start():
    result = oi.multistart(Linear(), 4, key=0, solver=oi.TrustRegionReflective())
    assert result.best.solver == "TrustRegionReflective"
    assert result.num_converged == 4
    assert result.num_evaluations is not None and result.seconds is not None
    assert np.asarray(result.num_evaluations).shape == (4,)
    reference = scipy.optimize.lsq_linear(A, B, bounds=(LOWER, UPPER), tol=1e-14)
    r = A @ reference.x - B
    expected = -0.5 * r @ r - 15 * np.log(2 * np.pi)
    np.testing.assert_allclose(np.asarray(result.log_objective), expected, atol=1e-8)


def test_gaussian_problem_matches_levenberg_marquardt():
    problem = decay_problem(noisy_data(0))
    reference = oi.fit(problem, information="fisher")
    result = oi.fit(problem, solver=oi.TrustRegionReflective())
    for name in ("a", "k"):
        assert float(result.params[name]) == pytest.approx(
            float(reference.params[name]), rel=1e-6
        )
        assert float(result.standard_errors[name]) == pytest.approx(
            float(reference.standard_errors[name]), rel=1e-3
        )


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="cannot include `priors`"):
        oi.fit(
            Linear(),
            solver=oi.TrustRegionReflective(),
            priors={"x0": dist.Normal(0.0, 1.0)},
        )
    with pytest.raises(TypeError, match="needs residuals"):
        oi.fit(
            lambda p: -(p["x"] ** 2),
            parameters={"x": oi.Real(1.0)},
            solver=oi.TrustRegionReflective(),
        )


def test_fides_matches_bvls_on_a_bound():
    pytest.importorskip("fides")
    reference = scipy.optimize.lsq_linear(A, B, bounds=(LOWER, UPPER), tol=1e-14)
    result = oi.fit(Linear(), solver=oi.Fides())
    assert result.solver == "Fides" and bool(result.successful)
    estimate = np.array([float(result.params[f"x{i}"]) for i in range(3)])
    np.testing.assert_allclose(estimate, reference.x, atol=1e-6)


class FailsAboveZero(oi.AbstractHostBoxLeastSquares):
    """`TrustRegionReflective`, except that a start with `x0 > 0` raises."""

    inner: oi.TrustRegionReflective = oi.TrustRegionReflective()

    def minimise(self, fun, jac, fun_and_jac, v0, lower, upper, max_evaluations):
        if v0[0] > 0:
            raise ArithmeticError(f"a start failed at {v0}")
        return self.inner.minimise(
            fun, jac, fun_and_jac, v0, lower, upper, max_evaluations
        )


@pytest.mark.parametrize("solver", ["trf", "fides"])
def test_multistart_workers_give_the_same_results(solver):
    if solver == "fides":
        pytest.importorskip("fides")
    box_solver = oi.Fides() if solver == "fides" else oi.TrustRegionReflective()
    # Wide bounds: some starts end on a bound, others inside (different paths).
    wide = oi.Parameters({f"x{i}": oi.Bounded(-4.0, 1.0 + i) for i in range(3)})
    runs = [
        oi.multistart(
            Linear(),
            12,
            key=1,
            parameters=wide,
            solver=box_solver,
            workers=workers,
            progress_bar=workers == 2,
        )
        for workers in (1, 2)
    ]
    one, two = runs
    for field in (
        "starts",
        "optima",
        "log_objective",
        "converged",
        "num_steps",
        "num_evaluations",
        "solve_failed",
    ):
        np.testing.assert_array_equal(
            np.asarray(getattr(one, field)), np.asarray(getattr(two, field))
        )
    assert np.ptp(np.asarray(one.num_evaluations)) > 0  # the starts differ
    np.testing.assert_array_equal(
        np.asarray(one.best.unconstrained), np.asarray(two.best.unconstrained)
    )
    for run in runs:
        assert run.elapsed is not None and run.seconds is not None
        elapsed = np.asarray(run.elapsed)
        assert elapsed.shape == (12,) and np.all(elapsed > 0)
        assert np.all(np.asarray(run.seconds) <= elapsed + 1e-9)
    assert one.elapsed is not None
    assert np.all(np.diff(np.asarray(one.elapsed)) > 0)  # one after another


@pytest.mark.parametrize("workers", [1, 2])
def test_multistart_raises_the_exception_of_a_start(workers):
    with pytest.raises(ArithmeticError, match="a start failed"):
        oi.multistart(Linear(), 8, key=0, solver=FailsAboveZero(), workers=workers)


def test_multistart_workers_misuse_is_refused():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="`workers` must be a positive integer"):
            oi.multistart(Linear(), 2, key=0, workers=bad)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`workers=2`.*optimistix"):
        oi.multistart(decay_problem(noisy_data(0)), 2, key=0, workers=2)


class SlowFirstInPool(oi.AbstractHostBoxLeastSquares):
    """`TrustRegionReflective`; the first start on a pool thread waits 1 s first."""

    first: threading.Lock  # acquired (never released) by the first pool start
    inner: oi.TrustRegionReflective = oi.TrustRegionReflective()

    def minimise(self, fun, jac, fun_and_jac, v0, lower, upper, max_evaluations):
        in_pool = threading.current_thread() is not threading.main_thread()
        if in_pool and self.first.acquire(blocking=False):
            time.sleep(1.0)
        return self.inner.minimise(
            fun, jac, fun_and_jac, v0, lower, upper, max_evaluations
        )


def test_multistart_workers_record_starts_as_they_finish():
    # Start 0 runs alone (it compiles); the first start on a pool thread waits while
    # the other thread runs the rest: they are recorded (and counted by the progress
    # bar) before it is.
    solver = SlowFirstInPool(threading.Lock())
    result = oi.multistart(Linear(), 10, key=0, solver=solver, workers=2)
    assert result.elapsed is not None and result.seconds is not None
    elapsed, seconds = np.asarray(result.elapsed), np.asarray(result.seconds)
    slow = int(np.argmax(seconds))
    assert slow > 0 and seconds[slow] >= 1.0
    others = np.delete(elapsed, [0, slow])
    assert np.all(others < elapsed[slow] - 0.5)
