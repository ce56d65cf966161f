"""Bad input to the benchmarking layer (`benchmark`, `benchmark_problem`,
`compute_reference`, `BenchmarkProblem`, `Reference`, the solver wrappers,
`BenchmarkResults` and the `odeinfer bench` command line): each case is a clear error
naming the argument, raised before any solver runs."""

import diffrax
import equinox as eqx
import numpy as np
import pytest

from odeinfer import benchmarking
from odeinfer._cli import main

LV = benchmarking.benchmark_problem("lotka_volterra")
PARAMS = dict(LV.params)


def refuse_to_run(*args, **kwargs):
    raise AssertionError("a solver ran for a bad input")


class NeverRuns(benchmarking.AbstractBenchmarkSolver):
    """A solver that fails the test if `benchmark` gets as far as preparing it."""

    name: str = eqx.field(static=True, default="never")

    def prepare(self, problem):
        refuse_to_run()


def problem(**changes):
    arguments = dict(
        name="lv", model=LV.model, y0=[1.0, 1.0], params=PARAMS, t0=0.0, t1=1.0
    )
    arguments.update(changes)
    return benchmarking.BenchmarkProblem(
        arguments.pop("name"),
        arguments.pop("model"),
        arguments.pop("y0"),
        arguments.pop("params"),
        **arguments,
    )


PROBLEM_CASES = [
    ("name-int", dict(name=3), TypeError, "`name`"),
    ("name-empty", dict(name=""), TypeError, "`name`"),
    ("model-string", dict(model="lv"), TypeError, "`model`"),
    ("y0-2d", dict(y0=[[1.0, 1.0]]), ValueError, "`y0`"),
    ("y0-empty", dict(y0=[]), ValueError, "`y0`"),
    ("y0-nan", dict(y0=[np.nan, 1.0]), ValueError, "`y0` must be finite"),
    ("y0-strings", dict(y0=["a", "b"]), TypeError, "`y0`"),
    ("y0-wrong-length", dict(y0=[1.0, 1.0, 1.0]), ValueError, "`y0` must have one"),
    ("params-list", dict(params=[1.0]), TypeError, "`params`"),
    ("params-nan", dict(params={**PARAMS, "a": np.nan}), ValueError, r"params\['a'\]"),
    (
        "params-vector",
        dict(params={**PARAMS, "a": [1.0, 2.0]}),
        ValueError,
        r"params\['a'\].*scalar",
    ),
    ("params-string", dict(params={**PARAMS, "a": "x"}), TypeError, r"params\['a'\]"),
    ("params-missing", dict(params={}), (KeyError, ValueError), "'a'"),
    ("t1-before-t0", dict(t0=1.0, t1=0.0), ValueError, "t0 < t1"),
    ("t1-nan", dict(t1=np.nan), ValueError, "`t1`"),
    ("t1-inf", dict(t1=np.inf), ValueError, "`t1`"),
    ("saveat-outside", dict(saveat=[0.5, 2.0]), ValueError, "`saveat`"),
    ("saveat-unsorted", dict(saveat=[0.5, 0.2]), ValueError, "`saveat`"),
    ("saveat-nan", dict(saveat=[0.5, np.nan]), ValueError, "`saveat`"),
    ("saveat-2d", dict(saveat=[[0.5]]), ValueError, "`saveat`"),
    ("saveat-empty", dict(saveat=[]), ValueError, "`saveat`"),
    ("atol-scale-zero", dict(atol_scale=0.0), ValueError, "`atol_scale`"),
    ("atol-scale-nan", dict(atol_scale=np.nan), ValueError, "`atol_scale`"),
    ("error-floor-negative", dict(error_floor=-1.0), ValueError, "`error_floor`"),
    ("max-events-zero", dict(max_events=0), ValueError, "`max_events`"),
    ("max-steps-float", dict(max_steps=10.5), ValueError, "`max_steps`"),
    ("quantity-number", dict(quantity=3), TypeError, "`quantity`"),
    (
        "numpy-field-number",
        dict(numpy_vector_field=3),
        TypeError,
        "`numpy_vector_field`",
    ),
    ("events-number", dict(events=[3]), TypeError, "`events`"),
    (
        "reference-other-shape",
        dict(reference=benchmarking.Reference(y_final=np.ones(3))),
        ValueError,
        r"reference.y_final",
    ),
]


