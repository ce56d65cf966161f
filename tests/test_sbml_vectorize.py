"""`odeinfer/sbml/_vectorize.py`: the vector field computed on groups of kinetic laws
and rules of one form equals the scalar evaluation, expression by expression, on small
documents and on every shared PEtab model (values and derivatives)."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

libsbml = pytest.importorskip("libsbml")
from _paths import PETAB  # noqa: E402  (tests/data/petab)
from test_sbml import make  # noqa: E402

import odeinfer.sbml as sbml  # noqa: E402
from odeinfer.sbml._vectorize import form_of  # noqa: E402


def scalar_vector_field(built, t, y, params):
    """The reference: every runtime value on scalars (`Built.namespace`), then each
    state's derivative closure."""
    ns = built.namespace(t, y, params)
    return jnp.stack(
        [
            jnp.zeros(()) if f is None else jnp.asarray(f(ns), dtype=float)
            for f in (built.derivative[sid] for sid in built.state_ids)
        ]
    )


def assert_same_field(model, rtol=1e-13):
    """Values and a JVP in `y` and all parameters, at a perturbed initial state."""
    built = model._built
    params = {k: jnp.asarray(v, float) for k, v in model.parameters.items()}
    y0 = model.initial_state(params)
    rng = np.random.default_rng(0)
    y = y0 * (1.0 + 0.1 * rng.standard_normal(y0.shape)) + 0.01
    dy = jnp.asarray(rng.standard_normal(y.shape))
    dp = {k: jnp.asarray(rng.standard_normal()) for k in params}
    plan = built.make_plan()
    planned = jax.jit(lambda y_, p: plan(1.3, y_, built.merge(p)))
    scalar = jax.jit(lambda y_, p: scalar_vector_field(built, 1.3, y_, p))
    for a, b in (
        (planned(y, params), scalar(y, params)),
        (
            jax.jvp(planned, (y, params), (dy, dp))[1],
            jax.jvp(scalar, (y, params), (dy, dp))[1],
        ),
    ):
        # Scaled by the largest term: a sum that cancels keeps that term's rounding.
        scale = np.maximum(np.max(np.abs(b)), 1e-300)
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def test_forms_tell_shapes_apart():
    functions = {}
    doc = libsbml.readSBMLFromString(
        make(
            species={"A": ("c", 1.0), "B": ("c", 2.0)},
            parameters={"k1": 0.1, "k2": 0.2},
            reactions={
                "R1": (["A"], [], "k1 * A * B"),
                "R2": (["B"], [], "k2 * B * A"),
            },
        )
    )
    laws = [r.getKineticLaw().getMath() for r in doc.getModel().getListOfReactions()]
    one, two = (form_of(law, functions) for law in laws)
    assert one is not None and two is not None
    assert one.signature == two.signature
    assert one.keys == ("k1", "A", "B") and two.keys == ("k2", "B", "A")
    square = form_of(libsbml.parseL3Formula("k1 * A * A"), functions)
    assert square is not None and square.signature != one.signature
    number = form_of(libsbml.parseL3Formula("2 * A * B"), functions)
    assert number is not None and number.signature != one.signature
    # Comparisons (where switches are) stay on scalars.
    assert form_of(libsbml.parseL3Formula("piecewise(1, A > 2, 0)"), functions) is None
    # Local parameters read their namespace key; function calls are inlined.
    local = form_of(libsbml.parseL3Formula("k * A"), functions, {"k": "R1.k"})
    assert local is not None and local.keys == ("R1.k", "A")
    body = libsbml.parseL3Formula("lambda(x, v, x * v)")
    inlined = form_of(
        libsbml.parseL3Formula("f(A, k1)"),
        {"f": (("x", "v"), body.getChild(body.getNumChildren() - 1))},
    )
    plain = form_of(libsbml.parseL3Formula("A * k1"), functions)
    assert inlined == plain


def test_groups_rules_functions_and_rate_rules_match_scalar_evaluation():
    model = sbml.load(
        make(
            compartments={"cyt": 2.0, "nuc": 0.5},
            species={
                "A": ("cyt", 3.0),
                "B": ("nuc", 1.0),
                "C": ("cyt", 0.5),
                "D": ("nuc", 0.2, {"amount"}),
            },
            parameters={"k1": 0.4, "k2": 0.3, "k3": 0.2, "x": 1.5, "r": None},
            functions={"flow": "lambda(rate, s, v, rate * s * v)"},
            reactions={
                "R1": (["A"], ["B"], "flow(k1, A, cyt)"),
                "R2": (["B"], ["C"], "flow(k2, B, nuc)"),
                "R3": (["C"], ["A", "A"], "flow(k3, C, cyt)"),
                "R4": (["A", "B"], ["D"], "k1 * A * B * r"),
                "R5": (["C", "B"], ["D"], "k2 * C * B * r"),
            },
            assignment_rules={"r": "x / (1 + D)"},
            rate_rules={"x": "-k3 * x"},
        )
    )
    assert_same_field(model)
    plan = model._built.make_plan()
    sizes = sorted(g.size for level in plan.levels for g in level.groups)
    assert 3 in sizes and 2 in sizes  # R1-R3 and R4-R5, each one group


MODELS = sorted(glob.glob(os.path.join(PETAB, "*", "*.xml")))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: os.path.basename(p))
def test_petab_model_matches_scalar_evaluation(path):
    try:
        model = sbml.load(path)
    except sbml.UnsupportedSBMLError:
        return
    assert_same_field(model, rtol=1e-12)
