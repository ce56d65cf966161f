"""A shared near-Gaussian test problem for the estimation tests: exponential decay
`y = a exp(-k t)` observed with Gaussian noise, and its closed-form log-likelihood
(scipy.stats) as an independent reference."""

import numpy as np
from scipy import stats

import odeinfer as oi

TRUE = {"a": 2.0, "k": 0.7}
SIGMA = 0.05
TIMES = np.linspace(0.1, 5.0, 40)
MODEL = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")


def _observe(t, y, p):
    return y


def _initial(p):
    return p["a"]


def clean_data():
    return TRUE["a"] * np.exp(-TRUE["k"] * TIMES)


def noisy_data(seed):
    rng = np.random.default_rng(seed)
    return clean_data() + SIGMA * rng.standard_normal(TIMES.shape)


def problem(data):
    """Same static structure for every data set, so compiled code is reused."""
    experiment = oi.Experiment(
        TIMES, data, observables=_observe, noise=oi.Gaussian(SIGMA), y0=_initial
    )
    space = oi.Parameters(
        {"a": oi.Bounded(0.0, 5.0, init=1.0), "k": oi.Positive(init=1.0)}
    )
    return oi.Problem(MODEL, experiment, space, rtol=1e-10, atol=1e-12)


def closed_form_log_likelihood(a, k, data):
    return float(np.sum(stats.norm.logpdf(data, a * np.exp(-k * TIMES), SIGMA)))
