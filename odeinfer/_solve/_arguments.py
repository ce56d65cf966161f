"""Validation and canonicalisation of the arguments of [`odeinfer.solve`][].

Every check runs before any work, in Python, and names the argument at fault; values
that are traced (inside the user's `jax.jit`) are checked in the loop instead and give
`RESULTS.invalid_input` (`_loop.py`).
"""

from collections.abc import Sequence
from typing import NamedTuple

import diffrax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike

from .. import _validation as validate
from .._custom_types import Params, Scalar, ScalarLike, State
from .._events import Crossing, Dose
from .._model import ODEModel
from .._solvers import AbstractRosenbrock
from .._solvers._fused import AbstractFusedSolver
from .._solvers._jacobian import model_jacobian


class Arguments(NamedTuple):
    """The canonical array arguments of a solve: floats of the default float dtype,
    events and doses as tuples."""

    y0: State
    params: Params
    t0: Scalar
    t1: Scalar
    saveat: Array | None
    crossings: tuple[Crossing, ...]
    doses: tuple[Dose, ...]
    rtol: Scalar
    atol: Scalar
    max_step_size: Scalar | None


def as_tuple(items, kind, name):
    """`None`, one `kind` or a sequence of them as a tuple; `TypeError` otherwise."""
    if items is None:
        return ()
    if isinstance(items, kind):
        return (items,)
    items = tuple(items)
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(
                f"`{name}` must be a {kind.__name__} or a sequence of them; got "
                f"{type(item).__name__}."
            )
    return items


def canonical_arguments(
    model: ODEModel,
    y0: State,
    params: Params,
    *,
    t0: ScalarLike,
    t1: ScalarLike,
    saveat: ArrayLike | None,
    solver: diffrax.AbstractSolver | AbstractFusedSolver,
    rtol: ScalarLike,
    atol: ScalarLike,
    events: Crossing | Sequence[Crossing] | None,
    doses: Dose | Sequence[Dose] | None,
    max_events: int,
    max_steps: int,
    max_step_size: ScalarLike | None,
    dense: bool,
    adjoint: diffrax.AbstractAdjoint,
    throw: bool,
) -> Arguments:
    """Check the arguments of `solve` (raising `TypeError`/`ValueError`, or
    `NumpyInTracedCodeError` from the user's functions) and convert them."""
    if not isinstance(model, ODEModel):
        raise TypeError(
            f"`model` must be an odeinfer.ODEModel; got {type(model).__name__}. Wrap the "
            "vector field: `odeinfer.ODEModel(lambda t, y, params: ...)`."
        )
    crossings = as_tuple(events, Crossing, "events")
    dose_list = as_tuple(doses, Dose, "doses")
    validate.check_time_span(t0, t1)
    validate.check_tolerances(rtol, atol)
    validate.check_finite("y0", y0)
    validate.check_finite("params", params)
    validate.check_max("max_events", max_events, 1)
    validate.check_max("max_steps", max_steps, 1)
    _check_strategies(solver, adjoint, crossings, dense, max_step_size)
    float_dtype = jnp.result_type(float)
    t0 = jnp.asarray(t0, dtype=float_dtype)
    t1 = jnp.asarray(t1, dtype=float_dtype)
    if saveat is not None:
        saveat = _canonical_saveat(saveat, t0, t1, float_dtype)
    validate.check_max_step_size(max_step_size)
    for flag, value in (("dense", dense), ("throw", throw)):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be True or False; got {value!r}.")
    if not jtu.tree_leaves(y0) or any(jnp.size(x) == 0 for x in jtu.tree_leaves(y0)):
        raise ValueError(
            f"`y0` has no components ({y0!r}); give the initial state, e.g. "
            "`jnp.array([1.0, 0.0])`."
        )
    for i, crossing in enumerate(crossings):
        validate.check_finite(f"events[{i}].level", crossing.level)
    for i, dose in enumerate(dose_list):
        _check_dose(i, dose, y0, t0)
    validate.check_user_functions(model, crossings, y0, params, t0)
    validate.check_precision(rtol, float_dtype)
    if isinstance(solver, AbstractRosenbrock):
        model_jacobian(model, y0, params, t0)
    y0 = validate.as_arrays(y0)
    params = validate.as_arrays(params)
    rtol = jnp.asarray(rtol, dtype=float_dtype)
    atol = jnp.asarray(atol, dtype=float_dtype)
    if max_step_size is not None:
        max_step_size = jnp.asarray(max_step_size, dtype=float_dtype)
    return Arguments(
        y0, params, t0, t1, saveat, crossings, dose_list, rtol, atol, max_step_size
    )


