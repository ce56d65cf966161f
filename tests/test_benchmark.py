"""`odeinfer.benchmark` on tiny settings: accuracy columns against closed forms, the
report formats, user solvers, optional peers, bad input, and no recompilation."""

import json
import math

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi
from odeinfer import benchmarking
from odeinfer._benchmark import Outcome, Runner

LOGISTIC = benchmarking.benchmark_problem("logistic_threshold")
K, Y0 = LOGISTIC.params["k"], float(LOGISTIC.y0[0])


class ClosedFormLogistic(benchmarking.AbstractBenchmarkSolver):
    """A user-added solver: the exact logistic solution."""

    name: str = "closed-form"

    def prepare(self, problem):
        def run(rtol, atol):
            y = 1 / (1 + (1 / Y0 - 1) * np.exp(-K * problem.t1))
            return Outcome(
                y_final=np.array([y]), event_times=np.log(36.0) / K * np.ones(1)
            )

        return Runner(
            run=run, gradient=lambda rtol, atol: np.array([-np.log(36) / K**2])
        )


class Broken(benchmarking.AbstractBenchmarkSolver):
    name: str = "broken"

    def prepare(self, problem):
        def run(rtol, atol):
            raise RuntimeError("diverged")

        return Runner(run=run)


class Missing(benchmarking.AbstractBenchmarkSolver):
    name: str = "missing"

    def available(self):
        return False

    def prepare(self, problem):
        raise AssertionError("never prepared")


def rows_of(results, solver):
    return [r for r in results.rows if r["solver"] == solver]


def test_odeinfer_rows_against_closed_form():
    """odeinfer (Tsit5, forward-mode gradient) on the logistic threshold problem: the
    state, crossing-time and gradient errors against the closed form. A small copy of
    the problem (fewer event slots and steps) keeps the runs short; the two
    compilations (solve, gradient) dominate."""
    small = LOGISTIC.replace(max_events=1, max_steps=2048)
    solver = benchmarking.OdeinferSolver(diffrax.Tsit5(), adjoint=diffrax.ForwardMode())
    results = benchmarking.benchmark(
        small, [solver], [1e-5, 1e-8], repeats=1, gradients=True, progress=False
    )
    loose, tight = results.rows
    assert loose["success"] and tight["success"]
    assert tight["error"] < 1e-6 and tight["event_error"] < 1e-5
    assert (
        tight["error"] < loose["error"] and tight["event_error"] < loose["event_error"]
    )
    assert tight["steps"] > loose["steps"] > 0 and tight["fevals"] > loose["fevals"] > 0
    assert loose["compile_s"] > 0 and tight["time_s"] > 0
    # d t* / dk = -ln 36 / k^2, through the event time of odeinfer.solve.
    assert tight["gradient_error"] < 1e-5 and tight["gradient_time_s"] > 0


def test_benchmark_columns_and_reports(tmp_path):
    """The machinery with peers only (no compilation): scipy against the closed form, a
    user-added solver, one that raises, one that is not installed, and every format."""
    results = benchmarking.benchmark(
        LOGISTIC,
        ["scipy/RK45", ClosedFormLogistic(), Broken(), Missing()],
        [1e-5, 1e-8],
        repeats=2,
        gradients=True,
        progress=False,
    )
    assert len(results) == 8
    assert results.references == {"logistic_threshold": "closed form"}
    loose, tight = rows_of(results, "scipy/RK45")
    assert loose["success"] and tight["success"]
    assert tight["error"] < 1e-6 and tight["event_error"] < 1e-5
    assert (
        tight["error"] < loose["error"] and tight["event_error"] < loose["event_error"]
    )
    assert tight["steps"] > loose["steps"] > 0 and tight["fevals"] > loose["fevals"] > 0
    assert all(math.isnan(r["gradient_error"]) for r in (loose, tight))

    # A user-added solver, one that raises, and one that is not installed.
    exact = rows_of(results, "closed-form")
    assert all(r["error"] < 1e-15 and r["gradient_error"] < 1e-15 for r in exact)
    assert all(
        not r["success"] and "diverged" in r["message"]
        for r in rows_of(results, "broken")
    )
    assert all("skipped" in r["message"] for r in rows_of(results, "missing"))

    import pandas as pd

    table = results.table()
    assert list(table.columns[:4]) == ["problem", "solver", "rtol", "atol"]
    csv = pd.read_csv(results.to_csv(tmp_path / "r.csv"))
    assert len(csv) == len(results)
    payload = json.loads(results.to_json(tmp_path / "r.json", note="tiny").read_text())
    assert payload["note"] == "tiny" and len(payload["rows"]) == len(results)
    results.plot(tmp_path / "wp.png")
    assert (tmp_path / "wp.png").stat().st_size > 1000
    assert "scipy/RK45" in str(results)


