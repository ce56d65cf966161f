"""`odeinfer.petab`: PEtab problems of the benchmark collection against AMICI's
reference log-likelihoods, the collection's simulation tables and central finite
differences; malformed problems refused by name (file and row or id) before any
compilation."""

import functools
import glob
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")
pd = pytest.importorskip("pandas")
# The PEtab benchmark collection is copied into tests/data/petab (tests/_paths.py).
from _paths import PETAB  # noqa: E402

import odeinfer.petab as petab  # noqa: E402
from odeinfer.petab import PEtabError  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not os.path.isdir(PETAB), reason=f"no PEtab benchmark data at {PETAB}"
    ),
    # The petab library's own pandas deprecations, on every table it reads.
    pytest.mark.filterwarnings("ignore:The 'float_precision' argument is deprecated"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame"),
]

BOEHM = "Boehm_JProteomeRes2014"


def yaml_of(name: str) -> str:
    return os.path.join(PETAB, name, f"{name}.yaml")


def amici_reference(name: str) -> float:
    """AMICI's log-likelihood at the nominal parameters (the collection overview)."""
    with open(os.path.join(PETAB, "benchmark_collection_overview.json")) as stream:
        models = json.load(stream)["models"]
    (entry,) = [m for m in models if m["problem_id"] == name]
    return float(entry["amici_reference_llh_at_nominal"])


def table(name: str, prefix: str) -> "pd.DataFrame":
    (path,) = glob.glob(os.path.join(PETAB, name, f"{prefix}_*.tsv"))
    return pd.read_csv(path, sep="\t")


@functools.cache
def problem(name: str) -> petab.PEtabProblem:
    """One import (and so one compilation) per problem and test session."""
    return petab.load(yaml_of(name))


@pytest.fixture(scope="module")
def boehm():
    return problem(BOEHM)