def _check_strategies(solver, adjoint, crossings, dense, max_step_size) -> None:
    """The solver is a solver instance, a fused one gets only what it supports, and the
    adjoint is not `BacksolveAdjoint`."""
    if not isinstance(solver, diffrax.AbstractSolver | AbstractFusedSolver):
        raise TypeError(
            f"`solver` must be a solver instance such as diffrax.Tsit5(), oi.Rodas5P() "
            f"or oi.FusedAuto(); got {solver!r}."
        )
    if isinstance(solver, AbstractFusedSolver):
        for given, name, fix in (
            (dense, "dense=True", "oi.Rodas5P() or diffrax.Tsit5()"),
            (max_step_size is not None, "max_step_size", "a diffrax solver"),
        ):
            if given:
                raise ValueError(
                    f"`solver={solver!r}` (a fused forward-sensitivity solver) takes "
                    f"no `{name}`: use {fix} for it."
                )
        _check_fused_crossings(solver, crossings)
    if isinstance(adjoint, diffrax.BacksolveAdjoint):
        raise ValueError(
            "`adjoint=diffrax.BacksolveAdjoint()` is not supported by odeinfer.solve: "
            "diffrax refuses it with events and with the split saving that solve uses. "
            "Use diffrax.RecursiveCheckpointAdjoint() (reverse mode) or "
            "diffrax.ForwardMode() (forward mode), or call diffrax.diffeqsolve directly."
        )


def _check_fused_crossings(solver, crossings) -> None:
    """A fused solver takes at most one crossing, terminal and without reset."""
    what = None
    if len(crossings) > 1:
        what = f"{len(crossings)} crossings"
    elif crossings and crossings[0].reset is not None:
        what = "a crossing with a `reset`"
    elif crossings and not crossings[0].terminal:
        what = "a crossing that is not terminal"
    if what is not None:
        raise ValueError(
            f"`solver={solver!r}` (a fused forward-sensitivity solver) takes in "
            f"`events` only one terminal Crossing without reset (`terminal=True`, as "
            f"`oi.first_crossing` makes it); got {what}. Use oi.Rodas5P() or "
            "diffrax.Tsit5() for several, recorded or resetting crossings."
        )


def _canonical_saveat(saveat, t0, t1, float_dtype):
    """`saveat` as a non-empty 1-D float array of times in `[t0, t1]`."""
    saveat = jnp.atleast_1d(jnp.asarray(saveat, dtype=float_dtype))
    if saveat.ndim != 1:
        raise ValueError(f"`saveat` must be a 1-D array of times; got {saveat.shape}.")
    if saveat.shape[0] == 0:
        raise ValueError(
            "`saveat` is empty; pass `saveat=None` to save only the final state."
        )
    validate.check_times("saveat", saveat, t0, t1)
    return saveat


def _check_dose(i: int, dose: Dose, y0, t0) -> None:
    """Finite times and amounts, none before `t0`, a `target` that exists in `y0`."""
    validate.check_finite(f"doses[{i}].times", dose.times)
    validate.check_finite(f"doses[{i}].amounts", dose.amounts)
    if validate.is_concrete((dose.times, t0)) and np.any(
        np.asarray(dose.times) < np.asarray(t0)
    ):
        raise ValueError(
            f"`doses`: a dose time {dose.times} lies before t0={float(t0)}; give "
            "the state after earlier doses as y0 instead."
        )
    dose.check_target(y0)  # a wrong `target` fails here, before any work.