@pytest.mark.parametrize(
    "changes, error, match",
    [case[1:] for case in PROBLEM_CASES],
    ids=[case[0] for case in PROBLEM_CASES],
)
def test_benchmark_problem_bad_input(changes, error, match):
    with pytest.raises(error, match=match):
        problem(**changes)


REFERENCE_CASES = [
    ("y-final-nan", dict(y_final=[np.nan]), ValueError, "`y_final` must be finite"),
    ("y-final-string", dict(y_final="a"), TypeError, "`y_final`"),
    ("y-final-none", dict(y_final=None), TypeError, "`y_final`"),
    ("y-final-2d", dict(y_final=[[1.0]]), ValueError, "`y_final`"),
    ("ys-inf", dict(y_final=[1.0], ys=[[np.inf]]), ValueError, "`ys`"),
    ("events-nan", dict(y_final=[1.0], event_times=[np.nan]), ValueError, "event_"),
    ("gradient-nan", dict(y_final=[1.0], gradient=[np.nan]), ValueError, "gradient"),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in REFERENCE_CASES],
    ids=[case[0] for case in REFERENCE_CASES],
)
def test_reference_bad_input(arguments, error, match):
    with pytest.raises(error, match=match):
        benchmarking.Reference(**arguments)


GOOD_REFERENCE = benchmarking.Reference(y_final=np.ones(2))

BENCHMARK_CASES = [
    ("problem-name", dict(problem="rober"), TypeError, "`problem`"),
    ("solvers-empty", dict(solvers=[]), ValueError, "`solvers` is empty"),
    ("solvers-none", dict(solvers=None), TypeError, "`solvers`"),
    ("solvers-number", dict(solvers=3), TypeError, "`solvers`"),
    ("solver-unknown", dict(solvers=["Tsit6"]), ValueError, "Unknown solver 'Tsit6'"),
    ("solver-twice", dict(solvers=["Tsit5", "Tsit5"]), ValueError, "more than once"),
    ("solver-number", dict(solvers=[3]), TypeError, "solver"),
    ("tolerances-empty", dict(tolerances=[]), ValueError, "`tolerances` is empty"),
    ("tolerances-none", dict(tolerances=None), TypeError, "`tolerances`"),
    ("tolerances-string", dict(tolerances="1e-3"), TypeError, "`tolerances`"),
    ("rtol-negative", dict(tolerances=[-1e-3]), ValueError, "rtol"),
    ("rtol-zero", dict(tolerances=[0.0]), ValueError, "rtol"),
    ("rtol-nan", dict(tolerances=[np.nan]), ValueError, "rtol"),
    ("rtol-above-one", dict(tolerances=[2.0]), ValueError, "rtol.*< 1"),
    ("rtol-bool", dict(tolerances=[True]), ValueError, "rtol"),
    ("atol-negative", dict(tolerances=[(1e-3, -1.0)]), ValueError, "atol"),
    ("tolerance-triple", dict(tolerances=[(1e-3, 1e-6, 1)]), ValueError, "pair"),
    ("repeats-zero", dict(repeats=0), ValueError, "`repeats`"),
    ("repeats-float", dict(repeats=2.0), ValueError, "`repeats`"),
    ("gradients-string", dict(gradients="yes"), TypeError, "`gradients`"),
    ("progress-none", dict(progress=None), TypeError, "`progress`"),
    ("reference-dict", dict(reference={"y_final": 1}), TypeError, "`reference`"),
    (
        "reference-other-shape",
        dict(reference=benchmarking.Reference(y_final=np.ones(5))),
        ValueError,
        "reference.y_final",
    ),
    ("reference-rtol-negative", dict(reference_rtol=-1.0), ValueError, "reference_rt"),
    (
        "reference-solver-unknown",
        dict(reference=None, reference_solver="foo"),
        ValueError,
        "Unknown solver 'foo'",
    ),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in BENCHMARK_CASES],
    ids=[case[0] for case in BENCHMARK_CASES],
)
def test_benchmark_bad_input(arguments, error, match):
    arguments = {
        "problem": LV.replace(reference=None),
        "solvers": [NeverRuns()],
        "tolerances": [1e-3],
        "reference": GOOD_REFERENCE,
        "progress": False,
        **arguments,
    }
    with pytest.raises(error, match=match):
        benchmarking.benchmark(
            arguments.pop("problem"),
            arguments.pop("solvers"),
            arguments.pop("tolerances"),
            **arguments,
        )


