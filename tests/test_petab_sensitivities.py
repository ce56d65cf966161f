"""The PEtab states' derivatives with one sensitivity direction per estimated
parameter (`Simulator.states_and_jacobian`): on a small preequilibrated problem with a
closed-form solution, `jax.grad` of the log-likelihood and `jax.jacfwd` of the
residuals against float64 central differences of the closed form; on Brannmark
(slow), against the fused solvers' own fixed directions."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")
from _paths import PETAB  # noqa: E402

import odeinfer as oi  # noqa: E402
import odeinfer.petab as petab  # noqa: E402
from odeinfer.petab._likelihood import Simulator  # noqa: E402
from odeinfer.petab._problem import PEtabProblem  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'float_precision' argument is deprecated"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame"),
]

# X is made at rate k_syn·u and leaves at k_deg, turning into Y at k_conv; Y decays at
# k_ydeg. Linear, so the solution is in closed form.
SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="two_pools">
    <listOfCompartments>
      <compartment id="cell" size="1" constant="true" spatialDimensions="3"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="cell" initialConcentration="0"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="Y" compartment="cell" initialConcentration="0"
        hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k_syn" value="1" constant="true"/>
      <parameter id="k_deg" value="1" constant="true"/>
      <parameter id="k_conv" value="1" constant="true"/>
      <parameter id="k_ydeg" value="1" constant="true"/>
      <parameter id="u" value="1" constant="true"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="synthesis" reversible="false" fast="false">
        <listOfProducts>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>cell</ci><ci>k_syn</ci><ci>u</ci></apply>
        </math></kineticLaw>
      </reaction>
      <reaction id="degradation" reversible="false" fast="false">
        <listOfReactants>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>cell</ci><ci>k_deg</ci><ci>X</ci></apply>
        </math></kineticLaw>
      </reaction>
      <reaction id="conversion" reversible="false" fast="false">
        <listOfReactants>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <listOfProducts>
          <speciesReference species="Y" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>cell</ci><ci>k_conv</ci><ci>X</ci></apply>
        </math></kineticLaw>
      </reaction>
      <reaction id="decay" reversible="false" fast="false">
        <listOfReactants>
          <speciesReference species="Y" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>cell</ci><ci>k_ydeg</ci><ci>Y</ci></apply>
        </math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""

# log10 rates, a linear scale and an estimated initial X in the main condition.
PARAMETERS = {
    "k_syn": ("log10", 0.8),
    "k_deg": ("log10", 0.3),
    "k_conv": ("log10", 0.5),
    "k_ydeg": ("log10", 0.2),
    "scale_Y": ("lin", 2.0),
    "X0_stim": ("lin", 1.5),
}
TIMES = (0.5, 1.0, 2.0, 4.0)
NOISE = {"obs_X": 0.05, "obs_Y": 0.1}


def _write_problem(folder) -> str:
    """The problem's files: experiment 1 preequilibrated under u = 0.2, then
    stimulated (u = 1, X set to X0_stim, Y kept from the steady state), with a t = inf
    measurement; experiment 2 stimulated from the model's initial state (Y = 0)."""
    (folder / "model.xml").write_text(SBML)
    (folder / "conditions.tsv").write_text(
        "conditionId\tu\tX\npre\t0.2\tNaN\nstim\t1.0\tX0_stim\n"
    )
    rows = [
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate"
    ]
    for name, (scale, value) in PARAMETERS.items():
        nominal = 10.0**value if scale == "log10" else value
        rows.append(f"{name}\t{scale}\t1e-3\t1e3\t{nominal!r}\t1")
    (folder / "parameters.tsv").write_text("\n".join(rows) + "\n")
    (folder / "observables.tsv").write_text(
        "observableId\tobservableFormula\tnoiseFormula\n"
        f"obs_X\tX\t{NOISE['obs_X']}\nobs_Y\tscale_Y * Y\t{NOISE['obs_Y']}\n"
    )
    rng = np.random.default_rng(1)
    lines = ["observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime"
             "\tmeasurement"]  # fmt: skip
    for pre in ("pre", ""):
        for t in TIMES + ((math.inf,) if pre else ()):
            for observable in NOISE:
                value = 1.0 + rng.uniform(-0.5, 0.5)
                time = "inf" if math.isinf(t) else repr(t)
                lines.append(f"{observable}\t{pre}\tstim\t{time}\t{value!r}")
    (folder / "measurements.tsv").write_text("\n".join(lines) + "\n")
    (folder / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
        "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n"
    )
    return str(folder / "problem.yaml")


