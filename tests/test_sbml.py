"""`odeinfer.sbml`: small SBML documents against closed forms, every shared PEtab model
loaded (or refused by name), and real models against their published simulations."""

import glob
import os

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi

libsbml = pytest.importorskip("libsbml")
from _paths import PETAB  # noqa: E402  (tests/data/petab)

import odeinfer.sbml as sbml  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-10)


def make(
    *,
    compartments=None,
    species=None,
    parameters=None,
    reactions=None,
    assignment_rules=None,
    rate_rules=None,
    initial_assignments=None,
    functions=None,
    events=(),
    algebraic=(),
    level=(3, 2),
) -> str:
    """An SBML document as a string. `species`: id → (compartment, initial
    concentration, options) with options from {"amount", "boundary", "constant"};
    `reactions`: id → (reactants, products, kinetic law formula, options);
    `events`: (id, trigger, {variable: formula}, options) with options "delay",
    "priority"."""
    doc = libsbml.SBMLDocument(*level)
    m = doc.createModel()
    m.setId("test")

    def math(text):
        node = libsbml.parseL3Formula(text)
        assert node is not None, libsbml.getLastParseL3Error()
        return node

    for cid, size in (compartments or {"c": 1.0}).items():
        c = m.createCompartment()
        c.setId(cid)
        c.setSize(size)
        c.setConstant(True)
    for sid, (cid, value, *opts) in (species or {}).items():
        opts = opts[0] if opts else ()
        s = m.createSpecies()
        s.setId(sid)
        s.setCompartment(cid)
        s.setHasOnlySubstanceUnits("amount" in opts)
        (s.setInitialAmount if "amount" in opts else s.setInitialConcentration)(value)
        s.setBoundaryCondition("boundary" in opts)
        s.setConstant("constant" in opts)
    for pid, value in (parameters or {}).items():
        p = m.createParameter()
        p.setId(pid)
        constant = not (
            pid in (rate_rules or {})
            or pid in (assignment_rules or {})
            or any(pid in e[2] for e in events)
        )
        if value is not None:
            p.setValue(value)
        p.setConstant(constant)
    for fid, text in (functions or {}).items():
        f = m.createFunctionDefinition()
        f.setId(fid)
        f.setMath(math(text))
    for rid, (reactants, products, law, *opts) in (reactions or {}).items():
        r = m.createReaction()
        r.setId(rid)
        r.setReversible(False)
        if level[0] >= 3:
            r.setFast(False)
        if opts and "fast" in opts[0]:
            r.setFast(True)
        for sid in reactants:
            ref = r.createReactant()
            ref.setSpecies(sid)
            ref.setStoichiometry(1.0)
            ref.setConstant(True)
        for sid in products:
            ref = r.createProduct()
            ref.setSpecies(sid)
            ref.setStoichiometry(1.0)
            ref.setConstant(True)
        r.createKineticLaw().setMath(math(law))
    for var, text in (assignment_rules or {}).items():
        rule = m.createAssignmentRule()
        rule.setVariable(var)
        rule.setMath(math(text))
    for var, text in (rate_rules or {}).items():
        rule = m.createRateRule()
        rule.setVariable(var)
        rule.setMath(math(text))
    for text in algebraic:
        m.createAlgebraicRule().setMath(math(text))
    for var, text in (initial_assignments or {}).items():
        ia = m.createInitialAssignment()
        ia.setSymbol(var)
        ia.setMath(math(text))
    for eid, trigger, assignments, *opts in events:
        opts = opts[0] if opts else {}
        e = m.createEvent()
        e.setId(eid)
        e.setUseValuesFromTriggerTime(True)
        t = e.createTrigger()
        t.setMath(math(trigger))
        t.setPersistent(True)
        t.setInitialValue(False)
        for var, text in assignments.items():
            ea = e.createEventAssignment()
            ea.setVariable(var)
            ea.setMath(math(text))
        if "delay" in opts:
            e.createDelay().setMath(math(opts["delay"]))
        if "priority" in opts:
            e.createPriority().setMath(math(opts["priority"]))
    return libsbml.writeSBMLToString(doc)


def solve(model, ts, params=None, **kwargs):
    params = dict(model.parameters, **(params or {}))
    return oi.solve(
        model.model,
        model.initial_state(params),
        params,
        t0=0.0,
        t1=float(ts[-1]),
        saveat=jnp.asarray(ts),
        solver=oi.Rodas5P(),
        events=model.crossings or None,
        **TOL,
        **kwargs,
    )


TS = np.array([0.5, 1.0, 2.0, 4.0])


