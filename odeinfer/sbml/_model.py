"""`load`: an SBML file → `SBMLModel`, an [`odeinfer.ODEModel`][] with its ids."""

import os
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import libsbml
from jaxtyping import Array, ArrayLike, Float

from .._events import Crossing, Dose
from .._model import ODEModel
from ._build import Built
from ._errors import SBMLError
from ._events import EventInfo
from ._math import TIME
from ._read import read_document


class SBMLModel(eqx.Module):
    """An SBML model imported as an [`odeinfer.ODEModel`][] on a flat state.

    **Fields:**

    - `model`: the `ODEModel`; its vector field maps `(t, y, params)` to `dy/dt`, with
        `y` a 1-D array ordered as `state_ids` and `params` a dict keyed by SBML ids
        (missing keys take their nominal values).
    - `state_ids`: the SBML ids of the states. A species' state is its **amount**
        (concentration × compartment size unless `hasOnlySubstanceUnits`).
    - `parameter_ids`, `parameters`: the free constants (parameters, constant
        compartment sizes, local parameters as `"<reaction>.<id>"`) and their nominal
        values.
    - `crossings`: the [`odeinfer.Crossing`][]s to pass as `events=` to
        [`odeinfer.solve`][]: one per SBML event (with its `reset`), then one per
        time-varying comparison inside a `piecewise` (no reset), so that the solver
        stops exactly on every switch instead of stepping across it. Set `max_events`
        to at least the number of crossings you expect.
    - `events`: an [`odeinfer.sbml.EventInfo`][] per SBML event.
    - `switches`: the formulas of the piecewise comparisons behind the switch
        crossings.
    - `source`: the file (or `"<string>"`).

    !!! Example

        ```python
        import odeinfer as oi
        import odeinfer.sbml

        sbml = odeinfer.sbml.load("model.xml")
        p = sbml.parameters
        sol = oi.solve(sbml.model, sbml.initial_state(p), p, t0=0.0, t1=10.0,
                       saveat=[1.0, 5.0, 10.0], solver=oi.Rodas5P(),
                       events=sbml.crossings)
        observe = sbml.expression("k1 * A / compartment")
        ```
    """

    model: ODEModel
    state_ids: tuple[str, ...] = eqx.field(static=True)
    parameter_ids: tuple[str, ...] = eqx.field(static=True)
    parameters: dict[str, float]
    crossings: tuple[Crossing, ...]
    events: tuple[EventInfo, ...] = eqx.field(static=True)
    switches: tuple[str, ...] = eqx.field(static=True)
    source: str = eqx.field(static=True)
    _built: Built = eqx.field(static=True)

    def initial_state(
        self,
        params: Mapping[str, ArrayLike] | None = None,
        *,
        overrides: Mapping[str, ArrayLike] | None = None,
        t0: float = 0.0,
    ) -> Float[Array, " n"]:
        """The state at `t0`: initial amounts and concentrations, initial assignments
        and assignment rules, evaluated with `params` (differentiable in them).

        `overrides` replaces the initial value of states by id, in the quantity SBML
        uses for them (a concentration unless `hasOnlySubstanceUnits`), e.g.
        `{"EGF": 1.0}`; it takes precedence over initial assignments.
        """
        return self._built.initial_state(params, overrides, t0)

    def assignment_rules(self, t, y, params=None) -> dict[str, Array]:
        """The values of all assignment-rule variables at `(t, y)`."""
        ns = self._built.namespace(t, y, params)
        return {sid: ns[sid] for sid in self._built.assigned_ids}

    def values(self, t, y, params=None) -> dict[str, Array]:
        """Every SBML id's value at `(t, y)`: species (concentrations unless
        `hasOnlySubstanceUnits`), compartments, parameters, rule variables, reaction
        rates."""
        ns = self._built.namespace(t, y, params)
        return {k: v for k, v in ns.items() if k != TIME and not k.startswith("\0")}

    def expression(
        self, formula: str, *, extra_parameters: Sequence[str] = ()
    ) -> Callable:
        """Translates an SBML L3 formula (`"k1 * A / compartment"`, as in a PEtab
        observable) into `f(t, y, params)`.

        Species read as in SBML math (concentrations unless `hasOnlySubstanceUnits`);
        `time` is the time; `log` is the natural logarithm (as in PEtab); `**` is
        accepted for `^`. Ids the model does not define raise a `SBMLError`, unless
        listed in `extra_parameters`: those are read from `params`.
        """
        if not isinstance(formula, str) or not formula.strip():
            raise TypeError(
                f"expression: `formula` must be a formula string; got {formula!r}."
            )
        settings = libsbml.L3ParserSettings()
        settings.setParseLog(libsbml.L3P_PARSE_LOG_AS_LN)
        node = libsbml.parseL3FormulaWithSettings(formula.replace("**", "^"), settings)
        if node is None:
            raise SBMLError(
                f"expression: cannot parse {formula!r}: "
                f"{libsbml.getLastParseL3Error().strip()}"
            )
        built = self._built
        extra = tuple(extra_parameters)
        scope: dict[str, Callable] = {
            name: (lambda ns, k=name: ns[k]) for name in extra
        }
        if "time" not in built.translator.known:
            scope["time"] = lambda ns: ns[TIME]
        fn = built.translator.translate(node, f"the expression {formula!r}", scope)
        # Only the rules and rates the formula reads are evaluated: Alkan_SciSignal2018
        # traced its whole namespace (~540 operations) for each of 24 observable and
        # noise formulas, half of the PEtab log-likelihood's program.
        only = built.needed(built.translator.symbols(node))

        def evaluate(t, y, params=None):
            return fn(built.namespace(t, y, params, extra, only))

        return evaluate

    def switch_times(self, params: Mapping[str, ArrayLike] | None = None) -> Array:
        """The times of the piecewise switches of the form `time <op> expr(params)`:
        known discontinuity times of the vector field (e.g. an input turned on at
        `t = 5`). Sorted; the switch crossings already stop the solver there."""
        built = self._built
        ns = built.merge(params)
        for node in built.runtime_order:
            if node.id in built.constant_ids and node.id not in ns:
                ns[node.id] = node.value(ns)
        times = [
            jnp.asarray(sw.at[1](ns), dtype=float)
            for sw in built.switches
            if sw.at is not None and not (sw.at[0] & built.varying)
        ]
        return jnp.sort(jnp.stack(times)) if times else jnp.zeros((0,))

    @property
    def assigned_constant_ids(self) -> tuple[str, ...]:
        """Constant parameters and compartments whose value an initial assignment sets.
        A `params` key with one of these ids replaces the assignment (as a PEtab
        condition does)."""
        return tuple(sorted(self._built.derived_ids))

    @property
    def species_ids(self) -> tuple[str, ...]:
        """The states that are SBML species (the others are rate-rule variables and
        the flags of piecewise switches)."""
        return tuple(sid for sid in self.state_ids if sid in self._built.species)

    @property
    def switch_state_ids(self) -> tuple[str, ...]:
        """The flag states of the piecewise switches (1.0 true, 0.0 false)."""
        keys = {sw.key for sw in self._built.switches}
        return tuple(sid for sid in self.state_ids if sid in keys)

    @property
    def needs_crossings(self) -> bool:
        """Whether solving this model exactly needs `events=crossings` (a diffrax
        solver): it has SBML events, or piecewise switches whose times depend on the
        state. Otherwise [`odeinfer.sbml.SBMLModel.switch_doses`][] expresses every
        switch as a dose, and the fused solvers apply."""
        return bool(self.events) or any(
            sw.at is None or (sw.at[0] & self._built.varying)
            for sw in self._built.switches
        )

    @property
    def switch_time_parameters(self) -> frozenset[str]:
        """The parameters (free or initial-assignment constants) that the switch times
        of [`switch_doses`][odeinfer.sbml.SBMLModel.switch_doses] depend on, through
        any chain of assignments. Derivatives with respect to them move a switch time;
        the fused solvers do not differentiate dose times."""
        built = self._built
        seen: set[str] = set()
        stack = [sid for sw in built.switches if sw.at is not None for sid in sw.at[0]]
        while stack:
            sid = stack.pop()
            if sid in seen:
                continue
            seen.add(sid)
            node = built.runtime.get(sid)
            if node is not None:
                stack.extend(node.reads)
        return frozenset(seen & (set(built.free) | set(built.derived_ids)))

    def switch_doses(
        self,
        y0: Float[Array, " n"],
        params: Mapping[str, ArrayLike] | None = None,
        *,
        t0: ArrayLike = 0.0,
    ) -> tuple[Dose, ...]:
        """The piecewise switches in time (`time <op> expr(params)`, or any comparison
        affine in time) as [`odeinfer.Dose`][]s on their flag states, for solvers that
        take doses but no crossings (the fused ones): at the switch time τ the flag
        jumps by ±1 (the side it leaves, read from `y0`); a switch at or before `t0`
        has already happened (its flag in `y0` says so) and gets amount 0.

        Raises `ValueError` when [`needs_crossings`][odeinfer.sbml.SBMLModel.needs_crossings]
        is true (events and state-dependent switches need `events=crossings`)."""
        if self.needs_crossings:
            raise ValueError(
                f"{self.source}: this model has SBML events or switches that depend on "
                "the state; they cannot be doses. Solve with a diffrax solver (e.g. "
                "oi.Rodas5P()) and `events=model.crossings`."
            )
        built = self._built
        ns = built.merge(params)
        for node in built.runtime_order:
            if node.id in built.constant_ids and node.id not in ns:
                ns[node.id] = node.value(ns)
        start = jnp.asarray(t0, dtype=float)
        doses = []
        for sw in built.switches:
            index = built.index[sw.key]
            assert sw.at is not None  # a switch that is a dose has its time
            tau = jnp.asarray(sw.at[1](ns), dtype=float)
            ahead = jnp.isfinite(tau) & (tau > start)
            # The flag's jump is ±1 or 0: piecewise constant, no derivative.
            amount = lax.stop_gradient(jnp.where(ahead, 1.0 - 2.0 * y0[index], 0.0))
            doses.append(Dose(jnp.where(ahead, tau, start), amount, target=index))
        return tuple(doses)


