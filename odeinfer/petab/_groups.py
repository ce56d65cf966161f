"""Observables that differ only in the names of their own placeholders, evaluated as one.

PEtab gives every observable its own placeholders (`observableParameter1_<id>`,
`noiseParameter1_<id>`), so a problem that measures one quantity in many settings
repeats one formula under many names: Raimundez_PCB2020's 79 observables are 5
formulas. `group` puts such observables together, so that the likelihood evaluates
each formula once, `jax.vmap`ped over the measurement rows of all its observables, with
each row's own placeholder values: the representative's formula read with another
member's values in its placeholders' positions is that member's formula. (One
function per observable made Raimundez_PCB2020's gradient trace and compile the 79
formulas and their transposes: 1.7 s of trace and 4.7 s of XLA.)"""

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ._layout import ObservableRows, Refs
from ._tables import Observable

# Identifiers, numbers (with exponents) and single other characters: a formula's tokens,
# whitespace dropped.
_TOKEN = re.compile(
    r"[A-Za-z_]\w*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|\S", flags=re.ASCII
)


class ObservableGroup(NamedTuple):
    """Observables evaluated as one: `observable` is the representative (its formulas,
    placeholder names, transformation and noise distribution stand for every member),
    `rows` the measurement rows of `members` one after the other, `formula` and `noise`
    the representative's formulas as functions `(t, y, params) -> value`."""

    members: tuple[str, ...]
    sizes: tuple[int, ...]  # each member's number of rows
    observable: Observable
    rows: ObservableRows
    formula: Callable
    noise: Callable


def _canonical(formula: str, names: dict[str, str]) -> tuple[str, ...]:
    tokens: list[str] = _TOKEN.findall(str(formula))
    return tuple(names.get(t, t) for t in tokens)


def group_key(observable: Observable) -> tuple:
    """What two observables must share to be evaluated as one: their formulas with
    their own placeholders (and, in the noise formula, their own id) replaced by their
    positions, the transformation and the noise distribution."""
    names = {
        p: f"\0observable{k}" for k, p in enumerate(observable.observable_placeholders)
    }
    names.update(
        {p: f"\0noise{k}" for k, p in enumerate(observable.noise_placeholders)}
    )
    formula = _canonical(observable.formula, names)
    names[observable.id] = "\0self"
    return (
        formula,
        _canonical(observable.noise_formula, names),
        observable.transformation,
        observable.distribution,
        len(observable.observable_placeholders),
        len(observable.noise_placeholders),
    )


def group(
    observables: dict[str, Observable],
    rows: dict[str, ObservableRows],
    translate: Callable[[Observable], tuple[Callable, Callable]],
) -> tuple[ObservableGroup, ...]:
    """The observables with measurements (`rows`), grouped by `group_key`, groups in
    the order of their first member in `observables` (the table's order);
    `translate(observable) -> (formula, noise)` is called once per group, on its
    representative."""
    members: dict[tuple, list[str]] = {}
    for oid, observable in observables.items():
        if oid in rows:
            members.setdefault(group_key(observable), []).append(oid)
    return tuple(
        ObservableGroup(
            tuple(ids),
            tuple(len(rows[oid].rows) for oid in ids),
            observables[ids[0]],
            _concatenate([rows[oid] for oid in ids]),
            *translate(observables[ids[0]]),
        )
        for ids in members.values()
    )


def _concatenate(parts: list[ObservableRows]) -> ObservableRows:
    def refs(field: str) -> Refs:
        return Refs(
            np.concatenate([getattr(p, field).index for p in parts]),
            np.concatenate([getattr(p, field).constant for p in parts]),
        )

    return ObservableRows(
        rows=np.concatenate([p.rows for p in parts]),
        experiment=np.concatenate([p.experiment for p in parts]),
        slot=np.concatenate([p.slot for p in parts]),
        time=np.concatenate([p.time for p in parts]),
        measurement=np.concatenate([p.measurement for p in parts]),
        observable_refs=refs("observable_refs"),
        noise_refs=refs("noise_refs"),
    )


def positions(
    groups: tuple[ObservableGroup, ...], oids: list[str] | tuple[str, ...]
) -> np.ndarray:
    """For the rows of the observables `oids`, one observable after the other (each in
    its table order), their positions in the groups' rows laid end to end."""
    out, offset = {}, 0
    for g in groups:
        for oid, size in zip(g.members, g.sizes, strict=True):
            out[oid] = np.arange(offset, offset + size)
            offset += size
    parts = [out[oid] for oid in oids]
    return np.concatenate(parts) if parts else np.zeros(0, int)
