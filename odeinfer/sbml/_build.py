"""The SBML model turned into namespaces of translated expressions.

Conventions (as AMICI's, but with amounts as the state):

- A species that no assignment rule defines is a state, integrated as its **amount**.
  In math it reads as SBML says: its concentration `amount / size(compartment)` unless
  `hasOnlySubstanceUnits`, then its amount. A kinetic law is an extent per time, so
  `d amount/dt = Σ stoichiometry · rate · conversionFactor`; a rate rule on a
  concentration species gives `d amount/dt = size · rule` (its compartment must be
  constant).
- A compartment or parameter with a rate rule, or changed by an event, is a state.
- Every other constant (a parameter, a compartment size, a kinetic law's local
  parameter as `"<reaction id>.<local id>"`) is a parameter, read from the `params` dict.
  One with an initial assignment is computed from the others, or, if the assignment
  reads a species, held as a state of zero derivative.
"""

from collections.abc import Callable
from typing import NamedTuple, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import libsbml

from ._errors import SBMLError, UnsupportedSBMLError
from ._events import check_events, translate_events
from ._math import TIME, Translator, _shared, formula
from ._vectorize import Form, Member, Plan, form_of

_AMOUNT = "\0amount:"


class Node(NamedTuple):
    id: str
    reads: set
    value: Callable


def _topological(nodes: dict[str, Node], label: str, what: str) -> list[Node]:
    order: list[Node] = []
    state: dict[str, int] = {}

    def visit(name, path):
        mark = state.get(name, 0)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise SBMLError(
                f"{label}: the {what} depend on each other in a cycle: {cycle}. SBML "
                "forbids circular assignments; break the cycle."
            )
        state[name] = 1
        for dep in sorted(nodes[name].reads):
            if dep in nodes:
                visit(dep, [*path, name])
        state[name] = 2
        order.append(nodes[name])

    for name in nodes:
        visit(name, [])
    return order