def load(source: "str | os.PathLike") -> SBMLModel:
    """Imports an SBML model (Levels 2V3 to 3V2) as an [`odeinfer.sbml.SBMLModel`][].

    **Arguments:**

    - `source`: the path of an SBML file, or the document as a string.

    **Returns:** an `SBMLModel`.

    Everything is checked here, before any compilation: malformed SBML and undefined
    ids raise [`odeinfer.sbml.SBMLError`][]; constructs odeinfer cannot honour exactly
    (algebraic rules, delays, fast reactions, event priorities, compound event
    triggers, variable stoichiometry, unknown MathML) raise
    [`odeinfer.sbml.UnsupportedSBMLError`][] naming the construct and the SBML id.
    See the SBML page of the docs for the conventions.
    """
    document, label = read_document(source)
    built = Built(document, label)
    name = document.getModel().getId() or os.path.basename(label)  # pyright: ignore[reportOptionalMemberAccess]  (Built refused a document without a model)

    # Jitted: the solvers trace the field at a dozen places per step (Jacobian,
    # sensitivities, stages), and JAX transforms a jitted function's program once per
    # transformation and reuses it. Gradient trace+lower of Alkan_SciSignal2018's PEtab
    # problem 6.2+0.36 -> 4.5+0.22 s with the shared constant terms of `_math.py`.
    @jax.jit
    def vector_field(t, y, params):
        return built.vector_field(t, y, params)

    crossings = []
    for info, trigger, assignments, _ in built.events:
        crossings.append(
            Crossing(
                _event_fn(built, trigger),
                direction=info.direction,
                reset=_reset(built, assignments),
                name=info.id,
            )
        )
    for sw in built.switches:
        crossings.append(
            Crossing(
                _event_fn(built, sw.difference),
                reset=_flip(built.index[sw.key]),
                name=sw.key,
            )
        )
    return SBMLModel(
        model=ODEModel(vector_field, name=name),
        state_ids=built.state_ids,
        parameter_ids=tuple(built.free),
        parameters=dict(built.free),
        crossings=tuple(crossings),
        events=tuple(event.info for event in built.events),
        switches=tuple(sw.formula for sw in built.switches),
        source=label,
        _built=built,
    )


def _event_fn(built: Built, difference):
    def fn(t, y, params):
        return jnp.asarray(difference(built.namespace(t, y, params)), dtype=float)

    return fn


def _flip(index: int):
    def flip(t, y, params):
        return y.at[index].set(1.0 - y[index])

    return flip


def _reset(built: Built, assignments):
    def reset(t, y, params):
        ns = built.namespace(t, y, params)
        # All assignments use the values before the event (SBML semantics).
        new = {var: value(ns) for var, value in assignments}
        for var, value in new.items():
            s = built.species.get(var)
            if s is not None and not s.getHasOnlySubstanceUnits():
                value = value * ns[s.getCompartment()]
            y = y.at[built.index[var]].set(jnp.asarray(value, dtype=float))
        # The assignments may have moved a switched comparison across its threshold.
        if built.switches:
            ns = built.namespace(t, y, params)
            for sw in built.switches:
                flag = jnp.asarray(sw.compare(ns), dtype=float)
                y = y.at[built.index[sw.key]].set(flag)
        return y

    return reset
