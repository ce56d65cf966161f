"""`oi.prior_stress_test`: the failures it reports are the solves that fail."""

import numpy as np
import numpyro.distributions as dist

import odeinfer as oi


def test_stress_test_finds_max_steps_failures():
    times = np.linspace(0.5, 3.0, 4)
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y)
    experiment = oi.Experiment(
        times,
        2.0 * np.exp(-0.7 * times),
        observables=lambda t, y, p: y,
        noise=oi.Gaussian(0.1),
        y0=2.0,
    )
    # few steps allowed: fast decay (large k, stiff for an explicit solver) fails
    problem = oi.Problem(
        model,
        experiment,
        oi.Parameters({"k": oi.Positive(init=1.0)}),
        rtol=1e-8,
        atol=1e-10,
        max_steps=40,
    )
    priors = {"k": dist.LogNormal(1.0, 2.0)}
    result = oi.prior_stress_test(problem, priors, n=64, key=0)
    assert result.failed.shape == (64,)
    assert 0.0 < result.failure_rate < 1.0
    k = result.params["k"]
    # independent check: solve each draw directly, with the solve the Problem uses by
    # default for observations (the fused Dormand-Prince path)
    ok = np.array(
        [
            bool(
                oi.solve_at_times(
                    model,
                    2.0,
                    {"k": ki},
                    times,
                    t0=0.0,
                    rtol=1e-8,
                    atol=1e-10,
                    max_steps=40,
                )[1]
            )
            for ki in k[:16]
        ]
    )
    np.testing.assert_array_equal(result.failed[:16], ~ok)
    assert result.failed_params["k"].min() > np.median(k[~result.failed])
    assert np.all(np.isinf(result.log_likelihood[result.failed]))
    assert "failed_q50" in result.table.columns
    assert "failed" in str(result)
