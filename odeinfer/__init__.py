"""odeinfer: differentiable ODE solves with events, for estimation and inference.

The modelling, solving, estimation and inference core is flat here (`odeinfer.solve`,
`odeinfer.fit`, `odeinfer.sample`, ...); the benchmark toolkit lives in
`odeinfer.benchmarking`, the plots in `odeinfer.plotting`, the importers
in `odeinfer.sbml` and `odeinfer.petab`.
"""
# ruff: noqa: I001 -- x64 is enabled before anything else is imported

from ._config import enable_x64 as _enable_x64
from ._config import use_compilation_cache as _use_compilation_cache
from ._config import use_fast_cpu_compilation as _use_fast_cpu_compilation

_enable_x64()
_use_compilation_cache()
_use_fast_cpu_compilation()

from ._crossings import AllCrossings as AllCrossings  # noqa: E402
from ._crossings import FirstCrossing as FirstCrossing  # noqa: E402
from ._crossings import all_crossings as all_crossings  # noqa: E402
from ._crossings import first_crossing as first_crossing  # noqa: E402
from ._events import Crossing as Crossing  # noqa: E402
from ._events import Dose as Dose  # noqa: E402
from ._model import ODEModel as ODEModel  # noqa: E402
from ._results import RESULTS as RESULTS  # noqa: E402
from ._results import SolveError as SolveError  # noqa: E402
from ._results import describe as describe  # noqa: E402
from ._results import is_successful as is_successful  # noqa: E402
from ._config import set_compilation_cache as set_compilation_cache  # noqa: E402
from ._solution import EventLog as EventLog  # noqa: E402
from ._solution import Solution as Solution  # noqa: E402
from ._solve import solve as solve  # noqa: E402
from ._steady_state import SteadyState as SteadyState  # noqa: E402
from ._steady_state import steady_state as steady_state  # noqa: E402
from ._solvers import AbstractRosenbrock as AbstractRosenbrock  # noqa: E402
from ._solvers import JacobianCheck as JacobianCheck  # noqa: E402
from ._solvers import Rodas4 as Rodas4  # noqa: E402
from ._solvers import Rodas5P as Rodas5P  # noqa: E402
from ._solvers import SmallLU as SmallLU  # noqa: E402
from ._solvers import check_jacobian as check_jacobian  # noqa: E402
from ._solvers import AbstractFusedSolver as AbstractFusedSolver  # noqa: E402
from ._solvers import FusedAuto as FusedAuto  # noqa: E402
from ._solvers import FusedDopri5 as FusedDopri5  # noqa: E402
from ._solvers import FusedRodas5P as FusedRodas5P  # noqa: E402
from ._fast import solve_at_times as solve_at_times  # noqa: E402
from ._validation import NumpyInTracedCodeError as NumpyInTracedCodeError  # noqa: E402
from ._parameters import AbstractParameter as AbstractParameter  # noqa: E402
from ._parameters import Bounded as Bounded  # noqa: E402
from ._parameters import Fixed as Fixed  # noqa: E402
from ._parameters import Parameters as Parameters  # noqa: E402
from ._parameters import Positive as Positive  # noqa: E402
from ._parameters import Real as Real  # noqa: E402
from ._observations import AbstractNoise as AbstractNoise  # noqa: E402
from ._observations import EventTimeObservation as EventTimeObservation  # noqa: E402
from ._observations import Experiment as Experiment  # noqa: E402
from ._observations import Gaussian as Gaussian  # noqa: E402
from ._observations import LogNormal as LogNormal  # noqa: E402
from ._observations import NegativeBinomial as NegativeBinomial  # noqa: E402
from ._observations import Poisson as Poisson  # noqa: E402
from ._observations import StudentT as StudentT  # noqa: E402
from ._observations import experiments_from_dataframe as experiments_from_dataframe  # noqa: E402
from ._check_gradients import EventTimeGradient as EventTimeGradient  # noqa: E402
from ._check_gradients import GradientReport as GradientReport  # noqa: E402
from ._check_gradients import check_event_gradients as check_event_gradients  # noqa: E402
from ._check_gradients import check_gradients as check_gradients  # noqa: E402
from ._check_gradients import event_time_gradient as event_time_gradient  # noqa: E402
from ._integrals import cumulative_integral as cumulative_integral  # noqa: E402
from ._integrals import cumulative_simpson as cumulative_simpson  # noqa: E402
from ._integrals import cumulative_trapezoid as cumulative_trapezoid  # noqa: E402
from ._integrals import integral_initial_state as integral_initial_state  # noqa: E402
from ._integrals import with_integral as with_integral  # noqa: E402
from ._likelihood import Problem as Problem  # noqa: E402
from ._likelihood import Simulation as Simulation  # noqa: E402
from ._likelihood import log_likelihood as log_likelihood  # noqa: E402
from ._likelihood import residuals as residuals  # noqa: E402
from ._likelihood import simulate as simulate  # noqa: E402
from ._residual_likelihood import (  # noqa: E402
    AbstractResidualLikelihood as AbstractResidualLikelihood,
)
from ._estimation import FitError as FitError  # noqa: E402
from ._estimation import FitResult as FitResult  # noqa: E402
from ._estimation import MultistartResult as MultistartResult  # noqa: E402
from ._estimation import ProfileResult as ProfileResult  # noqa: E402
from ._estimation import TrustRegionReflective as TrustRegionReflective  # noqa: E402
from ._estimation import AbstractBoxLeastSquares as AbstractBoxLeastSquares  # noqa: E402
from ._estimation import Fides as Fides  # noqa: E402
from ._estimation import AbstractHostBoxLeastSquares as AbstractHostBoxLeastSquares  # noqa: E402
from ._estimation import InteriorTrustRegion as InteriorTrustRegion  # noqa: E402
from ._estimation import fit as fit  # noqa: E402
from ._estimation import multistart as multistart  # noqa: E402
from ._estimation import profile as profile  # noqa: E402
from ._inference import Posterior as Posterior  # noqa: E402
from ._inference import SamplingWarning as SamplingWarning  # noqa: E402
from ._inference import PredictiveResult as PredictiveResult  # noqa: E402
from ._inference import StressTestResult as StressTestResult  # noqa: E402
from ._inference import VariationalResult as VariationalResult  # noqa: E402
from ._inference import load_posterior as load_posterior  # noqa: E402
from ._inference import predictive as predictive  # noqa: E402
from ._inference import prior_stress_test as prior_stress_test  # noqa: E402
from ._inference import sample as sample  # noqa: E402
from ._inference import variational as variational  # noqa: E402


