"""Multistart fits of PEtab benchmark problems reach the best values published by
Hass et al. 2019 (Bioinformatics 35(17):3073; `hass2019_general_info` in the
collection overview), within 0.1 in log-likelihood. Slow: minutes each."""

import importlib.util
import json
import os

import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")
from _paths import PETAB  # noqa: E402  (tests/data/petab)

import odeinfer as oi  # noqa: E402
import odeinfer.petab as petab  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.isdir(PETAB), reason="no PEtab benchmark data"),
    pytest.mark.filterwarnings("ignore:The 'float_precision' argument is deprecated"),
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame"),
    pytest.mark.slow,
]


def published_best(name: str) -> float:
    """Hass 2019's field labelled '2*Log-likelihood' is −2·log L for lin-scale data
    (the overview's note), so the best log-likelihood is minus half of it."""
    with open(os.path.join(PETAB, "benchmark_collection_overview.json")) as f:
        models = {m["problem_id"]: m for m in json.load(f)["models"]}
    info = models[name]["hass2019_general_info"]
    assert info["log_scale_obs"] == "no"
    return -0.5 * info["reported_neg2loglik_field_labelled_2xLogLik"]


def away_from_the_optimum(problem) -> oi.Parameters:
    """The nominal values are the published optimum: start from the middle of the
    bounds instead (multistart's first start is the parameters' `init`), the others
    uniform within the bounds."""
    return oi.Parameters(
        {n: oi.Bounded(s.lower, s.upper) for n, s in problem.parameters.specs.items()}
    )


# BFGS on the logit scale of the bounds, through `problem.log_likelihood`. Fujita is not
# here: 8 BFGS starts (1,000 iterations, uniform in its 16-decade bounds) all stop at
# local optima between log L = -1041 and -10011 against the published 53.09 (the logit
# transform flattens the objective near the bounds, where its scaling parameters sit).
@pytest.mark.parametrize("name, n_starts", [("Boehm_JProteomeRes2014", 8)])
def test_multistart_reaches_published_best(name, n_starts):
    problem = petab.load(os.path.join(PETAB, name, f"{name}.yaml"))
    away = away_from_the_optimum(problem)
    result = oi.multistart(
        problem.log_likelihood,
        n_starts,
        key=0,
        parameters=away,
        batch_size=1,
        throw=False,
    )
    best = float(np.max(np.asarray(result.log_objective)))
    target = published_best(name)
    # Reaching it: within 0.1 (not beyond it by more than solver noise either; a value
    # far above the published optimum would mean a different objective).
    assert best >= target - 0.1, (best, target)
    assert best <= target + 0.1, (best, target)
    # The best fit's parameters stay within the table's bounds (PEtab scale).
    for name_, value in result.best.params.items():
        spec = away.specs[name_]
        assert spec.lower <= float(value) <= spec.upper


# Bounded least squares on the box, the problem passed as itself. The start counts are
# those of seed 0 that include a start reaching the optimum (measured with
# benchmarks/petab_multistart.py: trust-region reflective, start 6 of 20, unconverged
# after 1,000 evaluations at -138.262; Fides, starts 28, 80, 92, 93 of 100, 53 evaluations per start). pyPESTO +
# Fides reached it in 3 of 100 starts (benchmarks/results/amici_peer_multistart.json).
@pytest.mark.parametrize(
    "solver, n_starts",
    [
        (oi.TrustRegionReflective(), 8),
        pytest.param(
            oi.Fides(),
            30,
            marks=pytest.mark.skipif(
                importlib.util.find_spec("fides") is None, reason="no fides package"
            ),
        ),
        # The compiled Fides algorithm: the same starts reach it (28 first).
        (oi.InteriorTrustRegion(), 30),
    ],
    ids=["trust-region-reflective", "fides", "interior-trust-region"],
)
def test_boehm_least_squares_multistart_reaches_published_best(solver, n_starts):
    name = "Boehm_JProteomeRes2014"
    problem = petab.load(os.path.join(PETAB, name, f"{name}.yaml"))
    away = away_from_the_optimum(problem)
    result = oi.multistart(
        problem,
        n_starts,
        key=0,
        parameters=away,
        solver=solver,
        max_steps=1000,
        throw=False,
    )
    assert result.best.solver == type(solver).__name__
    target = published_best(name)
    # The best start, converged or not (pyPESTO's choice): the trust-region reflective
    # start that gets there is still creeping along the bounds after 1,000 evaluations.
    best = float(np.max(np.asarray(result.log_objective)))
    assert target - 0.1 <= best <= target + 0.1, (best, target)
    # The log-likelihood reported is the problem's own at the reported parameters.
    value = float(result.best.log_likelihood)
    assert float(problem.log_likelihood(result.best.estimates)) == pytest.approx(value)
    for name_, value in result.best.estimates.items():
        assert away.specs[name_].lower < float(value) < away.specs[name_].upper


@pytest.mark.skipif(
    importlib.util.find_spec("fides") is None, reason="no fides package"
)
def test_fujita_fides_multistart_reaches_published_best():
    """Fujita's 19 parameters over 16 decades: start 13 of seed 0 reaches 53.0916
    (benchmarks/petab_multistart.py: after 16.5 min of starts on 2 cores at a load
    average of 7; pyPESTO + Fides + AMICI reached 66.58 in 2 of 100 starts, the first
    after 703 s on 2 workers). Very slow: 10-20 minutes."""
    name = "Fujita_SciSignal2010"
    problem = petab.load(os.path.join(PETAB, name, f"{name}.yaml"))
    result = oi.multistart(
        problem,
        14,
        key=0,
        parameters=away_from_the_optimum(problem),
        solver=oi.Fides(),
        max_steps=1000,
        throw=False,
    )
    best = float(np.max(np.asarray(result.log_objective)))
    # At least the published value (pyPESTO found optima up to 66.58 above it).
    assert best >= published_best(name) - 0.1, best
