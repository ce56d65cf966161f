"""Solvers that [`odeinfer.benchmarking.benchmark`][] can run, as strategy objects.

`AbstractBenchmarkSolver.prepare(problem)` returns a `Runner`: a plain callable
`run(rtol, atol) -> Outcome` (plus an optional `gradient(rtol, atol)`). Preparing builds
and caches whatever is compiled, so that the benchmark can time the first call
(compilation included) apart from later ones. A user adds a solver by subclassing
`AbstractBenchmarkSolver` and implementing `name` and `prepare`.
"""

from ._base import AbstractBenchmarkSolver as AbstractBenchmarkSolver
from ._base import Outcome as Outcome
from ._base import Runner as Runner
from ._cvode import CVODESolver as CVODESolver
from ._odeinfer import OdeinferSolver as OdeinferSolver
from ._registry import get_solver as get_solver
from ._scipy import ScipySolver as ScipySolver
