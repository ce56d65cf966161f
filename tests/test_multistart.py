import jax
import numpy as np
import pytest
from _decay import closed_form_log_likelihood, noisy_data, problem
from scipy import optimize

import odeinfer as oi


def test_multistart_best_and_spread():
    # One test (not several sharing a fixture) so that pytest-xdist compiles once.
    data = noisy_data(0)
    p = problem(data)
    multi = oi.multistart(p, 8, key=jax.random.key(0))
    reference = optimize.minimize(
        lambda x: -closed_form_log_likelihood(x[0], x[1], data),
        x0=[1.0, 1.0],
        method="Nelder-Mead",
        options=dict(xatol=1e-10, fatol=1e-12, maxiter=4000),
    )
    assert float(multi.best.log_likelihood) == pytest.approx(-reference.fun, abs=1e-6)
    estimates = [float(multi.best.estimates[n]) for n in ("a", "k")]
    np.testing.assert_allclose(estimates, reference.x, rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(multi.best.covariance)))
    assert multi.starts.shape == (8, 2) and multi.optima.shape == (8, 2)
    # Row 0 is the initial value; the bounded parameter `a` is drawn inside (0, 5).
    np.testing.assert_allclose(
        multi.starts[0], p.parameters.to_unconstrained({"a": 1.0, "k": 1.0})
    )
    a_index = multi.names.index("a")
    a_starts = 5.0 / (1.0 + np.exp(-np.asarray(multi.starts[:, a_index])))
    assert np.all((a_starts > 0) & (a_starts < 5)) and np.ptp(a_starts) > 0.5
    assert multi.num_converged >= 6
    values = multi.sorted_log_objective
    assert np.all(np.diff(values) <= 0)
    assert values[0] == pytest.approx(-reference.fun, abs=1e-6)
    best_value, count = multi.clusters()[0]
    assert count >= 6 and best_value == pytest.approx(values[0])
    assert "starts converged" in multi.summary()

    # Clusters group equal optima (a hand-made spread).
    fake = type(multi)(
        best=multi.best,
        names=multi.names,
        starts=multi.starts[:5],
        optima=multi.optima[:5],
        log_objective=np.array([-10.0, -3.0, -3.0 + 1e-9, -np.inf, -10.0 - 1e-8]),
        converged=np.array([True, True, True, False, True]),
        num_steps=multi.num_steps[:5],
    )
    assert fake.num_converged == 4
    clusters = fake.clusters()
    assert [c for _, c in clusters] == [2, 2]
    assert clusters[0][0] == pytest.approx(-3.0)


def test_bad_input():
    p = problem(noisy_data(0))
    with pytest.raises(ValueError, match="n_starts"):
        oi.multistart(p, 0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="outside the support"):
        oi.multistart(p, 4, key=jax.random.key(0), init={"a": -1.0})
    with pytest.raises(ValueError, match="unknown or fixed"):
        oi.multistart(p, 4, key=jax.random.key(0), init={"b": 1.0})
    with pytest.raises(ValueError, match="from_priors"):
        oi.multistart(p, 4, key=jax.random.key(0), from_priors=True)
