"""The public surface: `__all__` of `odeinfer` and its namespaces, `__version__` from the
package metadata, and the top-level aliases of names that moved to
`odeinfer.benchmarking` and `odeinfer.plotting` (a `DeprecationWarning` naming the new
home, for one release; the alias is the same object)."""

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

import odeinfer as oi
from odeinfer import benchmarking, plotting

MOVED = {
    "benchmarking": [
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
    ],
    "plotting": ["plot_event_times", "plot_predictive_bands"],
}


def test_version_is_the_package_metadata():
    assert oi.__version__ == importlib.metadata.version("odeinfer")


@pytest.mark.parametrize(
    "module", ["odeinfer", "odeinfer.benchmarking", "odeinfer.plotting"]
)
def test_all_names_exist_and_are_sorted_out(module):
    namespace = importlib.import_module(module)
    assert len(namespace.__all__) == len(set(namespace.__all__))
    for name in namespace.__all__:
        assert getattr(namespace, name) is not None, name


# Names new in `odeinfer.benchmarking` (never at the top level: no alias).
NEW = {"benchmarking": ["PosteriorBenchmark", "lynx_hare"]}


def test_namespaces_hold_the_moved_names():
    assert sorted(benchmarking.__all__) == sorted(
        MOVED["benchmarking"] + NEW["benchmarking"]
    )
    assert sorted(plotting.__all__) == sorted(MOVED["plotting"])
    for name in [*MOVED["benchmarking"], *MOVED["plotting"]]:
        assert name not in oi.__all__


@pytest.mark.parametrize(
    "namespace, name",
    [(namespace, name) for namespace, names in MOVED.items() for name in names],
)
def test_old_top_level_names_warn_and_still_work(namespace, name):
    with pytest.warns(DeprecationWarning, match=rf"odeinfer\.{namespace}\.{name}\b"):
        alias = getattr(oi, name)
    assert alias is getattr(importlib.import_module(f"odeinfer.{namespace}"), name)


def test_deprecated_alias_is_callable():
    with pytest.warns(
        DeprecationWarning, match="odeinfer.benchmarking.benchmark_suite"
    ):
        suite = oi.benchmark_suite()
    assert "logistic_threshold" in suite


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        oi.no_such_name  # noqa: B018


def test_import_odeinfer_does_not_import_benchmark_peers_or_matplotlib():
    code = (
        "import sys, odeinfer; "
        "print('odeinfer._benchmark' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
