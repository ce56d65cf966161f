"""`petab/_groups.py`: observables that differ only in the names of their own
placeholders are evaluated as one. Keys on small formulas, and Boehm with one observable
split into three that share a formula but read their own placeholder values in every
row: its log-likelihood is AMICI's reference shifted by a closed-form constant, its
residuals, simulations, σ and gradient those of the original problem row by row."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")
pd = pytest.importorskip("pandas")
from _paths import PETAB  # noqa: E402  (tests/data/petab)
from petab.v1.observables import get_formula_placeholders  # noqa: E402

import odeinfer.petab as petab  # noqa: E402
from odeinfer.petab._groups import group_key  # noqa: E402
from odeinfer.petab._tables import Observable  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.isdir(PETAB), reason="no PEtab benchmark data"),
    pytest.mark.filterwarnings("ignore:The 'float_precision' argument is deprecated"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame"),
]

BOEHM = "Boehm_JProteomeRes2014"


def observable(oid, formula, noise, transformation="lin", distribution="normal"):
    return Observable(
        oid,
        formula,
        noise,
        transformation,
        distribution,
        tuple(get_formula_placeholders(formula, oid, "observable")),
        tuple(get_formula_placeholders(noise, oid, "noise")),
    )


def test_keys_equal_only_up_to_own_placeholders():
    a = observable(
        "A",
        "observableParameter1_A * (x + 2*y) + observableParameter2_A",
        "noiseParameter1_A * A",
    )
    b = observable(
        "B",
        "observableParameter1_B*(x+2*y)+observableParameter2_B",
        "noiseParameter1_B * B",
    )
    assert group_key(a) == group_key(b)
    # Placeholders swapped, another constant, another species, another transform or
    # distribution, another observable's placeholder, the noise reading another
    # observable: each a different formula.
    different = [
        observable(
            "C",
            "observableParameter2_C * (x + 2*y) + observableParameter1_C",
            "noiseParameter1_C * C",
        ),
        observable(
            "C",
            "observableParameter1_C * (x + 3*y) + observableParameter2_C",
            "noiseParameter1_C * C",
        ),
        observable(
            "C",
            "observableParameter1_C * (x + 2*z) + observableParameter2_C",
            "noiseParameter1_C * C",
        ),
        b._replace(transformation="log"),
        b._replace(distribution="laplace"),
        b._replace(noise_formula="noiseParameter1_B * A"),
    ]
    for other in different:
        assert group_key(other) != group_key(a), other
    # Numbers are whole tokens: 1e-3 is not 1e-4, 2.5 is not 2.50 (kept apart:
    # grouping never needs to prove two spellings equal).
    assert group_key(b._replace(formula="1e-3 * x")) != group_key(
        b._replace(formula="1e-4 * x")
    )
    assert group_key(b._replace(formula="2.5 * x")) != group_key(
        b._replace(formula="2.50 * x")
    )


# The Boehm copy: pSTAT5A_rel scaled by a per-row placeholder c (data, prediction and
# σ), its rows dealt to itself and two copies with c = 1, 2, 0.5. A normal density
# of c·m around c·μ with σ' = c·σ is the original's divided by c: the log-likelihood
# is AMICI's minus Σ log c, every standardised residual is unchanged.
SCALES = {"pSTAT5A_rel": 1.0, "copyA": 2.0, "copyB": 0.5}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    folder = tmp_path_factory.mktemp("groups") / BOEHM
    shutil.copytree(os.path.join(PETAB, BOEHM), folder)
    (obs_path,) = folder.glob("observables_*.tsv")
    (meas_path,) = folder.glob("measurementData_*.tsv")
    obs = pd.read_csv(obs_path, sep="\t", dtype=str, keep_default_na=False)
    meas = pd.read_csv(meas_path, sep="\t", dtype=str, keep_default_na=False)
    (base,) = obs.index[obs["observableId"] == "pSTAT5A_rel"]
    formula = obs.loc[base, "observableFormula"]
    rows = [obs.loc[: base - 1]]
    copies = []
    for oid in SCALES:
        row = obs.loc[[base]].copy()
        row["observableId"] = oid
        row["observableFormula"] = f"observableParameter1_{oid} * ({formula})"
        row["noiseFormula"] = f"noiseParameter1_{oid} * noiseParameter2_{oid}"
        (rows if oid == "pSTAT5A_rel" else copies).append(row)
    obs = pd.concat(rows + [obs.loc[base + 1 :]] + copies, ignore_index=True)
    obs.to_csv(obs_path, sep="\t", index=False)
    index = np.flatnonzero(meas["observableId"] == "pSTAT5A_rel")
    scale = np.ones(len(meas))
    for k, r in enumerate(index):
        oid = list(SCALES)[k % 3]
        c = SCALES[oid]
        meas.loc[r, "observableId"] = oid
        meas.loc[r, "measurement"] = repr(c * float(meas.loc[r, "measurement"]))
        meas.loc[r, "observableParameters"] = repr(c)
        meas.loc[r, "noiseParameters"] = f"{meas.loc[r, 'noiseParameters']};{c!r}"
        scale[r] = c
    meas.to_csv(meas_path, sep="\t", index=False)
    return petab.load(folder / f"{BOEHM}.yaml"), scale


@pytest.fixture(scope="module")
def original():
    return petab.load(os.path.join(PETAB, BOEHM, f"{BOEHM}.yaml"))


def table_order(problem) -> np.ndarray:
    """The measurement rows in the order of the residuals: observables in table order,
    each its rows in the measurement table's order."""
    m = problem.measurements
    ids = problem._tables.observables
    return np.concatenate([np.flatnonzero(m["observableId"] == oid) for oid in ids])


