"""Solver benchmarking: work-precision, event-time and gradient errors and compile time
of odeinfer's solvers against scipy and SUNDIALS CVODE, on a shipped problem suite.

`benchmark(problem, solvers, tolerances)` runs a grid and returns
[`odeinfer.benchmarking.BenchmarkResults`][]; `benchmark_problem(name)` and
`benchmark_suite()` give the shipped problems; the `odeinfer bench` CLI runs the suite.
`lynx_hare()` is posteriordb's lynx–hare posterior with its reference, for sampling
benchmarks.
See [benchmarks](../benchmarks.md) for findings.
"""

import odeinfer as _odeinfer  # noqa: F401  (turns on float64 before anything is traced)

from .._benchmark import AbstractBenchmarkSolver as AbstractBenchmarkSolver
from .._benchmark import BenchmarkProblem as BenchmarkProblem
from .._benchmark import BenchmarkResults as BenchmarkResults
from .._benchmark import CVODESolver as CVODESolver
from .._benchmark import OdeinferSolver as OdeinferSolver
from .._benchmark import PosteriorBenchmark as PosteriorBenchmark
from .._benchmark import Reference as Reference
from .._benchmark import ScipySolver as ScipySolver
from .._benchmark import benchmark as benchmark
from .._benchmark import benchmark_problem as benchmark_problem
from .._benchmark import benchmark_suite as benchmark_suite
from .._benchmark import compute_reference as compute_reference
from .._benchmark import lynx_hare as lynx_hare

__all__ = [
    "AbstractBenchmarkSolver",
    "BenchmarkProblem",
    "BenchmarkResults",
    "CVODESolver",
    "OdeinferSolver",
    "PosteriorBenchmark",
    "Reference",
    "ScipySolver",
    "benchmark",
    "benchmark_problem",
    "benchmark_suite",
    "compute_reference",
    "lynx_hare",
]
