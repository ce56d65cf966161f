"""The SBML vector field evaluated on vectors: the kinetic laws, rules and species
concentrations that have the same form (`k * A * B`, `compartment * f(S, k)`) are
computed together, one operation per node of the form, on the values gathered for all
of them.

Why: the solvers trace the vector field a dozen times per step and its derivatives
(Jacobian, forward sensitivities, stage solves), and a scalar expression per reaction
made each copy as many operations as the model has terms. Tracing, lowering and XLA's
compile time grow with that count. Measured (see `Plan`'s commit): Alkan_SciSignal2018
(96 reactions in 15 forms) and Zheng_PNAS2012 (60 reactions in 2 forms).

A form is the expression tree with its function calls inlined, its numbers kept and
its ids replaced by the position of their first occurrence (`A * A` and `A * B`
differ). Expressions that read a piecewise, a comparison or a logical operator (where
the switches of `_math.py` are), and forms of a single member, are evaluated as
before, on scalars.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax.lax as lax
import jax.numpy as jnp
import libsbml
import numpy as np
from jaxtyping import Array, Float

from ._math import _SHARED, TIME

# The arithmetic `_math.py` shares, and the other elementwise functions.
_ELEMENTWISE = _SHARED | {
    libsbml.AST_FUNCTION_MAX,
    libsbml.AST_FUNCTION_MIN,
    libsbml.AST_FUNCTION_QUOTIENT,
    libsbml.AST_FUNCTION_REM,
}
_CONSTANTS = frozenset(
    {
        libsbml.AST_CONSTANT_PI,
        libsbml.AST_CONSTANT_E,
        libsbml.AST_NAME_AVOGADRO,
    }
)


class Form(NamedTuple):
    """The form of an expression (hashable) and the namespace keys it reads, in the
    order of their first occurrence."""

    signature: tuple
    keys: tuple[str, ...]


def form_of(
    node: libsbml.ASTNode, functions: dict, local: dict[str, str] | None = None
) -> Form | None:
    """The `Form` of `node`, or `None` where it is not elementwise arithmetic (a
    piecewise, comparison, logical operator or anything else).

    `functions`: function-definition id -> `(argument names, body)`; `local`: a
    kinetic law's local parameters, name -> namespace key."""
    tokens: list = []
    keys: list[str] = []

    def leaf(key):
        if key not in keys:
            keys.append(key)
        tokens.append(("id", keys.index(key)))

    def walk(node, scope, depth) -> bool:
        if depth > 64:
            return False
        kind = node.getType()
        if kind == libsbml.AST_INTEGER:
            tokens.append(("number", float(node.getInteger())))
            return True
        if kind in (libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL):
            tokens.append(("number", float(node.getReal())))
            return True
        if kind in _CONSTANTS:
            tokens.append(("constant", kind))
            return True
        if kind == libsbml.AST_NAME_TIME:
            leaf(TIME)
            return True
        if kind == libsbml.AST_NAME:
            name = node.getName()
            bound = scope.get(name)
            if bound is None:
                leaf(name)
                return True
            if isinstance(bound, str):  # a local parameter
                leaf(bound)
                return True
            argument, outer = bound  # an inlined function's argument
            return walk(argument, outer, depth)
        children = [node.getChild(i) for i in range(node.getNumChildren())]
        if kind == libsbml.AST_FUNCTION:
            if node.getName() not in functions:
                return False
            names, body = functions[node.getName()]
            if len(names) != len(children):
                return False
            inner = {a: (c, scope) for a, c in zip(names, children, strict=True)}
            return walk(body, inner, depth + 1)
        if kind not in _ELEMENTWISE:
            return False
        tokens.append((kind, len(children)))
        return all(walk(c, scope, depth) for c in children)

    if not walk(node, dict(local or {}), 0):
        return None
    return Form(tuple(tokens), tuple(keys))


class Member(NamedTuple):
    """A runtime value of the vector field: its key, its scalar closure `value(ns)`,
    the keys it reads and its form (`None`: evaluated on scalars)."""

    key: str
    value: Callable
    reads: frozenset
    form: Form | None


class _Group(NamedTuple):
    closure: Callable  # the first member's, evaluated on vectors
    leaves: tuple  # per key of the first member: (key, `_Source`)
    size: int


class _Level(NamedTuple):
    groups: tuple[_Group, ...]
    scalars: tuple[Member, ...]


class _Source(NamedTuple):
    """Where the values of one leaf of a group come from: `blocks` (block indices,
    concatenated when more than one) and the positions in them: an `int` (the same
    value for every member), a `slice` or an index array (a gather)."""

    blocks: tuple[int, ...]
    where: object


