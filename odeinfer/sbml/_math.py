"""SBML math (libsbml `ASTNode` trees) translated into JAX closures.

A translated expression is a function `f(ns) -> jax.Array` where `ns` is a dict from
SBML ids to their current values (the reserved key `TIME` holds the time). Function
definitions are inlined: a call binds each argument of the `lambda` to the caller's
translated argument, so the body is evaluated in the caller's namespace.
"""

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import libsbml

from ._errors import SBMLError, UnsupportedSBMLError

TIME = "__time__"
# CODATA 2018 (SBML L3V2's value; L3V1 quoted 6.02214179e23, a relative 2e-7 apart).
AVOGADRO = 6.02214076e23

Closure = Callable[[dict], jnp.ndarray]

_UNARY = {
    libsbml.AST_FUNCTION_ABS: jnp.abs,
    libsbml.AST_FUNCTION_EXP: jnp.exp,
    libsbml.AST_FUNCTION_LN: jnp.log,
    libsbml.AST_FUNCTION_FLOOR: jnp.floor,
    libsbml.AST_FUNCTION_CEILING: jnp.ceil,
    libsbml.AST_FUNCTION_SIN: jnp.sin,
    libsbml.AST_FUNCTION_COS: jnp.cos,
    libsbml.AST_FUNCTION_TAN: jnp.tan,
    libsbml.AST_FUNCTION_SINH: jnp.sinh,
    libsbml.AST_FUNCTION_COSH: jnp.cosh,
    libsbml.AST_FUNCTION_TANH: jnp.tanh,
    libsbml.AST_FUNCTION_ARCSIN: jnp.arcsin,
    libsbml.AST_FUNCTION_ARCCOS: jnp.arccos,
    libsbml.AST_FUNCTION_ARCTAN: jnp.arctan,
    libsbml.AST_FUNCTION_ARCSINH: jnp.arcsinh,
    libsbml.AST_FUNCTION_ARCCOSH: jnp.arccosh,
    libsbml.AST_FUNCTION_ARCTANH: jnp.arctanh,
    libsbml.AST_FUNCTION_SEC: lambda x: 1 / jnp.cos(x),
    libsbml.AST_FUNCTION_CSC: lambda x: 1 / jnp.sin(x),
    libsbml.AST_FUNCTION_COT: lambda x: 1 / jnp.tan(x),
    libsbml.AST_FUNCTION_SECH: lambda x: 1 / jnp.cosh(x),
    libsbml.AST_FUNCTION_CSCH: lambda x: 1 / jnp.sinh(x),
    libsbml.AST_FUNCTION_COTH: lambda x: 1 / jnp.tanh(x),
    libsbml.AST_FUNCTION_ARCSEC: lambda x: jnp.arccos(1 / x),
    libsbml.AST_FUNCTION_ARCCSC: lambda x: jnp.arcsin(1 / x),
    libsbml.AST_FUNCTION_ARCCOT: lambda x: jnp.arctan(1 / x),
    libsbml.AST_FUNCTION_ARCSECH: lambda x: jnp.arccosh(1 / x),
    libsbml.AST_FUNCTION_ARCCSCH: lambda x: jnp.arcsinh(1 / x),
    libsbml.AST_FUNCTION_ARCCOTH: lambda x: jnp.arctanh(1 / x),
}
_RELATIONAL = {
    libsbml.AST_RELATIONAL_EQ: jnp.equal,
    libsbml.AST_RELATIONAL_NEQ: jnp.not_equal,
    libsbml.AST_RELATIONAL_GT: jnp.greater,
    libsbml.AST_RELATIONAL_GEQ: jnp.greater_equal,
    libsbml.AST_RELATIONAL_LT: jnp.less,
    libsbml.AST_RELATIONAL_LEQ: jnp.less_equal,
}
_LOGICAL = {
    libsbml.AST_LOGICAL_AND: (jnp.logical_and, True),
    libsbml.AST_LOGICAL_OR: (jnp.logical_or, False),
    libsbml.AST_LOGICAL_XOR: (jnp.logical_xor, False),
}
_REFUSED = {
    libsbml.AST_FUNCTION_DELAY: "delay()",
    libsbml.AST_FUNCTION_RATE_OF: "rateOf()",
    libsbml.AST_FUNCTION_FACTORIAL: "factorial()",
    libsbml.AST_CSYMBOL_FUNCTION: "a csymbol function",
}