def _closed_form_states(x: np.ndarray, preequilibrated: bool, t: float):
    """(X, Y) at `t` (inf: the steady state under u = 1)."""
    ks, kd, kc, ky = 10.0 ** x[:4]
    x0 = x[5]
    b = kd + kc
    y0 = kc * (ks * 0.2 / b) / ky if preequilibrated else 0.0
    a = ks * 1.0
    if math.isinf(t):
        return a / b, kc * a / (b * ky)
    X = a / b + (x0 - a / b) * math.exp(-b * t)
    Y = (
        kc * a / (b * ky) * (1 - math.exp(-ky * t))
        + kc * (x0 - a / b) * (math.exp(-b * t) - math.exp(-ky * t)) / (ky - b)
        + y0 * math.exp(-ky * t)
    )
    return X, Y


def _closed_form_residuals(x: np.ndarray, measurements) -> np.ndarray:
    out = {oid: [] for oid in NOISE}
    for _, row in measurements.iterrows():
        pre = isinstance(row["preequilibrationConditionId"], str)
        X, Y = _closed_form_states(x, pre, float(row["time"]))
        simulation = X if row["observableId"] == "obs_X" else x[4] * Y
        oid = row["observableId"]
        out[oid].append((row["measurement"] - simulation) / NOISE[oid])
    return np.concatenate([np.asarray(out[oid]) for oid in NOISE])


def _central(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    columns = []
    for i in range(x.shape[0]):
        step = np.zeros_like(x)
        step[i] = h
        columns.append((fn(x + step) - fn(x - step)) / (2 * h))
    return np.stack(columns, axis=-1)


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory):
    return _write_problem(tmp_path_factory.mktemp("two_pools"))


def _with_directions(problem: PEtabProblem, directions: str) -> PEtabProblem:
    s = problem._simulator
    simulator = Simulator(
        s.sbml, s.layout, s.groups, s.solver, s.rtol, s.atol, s.max_steps,
        directions=directions,
    )  # fmt: skip
    return PEtabProblem(problem._tables, problem.sbml, simulator, 0.0)


@pytest.mark.parametrize("error_control", [False, True])
def test_preequilibrated_derivatives_match_the_closed_form(problem_file, error_control):
    """`jax.grad` of the log-likelihood and `jax.jacfwd` of the residuals against
    central differences (h = 1e-6, float64) of the closed-form solution: the
    preequilibrated steady state's derivative (implicit function theorem), the
    species override's (X0_stim) and the t = inf steady state's all enter."""
    solver = oi.FusedRodas5P(sensitivity_error_control=error_control)
    problem = petab.load(problem_file, solver=solver, rtol=1e-10, atol=1e-12)
    assert problem._simulator.estimated_directions  # "auto": preequilibrated
    names = list(problem.nominal)
    assert names == list(PARAMETERS)
    x = np.array([problem.nominal[n] for n in names])
    measurements = problem.measurements
    expected_r = _central(lambda v: _closed_form_residuals(v, measurements), x)
    # log L = constant − ½‖r‖² (fixed σ).
    r0 = _closed_form_residuals(x, measurements)
    expected_grad = -expected_r.T @ r0

    def llh(v):
        return problem.log_likelihood(dict(zip(names, v, strict=True)))

    def residuals(v):
        return problem.residuals(dict(zip(names, v, strict=True)))

    np.testing.assert_allclose(residuals(jnp.asarray(x)), r0, rtol=0, atol=1e-8)
    grad = np.asarray(jax.grad(llh)(jnp.asarray(x)))
    # Measured: 7.5e-11 relative (|g| 500-31,000), the Jacobian 1.3e-8 absolute
    # (entries up to 112; the central differences' own noise ~1e-8).
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-8)
    jacobian = np.asarray(jax.jacfwd(residuals)(jnp.asarray(x)))
    np.testing.assert_allclose(jacobian, expected_r, rtol=0, atol=1e-7)
    # The fused solvers' own derivative (fixed directions) agrees.
    fixed = _with_directions(problem, "solver")
    assert not fixed._simulator.estimated_directions
    grad_fixed = jax.grad(
        lambda v: fixed.log_likelihood(dict(zip(names, v, strict=True)))
    )(jnp.asarray(x))
    np.testing.assert_allclose(grad, np.asarray(grad_fixed), rtol=1e-8)