def central_differences(fn, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(len(x)):
        step = np.zeros_like(x)
        step[i] = h
        out[i] = (float(fn(x + step)) - float(fn(x - step))) / (2 * h)
    return out


def check_gradient(
    p: petab.PEtabProblem,
    tolerance: float,
    *,
    reference: petab.PEtabProblem | None = None,
    h: float = 1e-5,
) -> float:
    """`jax.grad` of `p`'s log-likelihood (one jitted gradient) against central
    differences (step `h` on the PEtab scale, float64) of the compiled value of
    `reference` (default `p`), at the nominal parameters: the largest relative error,
    with a floor of 1e-2 on the denominator."""
    names = list(p.nominal)
    x0 = np.array([p.nominal[n] for n in names])

    def value(x, problem=p):
        return problem.log_likelihood(dict(zip(names, x, strict=True)))

    grad = np.asarray(jax.jit(jax.grad(value))(jnp.asarray(x0)))
    fd = central_differences(functools.partial(value, problem=reference or p), x0, h=h)
    assert np.all(np.isfinite(grad))
    error = np.max(np.abs(grad - fd) / np.maximum(np.abs(fd), 1e-2))
    assert error < tolerance, dict(zip(names, zip(grad, fd, strict=True), strict=True))
    return error


def compare_simulations(got: "pd.DataFrame", reference: "pd.DataFrame") -> None:
    """Row by row: same observable, condition and time, simulations within rel 1e-4."""
    assert len(got) == len(reference)
    for column in ("observableId", "simulationConditionId"):
        np.testing.assert_array_equal(
            got[column].astype(str).to_numpy(), reference[column].astype(str).to_numpy()
        )
    # (Borghans' measurement table rounds its times to 9 digits, simulatedData not.)
    np.testing.assert_allclose(
        got["time"].to_numpy(float), reference["time"].to_numpy(float), rtol=1e-6
    )
    np.testing.assert_allclose(
        got["simulation"].to_numpy(float),
        reference["simulation"].to_numpy(float),
        rtol=1e-4,
        atol=1e-12,
    )


# --- Boehm_JProteomeRes2014: the default tier ----------------------------------------
def test_boehm_log_likelihood_matches_amici(boehm):
    """AMICI: -138.22199693517703 (measured |Δ| 7.5e-7)."""
    reference = amici_reference(BOEHM)
    llh = float(boehm.log_likelihood(boehm.nominal))
    assert llh == pytest.approx(reference, abs=1e-3)
    # No objective priors in the table: the posterior is the likelihood.
    assert float(boehm.log_prior(boehm.nominal)) == 0.0
    assert float(boehm.log_posterior(boehm.nominal)) == llh
    assert boehm.experiments == ((None, "model1_data1"),)


def test_boehm_gradient_matches_central_differences(boehm):
    """Measured max relative error 8e-5 to 1.1e-4 (FD truncation and solver noise)."""
    check_gradient(boehm, tolerance=1e-3)


def test_boehm_simulation_table_matches_the_collection(boehm):
    """The collection's simulatedData at the nominal parameters (rel 1e-4; measured
    5e-8); its noiseParameters column holds the nominal sigmas; the rows' llh terms sum
    to AMICI's value."""
    got = boehm.simulation_table()
    reference = table(BOEHM, "simulatedData")
    compare_simulations(got, reference)
    np.testing.assert_allclose(
        got["sigma"].to_numpy(), reference["noiseParameters"].to_numpy(float), rtol=1e-9
    )
    assert float(got["llh"].sum()) == pytest.approx(amici_reference(BOEHM), abs=1e-3)
    # Same rows and order as the measurement table.
    measurements = table(BOEHM, "measurementData")
    np.testing.assert_array_equal(
        got["observableId"].to_numpy(), measurements["observableId"].to_numpy()
    )


def test_boehm_parameters_scales_and_to_linear(boehm):
    """Estimated parameters in table order on their PEtab scale (log10 here), bounds
    from the table, `to_linear` back to the table's nominal values."""
    frame = table(BOEHM, "parameters").set_index("parameterId")
    estimated = frame[frame["estimate"] == 1]
    assert list(boehm.nominal) == list(estimated.index)
    assert tuple(boehm.parameters.specs) == tuple(estimated.index)
    assert set(estimated["parameterScale"]) == {"log10"}
    np.testing.assert_allclose(
        [boehm.nominal[p] for p in estimated.index],
        np.log10(estimated["nominalValue"].to_numpy()),
        rtol=1e-12,
    )
    for p, spec in boehm.parameters.specs.items():
        np.testing.assert_allclose(
            spec.bounds,
            np.log10(estimated.loc[p, ["lowerBound", "upperBound"]].to_numpy(float)),
            rtol=1e-12,
        )
    linear = boehm.to_linear(boehm.nominal)
    assert list(linear) == list(estimated.index)
    np.testing.assert_allclose(
        list(linear.values()), estimated["nominalValue"].to_numpy(), rtol=1e-12
    )
    shifted = boehm.to_linear({**boehm.nominal, "k_phos": 2.0})
    assert shifted["k_phos"] == pytest.approx(100.0, rel=1e-14)


def test_boehm_vector_names_what_is_wrong(boehm):
    x = boehm.vector(boehm.nominal)
    np.testing.assert_array_equal(x, list(boehm.nominal.values()))
    with pytest.raises(KeyError, match=r"\['k_nope'\] are not estimated parameters"):
        boehm.vector({**boehm.nominal, "k_nope": 1.0})
    # `ratio` and `specC17` are in the table with estimate = 0.
    with pytest.raises(KeyError, match=r"\['ratio'\] are fixed in the parameter table"):
        boehm.vector({**boehm.nominal, "ratio": 0.5})
    missing = {k: v for k, v in boehm.nominal.items() if k != "k_phos"}
    with pytest.raises(KeyError, match=r"lacks \['k_phos'\]"):
        boehm.vector(missing)
    with pytest.raises(KeyError, match=r"lacks \['k_phos'\]"):
        boehm.log_likelihood(missing)
    with pytest.raises(TypeError, match="must be a dict"):
        boehm.vector(np.asarray(x))


def test_boehm_priors_are_uniform_on_the_bounds(boehm):
    numpyro = pytest.importorskip("numpyro")
    priors = boehm.priors()
    assert list(priors) == list(boehm.nominal)
    for p, prior in priors.items():
        assert isinstance(prior, numpyro.distributions.Uniform), p
        lo, hi = boehm.parameters.specs[p].bounds
        assert (float(prior.low), float(prior.high)) == (lo, hi) == (-5.0, 5.0)


# --- malformed problems: refused by `load` before compiling ----------------------------
BOEHM_FILES = {
    "measurementData": "measurementData_Boehm_JProteomeRes2014.tsv",
    "observables": "observables_Boehm_JProteomeRes2014.tsv",
    "parameters": "parameters_Boehm_JProteomeRes2014.tsv",
    "experimentalCondition": "experimentalCondition_Boehm_JProteomeRes2014.tsv",
}


def boehm_copy(tmp_path) -> str:
    """The Boehm problem copied into tmp_path; returns the yaml's path."""
    source = os.path.join(PETAB, BOEHM)
    for name in os.listdir(source):
        if name.endswith((".yaml", ".tsv", ".xml")):
            shutil.copy(os.path.join(source, name), tmp_path)
    return str(tmp_path / f"{BOEHM}.yaml")


def edit(tmp_path, kind: str, fn) -> None:
    """Rewrites one table of the copy through `fn(frame)` (every cell a string)."""
    path = tmp_path / BOEHM_FILES[kind]
    frame = pd.read_csv(path, sep="\t", dtype=str)
    fn(frame)
    frame.to_csv(path, sep="\t", index=False)


def set_cell(column, value, *, row=None, where=None):
    """`fn(frame)` setting `column` to `value` in the row with index `row` (0-based
    data row, i.e. file line row + 2) or where `where(frame)` holds."""

    def fn(frame):
        mask = frame.index == row if where is None else where(frame)
        frame.loc[mask, column] = value

    return fn


def parameter(pid):
    return lambda frame: frame["parameterId"] == pid


def observable(oid):
    return lambda frame: frame["observableId"] == oid


MEAS = BOEHM_FILES["measurementData"]
OBS = BOEHM_FILES["observables"]
PARS = BOEHM_FILES["parameters"]
COND = BOEHM_FILES["experimentalCondition"]

CORRUPTIONS = {
    "unknown observableId": (
        [("measurementData", set_cell("observableId", "pSTAT5C_rel", row=5))],
        rf"{MEAS}, row 7: observableId 'pSTAT5C_rel' is not in the observable table",
    ),
    "unknown simulationConditionId": (
        [
            (
                "measurementData",
                set_cell("simulationConditionId", "model1_data9", row=10),
            )
        ],
        rf"{MEAS}, row 12: simulationConditionId 'model1_data9' is not in the condition "
        rf"table \({COND}\)",
    ),
    "unknown preequilibrationConditionId": (
        [("measurementData", set_cell("preequilibrationConditionId", "pre", row=0))],
        rf"{MEAS}, row 2: preequilibrationConditionId 'pre' is not in the condition table",
    ),
    "non-positive measurement of a log10 observable": (
        [
            (
                "observables",
                set_cell(
                    "observableTransformation", "log10", where=observable("pSTAT5B_rel")
                ),
            ),
            ("measurementData", set_cell("measurement", "-0.5", row=20)),
        ],
        rf"{MEAS}, row 22: measurement -0.5 of observable 'pSTAT5B_rel', whose "
        "observableTransformation is log10: a log-transformed measurement must be "
        "positive",
    ),
    "non-numeric measurement": (
        [("measurementData", set_cell("measurement", "high", row=3))],
        rf"{MEAS}, row 5: measurement 'high' is not a number",
    ),
    "non-numeric time": (
        [("measurementData", set_cell("time", "late", row=4))],
        rf"{MEAS}, row 6: time 'late' is not a number",
    ),
    "nominal value outside the bounds": (
        [("parameters", set_cell("nominalValue", "1e6", where=parameter("k_phos")))],
        rf"{PARS}, parameter 'k_phos': nominalValue 1000000.0 lies outside its bounds",
    ),
    "non-numeric nominal value": (
        [("parameters", set_cell("nominalValue", "fast", where=parameter("k_phos")))],
        rf"{PARS}, parameter 'k_phos': nominalValue 'fast' is not a number",
    ),
    "empty estimate": (
        [("parameters", set_cell("estimate", None, where=parameter("k_phos")))],
        rf"{PARS}, parameter 'k_phos': estimate must be 0 or 1; got nan",
    ),
    "unknown parameterScale": (
        [("parameters", set_cell("parameterScale", "ln", where=parameter("k_phos")))],
        rf"{PARS}, parameter 'k_phos': parameterScale 'ln'; use one of",
    ),
    "unknown condition column": (
        [("experimentalCondition", lambda frame: frame.insert(2, "Epo_dose", "1.0"))],
        rf"{COND}: column 'Epo_dose' is not an id the condition table can set",
    ),
    "condition value not in the parameter table": (
        [("experimentalCondition", lambda frame: frame.insert(2, "cyt", "k_fast"))],
        rf"{COND}, condition 'model1_data1', column 'cyt': 'k_fast' is neither a "
        "number nor a parameter of the parameter table",
    ),
    "condition column that is also in the parameter table": (
        [("experimentalCondition", lambda frame: frame.insert(2, "k_phos", "1.0"))],
        rf"{COND}: column 'k_phos' is also a row of the parameter table",
    ),
    "override not in the parameter table": (
        [("measurementData", set_cell("noiseParameters", "sd_pSTAT5C_rel", row=8))],
        rf"{MEAS}, row 10: noiseParameters refers to 'sd_pSTAT5C_rel', which is not in "
        rf"the parameter table \({PARS}\)",
    ),
    "wrong number of noiseParameters": (
        [("measurementData", set_cell("noiseParameters", "sd_pSTAT5A_rel;2.0", row=1))],
        rf"{MEAS}, row 3: noiseParameters gives 2 value\(s\) \['sd_pSTAT5A_rel', 2.0\] "
        r"but observable 'pSTAT5A_rel' has 1 placeholder",
    ),
    "unknown noiseDistribution": (
        [
            (
                "observables",
                set_cell(
                    "noiseDistribution", "cauchy", where=observable("rSTAT5A_rel")
                ),
            )
        ],
        rf"{OBS}, observable 'rSTAT5A_rel': noiseDistribution 'cauchy'",
    ),
    "observable formula with an undefined id": (
        [
            (
                "observables",
                set_cell(
                    "observableFormula",
                    "pApB + STAT5C",
                    where=observable("pSTAT5A_rel"),
                ),
            )
        ],
        rf"{OBS}, observable 'pSTAT5A_rel': .*references the id 'STAT5C'",
    ),
    "noise formula with an undefined id": (
        [
            (
                "observables",
                set_cell("noiseFormula", "sd_total", where=observable("pSTAT5B_rel")),
            )
        ],
        rf"{OBS}, observable 'pSTAT5B_rel': .*references the id 'sd_total'",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_malformed_table_is_refused_by_file_and_row(tmp_path, case):
    edits, message = CORRUPTIONS[case]
    path = boehm_copy(tmp_path)
    for kind, fn in edits:
        edit(tmp_path, kind, fn)
    with pytest.raises(PEtabError, match=message):
        petab.load(path)


def test_missing_yaml_is_refused(tmp_path):
    missing = str(tmp_path / "nowhere.yaml")
    with pytest.raises(PEtabError, match=f"no file '{missing}'"):
        petab.load(missing)


def test_missing_sbml_file_is_refused(tmp_path):
    path = boehm_copy(tmp_path)
    os.remove(tmp_path / f"model_{BOEHM}.xml")
    with pytest.raises(
        PEtabError,
        match=rf"{BOEHM}\.yaml: the sbml file 'model_{BOEHM}\.xml' does not exist",
    ):
        petab.load(path)


def test_format_version_2_is_refused(tmp_path):
    path = boehm_copy(tmp_path)
    with open(path) as stream:
        text = stream.read()
    assert "format_version: 1" in text
    with open(path, "w") as stream:
        stream.write(text.replace("format_version: 1", "format_version: 2.0.0"))
    with pytest.raises(
        PEtabError,
        match=rf"{BOEHM}\.yaml: format_version 2\.0\.0; odeinfer imports PEtab v1",
    ):
        petab.load(path)


# --- the other reference problems: the slow tier -------------------------------------
REFERENCE_PROBLEMS = [
    "Borghans_BiophysChem1997",
    "Brannmark_JBC2010",
    "Elowitz_Nature2000",
    "Fujita_SciSignal2010",
    "Zheng_PNAS2012",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCE_PROBLEMS)
def test_log_likelihood_matches_amici(name):
    p = problem(name)
    assert float(p.log_likelihood(p.nominal)) == pytest.approx(
        amici_reference(name), abs=1e-3
    )


# Not here: Fujita's simulatedData comes from an older version of the problem (its
# conditions renamed model1_dataK; it gives llh 52.840 against AMICI's 53.084), and
# Zheng's and Perelson's simulatedData tables equal their measurements (they are not
# simulations).
@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["Borghans_BiophysChem1997", "Brannmark_JBC2010", "Elowitz_Nature2000"]
)
def test_simulation_table_matches_the_collection(name):
    compare_simulations(problem(name).simulation_table(), table(name, "simulatedData"))


@pytest.mark.slow
def test_blasi_simulation_table_matches_the_collection():
    """Blasi's simulatedData does not align with its measurement table row by row
    (288 rows against 252: one observable without measurements, 18 rows where three
    observables have 12), so the rows are matched by (observable, condition, time);
    all data are steady states of one condition, one simulation per key."""
    name = "Blasi_CellSystems2016"
    got = problem(name).simulation_table()
    reference = table(name, "simulatedData")
    keys = ["observableId", "simulationConditionId", "time"]
    per_key = reference.groupby(keys)["simulation"]
    assert float((per_key.max() - per_key.min()).abs().max()) == 0.0
    merged = got.merge(per_key.first().rename("expected").reset_index(), on=keys)
    assert len(merged) == len(got)
    np.testing.assert_allclose(
        merged["simulation"].to_numpy(), merged["expected"].to_numpy(), rtol=1e-4
    )


@pytest.mark.slow
def test_fujita_gradient_through_a_switch_dose_matches_central_differences():
    """Fujita's EGF input is `piecewise(EGF_0 + EGF_rate * time, time <= EGF_end, 0)`
    with EGF_end from the condition table: a dose on the switch flag in the fused
    solve. Central differences of this problem are noisy at the default tolerances
    (fused, rtol = atol = 1e-8, h = 1e-5: errors of order 1 in init_AKT), so they are
    taken on the same problem solved at rtol = atol = 1e-12 with h = 1e-4; the
    gradient at the default tolerances against those: max relative error 2.5e-3.
    (The switch times read no estimated parameter, so the doses' times carry no
    derivative; before that was so, `jax.grad` raised the fused solvers' "do not
    differentiate with respect to dose times" ValueError here.)"""
    name = "Fujita_SciSignal2010"
    p = problem(name)
    assert p.sbml.switches == ("time <= EGF_end",)
    assert not p.sbml.needs_crossings
    tight = petab.load(yaml_of(name), rtol=1e-12, atol=1e-12, max_steps=1_000_000)
    check_gradient(p, tolerance=1e-2, reference=tight, h=1e-4)


@pytest.mark.slow
def test_brannmark_gradient_with_preequilibration_matches_central_differences():
    """Brannmark: eight experiments from one preequilibration (solved once, its
    derivative by the implicit function theorem), two insulin doses, gradients one
    experiment after the other (the value vmapped). Against central differences of
    the problem at rtol = atol = 1e-12 (h = 1e-4): measured max relative error 2.5e-2
    (k1f; floor 1e-2), the same as before the experiments' derivatives were taken
    one after the other."""
    name = "Brannmark_JBC2010"
    p = problem(name)
    assert {pre for pre, _ in p.experiments} == {"Dose_0"}
    tight = petab.load(yaml_of(name), rtol=1e-12, atol=1e-12, max_steps=1_000_000)
    check_gradient(p, tolerance=5e-2, reference=tight, h=1e-4)


def test_objective_priors_against_scipy():
    # Raimundez_PCB2020 has parameterScaleNormal and laplace objective priors.
    from scipy import stats

    problem = petab.load(yaml_of("Raimundez_PCB2020"))
    frame = pd.read_csv(
        os.path.join(PETAB, "Raimundez_PCB2020", "parameters_Raimundez_PCB2020.tsv"),
        sep="\t",
    ).set_index("parameterId")
    x = dict(problem.nominal)
    expected = 0.0
    kinds = set()
    for pid, value in x.items():
        kind = frame.loc[pid, "objectivePriorType"]
        if not isinstance(kind, str):
            continue
        a, b = map(float, frame.loc[pid, "objectivePriorParameters"].split(";"))
        scale = frame.loc[pid, "parameterScale"]
        linear = {"lin": value, "log": np.exp(value), "log10": 10.0**value}[scale]
        kinds.add(kind)
        on_scale = kind.startswith("parameterScale")
        point = value if on_scale else linear
        family = stats.norm if kind.endswith(("Normal", "normal")) else stats.laplace
        expected += family(a, b).logpdf(point)
    assert kinds, "no objective priors found"
    assert float(problem.log_prior(x)) == pytest.approx(expected, rel=1e-10)
    # The sampling priors stay within the bounds (on the PEtab scale).
    priors = problem.priors()
    for pid, prior in priors.items():
        spec = problem.parameters.specs[pid]
        draws = np.asarray(prior.sample(jax.random.key(0), (200,)))
        assert np.all((draws >= spec.lower) & (draws <= spec.upper)), pid
