"""Test configuration: importing odeinfer turns on float64; fixtures give the shared
models (defined once in `_references.py`, so tests reuse compilations)."""

import pytest
from _references import BALL, LOGISTIC, ONE_COMPARTMENT, ORAL, SPRING

import odeinfer  # noqa: F401  (turns on jax_enable_x64)


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