# --- closed forms ----------------------------------------------------------------------
def test_mass_action_decay():
    model = sbml.load(
        make(
            species={"A": ("c", 2.0), "B": ("c", 0.0)},
            parameters={"k": 0.7},
            reactions={"R": (["A"], ["B"], "k * A * c")},
        )
    )
    assert model.state_ids == ("A", "B") and model.parameters == {"c": 1.0, "k": 0.7}
    sol = solve(model, TS)
    a = 2.0 * np.exp(-0.7 * TS)
    np.testing.assert_allclose(sol.ys[:, 0], a, rtol=1e-8)
    np.testing.assert_allclose(sol.ys[:, 1], 2.0 - a, rtol=1e-8)


def test_two_compartments_function_definition_and_assignment_rule():
    """A in `cyt` (size 2) → B in `nuc` (size 0.5), the kinetic law through a function
    definition (an extent per time, so the concentrations change by V_cyt/V_nuc), and
    an assignment rule for the total amount, conserved."""
    model = sbml.load(
        make(
            compartments={"cyt": 2.0, "nuc": 0.5},
            species={"A": ("cyt", 3.0), "B": ("nuc", 1.0)},
            parameters={"k": 0.4, "total": None},
            functions={"flow": "lambda(rate, x, v, rate * x * v)"},
            reactions={"R": (["A"], ["B"], "flow(k, A, cyt)")},
            assignment_rules={"total": "A * cyt + B * nuc"},
        )
    )
    sol = solve(model, TS)
    a = 3.0 * np.exp(-0.4 * TS)
    b = 1.0 + (3.0 - a) * 2.0 / 0.5
    # States are amounts; SBML math (and `expression`) reads concentrations.
    np.testing.assert_allclose(sol.ys[:, 0], 2.0 * a, rtol=1e-8)
    concentration_b = model.expression("B")
    got = jax.vmap(lambda t, y: concentration_b(t, y, model.parameters))(sol.ts, sol.ys)
    np.testing.assert_allclose(got, b, rtol=1e-8)
    total = model.assignment_rules(4.0, sol.ys[-1], model.parameters)["total"]
    np.testing.assert_allclose(total, 3.0 * 2.0 + 1.0 * 0.5, rtol=1e-8)


def test_rate_rules_on_a_parameter_and_a_concentration():
    model = sbml.load(
        make(
            compartments={"c": 2.0},
            species={"S": ("c", 1.0)},
            parameters={"x": 5.0, "a": 0.3},
            rate_rules={"x": "-a * x", "S": "2 * time"},
        )
    )
    assert set(model.state_ids) == {"S", "x"} and "x" not in model.parameters
    sol = solve(model, TS)
    ys = dict(zip(model.state_ids, sol.ys.T, strict=True))
    np.testing.assert_allclose(ys["x"], 5.0 * np.exp(-0.3 * TS), rtol=1e-8)
    # d[S]/dt = 2t on the concentration; the state is the amount 2 [S].
    np.testing.assert_allclose(ys["S"], 2.0 * (1.0 + TS**2), rtol=1e-8)


def test_initial_assignment_depends_on_parameters():
    model = sbml.load(
        make(
            compartments={"c": 0.5},
            species={"A": ("c", 0.0), "B": ("c", 1.0, ("amount",))},
            parameters={"k0": 3.0, "scale": None},
            initial_assignments={"A": "2 * k0 + B", "scale": "k0 ^ 2"},
            rate_rules={},
        )
    )
    y0 = model.initial_state({"k0": 4.0})
    # [A](0) = 2 k0 + B (B is an amount: 1); the state is the amount 0.5 [A](0).
    np.testing.assert_allclose(y0[model.state_ids.index("A")], 0.5 * 9.0, rtol=1e-14)
    grad = jax.grad(lambda k0: model.initial_state({"k0": k0})[0])(4.0)
    np.testing.assert_allclose(grad, 0.5 * 2.0, rtol=1e-14)
    # A constant with an initial assignment is computed from the parameters.
    assert "scale" not in model.parameter_ids
    value = model.expression("scale")(0.0, y0, {"k0": 4.0})
    np.testing.assert_allclose(value, 16.0, rtol=1e-14)
    over = model.initial_state({"k0": 4.0}, overrides={"A": 7.0})
    np.testing.assert_allclose(over[0], 0.5 * 7.0, rtol=1e-14)