def formula(node: libsbml.ASTNode) -> str:
    """The node as an SBML L3 formula string, for error messages and switch names."""
    return libsbml.formulaToL3String(node)


class Switch(NamedTuple):
    """A time-varying comparison inside a piecewise condition, where the vector field
    jumps. The vector field reads it from a flag state `key` (1.0 true, 0.0 false),
    flipped by a crossing of `difference`, so it is smooth between switches."""

    key: str
    where: str
    formula: str
    difference: Closure
    compare: Closure  # the truth just after the current time (initial, resets)
    # The ids the comparison reads (at a function call: all the call reads).
    reads: set | None
    # For `time <op> expr`: (the ids expr reads, expr's closure); else None.
    at: tuple[set, Closure] | None


class Translator:
    """Translates ASTs of one model.

    **Arguments:**

    - `known`: every id an expression may reference (species, compartments, parameters,
        reactions, and anything else the caller puts in the namespace).
    - `functions`: function-definition id → `(argument names, body ASTNode)`.
    - `source`: the file or `"<string>"`, for error messages.
    """

    def __init__(
        self,
        known: set[str],
        functions: Mapping[str, tuple[tuple[str, ...], libsbml.ASTNode]],
        source: str,
    ):
        self.known = known
        self.functions = functions
        self.source = source
        # With `flagging` on, a time-varying comparison inside a piecewise condition
        # becomes a switch (see `Switch`); `used` collects the keys a translation reads.
        self.flagging = False
        self.varying: set[str] = set()
        self.switches: dict[str, Switch] = {}
        self.used: set[str] = set()

    def translate(
        self,
        node: libsbml.ASTNode | None,
        where: str,
        scope: Mapping | None = None,
        reads: set | None = None,
    ) -> Closure:
        """Translates `node`; `where` ("kinetic law of reaction R1") names the place in
        errors; `reads` (the ids `node` reads) is needed with a `scope`."""
        if node is None:
            raise SBMLError(
                f"{self.source}: {where} has no math. Add a <math> element."
            )
        return self._tr(node, where, dict(scope or {}), False, reads)

    def symbols(self, node, scope: frozenset = frozenset()) -> set[str]:
        """The ids that `node` reads, through inlined function definitions."""
        out: set[str] = set()
        self._symbols(node, set(scope), out, depth=0)
        return out

    def _symbols(self, node, scope, out, depth):
        if depth > 64:
            raise SBMLError(
                f"{self.source}: function definitions call each other recursively."
            )
        kind = node.getType()
        if kind == libsbml.AST_NAME:
            name = node.getName()
            if name not in scope:
                out.add(name)
            return
        if kind == libsbml.AST_NAME_TIME:
            out.add(TIME)
            return
        if kind == libsbml.AST_FUNCTION and node.getName() in self.functions:
            args, body = self.functions[node.getName()]
            for i in range(node.getNumChildren()):
                self._symbols(node.getChild(i), scope, out, depth)
            # The body's free names are the arguments (bound) or global ids.
            inner: set[str] = set()
            self._symbols(body, set(), inner, depth + 1)
            out.update(n for n in inner if n not in args)
            return
        for i in range(node.getNumChildren()):
            self._symbols(node.getChild(i), scope, out, depth)

    def _switch(self, node, kind, a, b, where, scope, reads) -> Closure:
        text = formula(node)
        if kind in (libsbml.AST_RELATIONAL_EQ, libsbml.AST_RELATIONAL_NEQ):
            raise UnsupportedSBMLError(
                f"{self.source}: {where} switches on the equality {text!r} of "
                "time-varying quantities, which odeinfer cannot keep exact. Use <, <=, "
                "> or >=."
            )
        # Outside function bodies the formula names the comparison; inside, the same
        # text can compare different arguments.
        key = f"switch {text}" if not scope else f"switch {len(self.switches)}: {text}"
        if key not in self.switches:
            fn = _RELATIONAL[kind]
            difference = _difference(a, b)
            rising = kind in (libsbml.AST_RELATIONAL_GT, libsbml.AST_RELATIONAL_GEQ)

            def compare(ns):
                # The truth just after the current instant: on the threshold, the
                # sign of d(a - b)/dt at fixed state decides (as AMICI's Heaviside
                # initialisation), e.g. `time <= t_end` with t_end = t0 starts false.
                value = difference(ns)
                slope = jax.jvp(
                    lambda t: difference({**ns, TIME: t}),
                    (jnp.asarray(ns[TIME], dtype=float),),
                    (jnp.ones((), dtype=float),),
                )[1]
                ahead = jnp.where(value == 0, slope, value)
                side = ahead > 0 if rising else ahead < 0
                return jnp.where(ahead == 0, fn(a(ns), b(ns)), side)

            at = None
            for this, other, other_closure in (
                (node.getChild(0), node.getChild(1), b),
                (node.getChild(1), node.getChild(0), a),
            ):
                if this.getType() == libsbml.AST_NAME_TIME and not scope:
                    at = (self.symbols(other), other_closure)
            if at is None and not scope and self._affine_in_time(node):
                # `time - t_on < 0`, `2*time > t_end`: the switch time solves
                # d(τ) = 0 for the difference d, affine in time.
                def root(ns, difference=difference):
                    d0, slope = jax.jvp(
                        lambda t: difference({**ns, TIME: t}),
                        (jnp.zeros((), dtype=float),),
                        (jnp.ones((), dtype=float),),
                    )
                    return jnp.where(slope == 0, jnp.inf, -d0 / slope)

                at = (self.symbols(node) - {TIME}, root)
            self.switches[key] = Switch(
                key,
                where,
                text,
                difference,
                compare,
                reads,
                at,
            )
        self.used.add(key)
        return lambda ns: ns[key] > 0.5

    def _affine_in_time(self, node) -> bool:
        """Whether `node` is affine in `time` with coefficients free of `time` (read
        off the AST: sums, differences, products and quotients by time-free terms).
        Function calls and anything else that reads time count as not affine."""
        if TIME not in self.symbols(node):
            return True
        kind = node.getType()
        children = [node.getChild(i) for i in range(node.getNumChildren())]
        if kind == libsbml.AST_NAME_TIME:
            return True
        if kind in (libsbml.AST_PLUS, libsbml.AST_MINUS) or kind in _RELATIONAL:
            return all(self._affine_in_time(c) for c in children)
        if kind == libsbml.AST_TIMES:
            timed = [c for c in children if TIME in self.symbols(c)]
            return len(timed) == 1 and self._affine_in_time(timed[0])
        if kind == libsbml.AST_DIVIDE and len(children) == 2:
            return TIME not in self.symbols(children[1]) and self._affine_in_time(
                children[0]
            )
        return False

    def _tr(self, node, where, scope, in_condition, call_reads) -> Closure:
        fn = self._tr_node(node, where, scope, in_condition, call_reads)
        if not self.flagging or node.getType() not in _SHARED:
            return fn
        names = self.symbols(node)
        if names & set(scope) or TIME in names:
            return fn
        return _shared("\0shared:" + formula(node), fn)

    def _tr_node(self, node, where, scope, in_condition, call_reads) -> Closure:  # noqa: C901
        kind = node.getType()
        children = [node.getChild(i) for i in range(node.getNumChildren())]

        def sub(child, condition=in_condition):
            return self._tr(child, where, scope, condition, call_reads)

        if kind in (libsbml.AST_INTEGER,):
            value = float(node.getInteger())
            return lambda ns: jnp.asarray(value)
        if kind in (libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL):
            value = float(node.getReal())
            return lambda ns: jnp.asarray(value)
        if kind == libsbml.AST_CONSTANT_PI:
            return lambda ns: jnp.asarray(math.pi)
        if kind == libsbml.AST_CONSTANT_E:
            return lambda ns: jnp.asarray(math.e)
        if kind == libsbml.AST_CONSTANT_TRUE:
            return lambda ns: jnp.asarray(True)
        if kind == libsbml.AST_CONSTANT_FALSE:
            return lambda ns: jnp.asarray(False)
        if kind == libsbml.AST_NAME_AVOGADRO:
            return lambda ns: jnp.asarray(AVOGADRO)
        if kind == libsbml.AST_NAME_TIME:
            return lambda ns: ns[TIME]
        if kind == libsbml.AST_NAME:
            name = node.getName()
            if name in scope:
                return scope[name]
            if name not in self.known:
                raise SBMLError(
                    f"{self.source}: {where} references the id {name!r}, which the "
                    "model does not define. Define it (a parameter, species, "
                    "compartment or reaction) or correct the name."
                )
            return lambda ns: ns[name]
        if kind == libsbml.AST_PLUS:
            parts = [sub(c) for c in children]
            if not parts:
                return lambda ns: jnp.asarray(0.0)
            return lambda ns: _sum(p(ns) for p in parts)
        if kind == libsbml.AST_TIMES:
            parts = [sub(c) for c in children]
            if not parts:
                return lambda ns: jnp.asarray(1.0)
            return lambda ns: _product(p(ns) for p in parts)
        if kind == libsbml.AST_MINUS:
            if len(children) == 1:
                a = sub(children[0])
                return lambda ns: -a(ns)
            a, b = (sub(c) for c in children)
            return lambda ns: a(ns) - b(ns)
        if kind == libsbml.AST_DIVIDE:
            a, b = (sub(c) for c in children)
            return lambda ns: a(ns) / b(ns)
        if kind in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
            a, b = (sub(c) for c in children)
            return lambda ns: _power(a(ns), b(ns))
        if kind in _UNARY:
            fn = _UNARY[kind]
            a = sub(children[0])
            return lambda ns: fn(a(ns))
        if kind == libsbml.AST_FUNCTION_LOG:
            if len(children) == 2:
                base, x = sub(children[0]), sub(children[1])
                return lambda ns: jnp.log(x(ns)) / jnp.log(base(ns))
            x = sub(children[0])
            return lambda ns: jnp.log10(x(ns))
        if kind == libsbml.AST_FUNCTION_ROOT:
            if len(children) == 2:
                degree, x = sub(children[0]), sub(children[1])
                return lambda ns: _power(x(ns), 1.0 / degree(ns))
            x = sub(children[0])
            return lambda ns: jnp.sqrt(x(ns))
        if kind in (libsbml.AST_FUNCTION_MAX, libsbml.AST_FUNCTION_MIN):
            fn = jnp.maximum if kind == libsbml.AST_FUNCTION_MAX else jnp.minimum
            parts = [sub(c) for c in children]

            def extremum(ns):
                out = parts[0](ns)
                for p in parts[1:]:
                    out = fn(out, p(ns))
                return out

            return extremum
        if kind == libsbml.AST_FUNCTION_QUOTIENT:
            a, b = (sub(c) for c in children)
            return lambda ns: jnp.trunc(a(ns) / b(ns))
        if kind == libsbml.AST_FUNCTION_REM:
            a, b = (sub(c) for c in children)
            return lambda ns: jnp.fmod(a(ns), b(ns))
        if kind in _RELATIONAL:
            fn = _RELATIONAL[kind]
            parts = [sub(c) for c in children]
            if len(parts) != 2:
                raise UnsupportedSBMLError(
                    f"{self.source}: {where} compares {len(parts)} operands in "
                    f"{formula(node)!r}; odeinfer supports two. Split it with and()."
                )
            a, b = parts
            if in_condition and self.flagging:
                reads = self.symbols(node) if not scope else call_reads
                if reads is None or reads & self.varying:
                    return self._switch(node, kind, a, b, where, scope, reads)
            return lambda ns: fn(a(ns), b(ns))
        if kind in _LOGICAL:
            fn, empty = _LOGICAL[kind]
            parts = [sub(c) for c in children]
            if not parts:
                return lambda ns: jnp.asarray(empty)

            def logical(ns):
                out = parts[0](ns)
                for p in parts[1:]:
                    out = fn(out, p(ns))
                return out

            return logical
        if kind == libsbml.AST_LOGICAL_NOT:
            a = sub(children[0])
            return lambda ns: jnp.logical_not(a(ns))
        if kind == libsbml.AST_FUNCTION_PIECEWISE:
            pairs = [
                (sub(children[i]), sub(children[i + 1], condition=True))
                for i in range(0, len(children) - 1, 2)
            ]

            # SBML leaves the value undefined when no piece applies.
            def undefined(ns):
                return jnp.asarray(jnp.nan)

            otherwise = sub(children[-1]) if len(children) % 2 else undefined

            def piecewise(ns):
                out = otherwise(ns)
                for value, condition in reversed(pairs):
                    out = jnp.where(condition(ns), value(ns), out)
                return out

            return piecewise
        if kind == libsbml.AST_FUNCTION:
            name = node.getName()
            if name not in self.functions:
                raise SBMLError(
                    f"{self.source}: {where} calls the function {name!r}, which the "
                    "model does not define. Add a functionDefinition with that id."
                )
            args, body = self.functions[name]
            if len(args) != len(children):
                raise SBMLError(
                    f"{self.source}: {where} calls the function {name!r} with "
                    f"{len(children)} arguments; its definition takes {len(args)}."
                )
            bound = {a: sub(c) for a, c in zip(args, children, strict=True)}
            if call_reads is None and not scope:
                call_reads = self.symbols(node)
            return self._tr(
                body, f"{where} (in function {name!r})", bound, in_condition, call_reads
            )
        if kind in _REFUSED:
            raise UnsupportedSBMLError(
                f"{self.source}: {where} uses {_REFUSED[kind]} in {formula(node)!r}, "
                "which odeinfer does not support. Rewrite the model without it."
            )
        raise UnsupportedSBMLError(
            f"{self.source}: {where} uses the MathML construct "
            f"{node.getName() or libsbml.formulaToL3String(node)!r} (AST type {kind}), "
            "which odeinfer does not translate."
        )


