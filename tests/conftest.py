"""Test configuration: importing odeinfer turns on float64; fixtures give the shared
models (defined once in `_references.py`, so tests reuse compilations)."""

import atexit
import os
import shutil
import tempfile

# JAX's persistent compilation cache (odeinfer turns it on at import): the tests compile
# into a directory of their own, made here, before odeinfer is imported, shared by the
# xdist workers and the subprocesses the tests start (they inherit the variable), and
# removed at exit, so a test run never writes into the user's cache. Set
# ODEINFER_COMPILATION_CACHE yourself to choose (a directory kept between runs: later
# runs load what earlier ones compiled) or to turn it off (0).
if "ODEINFER_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="odeinfer-test-jax-cache-")
    os.environ["ODEINFER_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import pytest  # noqa: E402
from _references import BALL, LOGISTIC, ONE_COMPARTMENT, ORAL, SPRING  # noqa: E402

import odeinfer  # noqa: E402, F401  (turns on jax_enable_x64)


@pytest.fixture(scope="session")
def logistic():
    return LOGISTIC


@pytest.fixture(scope="session")
def spring():
    return SPRING


@pytest.fixture(scope="session")
def ball():
    return BALL


@pytest.fixture(scope="session")
def one_compartment():
    return ONE_COMPARTMENT


@pytest.fixture(scope="session")
def oral():
    return ORAL