class Built:
    """Everything the public `SBMLModel` needs, as plain Python closures."""

    def __init__(self, document: libsbml.SBMLDocument, label: str):  # noqa: C901
        m = document.getModel()
        if m is None:
            raise SBMLError(f"{label}: the document has no <model>.")
        # libsbml elements and AST nodes kept below are owned by the document.
        self.document = document
        self.label = label
        self.level = (document.getLevel(), document.getVersion())

        def ident(element, kind, index):
            sid = element.getId()
            if not sid:
                raise SBMLError(f"{label}: {kind} #{index} has no id.")
            return sid

        compartments = {c.getId(): c for c in m.getListOfCompartments()}
        species = {s.getId(): s for s in m.getListOfSpecies()}
        parameters = {p.getId(): p for p in m.getListOfParameters()}
        reactions = {r.getId(): r for r in m.getListOfReactions()}
        for i, r in enumerate(m.getListOfReactions()):
            ident(r, "reaction", i)

        functions = {}
        for fd in m.getListOfFunctionDefinitions():
            body = fd.getBody()
            if body is None:
                raise SBMLError(
                    f"{label}: function definition {fd.getId()!r} has no lambda body."
                )
            args = tuple(
                fd.getArgument(i).getName() for i in range(fd.getNumArguments())
            )
            functions[fd.getId()] = (args, body)

        known = set(compartments) | set(species) | set(parameters) | set(reactions)
        tr = Translator(known, functions, label)
        self.translator = tr

        # --- rules -------------------------------------------------------------
        assigned: dict[str, libsbml.ASTNode] = {}
        rated: dict[str, libsbml.ASTNode] = {}
        for i, rule in enumerate(m.getListOfRules()):
            if rule.isAlgebraic():
                text = formula(rule.getMath()) if rule.getMath() else "?"
                raise UnsupportedSBMLError(
                    f"{label}: algebraic rule #{i} ({rule.getMetaId() or 'no metaid'}: "
                    f"0 = {text}) is not supported: odeinfer integrates ODEs, not DAEs. "
                    "Rewrite it as an assignment rule."
                )
            var = rule.getVariable()
            if var not in known:
                raise SBMLError(
                    f"{label}: a rule assigns {var!r}, which the model does not define."
                )
            (assigned if rule.isAssignment() else rated)[var] = rule.getMath()
        initial_assignments: dict[str, libsbml.ASTNode] = {}
        for ia in m.getListOfInitialAssignments():
            var = ia.getSymbol()
            if var not in known:
                raise SBMLError(
                    f"{label}: an initial assignment sets {var!r}, which the model "
                    "does not define."
                )
            initial_assignments[var] = ia.getMath()

        # --- events: refusals first (their targets become states) ------------------
        elements = {**parameters, **compartments, **species}
        event_targets = check_events(
            m, known - set(reactions), assigned, elements, label
        )

        # --- classification ---------------------------------------------------------
        state_ids: list[str] = []
        free: dict[str, float] = {}
        derived: dict[str, libsbml.ASTNode] = {}  # constants set by initial assignments

        def value_of(element, kind, sid):
            if (
                not element.isSetValue()
                if kind == "parameter"
                else not element.isSetSize()
            ):
                if sid in initial_assignments or sid in assigned:
                    return None
                raise SBMLError(
                    f"{label}: {kind} {sid!r} has no "
                    f"{'value' if kind == 'parameter' else 'size'} and no initial "
                    "assignment. Give it one."
                )
            return float(
                element.getValue() if kind == "parameter" else element.getSize()
            )

        for kind, table in (("compartment", compartments), ("parameter", parameters)):
            for sid, element in table.items():
                if sid in assigned:
                    continue
                value_of(element, kind, sid)
                if sid in rated or sid in event_targets:
                    state_ids.append(sid)
                elif sid in initial_assignments:
                    derived[sid] = initial_assignments[sid]
                else:
                    free[sid] = cast(
                        float, value_of(element, kind, sid)
                    )  # not None here
        for sid, s in species.items():
            if sid in assigned:
                continue
            if s.getCompartment() not in compartments:
                raise SBMLError(
                    f"{label}: species {sid!r} lies in compartment "
                    f"{s.getCompartment()!r}, which the model does not define."
                )
            if not (
                s.isSetInitialAmount()
                or s.isSetInitialConcentration()
                or sid in initial_assignments
            ):
                raise SBMLError(
                    f"{label}: species {sid!r} has no initialAmount, no "
                    "initialConcentration and no initial assignment. Give it one."
                )
            state_ids.append(sid)

        # Local parameters of kinetic laws become free parameters "<reaction>.<id>".
        local_scopes: dict[str, dict[str, Callable]] = {}
        for rid, r in reactions.items():
            if r.isSetFast() and r.getFast():
                raise UnsupportedSBMLError(
                    f"{label}: reaction {rid!r} is marked fast, which odeinfer does not "
                    "support (fast reactions make a DAE). Set fast='false' or reduce "
                    "the model."
                )
            law = r.getKineticLaw()
            if law is None or law.getMath() is None:
                raise SBMLError(
                    f"{label}: reaction {rid!r} has no kinetic law. Add a kineticLaw "
                    "with math."
                )
            scope = {}
            local = [law.getParameter(i) for i in range(law.getNumParameters())]
            local += [
                law.getLocalParameter(i) for i in range(law.getNumLocalParameters())
            ]
            for p in local:
                key = f"{rid}.{p.getId()}"
                if not p.isSetValue():
                    raise SBMLError(
                        f"{label}: local parameter {p.getId()!r} of reaction {rid!r} "
                        "has no value."
                    )
                free[key] = float(p.getValue())
                scope[p.getId()] = lambda ns, key=key: ns[key]
            local_scopes[rid] = scope

        self.state_ids = tuple(state_ids)
        self.assigned_ids = tuple(assigned)
        self.free = free
        self.species = species
        self.compartments = compartments
        constant_ids = set(free) | set(derived)

        # --- the runtime namespace: derived constants, species, rules, rates --------
        runtime: dict[str, Node] = {}
        # The form of each runtime value (`_vectorize.py`): values of one form are
        # computed together in the vector field.
        forms: dict[str, Form | None] = {}
        promoted: list[str] = []
        for sid, math in derived.items():
            runtime[sid] = Node(
                sid,
                tr.symbols(math),
                tr.translate(math, f"initial assignment of {sid!r}"),
            )
            forms[sid] = form_of(math, functions)
        # A derived constant that reads something varying is held as a state.
        varying_sources = set(state_ids) | set(assigned) | set(reactions) | {TIME}

        def reads_varying(sid, seen=()):
            for dep in runtime[sid].reads:
                if dep in varying_sources:
                    return True
                if (
                    dep in runtime
                    and dep not in seen
                    and reads_varying(dep, (*seen, sid))
                ):
                    return True
            return False

        for sid in list(derived):
            if reads_varying(sid):
                promoted.append(sid)
        for sid in promoted:
            del runtime[sid]
            del derived[sid]
            constant_ids.discard(sid)
        self.state_ids = tuple(state_ids) + tuple(promoted)
        self.index = {sid: i for i, sid in enumerate(self.state_ids)}
        # Constants set by initial assignments: `params` may override them (PEtab
        # conditions do), replacing the assignment.
        self.derived_ids = frozenset(derived)

        # What varies in time (states, time, and whatever reads them), known before
        # the runtime math is translated: a piecewise comparison of varying quantities
        # becomes a switch, read from a flag state flipped by a crossing (as AMICI's
        # Heaviside variables), so the vector field is smooth between switches.
        reads: dict[str, set] = {}
        for sid, s in species.items():
            if sid not in assigned:
                reads[sid] = {s.getCompartment()}
        for sid, math in assigned.items():
            reads[sid] = tr.symbols(math)
        for rid, r in reactions.items():
            math = r.getKineticLaw().getMath()
            reads[rid] = tr.symbols(math, frozenset(local_scopes[rid]))
        varying = set(self.state_ids) | {TIME}
        changed = True
        while changed:
            changed = False
            for sid, used in reads.items():
                if sid not in varying and used & varying:
                    varying.add(sid)
                    changed = True
        tr.varying = varying
        tr.flagging = True
        uses: dict[str, set] = {}

        def translate_runtime(sid, math, where, scope=None, read=None):
            tr.used = set()
            fn = tr.translate(math, where, scope, reads.get(sid, read))
            uses[sid] = tr.used
            return fn

        for sid, s in species.items():
            if sid in assigned:
                continue
            comp = s.getCompartment()
            if s.getHasOnlySubstanceUnits():
                runtime[sid] = Node(sid, set(), lambda ns, k=_AMOUNT + sid: ns[k])
                forms[sid] = Form(("amount",), (_AMOUNT + sid,))
            else:
                forms[sid] = Form(("concentration",), (_AMOUNT + sid, comp))
                # A product with the reciprocal of the volume, not a division: XLA
                # hoists the reciprocal out of the solver's loops and fuses the
                # product into its users, where each division by a volume was an
                # operation of its own at every stage (Boehm's stage loop with
                # sensitivities 30 -> 22 operations, PEtab gradient 2.78 -> 2.55 ms).
                # The reciprocal is computed once per compartment (`_shared`).
                reciprocal = _shared(
                    "\0reciprocal:" + comp, lambda ns, c=comp: 1.0 / ns[c]
                )
                runtime[sid] = Node(
                    sid,
                    {comp},
                    lambda ns, k=_AMOUNT + sid, r=reciprocal: ns[k] * r(ns),
                )
        for sid, math in assigned.items():
            runtime[sid] = Node(
                sid,
                reads[sid],
                translate_runtime(sid, math, f"assignment rule for {sid!r}"),
            )
            forms[sid] = form_of(math, functions)
        for rid, r in reactions.items():
            runtime[rid] = Node(
                rid,
                reads[rid],
                translate_runtime(
                    rid,
                    r.getKineticLaw().getMath(),
                    f"kinetic law of reaction {rid!r}",
                    local_scopes[rid],
                ),
            )
            forms[rid] = form_of(
                r.getKineticLaw().getMath(),
                functions,
                {name: f"{rid}.{name}" for name in local_scopes[rid]},
            )
        rate_rules = {
            sid: translate_runtime(
                None, math, f"rate rule for {sid!r}", read=tr.symbols(math)
            )
            for sid, math in rated.items()
        }
        tr.flagging = False
        self.runtime_order = _topological(runtime, label, "assignment rules")
        self.runtime = runtime
        self.forms = forms
        # The vector field's evaluation plans, by the derived constants given.
        self.plans: dict[frozenset, Plan | None] = {}
        self.switches = list(tr.switches.values())
        self.state_ids = self.state_ids + tuple(sw.key for sw in self.switches)
        self.index = {sid: i for i, sid in enumerate(self.state_ids)}

        # --- derivatives -----------------------------------------------------------
        model_factor = m.getConversionFactor() if m.isSetConversionFactor() else None
        terms: dict[str, list[tuple[float, str, str | None]]] = {
            sid: [] for sid in species
        }
        for rid, r in reactions.items():
            for sign, refs in (
                (-1.0, r.getListOfReactants()),
                (1.0, r.getListOfProducts()),
            ):
                for ref in refs:
                    sid = ref.getSpecies()
                    if sid not in species:
                        raise SBMLError(
                            f"{label}: reaction {rid!r} references species {sid!r}, "
                            "which the model does not define."
                        )
                    if ref.isSetStoichiometryMath() or (
                        ref.getId()
                        and (
                            ref.getId() in assigned
                            or ref.getId() in rated
                            or ref.getId() in initial_assignments
                            or (ref.isSetConstant() and not ref.getConstant())
                        )
                    ):
                        raise UnsupportedSBMLError(
                            f"{label}: reaction {rid!r} gives species {sid!r} a "
                            "variable stoichiometry, which odeinfer does not support. "
                            "Use a constant stoichiometry."
                        )
                    if self.level[0] >= 3 and not ref.isSetStoichiometry():
                        raise SBMLError(
                            f"{label}: reaction {rid!r} does not set the stoichiometry "
                            f"of species {sid!r} (required in SBML Level 3)."
                        )
                    s = species[sid]
                    if not s.getBoundaryCondition() and (
                        sid in assigned or sid in rated
                    ):
                        raise SBMLError(
                            f"{label}: species {sid!r} is changed by reaction {rid!r} "
                            "and also set by a rule; SBML forbids this unless the "
                            "species is a boundary species. Set boundaryCondition="
                            "'true' or remove the rule."
                        )
                    factor = (
                        s.getConversionFactor()
                        if s.isSetConversionFactor()
                        else model_factor
                    )
                    if factor is not None and factor not in parameters:
                        raise SBMLError(
                            f"{label}: species {sid!r} uses the conversion factor "
                            f"{factor!r}, which the model does not define."
                        )
                    terms[sid].append((sign * ref.getStoichiometry(), rid, factor))

        derivative: dict[str, Callable | None] = {}
        # For the vector field's `Plan`: the flux terms of the species whose
        # derivative is a flux, and the other derivatives with the ids they read.
        self.flux_terms: dict[str, list[tuple[float, str, str | None]]] = {}
        self.rate_rules: dict[str, tuple[Callable, set]] = {}
        for sid in self.state_ids:
            if sid in species:
                s = species[sid]
                comp = s.getCompartment()
                if sid in rate_rules:
                    rule = rate_rules[sid]
                    read = tr.symbols(rated[sid])
                    if s.getHasOnlySubstanceUnits():
                        derivative[sid] = rule
                    elif comp in constant_ids:
                        derivative[sid] = lambda ns, r=rule, c=comp: ns[c] * r(ns)
                        read = read | {comp}
                    else:
                        raise UnsupportedSBMLError(
                            f"{label}: species {sid!r} has a rate rule on its "
                            f"concentration and lies in compartment {comp!r}, whose "
                            "size varies; odeinfer does not support this combination."
                        )
                    self.rate_rules[sid] = (derivative[sid], read)  # pyright: ignore[reportArgumentType]
                elif s.getBoundaryCondition() or s.getConstant() or not terms[sid]:
                    derivative[sid] = None
                else:
                    derivative[sid] = _flux(terms[sid])
                    self.flux_terms[sid] = terms[sid]
            elif sid in rate_rules:
                derivative[sid] = rate_rules[sid]
                self.rate_rules[sid] = (rate_rules[sid], tr.symbols(rated[sid]))
            else:
                derivative[sid] = None
        self.derivative = derivative

        self.varying = varying
        self.constant_ids = constant_ids

        # --- initial values -----------------------------------------------------------
        initial: dict[str, Node] = {}
        for sid in derived:
            initial[sid] = runtime[sid]
        for sw in self.switches:
            initial[sw.key] = Node(sw.key, sw.reads or set(), sw.compare)
        for sid in set(self.state_ids) | set(assigned):
            if sid in initial:
                continue
            if sid in assigned:
                initial[sid] = runtime[sid]._replace(reads=reads[sid] | uses[sid])
            elif sid in initial_assignments:
                math = initial_assignments[sid]
                initial[sid] = Node(
                    sid,
                    tr.symbols(math),
                    tr.translate(math, f"initial assignment of {sid!r}"),
                )
            elif sid in species:
                initial[sid] = _species_initial(species[sid])
            elif sid in compartments:
                size = float(compartments[sid].getSize())
                initial[sid] = Node(sid, set(), lambda ns, v=size: jnp.asarray(v))
            else:
                value = float(parameters[sid].getValue())
                initial[sid] = Node(sid, set(), lambda ns, v=value: jnp.asarray(v))
        for rid in reactions:
            initial[rid] = runtime[rid]._replace(reads=reads[rid] | uses[rid])
        self.initial = initial
        self.initial_order = _topological(initial, label, "initial assignments")

        # --- events ---------------------------------------------------------------------
        self.events = translate_events(m, tr, label, self.level)

    # --- evaluation ---------------------------------------------------------------------
    def merge(self, params, extra=()) -> dict:
        if params is None:
            return dict(self.free)
        out = dict(self.free)
        for key, value in params.items():
            if (
                key not in self.free
                and key not in extra
                and key not in self.derived_ids
            ):
                raise KeyError(
                    f"{self.label}: `params` has the key {key!r}, which is not a "
                    "parameter of this model. The parameters are "
                    "`SBMLModel.parameter_ids`."
                )
            out[key] = value
        return out

    def namespace(self, t, y, params, extra=(), only=None) -> dict:
        """The SBML values at `(t, y)`: every runtime node, or with `only` (from
        `needed`) those it names."""
        ns = self.merge(params, extra)
        given = self.derived_ids.intersection(params or ())
        ns[TIME] = jnp.asarray(t, dtype=float)
        # One `unstack`, not a slice and a squeeze per state: the same program after
        # lowering, in fewer operations for JAX to trace and transform (Alkan_SciSignal2018:
        # 72 of the vector field's 526).
        values = jnp.unstack(jnp.asarray(y)) if len(self.index) else []
        for sid, i in self.index.items():
            if only is None or sid in only:
                key = _AMOUNT + sid if sid in self.species else sid
                ns[key] = values[i]
        for node in self.runtime_order:
            if node.id not in given and (only is None or node.id in only):
                ns[node.id] = node.value(ns)
        return ns

    def needed(self, ids) -> frozenset:
        """The ids that `ids` read, directly or through runtime nodes, and the switch
        flags (read by rules without being named in them): what a formula needs of
        `namespace` (a PEtab observable reads a few of the hundreds of states, rules
        and rates that the whole namespace holds)."""
        out = {sw.key for sw in self.switches}
        stack = list(ids)
        while stack:
            sid = stack.pop()
            if sid not in out:
                out.add(sid)
                if sid in self.runtime:
                    stack.extend(self.runtime[sid].reads)
        return frozenset(out)

    def vector_field(self, t, y, params):
        """`dy/dt`: by the `Plan` (for the derived constants that `params` gives:
        those are inputs, not computed) where it at least halves the operations of the
        scalar evaluation, else on scalars."""
        ns = self.merge(params)
        given = self.derived_ids.intersection(params or ())
        if given not in self.plans:
            plan = self.make_plan(given)
            self.plans[given] = plan if self._halves(plan, params) else None
        plan = self.plans[given]
        if plan is None:
            return self.scalar_vector_field(t, y, params)
        return plan(t, jnp.asarray(y, dtype=float), ns)

    def make_plan(self, given: frozenset = frozenset()) -> Plan:
        """The vector field's `Plan` where `params` gives the derived constants
        `given`."""
        members = [
            Member(node.id, node.value, frozenset(node.reads), self.forms[node.id])
            for node in self.runtime_order
            if node.id not in given
        ]
        return Plan(members, self.index, _AMOUNT, self.flux_terms, self.rate_rules)

    def _halves(self, plan: Plan, params) -> bool:
        """Whether `plan` has at most half the operations of the scalar evaluation.
        Where it has more, the gathers of its groups cost more than the scalar
        operations they replace. Measured (same-process A/B, min of interleaved calls,
        loaded 2-core machine): Zheng_PNAS2012 (331 -> 79 operations) gradient
        10.8 -> 8.7 ms, value 4.9 -> 1.8 ms; Laske_PLOSComputBiol2019 (437 -> 303)
        gradient 224 -> 237 ms; Alkan_SciSignal2018 (690 -> 414) gradient 4.2 -> 5.9 s,
        value 394 -> 462 ms."""
        example = (
            jax.ShapeDtypeStruct((), float),
            jax.ShapeDtypeStruct((len(self.index),), float),
            {
                k: jax.ShapeDtypeStruct(jnp.shape(v), float)
                for k, v in (params or {}).items()
            },
        )

        def count(field):
            return len(jax.make_jaxpr(field)(*example).jaxpr.eqns)

        planned = count(lambda t, y, p: plan(t, y, self.merge(p)))
        scalar = count(self.scalar_vector_field)
        return 2 * planned <= scalar

    def scalar_vector_field(self, t, y, params):
        """`dy/dt` with every runtime value on scalars."""
        ns = self.namespace(t, y, params)
        zero = jnp.zeros((), dtype=float)
        return jnp.stack(
            [
                zero if f is None else jnp.asarray(f(ns), dtype=float)
                for f in (self.derivative[sid] for sid in self.state_ids)
            ]
        )

    def to_state(self, ns) -> jnp.ndarray:
        """The state vector from a namespace of SBML values (concentrations where
        SBML reads concentrations)."""
        out = []
        for sid in self.state_ids:
            value = ns[sid]
            s = self.species.get(sid)
            if s is not None and not s.getHasOnlySubstanceUnits():
                value = value * ns[s.getCompartment()]
            out.append(jnp.asarray(value, dtype=float))
        return jnp.stack(out)

    def initial_state(self, params, overrides=None, t0=0.0):
        overrides = dict(overrides or {})
        for key in overrides:
            if key not in self.index:
                raise KeyError(
                    f"{self.label}: `overrides` has the key {key!r}, which is not a "
                    "state of this model (`SBMLModel.state_ids`)."
                )
        ns = self.merge(params)
        ns[TIME] = jnp.asarray(t0, dtype=float)
        given = self.derived_ids.intersection(params or ())
        for node in self.initial_order:
            if node.id in given:
                continue
            if node.id in overrides:
                ns[node.id] = jnp.asarray(overrides[node.id], dtype=float)
            else:
                ns[node.id] = node.value(ns)
        y0 = self.to_state(ns)
        for event in self.events:
            info, truth = event.info, event.truth
            if not info.initial_value:
                y0 = eqx.error_if(
                    y0,
                    truth(ns),
                    f"{self.label}: the trigger {info.trigger!r} of event {info.id!r} "
                    "is true at t0 and its initialValue is false, so SBML fires it at "
                    "t0; odeinfer does not fire events at t0. Set initialValue='true' "
                    "or apply the event's assignments to the initial state.",
                )
        return y0