def test_time_piecewise_switch_is_exact():
    """An input on for t < 5: A(t) = min(t, 5) · u. The switch is a crossing, so the
    solver stops on it instead of stepping across."""
    model = sbml.load(
        make(
            species={"A": ("c", 0.0)},
            parameters={"u": 1.5, "t_off": 5.0},
            reactions={"R": ([], ["A"], "piecewise(u, time < t_off, 0)")},
        )
    )
    assert model.switches == ("time < t_off",)
    np.testing.assert_allclose(model.switch_times({"t_off": 4.0}), [4.0])
    ts = np.array([1.0, 4.9, 5.1, 10.0])
    sol = solve(model, ts)
    np.testing.assert_allclose(sol.ys[:, 0], 1.5 * np.minimum(ts, 5.0), rtol=1e-10)
    assert sol.events.times[0] == pytest.approx(5.0, abs=1e-10)


def test_gradient_through_a_switch():
    """A(10) = u · t_off: the switch time moves with t_off, and the gradient follows."""
    model = sbml.load(
        make(
            species={"A": ("c", 0.0)},
            parameters={"u": 1.5, "t_off": 5.0},
            reactions={"R": ([], ["A"], "piecewise(u, time < t_off, 0)")},
        )
    )

    def final(params):
        forward = diffrax.ForwardMode()
        return solve(model, np.array([10.0]), params, adjoint=forward).ys[-1, 0]

    # Forward mode: compiles in 2/3 of reverse mode's time (7.9 against 12.4 s of CPU);
    # reverse mode through crossings is checked in test_events.py and test_crossings.py.
    grad = jax.jacfwd(final)({"u": 1.5, "t_off": 5.0})
    np.testing.assert_allclose(grad["t_off"], 1.5, rtol=1e-8)
    np.testing.assert_allclose(grad["u"], 5.0, rtol=1e-8)


def test_switch_on_its_threshold_at_t0_takes_the_side_time_moves_to():
    model = sbml.load(
        make(
            species={"A": ("c", 0.0)},
            parameters={"u": 1.0, "t_end": 0.0},
            reactions={"R": ([], ["A"], "piecewise(u, time <= t_end, 0)")},
        )
    )
    flag = model.state_ids.index("switch time <= t_end")
    assert model.initial_state()[flag] == 0.0  # off for t > 0
    assert model.initial_state({"t_end": 1.0})[flag] == 1.0


def test_event_true_at_t0_with_initial_value_false_is_refused():
    model = sbml.load(
        make(
            species={"A": ("c", 1.0)},
            parameters={"k": 1.0},
            events=[("now", "time >= 0", {"A": "0"})],
        )
    )
    with pytest.raises(Exception, match="event 'now'.*true at t0"):
        model.initial_state()


