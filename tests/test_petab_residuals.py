"""`PEtabProblem.residuals`: `log_likelihood = constant − ½‖r‖²` with the constant
computed independently from the measurement table (Fujita: fixed σ; Boehm: estimated σ,
Data2Dynamics' noise residuals), at two parameter points; Laplace noise refused by
name before any compilation."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")
pd = pytest.importorskip("pandas")
from _paths import PETAB  # noqa: E402  (tests/data/petab)

import odeinfer as oi  # noqa: E402
import odeinfer.petab as petab  # noqa: E402
from odeinfer.petab import PEtabError  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.isdir(PETAB), reason="no PEtab benchmark data"),
    pytest.mark.filterwarnings("ignore:The 'float_precision' argument is deprecated"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame"),
]

BOEHM = "Boehm_JProteomeRes2014"
FUJITA = "Fujita_SciSignal2010"


def yaml_of(name: str) -> str:
    return os.path.join(PETAB, name, f"{name}.yaml")


def moved(problem, shift: float = 0.3) -> dict:
    """A second point: every estimated parameter moved by up to `shift` (PEtab scale)."""
    return {
        n: v + shift * np.sin(i + 1.0)
        for i, (n, v) in enumerate(problem.nominal.items())
    }


def test_boehm_residuals_with_estimated_sigma_give_the_log_likelihood():
    problem = petab.load(yaml_of(BOEHM))
    assert not problem.fisher_from_residuals  # σ is estimated: noise residuals
    n = len(problem.measurements)
    # lin observables: log L = Σ −½ log(2πσ²) − ½ e², and the noise residuals carry
    # ½ (log(2πσ²) + 50) each, so log L + ½‖r‖² = 25 n exactly.
    for params in (problem.nominal, moved(problem)):
        r = problem.residuals(params)
        assert r.shape == (2 * n,)
        llh = float(problem.log_likelihood(params))
        assert llh + 0.5 * float(jnp.sum(r**2)) == pytest.approx(25.0 * n, abs=1e-8)
    # The data residuals themselves: (measurement − simulation)/σ, row by row.
    table = problem.simulation_table(problem.nominal)
    expected = (problem.measurements["measurement"] - table["simulation"]) / table[
        "sigma"
    ]
    r = np.asarray(problem.residuals(problem.nominal))[:n]
    order = np.concatenate(
        [
            np.flatnonzero(problem.measurements["observableId"] == oid)
            for oid in dict.fromkeys(problem.measurements["observableId"])
        ]
    )
    np.testing.assert_allclose(np.sort(r), np.sort(expected.to_numpy()[order]), 1e-12)


def test_fujita_residuals_with_fixed_sigma_give_the_log_likelihood():
    problem = petab.load(yaml_of(FUJITA))
    assert problem.fisher_from_residuals
    sigma = pd.to_numeric(problem.measurements["noiseParameters"]).to_numpy()
    constant = float(np.sum(-0.5 * np.log(2.0 * np.pi * sigma**2)))
    for params in (problem.nominal, moved(problem)):
        r = problem.residuals(params)
        assert r.shape == (len(sigma),)
        llh = float(problem.log_likelihood(params))
        assert llh + 0.5 * float(jnp.sum(r**2)) == pytest.approx(constant, abs=1e-8)


def test_laplace_noise_has_no_residuals(tmp_path):
    folder = tmp_path / BOEHM
    shutil.copytree(os.path.join(PETAB, BOEHM), folder)
    (path,) = folder.glob("observables_*.tsv")
    frame = pd.read_csv(path, sep="\t")
    frame.loc[frame["observableId"] == "pSTAT5B_rel", "noiseDistribution"] = "laplace"
    frame.to_csv(path, sep="\t", index=False)
    problem = petab.load(folder / f"{BOEHM}.yaml")
    with pytest.raises(PEtabError, match=r"\['pSTAT5B_rel'\] have Laplace noise"):
        problem.residuals(problem.nominal)
    with pytest.raises(PEtabError, match="Laplace noise"):
        oi.fit(problem, solver=oi.TrustRegionReflective())