def _flux(terms):
    """`Σ stoichiometry · rate (· conversion factor)`, with a unit stoichiometry added
    or subtracted rather than multiplied (and no `0.0 +` to start): the vector field
    is traced at a dozen places of a solve and its derivatives, and these were a
    quarter of its operations (Alkan_SciSignal2018 831 -> 673, Laske 496 -> 351)."""

    def flux(ns):
        total = None
        for stoichiometry, rid, factor in terms:
            unit = stoichiometry in (1.0, -1.0)
            rate = ns[rid] if unit else stoichiometry * ns[rid]
            if factor is not None:
                rate = rate * ns[factor]
            if total is None:
                total = rate if stoichiometry != -1.0 else -rate
            elif unit:
                total = total + rate if stoichiometry == 1.0 else total - rate
            else:
                total = total + rate
        return total

    return flux


def _species_initial(s) -> Node:
    comp = s.getCompartment()
    amount_units = s.getHasOnlySubstanceUnits()
    if s.isSetInitialAmount():
        value = float(s.getInitialAmount())
        if amount_units:
            return Node(s.getId(), set(), lambda ns: jnp.asarray(value))
        return Node(s.getId(), {comp}, lambda ns: value / ns[comp])
    value = float(s.getInitialConcentration())
    if amount_units:
        return Node(s.getId(), {comp}, lambda ns: value * ns[comp])
    return Node(s.getId(), set(), lambda ns: jnp.asarray(value))