def test_bad_input_is_refused_before_work():
    with pytest.raises(ValueError, match="Unknown solver 'Tsit6'.*Known names"):
        benchmarking.benchmark(LOGISTIC, ["Tsit6"], [1e-6])
    with pytest.raises(ValueError, match="scipy/RK23"):
        benchmarking.benchmark(LOGISTIC, ["scipy/RK23"], [1e-6])
    for bad in ([0.0], [-1e-6], [(1e-6, 0.0)], [math.nan]):
        with pytest.raises(ValueError, match="tolerances"):
            benchmarking.benchmark(LOGISTIC, ["scipy/RK45"], bad)
    with pytest.raises(ValueError, match="empty"):
        benchmarking.benchmark(LOGISTIC, ["scipy/RK45"], [])
    with pytest.raises(ValueError, match="repeats"):
        benchmarking.benchmark(LOGISTIC, ["scipy/RK45"], [1e-6], repeats=0)
    with pytest.raises(TypeError, match="BenchmarkProblem"):
        benchmarking.benchmark("rober", ["scipy/RK45"], [1e-6])
    no_reference = decay_problem()
    with pytest.raises(ValueError, match="no reference"):
        benchmarking.benchmark(
            no_reference, ["scipy/RK45"], [1e-6], reference_solver=None
        )
    with pytest.raises(TypeError, match="diffrax solver"):
        benchmarking.OdeinferSolver("Tsit5")


def decay_problem():
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
    return benchmarking.BenchmarkProblem(
        "decay", model, [2.0], {"k": 0.7}, t0=0.0, t1=3.0
    )


def test_reference_and_gradient_computed_when_missing():
    problem = decay_problem()
    reference = benchmarking.compute_reference(problem, gradient=True)
    exact = 2.0 * np.exp(-0.7 * 3.0)
    np.testing.assert_allclose(reference.y_final, [exact], rtol=1e-12)
    # quantity = y_final (weight 1 for one state): d/dk = -t1 y(t1).
    np.testing.assert_allclose(reference.gradient, [-3.0 * exact], rtol=1e-7)
    results = benchmarking.benchmark(
        problem, ["scipy/DOP853"], [1e-8], repeats=1, progress=False
    )
    assert "DOP853" in results.references["decay"]
    assert results.rows[0]["error"] < 1e-7


def test_sundials_cvode_peer():
    pytest.importorskip("sksundae")
    problem = benchmarking.benchmark_problem("lotka_volterra")
    results = benchmarking.benchmark(
        problem, ["sundials/CVODE-BDF"], [1e-9], repeats=1, progress=False
    )
    row = results.rows[0]
    assert row["success"] and row["error"] < 1e-5 and row["fevals"] > 0
    ball = benchmarking.benchmark(
        benchmarking.benchmark_problem("bouncing_ball"),
        ["cvode"],
        [1e-6],
        repeats=1,
        progress=False,
    )
    assert "skipped" in ball.rows[0]["message"] and "reset" in ball.rows[0]["message"]


def test_no_recompilation_when_tolerance_level_or_data_change():
    model = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y), name="logistic-traces")

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def first_time(params, crossing, rtol, atol):
        sol = oi.solve(model, jnp.array([0.1]), params, t0=0.0, t1=20.0, events=crossing,
                       rtol=rtol, atol=atol, max_events=1, max_steps=256, throw=False)  # fmt: skip
        return sol.events.times[0]

    def first_state(t, y, p):
        return y[0]

    for level, k, rtol in ((0.8, 0.5, 1e-6), (0.6, 0.4, 1e-9), (0.3, 0.7, 1e-4)):
        crossing = oi.Crossing(first_state, level, direction="rising")
        params = {"k": jnp.asarray(k)}
        time = first_time(params, crossing, jnp.asarray(rtol), jnp.asarray(rtol * 1e-2))
        exact = np.log((1 / 0.1 - 1) / (1 / level - 1)) / k
        np.testing.assert_allclose(time, exact, rtol=100 * rtol)


def test_backsolve_adjoint_has_no_gradient():
    solver = benchmarking.OdeinferSolver(
        diffrax.Tsit5(), adjoint=diffrax.BacksolveAdjoint()
    )
    assert solver.prepare(LOGISTIC).gradient is None