import importlib as _importlib  # noqa: E402
import importlib.metadata as _metadata  # noqa: E402
import warnings as _warnings  # noqa: E402

try:
    __version__ = _metadata.version("odeinfer")
except _metadata.PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"  # a source tree on sys.path, not an installed package

# Public namespaces imported on first attribute access (`oi.benchmarking.benchmark`),
# so that `import odeinfer` does not import the benchmark peers or matplotlib.
_NAMESPACES = ("benchmarking", "plotting")

# Names that moved to a namespace (issue 11): the top-level aliases warn for one release.
_MOVED = {
    **{
        name: "benchmarking"
        for name in (
            "AbstractBenchmarkSolver",
            "BenchmarkProblem",
            "BenchmarkResults",
            "CVODESolver",
            "OdeinferSolver",
            "Reference",
            "ScipySolver",
            "benchmark",
            "benchmark_problem",
            "benchmark_suite",
            "compute_reference",
        )
    },
    "plot_event_times": "plotting",
    "plot_predictive_bands": "plotting",
}


def __getattr__(name: str):
    if name in _NAMESPACES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _MOVED:
        namespace = _MOVED[name]
        _warnings.warn(
            f"odeinfer.{name} has moved to odeinfer.{namespace}.{name}; the top-level "
            "alias is removed in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        module = _importlib.import_module(f"{__name__}.{namespace}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AllCrossings",
    "FirstCrossing",
    "all_crossings",
    "first_crossing",
    "Crossing",
    "Dose",
    "ODEModel",
    "RESULTS",
    "SolveError",
    "describe",
    "is_successful",
    "set_compilation_cache",
    "EventLog",
    "Solution",
    "solve",
    "SteadyState",
    "steady_state",
    "AbstractRosenbrock",
    "JacobianCheck",
    "Rodas4",
    "Rodas5P",
    "SmallLU",
    "check_jacobian",
    "AbstractFusedSolver",
    "FusedAuto",
    "FusedDopri5",
    "FusedRodas5P",
    "solve_at_times",
    "NumpyInTracedCodeError",
    "AbstractParameter",
    "Bounded",
    "Fixed",
    "Parameters",
    "Positive",
    "Real",
    "AbstractNoise",
    "EventTimeObservation",
    "Experiment",
    "Gaussian",
    "LogNormal",
    "NegativeBinomial",
    "Poisson",
    "StudentT",
    "experiments_from_dataframe",
    "EventTimeGradient",
    "GradientReport",
    "check_event_gradients",
    "check_gradients",
    "event_time_gradient",
    "cumulative_integral",
    "cumulative_simpson",
    "cumulative_trapezoid",
    "integral_initial_state",
    "with_integral",
    "Problem",
    "Simulation",
    "log_likelihood",
    "residuals",
    "simulate",
    "AbstractResidualLikelihood",
    "FitError",
    "FitResult",
    "MultistartResult",
    "ProfileResult",
    "TrustRegionReflective",
    "AbstractBoxLeastSquares",
    "Fides",
    "AbstractHostBoxLeastSquares",
    "InteriorTrustRegion",
    "fit",
    "multistart",
    "profile",
    "Posterior",
    "SamplingWarning",
    "PredictiveResult",
    "StressTestResult",
    "VariationalResult",
    "load_posterior",
    "predictive",
    "prior_stress_test",
    "sample",
    "variational",
]