# Arithmetic whose value, where it reads no time, function argument or local
# parameter, is computed once per namespace (`_shared`).
_SHARED = frozenset(
    {
        libsbml.AST_PLUS,
        libsbml.AST_MINUS,
        libsbml.AST_TIMES,
        libsbml.AST_DIVIDE,
        libsbml.AST_POWER,
        libsbml.AST_FUNCTION_POWER,
        libsbml.AST_FUNCTION_ROOT,
        libsbml.AST_FUNCTION_LOG,
        *_UNARY,
    }
)


def _shared(key: str, fn: Closure) -> Closure:
    """`fn`, computed once per namespace: the first call stores its value in `ns`
    under `key` (`"\\0"` and the formula: not an SBML id), later calls of the same formula read it.

    For arithmetic that reads no time and no argument of a function or local
    parameter (`Translator._tr`): a namespace holds one value of every id, so the
    formula has one value in it. Time is left out because a switch's `compare` and
    `root` evaluate a copy of the namespace at another time (`{**ns, TIME: t}`),
    which would carry a stored value over. Why: the runtime math repeats terms, and
    every copy of the vector field in a solve (Jacobian, sensitivities, stages)
    computed and differentiated each of them; XLA merges the repeats only after JAX
    has traced and transformed them all. Alkan_SciSignal2018 repeats
    `Dox_level^6 / (Dox_level^6 + k_dox_kd^6)` in 11 kinetic laws (constants only:
    scalar field 689 -> 586 operations) and a sum of 11 species in 3 (with state
    reads too: 587 -> 526)."""

    def shared(ns):
        if key not in ns:
            ns[key] = fn(ns)
        return ns[key]

    return shared


def _sum(values):
    values = list(values)
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


def _product(values):
    values = list(values)
    out = values[0]
    for v in values[1:]:
        out = out * v
    return out


def _power(a, b):
    return jnp.power(a, b)


def _difference(a: Closure, b: Closure) -> Closure:
    return lambda ns: jnp.asarray(a(ns), dtype=float) - jnp.asarray(b(ns), dtype=float)
