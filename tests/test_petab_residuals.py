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


def test_fisher_from_noise_residuals_closed_form():
    """The formula on its own: μ_i(θ) = θ0 exp(−θ1 t_i), σ_i(θ) = θ2 (1 + t_i) for the
    first rows (estimated σ, with noise residuals) and fixed σ = 0.3 for the others;
    against Σ ∇μ∇μᵀ/σ² + 2 ∇σ∇σᵀ/σ² from the hand-written gradients."""
    import jax

    from odeinfer.petab._objective import fisher_from_noise_residuals

    t = jnp.linspace(0.0, 2.0, 6)
    d = jnp.array([1.1, 0.7, 0.55, 0.3, 0.25, 0.12])
    noisy = np.array([0, 1, 2, 3])  # rows whose σ is estimated
    theta = jnp.array([1.2, 0.9, 0.15])

    def parts(th):
        mu = th[0] * jnp.exp(-th[1] * t)
        sigma = jnp.where(jnp.arange(6) < 4, th[2] * (1 + t), 0.3)
        return mu, sigma

    def residuals(th):
        mu, sigma = parts(th)
        s = jnp.sqrt(jnp.log(2 * jnp.pi * sigma[noisy] ** 2) + 50.0)
        return jnp.concatenate([(d - mu) / sigma, s])

    info = fisher_from_noise_residuals(
        residuals(theta), jax.jacfwd(residuals)(theta), noisy
    )
    mu, sigma = parts(theta)
    e = np.exp(-theta[1] * t)
    d_mu = np.stack([e, -theta[0] * t * e, np.zeros(6)], axis=1)
    d_sigma = np.stack(
        [np.zeros(6), np.zeros(6), np.where(np.arange(6) < 4, 1 + t, 0.0)], axis=1
    )
    a, b = d_mu / sigma[:, None], d_sigma / sigma[:, None]
    np.testing.assert_allclose(info, a.T @ a + 2 * b.T @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_boehm_fisher_information_against_finite_differences_of_the_table():
    """With estimated σ, the Fisher information read from the data and noise residuals
    and their Jacobian equals Σ ∇μ∇μᵀ/σ² + 2 ∇σ∇σᵀ/σ² per measurement row, with ∇μ and
    ∇σ from central differences of the simulation table's `simulation` and `sigma`
    columns (Boehm's observables are linear)."""
    import jax

    problem = petab.load(yaml_of(BOEHM))
    names = list(problem.nominal)
    x = np.array([problem.nominal[n] for n in names])

    def r_of(v):
        return problem.residuals(dict(zip(names, v, strict=True)))

    v = jnp.asarray(x)
    info = np.asarray(problem.fisher_information(r_of(v), jax.jacfwd(r_of)(v)))

    def table(v):
        frame = problem.simulation_table(dict(zip(names, v, strict=True)))
        return frame["simulation"].to_numpy(), frame["sigma"].to_numpy()

    mu, sigma = table(x)
    h = 1e-5
    d_mu, d_sigma = [], []
    for i in range(len(names)):
        step = np.zeros_like(x)
        step[i] = h
        (mu_up, s_up), (mu_dn, s_dn) = table(x + step), table(x - step)
        d_mu.append((mu_up - mu_dn) / (2 * h))
        d_sigma.append((s_up - s_dn) / (2 * h))
    a = np.array(d_mu).T / sigma[:, None]
    b = np.array(d_sigma).T / sigma[:, None]
    reference = a.T @ a + 2.0 * b.T @ b
    np.testing.assert_allclose(
        info, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max()
    )
    assert np.all(np.linalg.eigvalsh(info) > 0)
