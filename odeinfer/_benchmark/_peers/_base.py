"""The benchmark solver interface: `AbstractBenchmarkSolver.prepare(problem)` returns a
`Runner`, whose `run(rtol, atol)` returns an `Outcome`."""

import abc
import dataclasses
from collections.abc import Callable

import equinox as eqx
import numpy as np

from .._problem import BenchmarkProblem


@dataclasses.dataclass
class Outcome:
    """One run of one solver: numpy values, whatever the solver."""

    y_final: np.ndarray
    ys: np.ndarray | None = None
    event_times: np.ndarray | None = None
    num_steps: int = -1
    num_fevals: int = -1
    success: bool = True
    message: str = ""


@dataclasses.dataclass
class Runner:
    """A prepared solver: `run(rtol, atol) -> Outcome`; `gradient(rtol, atol) ->
    ndarray` (in the order of `problem.param_names`) or `None` when unsupported."""

    run: Callable[[float, float], Outcome]
    gradient: Callable[[float, float], np.ndarray] | None = None


class AbstractBenchmarkSolver(eqx.Module):
    """A solver [`odeinfer.benchmarking.benchmark`][] can run. Subclass it to benchmark your own.

    **Attributes and methods to provide:**

    - `name`: a `str` label for tables and plots.
    - `prepare(problem) -> Runner`: set up (and compile) for one problem.
    - `available() -> bool` (optional): `False` when an optional dependency is
        missing; the benchmark then records the solver as skipped.
    """

    name: eqx.AbstractVar[str]

    @abc.abstractmethod
    def prepare(self, problem: BenchmarkProblem) -> Runner:
        """Build a [`Runner`] for `problem`."""

    def available(self) -> bool:
        return True