def test_event_resets_a_species():
    """A decays at rate k; when [A] falls below 0.5 it is reset to 2 (in a compartment
    of size 2: amounts 4). First crossing at ln(4)/k, then every ln(4)/k."""
    model = sbml.load(
        make(
            compartments={"c": 2.0},
            species={"A": ("c", 2.0)},
            parameters={"k": 0.5, "n": 0.0},
            reactions={"R": (["A"], [], "k * A * c")},
            events=[("refill", "A < 0.5", {"A": "2", "n": "n + 1"})],
        )
    )
    (info,) = model.events
    assert info.id == "refill" and info.direction == "falling"
    period = np.log(4.0) / 0.5
    ts = np.array([0.5 * period, 1.5 * period, 2.5 * period])
    sol = solve(model, ts)
    ys = dict(zip(model.state_ids, sol.ys.T, strict=True))
    np.testing.assert_allclose(
        ys["A"], 2.0 * 2.0 * np.exp(-0.5 * 0.5 * period), rtol=1e-7
    )
    np.testing.assert_allclose(ys["n"], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(sol.events.times[:2], [period, 2 * period], rtol=1e-9)


def test_constant_terms_shared_within_an_evaluation():
    """A constant term repeated in kinetic laws (`D^6 / (D^6 + K^6)`) is computed once
    per evaluation of the vector field, and the field still equals the formulas: for
    other parameters in the next call, and where a function definition's body holds
    the same text for different arguments."""
    model = sbml.load(
        make(
            species={"A": ("c", 2.0), "B": ("c", 0.5), "C": ("c", 1.0)},
            parameters={"D": 0.8, "K": 1.3, "k": 0.7},
            functions={"hill": "lambda(x, K, x^6 / (x^6 + K^6))"},
            reactions={
                "R1": (["A"], ["B"], "k * A * (D^6 / (D^6 + K^6))"),
                "R2": (["B"], ["C"], "B * (D^6 / (D^6 + K^6))"),
                "R3": (["C"], ["A"], "C * hill(A, K) + hill(D, K)"),
            },
        )
    )

    def reference(y, p):
        a, b, c = y
        h = p["D"] ** 6 / (p["D"] ** 6 + p["K"] ** 6)
        r1 = p["k"] * a * h
        r2 = b * h
        r3 = c * a**6 / (a**6 + p["K"] ** 6) + h
        return np.array([-r1 + r3, r1 - r2, r2 - r3])

    y = jnp.array([2.0, 0.5, 1.0])
    field = jax.jit(model.model.vector_field)
    for p in ({"c": 1.0, "D": 0.8, "K": 1.3, "k": 0.7},
              {"c": 1.0, "D": 1.9, "K": 0.6, "k": 0.2}):  # fmt: skip
        np.testing.assert_allclose(field(0.0, y, p), reference(y, p), rtol=1e-14)
    jaxpr = jax.make_jaxpr(model._built.scalar_vector_field)(0.0, y, model.parameters)
    powers = [e for e in jaxpr.jaxpr.eqns if e.primitive.name in ("pow", "integer_pow")]
    # D^6 and K^6 once for R1 and R2 (4 unshared); three in each call of `hill`,
    # whose body reads its arguments and is not shared.
    assert len(powers) == 2 + 2 * 3


def test_state_terms_shared_within_an_evaluation():
    """A term of states repeated in kinetic laws (`A + B`) is computed once per
    evaluation of the vector field, as is a compartment's reciprocal volume; a term
    that reads time is computed where it appears (a switch evaluates a copy of the
    namespace at another time). The field still equals the formulas."""

    def build(second, third):
        return sbml.load(
            make(
                species={"A": ("c", 2.0), "B": ("c", 0.5), "C": ("c", 1.0)},
                parameters={"k": 0.7},
                reactions={
                    "R1": (["A"], ["B"], "k * A / (A + B)"),
                    "R2": (["B"], ["C"], f"B / ({second})"),
                    "R3": (["C"], ["A"], f"C * (A + time) + ({third})"),
                },
            )
        )

    shared, apart = build("A + B", "A + time"), build("B + A", "time + A")

    def reference(t, y, p):
        a, b, c = y
        r1, r2, r3 = p["k"] * a / (a + b), b / (a + b), c * (a + t) + (a + t)
        return np.array([-r1 + r3, r1 - r2, r2 - r3])

    y = jnp.array([2.0, 0.5, 1.0])
    for model in (shared, apart):
        field = jax.jit(model.model.vector_field)
        np.testing.assert_allclose(
            field(0.3, y, model.parameters),
            reference(0.3, y, model.parameters),
            rtol=1e-14,
        )

    def count(model, primitive):
        jaxpr = jax.make_jaxpr(model._built.scalar_vector_field)(
            0.0, y, model.parameters
        )
        return sum(e.primitive.name == primitive for e in jaxpr.jaxpr.eqns)

    assert count(shared, "add") == count(apart, "add") - 1
    # R1's and R2's quotients, and 1 / c once for the three species.
    assert count(shared, "div") == 3


def test_boundary_species_is_held_constant():
    model = sbml.load(
        make(
            species={"S": ("c", 2.0, ("boundary",)), "P": ("c", 0.0)},
            parameters={"k": 0.25},
            reactions={"R": (["S"], ["P"], "k * S")},
        )
    )
    sol = solve(model, TS)
    np.testing.assert_allclose(sol.ys[:, 0], 2.0, rtol=1e-12)
    np.testing.assert_allclose(sol.ys[:, 1], 0.25 * 2.0 * TS, rtol=1e-8)


# --- refusals --------------------------------------------------------------------------
def test_algebraic_rule_is_refused():
    text = make(species={"A": ("c", 1.0)}, parameters={"x": 1.0}, algebraic=["x - A"])
    with pytest.raises(sbml.UnsupportedSBMLError, match="algebraic rule.*x - A"):
        sbml.load(text)


def test_event_delay_and_priority_are_refused():
    base = dict(species={"A": ("c", 1.0)}, parameters={"k": 1.0})
    delayed = make(**base, events=[("late", "time > 1", {"A": "0"}, {"delay": "2"})])
    with pytest.raises(sbml.UnsupportedSBMLError, match="event 'late' has a delay"):
        sbml.load(delayed)
    ranked = make(**base, events=[("first", "time > 1", {"A": "0"}, {"priority": "1"})])
    with pytest.raises(sbml.UnsupportedSBMLError, match="event 'first' has a priority"):
        sbml.load(ranked)
    compound = make(**base, events=[("both", "time > 1 && A < 2", {"A": "0"})])
    with pytest.raises(sbml.UnsupportedSBMLError, match="event 'both'"):
        sbml.load(compound)


def test_delay_function_and_fast_reaction_are_refused():
    delayed = make(
        species={"A": ("c", 1.0)},
        parameters={"k": 1.0},
        reactions={"R": (["A"], [], "k * delay(A, 1)")},
    )
    with pytest.raises(sbml.UnsupportedSBMLError, match="reaction 'R'.*delay"):
        sbml.load(delayed)
    fast = make(
        species={"A": ("c", 1.0)},
        parameters={"k": 1.0},
        reactions={"F": (["A"], [], "k * A", ("fast",))},
        level=(3, 1),  # L3V2 dropped the attribute
    )
    with pytest.raises(sbml.UnsupportedSBMLError, match="reaction 'F' is marked fast"):
        sbml.load(fast)


def test_undefined_id_is_refused_at_load():
    text = make(
        species={"A": ("c", 1.0)},
        parameters={"k": 1.0},
        reactions={"R": (["A"], [], "k * A * kk")},
    )
    with pytest.raises(sbml.SBMLError, match="reaction 'R' references the id 'kk'"):
        sbml.load(text)
    model = sbml.load(text.replace("kk", "k"))
    with pytest.raises(sbml.SBMLError, match="'nope'"):
        model.expression("A * nope")
    with pytest.raises(KeyError, match="'kx'"):
        model.initial_state({"kx": 1.0})


def test_malformed_document_names_the_file(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text("<sbml><model></sbml>")
    with pytest.raises(sbml.SBMLError, match="broken.xml.*malformed"):
        sbml.load(path)
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        sbml.load(str(tmp_path / "missing.xml"))


# --- the shared PEtab models -----------------------------------------------------------
MODELS = sorted(glob.glob(os.path.join(PETAB, "*", "*.xml")))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: os.path.basename(p))
def test_petab_model_loads_or_is_refused_by_name(path):
    try:
        model = sbml.load(path)
    except sbml.UnsupportedSBMLError as error:
        assert path in str(error)  # a named reason, never a silent change
        return
    y0 = model.initial_state(model.parameters)
    dy = model.model(0.0, y0, model.parameters)
    assert y0.shape == dy.shape == (len(model.state_ids),)
    assert np.all(np.isfinite(y0)) and np.all(np.isfinite(dy))


def _petab_reference(name):
    pd = pytest.importorskip("pandas")
    folder = os.path.join(PETAB, name)

    def table(prefix):
        return pd.read_csv(glob.glob(os.path.join(folder, prefix))[0], sep="\t")

    return (
        sbml.load(glob.glob(os.path.join(folder, "model_*.xml"))[0]),
        table("parameters_*.tsv"),
        table("observables_*.tsv"),
        table("measurementData_*.tsv"),
        table("simulatedData_*.tsv"),
    )


@pytest.mark.parametrize("name", ["Boehm_JProteomeRes2014", "Elowitz_Nature2000"])
def test_petab_simulation_matches_published(name):
    """One condition, no overrides: the nominal parameters (linear in the table whatever
    `parameterScale` says), observables through `expression` with their observable
    parameters from the measurement table, against `simulatedData` (rel 1e-4; measured
    5e-8 for Boehm, 5e-6 for Elowitz)."""
    model, parameters, observables, measurements, simulated = _petab_reference(name)
    nominal = dict(
        zip(parameters.parameterId, parameters.nominalValue.astype(float), strict=True)
    )
    params = {k: v for k, v in nominal.items() if k in model.parameters}
    ts = np.unique(simulated.time.to_numpy())
    sol = solve(model, ts, params, max_steps=100_000)
    for row in observables.itertuples():
        placeholders = measurements[measurements.observableId == row.observableId]
        values = placeholders.observableParameters.dropna().unique()
        assert len(values) <= 1
        extra = {}
        if len(values):
            for i, entry in enumerate(str(values[0]).split(";")):
                key = f"observableParameter{i + 1}_{row.observableId}"
                try:
                    extra[key] = float(entry)
                except ValueError:
                    extra[key] = nominal[entry.strip()]
        observe = model.expression(row.observableFormula, extra_parameters=tuple(extra))
        both = {**params, **extra}
        got = jax.vmap(lambda t, y, f=observe, p=both: f(t, y, p))(sol.ts, sol.ys)
        reference = simulated[simulated.observableId == row.observableId]
        at = np.searchsorted(ts, reference.time.to_numpy())
        np.testing.assert_allclose(
            np.asarray(got)[at], reference.simulation.to_numpy(), rtol=1e-4
        )