def _source(
    places: list[tuple[int, int]], sizes: list[int], blocks: tuple[int, ...] = ()
) -> _Source:
    """The `_Source` of the values at `places` (block, offset); `blocks`: read from
    the concatenation of these blocks (a superset of those of `places`)."""
    blocks = blocks or tuple(sorted({b for b, _ in places}))
    start = {b: sum(sizes[c] for c in blocks[:i]) for i, b in enumerate(blocks)}
    where = np.asarray([start[b] + o for b, o in places], np.int32)
    if np.all(where == where[0]):
        return _Source(blocks, int(where[0]))
    if np.all(np.diff(where) == 1):
        return _Source(blocks, slice(int(where[0]), int(where[-1]) + 1))
    return _Source(blocks, where)


class Plan:
    """The vector field `dy/dt` computed on blocks of values: `y`, the parameters the
    groups read, `[time, 1]`, then per level (the longest chain of runtime values below
    it) one block per group of two or more members of one form and one for its scalar
    members. A group reads each leaf from a block by a slice or a gather, not from one
    concatenation of everything: under the solvers' `jax.vmap`s of derivatives a block
    has leading axes of directions and Jacobian columns, and that concatenation was
    copied whole at every level (Zheng's gradient 11 -> 24 ms).

    The fluxes `Σ stoichiometry · rate (· conversion factor)` are summed slot by slot:
    slot j holds the j-th term, in reaction order (the order of the scalar sums they
    replace), of every species with more than j terms (sorted by their number, so that
    a slot is a prefix); then one gather puts them in state order with the rate rules
    and zeros.

    **Arguments:** `members`: every runtime value (species concentrations, derived
    constants not given in `params`, rules, rates); `index`: state id -> position in
    `y`; `amount_prefix`: the key prefix of a species' amount; `terms`: species id ->
    `(stoichiometry, reaction id, conversion factor id or None)`; `rate_rules`: state
    id -> `(closure, ids read)`."""

    def __init__(
        self,
        members: list[Member],
        index: dict[str, int],
        amount_prefix: str,
        terms: dict[str, list[tuple[float, str, str | None]]],
        rate_rules: dict[str, tuple[Callable, set]],
    ):
        n = len(index)
        runtime = {m.key: m for m in members}
        # Only what the derivatives read.
        wanted: set[str] = set()
        stack = [rid for ts in terms.values() for _, rid, _ in ts]
        for _, reads in rate_rules.values():
            stack.extend(reads)
        while stack:
            key = stack.pop()
            if key in wanted or key not in runtime:
                continue
            wanted.add(key)
            stack.extend(runtime[key].reads)
        members = [m for m in members if m.key in wanted]

        level: dict[str, int] = {}

        def depth(key):
            if key not in runtime:
                return -1
            if key not in level:
                below = [depth(d) for d in runtime[key].reads if d != key]
                level[key] = 1 + max(below, default=-1)
            return level[key]

        for m in members:
            depth(m.key)
        # Per level: groups of two or more members of one form, and scalar members.
        layout: list[tuple[list[list[Member]], list[Member]]] = []
        for at in range(1 + max(level.values(), default=-1)):
            by_form: dict[tuple, list[Member]] = {}
            scalars: list[Member] = []
            for m in members:
                if level[m.key] != at:
                    continue
                if m.form is None:
                    scalars.append(m)
                else:
                    by_form.setdefault(m.form.signature, []).append(m)
            groups = [same for same in by_form.values() if len(same) > 1]
            scalars += [same[0] for same in by_form.values() if len(same) == 1]
            layout.append((groups, scalars))

        # Blocks 0-2: the state, the parameters the groups and factors read, [t, 1].
        place: dict[str, tuple[int, int]] = {}
        for key, i in index.items():
            place[amount_prefix + key] = (0, i)
            if key not in runtime:  # (a species' id reads its concentration)
                place[key] = (0, i)
        read = {
            k
            for groups, _ in layout
            for same in groups
            for m in same
            for k in m.form.keys  # pyright: ignore[reportOptionalMemberAccess]
        } | {f for ts in terms.values() for _, _, f in ts if f is not None}
        self.parameters = tuple(
            sorted(k for k in read if k not in runtime and k not in place and k != TIME)
        )
        for j, key in enumerate(self.parameters):
            place[key] = (1, j)
        place[TIME] = (2, 0)
        one = (2, 1)
        sizes = [n, len(self.parameters), 2]

        levels = []
        for groups, scalars in layout:
            built_groups = []
            for same in groups:
                first = same[0].form
                assert first is not None
                leaves = tuple(
                    (key, _source([place[m.form.keys[j]] for m in same], sizes))  # pyright: ignore[reportOptionalMemberAccess]
                    for j, key in enumerate(first.keys)
                )
                built_groups.append(_Group(same[0].value, leaves, len(same)))
                for i, m in enumerate(same):
                    place[m.key] = (len(sizes), i)
                sizes.append(len(same))
            for i, m in enumerate(scalars):
                place[m.key] = (len(sizes), i)
            if scalars:
                sizes.append(len(scalars))
            levels.append(_Level(tuple(built_groups), tuple(scalars)))
        self.levels = tuple(levels)
        self.place = place

        # The fluxes, summed slot by slot over the flux states sorted by their number
        # of terms (slot j: the j-th term of the first `len` of them, in reaction
        # order), then put in state order with the rate rules and zeros.
        # Every slot reads the rates from one concatenation of their blocks (one per
        # slot copied Laske's rates 22 times per evaluation).
        flux_states = sorted(terms, key=lambda sid: -len(terms[sid]))
        rate_blocks = tuple(
            sorted({place[rid][0] for ts in terms.values() for _, rid, _ in ts})
        )
        self.slots = []
        for j in range(len(terms[flux_states[0]]) if flux_states else 0):
            rows = [terms[sid][j] for sid in flux_states if len(terms[sid]) > j]
            factors = [one if f is None else place[f] for _, _, f in rows]
            self.slots.append(
                (
                    _source([place[rid] for _, rid, _ in rows], sizes, rate_blocks),
                    np.asarray([c for c, _, _ in rows], float),
                    None if all(f == one for f in factors) else _source(factors, sizes),
                )
            )
        self.rate_rules = tuple(rule for rule, _ in rate_rules.values())
        ordered = {sid: i for i, sid in enumerate([*flux_states, *rate_rules])}
        zero_at = len(ordered)
        self.order = _source(
            [(0, ordered.get(sid, zero_at)) for sid in index], [zero_at + 1]
        )
        self.n = n

    def __call__(self, t, y: Float[Array, " n"], ns: dict) -> Float[Array, " n"]:
        """`dy/dt` at `(t, y)`; `ns`: the merged parameters (`Built.merge`)."""
        dtype = y.dtype
        t = jnp.asarray(t, dtype)
        blocks = [y]
        blocks.append(
            jnp.stack([jnp.asarray(ns[k], dtype) for k in self.parameters])
            if self.parameters
            else jnp.zeros((0,), dtype)
        )
        blocks.append(jnp.stack([t, jnp.ones((), dtype)]))
        scalar = _Scalars(ns, self.place, t, blocks)
        for level in self.levels:
            outputs = []
            for group in level.groups:
                vectors = {key: _read(blocks, source) for key, source in group.leaves}
                out = jnp.asarray(group.closure(vectors), dtype)
                outputs.append(jnp.broadcast_to(out, (group.size,)))
            if level.scalars:
                values = [jnp.asarray(m.value(scalar), dtype) for m in level.scalars]
                outputs.append(jnp.stack(values))
            blocks.extend(outputs)
        parts = []
        if self.slots:
            flux = None
            joined = {}
            for rates, coefficients, factors in self.slots:
                term = coefficients * _read(blocks, rates, joined)
                if factors is not None:
                    term = term * _read(blocks, factors)
                if flux is None:
                    flux = term
                else:
                    # In place on the first `len(term)` entries: a full-length add per
                    # slot made Laske's Jacobian (one state with 22 terms, most with
                    # two) 6x the additions of the scalar sums.
                    head = lax.slice_in_dim(flux, 0, term.shape[0]) + term
                    flux = lax.dynamic_update_slice_in_dim(flux, head, 0, axis=0)
            parts.append(flux)
        if self.rate_rules:
            values = [jnp.asarray(rule(scalar), dtype) for rule in self.rate_rules]
            parts.append(jnp.stack(values))
        if not parts:
            return jnp.zeros_like(y)
        return _read([jnp.concatenate([*parts, jnp.zeros((1,), dtype)])], self.order)


def _read(blocks: list, source: _Source, joined: dict | None = None):
    """The values of `source`; `joined`: the concatenations made so far in this
    evaluation, by their blocks."""
    if len(source.blocks) == 1:
        values = blocks[source.blocks[0]]
    elif joined is not None and source.blocks in joined:
        values = joined[source.blocks]
    else:
        values = jnp.concatenate([blocks[b] for b in source.blocks])
        if joined is not None:
            joined[source.blocks] = values
    if isinstance(source.where, int | slice):
        return values[source.where]
    return _gather(values, source.where)


def _gather(values, positions):
    return values.at[positions].get(mode="promise_in_bounds")


class _Scalars(dict):
    """The namespace of the scalar members: the parameters as given, the time, and
    states and runtime values read from the blocks on first use."""

    def __init__(self, ns: dict, place: dict[str, tuple[int, int]], t, blocks: list):
        super().__init__(ns)
        self[TIME] = t
        self.place = place
        self.blocks = blocks

    def __missing__(self, key):
        block, offset = self.place[key]
        value = self.blocks[block][offset]
        self[key] = value
        return value