def test_split_observables_are_one_group(split):
    problem, _ = split
    members = [g.members for g in problem._simulator.groups]
    assert members == [
        ("pSTAT5A_rel", "copyA", "copyB"),
        ("pSTAT5B_rel",),
        ("rSTAT5A_rel",),
    ]


def test_split_log_likelihood_is_amici_reference_shifted(split, original):
    problem, scale = split
    with open(os.path.join(PETAB, "benchmark_collection_overview.json")) as stream:
        models = json.load(stream)["models"]
    (amici,) = [  # AMICI's log-likelihood at the nominal parameters
        m["amici_reference_llh_at_nominal"] for m in models if m["problem_id"] == BOEHM
    ]
    shift = -np.sum(np.log(scale))
    assert float(problem.log_likelihood(problem.nominal)) == pytest.approx(
        amici + shift, abs=1e-3
    )
    point = {k: v + 0.1 * np.cos(i) for i, (k, v) in enumerate(problem.nominal.items())}
    assert float(problem.log_likelihood(point)) == pytest.approx(
        float(original.log_likelihood(point)) + shift, abs=1e-9
    )
    names = list(problem.nominal)
    x = problem.vector(point)

    def grad(p):
        return jax.grad(lambda x: p.log_likelihood(dict(zip(names, x, strict=True))))(x)

    np.testing.assert_allclose(grad(problem), grad(original), rtol=1e-9, atol=1e-9)


def test_split_residuals_and_simulations_are_the_originals(split, original):
    problem, scale = split
    point = {k: v - 0.1 * np.sin(i) for i, (k, v) in enumerate(problem.nominal.items())}
    m = len(problem.measurements)
    by_row = {}
    for p in (problem, original):
        r = np.asarray(p.residuals(point))
        rows = np.empty(m)
        rows[table_order(p)] = r[:m]
        by_row[p] = rows
    np.testing.assert_allclose(by_row[problem], by_row[original], rtol=1e-9, atol=1e-9)
    got, want = problem.simulation_table(point), original.simulation_table(point)
    np.testing.assert_allclose(
        got["simulation"], scale * want["simulation"], rtol=1e-10
    )
    np.testing.assert_allclose(got["sigma"], scale * want["sigma"], rtol=1e-10)
    np.testing.assert_allclose(
        got["llh"], want["llh"] - np.log(scale), rtol=1e-10, atol=1e-12
    )


def test_unmeasured_observable_with_an_undefined_id_is_named(tmp_path):
    """Only measured observables are grouped, but every formula is checked at import
    and its error names its own observable."""
    folder = tmp_path / BOEHM
    shutil.copytree(os.path.join(PETAB, BOEHM), folder)
    (obs_path,) = folder.glob("observables_*.tsv")
    obs = pd.read_csv(obs_path, sep="\t", dtype=str, keep_default_na=False)
    extra = obs.iloc[[0]].copy()
    extra["observableId"] = "unmeasured"
    extra["observableFormula"] = "2 * nowhere_defined"
    extra["noiseFormula"] = "1"
    pd.concat([obs, extra], ignore_index=True).to_csv(obs_path, sep="\t", index=False)
    with pytest.raises(petab.PEtabError, match=r"observable 'unmeasured'.*nowhere"):
        petab.load(folder / f"{BOEHM}.yaml")