OTHER_CASES = [
    ("problem-int", lambda: benchmarking.benchmark_problem(3), TypeError, "`name`"),
    (
        "problem-list",
        lambda: benchmarking.benchmark_problem(["rober"]),
        TypeError,
        "`name`",
    ),
    (
        "problem-misspelt",
        lambda: benchmarking.benchmark_problem("robr"),
        ValueError,
        "Did you mean 'rober'",
    ),
    ("suite-kind", lambda: benchmarking.benchmark_suite("fast"), ValueError, "`kind`"),
    (
        "reference-problem",
        lambda: benchmarking.compute_reference("rober"),
        TypeError,
        "problem",
    ),
    (
        "reference-rtol",
        lambda: benchmarking.compute_reference(LV, rtol=0.0),
        ValueError,
        "rtol",
    ),
    (
        "reference-fd-step",
        lambda: benchmarking.compute_reference(LV, gradient=True, fd_step=-1.0),
        ValueError,
        "`fd_step`",
    ),
    (
        "reference-gradient-flag",
        lambda: benchmarking.compute_reference(LV, gradient="yes"),
        TypeError,
        "`gradient`",
    ),
    ("scipy-method", lambda: benchmarking.ScipySolver("rk45"), ValueError, "`method`"),
    ("cvode-method", lambda: benchmarking.CVODESolver("bdf"), ValueError, "`method`"),
    (
        "odeinfer-solver",
        lambda: benchmarking.OdeinferSolver("Tsit5"),
        TypeError,
        "`solver`",
    ),
    (
        "odeinfer-adjoint",
        lambda: benchmarking.OdeinferSolver(diffrax.Tsit5(), adjoint="forward"),
        TypeError,
        "`adjoint`",
    ),
    (
        "odeinfer-name",
        lambda: benchmarking.OdeinferSolver(diffrax.Tsit5(), name=3),
        TypeError,
        "`name`",
    ),
    ("replace-unknown", lambda: LV.replace(tol=1.0), TypeError, "tol"),
    (
        "results-plus-number",
        lambda: benchmarking.BenchmarkResults([]) + 3,
        TypeError,
        "\\+",
    ),
    (
        "results-plot-column",
        lambda: benchmarking.BenchmarkResults([]).plot(x="speed"),
        ValueError,
        "`x`",
    ),
    (
        "results-plot-problem",
        lambda: benchmarking.BenchmarkResults([{"problem": "lv"}]).plot(
            problem="rober"
        ),
        ValueError,
        "`problem`",
    ),
]


@pytest.mark.parametrize(
    "call, error, match",
    [case[1:] for case in OTHER_CASES],
    ids=[case[0] for case in OTHER_CASES],
)
def test_suite_solvers_and_results_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


CLI_CASES = [
    ("rtols-negative", ["rober", "--rtols", "-1"], "--rtols"),
    ("rtols-nan", ["rober", "--rtols", "nan"], "--rtols"),
    ("rtols-word", ["rober", "--rtols", "tight"], "--rtols"),
    ("rtols-one", ["rober", "--rtols", "1"], "--rtols"),
    ("repeats-zero", ["rober", "--repeats", "0"], "--repeats"),
    ("unknown-problem", ["lotka_volterra", "nosuch"], "'nosuch'"),
    ("unknown-solver", ["rober", "--solvers", "Tsit6"], "'Tsit6'"),
    ("no-problem", [], "PROBLEM"),
]


@pytest.mark.parametrize(
    "argv, match",
    [case[1:] for case in CLI_CASES],
    ids=[case[0] for case in CLI_CASES],
)
def test_cli_bad_input(monkeypatch, capsys, argv, match):
    monkeypatch.setattr(benchmarking.OdeinferSolver, "prepare", refuse_to_run)
    monkeypatch.setattr(benchmarking.ScipySolver, "prepare", refuse_to_run)
    try:
        code = main(["bench", *argv, "--quiet"])
    except SystemExit as exit:  # argparse rejects the value
        code = exit.code
    assert code == 2
    assert match in capsys.readouterr().err


def test_cli_output_folder_that_cannot_be_made(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(benchmarking.OdeinferSolver, "prepare", refuse_to_run)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["bench", "logistic_threshold", "--out", str(blocker / "x"), "--quiet"])
    assert code == 2
    assert "--out" in capsys.readouterr().err
