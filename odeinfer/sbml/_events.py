"""SBML events: refusals, and the trigger and assignments translated."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import jax.numpy as jnp
import libsbml

from ._errors import SBMLError, UnsupportedSBMLError
from ._math import Translator, formula

_COMPARE = {
    libsbml.AST_RELATIONAL_GT: jnp.greater,
    libsbml.AST_RELATIONAL_GEQ: jnp.greater_equal,
    libsbml.AST_RELATIONAL_LT: jnp.less,
    libsbml.AST_RELATIONAL_LEQ: jnp.less_equal,
}


class EventInfo(NamedTuple):
    """One SBML event as imported.

    - `id`: the event's id (or `"event_<index>"` when it has none).
    - `trigger`: the trigger formula; the [`odeinfer.Crossing`][] is on `lhs - rhs`.
    - `direction`: `"rising"` for `>`/`>=`, `"falling"` for `<`/`<=`.
    - `assignments`: the assigned ids and formulas, applied with the values at the
        trigger time.
    - `initial_value`: the trigger's `initialValue` (SBML L3; `True` for L2).
    """

    id: str
    trigger: str
    direction: Literal["rising", "falling"]
    assignments: tuple[tuple[str, str], ...]
    initial_value: bool


class Event(NamedTuple):
    info: EventInfo
    difference: Callable  # ns -> lhs - rhs: the crossing function
    assignments: list  # (variable, ns -> value)
    truth: Callable  # ns -> the trigger's value


def check_events(m, assignable: set, assigned, elements, label: str) -> set[str]:
    """Refuses delays, priorities and invalid targets; returns the assigned ids."""
    event_targets: set[str] = set()
    for i, ev in enumerate(m.getListOfEvents()):
        eid = ev.getId() or f"event_{i}"
        if ev.isSetDelay():
            raise UnsupportedSBMLError(
                f"{label}: event {eid!r} has a delay, which odeinfer does not "
                "support. Remove the delay or model it with a state."
            )
        if ev.isSetPriority():
            raise UnsupportedSBMLError(
                f"{label}: event {eid!r} has a priority, which odeinfer does not "
                "support. Remove it (simultaneous events then apply in document "
                "order)."
            )
        for ea in ev.getListOfEventAssignments():
            var = ea.getVariable()
            if var not in assignable:
                raise SBMLError(
                    f"{label}: event {eid!r} assigns {var!r}, which the model does "
                    "not define as a species, compartment or parameter."
                )
            if var in assigned:
                raise SBMLError(
                    f"{label}: event {eid!r} assigns {var!r}, which an assignment "
                    "rule defines; SBML forbids this."
                )
            element = elements[var]
            if element.getConstant():
                raise SBMLError(
                    f"{label}: event {eid!r} assigns {var!r}, which is declared "
                    "constant. Set constant='false' on it."
                )
            event_targets.add(var)

    return event_targets


def translate_events(m, tr: Translator, label: str, level) -> list[Event]:
    events: list[Event] = []
    for i, ev in enumerate(m.getListOfEvents()):
        eid = ev.getId() or f"event_{i}"
        trigger = ev.getTrigger()
        math = trigger.getMath() if trigger is not None else None
        if trigger is None or math is None:
            raise SBMLError(f"{label}: event {eid!r} has no trigger math.")
        kind = math.getType()
        if kind in (libsbml.AST_RELATIONAL_GT, libsbml.AST_RELATIONAL_GEQ):
            direction = "rising"
        elif kind in (libsbml.AST_RELATIONAL_LT, libsbml.AST_RELATIONAL_LEQ):
            direction = "falling"
        else:
            raise UnsupportedSBMLError(
                f"{label}: event {eid!r} has the trigger {formula(math)!r}; "
                "odeinfer supports one comparison a < b, a <= b, a > b or a >= b "
                "(the event becomes a Crossing of a - b). Split compound "
                "triggers into several events."
            )
        lhs = tr.translate(math.getChild(0), f"trigger of event {eid!r}")
        rhs = tr.translate(math.getChild(1), f"trigger of event {eid!r}")
        assignments = []
        for ea in ev.getListOfEventAssignments():
            var = ea.getVariable()
            assignments.append(
                (
                    var,
                    tr.translate(
                        ea.getMath(), f"assignment to {var!r} of event {eid!r}"
                    ),
                )
            )
        info = EventInfo(
            id=eid,
            trigger=formula(math),
            direction=direction,
            assignments=tuple(
                (ea.getVariable(), formula(ea.getMath()))
                for ea in ev.getListOfEventAssignments()
            ),
            initial_value=bool(trigger.getInitialValue()) if level[0] >= 3 else True,
        )
        truth = _COMPARE[kind]
        events.append(
            Event(
                info,
                (lambda ns, a=lhs, b=rhs: a(ns) - b(ns)),
                assignments,
                (lambda ns, a=lhs, b=rhs, f=truth: f(a(ns), b(ns))),
            )
        )
    return events
