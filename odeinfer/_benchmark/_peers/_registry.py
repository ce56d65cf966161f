"""`get_solver`: a benchmark solver from its name (`"Rodas5P"`, `"scipy/LSODA"`, ...)."""

import diffrax

from ..._solvers import Rodas4, Rodas5P
from ._base import AbstractBenchmarkSolver
from ._cvode import CVODESolver
from ._odeinfer import OdeinferSolver
from ._scipy import SCIPY_METHODS, ScipySolver

DIFFRAX_SOLVERS = (
    "Tsit5",
    "Dopri5",
    "Dopri8",
    "Bosh3",
    "Heun",
    "Kvaerno3",
    "Kvaerno4",
    "Kvaerno5",
    "ImplicitEuler",
)


ROSENBROCK_SOLVERS = {"Rodas5P": Rodas5P, "Rodas4": Rodas4}


def get_solver(name: "str | AbstractBenchmarkSolver") -> AbstractBenchmarkSolver:
    """A benchmark solver from its name: odeinfer's Rosenbrock solvers (`"Rodas5P"`,
    `"Rodas4"`) or a diffrax solver (`"Tsit5"`, `"Kvaerno5"`), optionally prefixed
    `"odeinfer/"`, a scipy method (`"scipy/LSODA"`), or SUNDIALS
    (`"sundials/CVODE-BDF"`, `"cvode"`). Solver objects are returned unchanged."""
    if isinstance(name, AbstractBenchmarkSolver):
        return name
    if isinstance(name, diffrax.AbstractSolver):  # e.g. oi.Rodas5P() itself
        return OdeinferSolver(name)
    if not isinstance(name, str):
        raise TypeError(
            f"A solver must be a name (str) or an AbstractBenchmarkSolver; got {name!r}."
        )
    key = name.removeprefix("odeinfer/").removeprefix("diffrax/")
    if key in ROSENBROCK_SOLVERS:
        return OdeinferSolver(ROSENBROCK_SOLVERS[key]())
    if key in DIFFRAX_SOLVERS:
        return OdeinferSolver(getattr(diffrax, key)())
    if name.startswith("scipy/") and name.removeprefix("scipy/") in SCIPY_METHODS:
        return ScipySolver(name.removeprefix("scipy/"))
    if name.lower() in ("cvode", "sundials/cvode", "sundials/cvode-bdf"):
        return CVODESolver("BDF")
    if name.lower() == "sundials/cvode-adams":
        return CVODESolver("Adams")
    known = (
        list(ROSENBROCK_SOLVERS)
        + list(DIFFRAX_SOLVERS)
        + [f"scipy/{m}" for m in SCIPY_METHODS]
        + ["sundials/CVODE-BDF", "sundials/CVODE-Adams"]
    )
    raise ValueError(
        f"Unknown solver {name!r}. Known names: {', '.join(known)}; or pass an "
        "odeinfer.benchmarking.OdeinferSolver(diffrax.X()) / your own AbstractBenchmarkSolver."
    )