@pytest.mark.slow
def test_preequilibrated_hessian_matches_the_closed_form(problem_file):
    """`jax.hessian` (forward over reverse: through the Jacobian's own solve and the
    steady state's second derivative) against central differences of central
    differences (h = 1e-4) of the closed form. Measured: 8.2e-8 relative to the
    largest entry, with either directions; 40 s, mostly compilation."""
    problem = petab.load(problem_file, rtol=1e-10, atol=1e-12)
    names = list(problem.nominal)
    x = np.array([problem.nominal[n] for n in names])
    measurements = problem.measurements

    def closed_form_llh(v):
        r = _closed_form_residuals(v, measurements)
        return -0.5 * r @ r

    expected = _central(lambda v: _central(closed_form_llh, v, 1e-4), x, 1e-4)
    hessian = jax.hessian(
        lambda v: problem.log_likelihood(dict(zip(names, v, strict=True)))
    )(jnp.asarray(x))
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(np.asarray(hessian), expected, rtol=0, atol=1e-6 * scale)


def test_auto_takes_the_fixed_directions_where_they_are_as_few(problem_file):
    """Boehm: six estimated parameters reach the model, which reads six that move
    and no initial state that moves: the fused solvers' own derivative."""
    boehm = os.path.join(PETAB, "Boehm_JProteomeRes2014", "Boehm_JProteomeRes2014.yaml")
    if not os.path.exists(boehm):
        pytest.skip("no PEtab benchmark data")
    simulator = petab.load(boehm)._simulator
    assert simulator.reaching.size == 6
    assert not simulator.estimated_directions
    with pytest.raises(ValueError, match="`directions` must be"):
        s = simulator
        Simulator(s.sbml, s.layout, s.groups, s.solver, 1e-8, 1e-8, 10, "x")


@pytest.mark.slow
def test_brannmark_estimated_directions_agree_with_the_fixed_ones():
    """Brannmark (eight experiments from one preequilibration): at the default
    settings both take the steps of the state's error test, so the gradients with
    one direction per estimated parameter and with the fused solvers' 26 fixed
    directions differ only by rounding and the steady state's linear solve
    (measured: 3.0e-9 relative, 4.4e-11 absolute, |g| up to 0.22)."""
    name = "Brannmark_JBC2010"
    path = os.path.join(PETAB, name, f"{name}.yaml")
    if not os.path.exists(path):
        pytest.skip("no PEtab benchmark data")
    problem = petab.load(path)
    assert problem._simulator.estimated_directions
    fixed = _with_directions(problem, "solver")
    names = list(problem.nominal)
    x = jnp.asarray([problem.nominal[n] for n in names])

    def grad_of(p):
        return np.asarray(
            jax.grad(lambda v: p.log_likelihood(dict(zip(names, v, strict=True))))(x)
        )

    new, old = grad_of(problem), grad_of(fixed)
    np.testing.assert_allclose(new, old, rtol=1e-7, atol=1e-9 * np.max(np.abs(old)))
