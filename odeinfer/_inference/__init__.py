"""Bayesian inference: `sample`, `variational`, `predictive`, `prior_stress_test`."""

from ._posterior import load_posterior as load_posterior
from ._posterior import Posterior as Posterior
from ._sample import sample as sample
