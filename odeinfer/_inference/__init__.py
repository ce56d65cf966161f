"""Bayesian inference: `sample`, `variational`, `predictive`, `prior_stress_test`."""

from ._plots import plot_event_times as plot_event_times
from ._plots import plot_predictive_bands as plot_predictive_bands
from ._posterior import Posterior as Posterior
from ._posterior import SamplingWarning as SamplingWarning
from ._posterior import load_posterior as load_posterior
from ._predictive import PredictiveResult as PredictiveResult
from ._predictive import predictive as predictive
from ._sample import sample as sample
from ._stress import StressTestResult as StressTestResult
from ._stress import prior_stress_test as prior_stress_test
from ._variational import VariationalResult as VariationalResult
from ._variational import variational as variational
