"""The likelihood layer: `Problem` (a model, experiments, parameters) and the pure
functions of a params dict built on it, `simulate`, `log_likelihood`, `residuals`."""

from ._log_likelihood import log_likelihood as log_likelihood
from ._log_likelihood import log_likelihood_ok as log_likelihood_ok
from ._log_likelihood import residuals as residuals
from ._problem import Problem as Problem
from ._simulate import Simulation as Simulation
from ._simulate import simulate as simulate
