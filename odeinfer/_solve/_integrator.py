"""The diffrax pieces of one segment: the term, the solver, the step-size controller and
the event that stops a segment at the first crossing.

Every segment passes `args = (params, levels, override, active)` to diffrax: the
parameters, the crossing levels, and for each crossing the sign its condition function
reports at the segment's first point, where `active` (the crossing that ended the
previous segment), so that a restart on a crossing does not detect it again.
"""

import dataclasses

import diffrax
import jax.numpy as jnp
import optimistix as optx

from .._events import Crossing
from .._events._guard import CrossingGuard, crossing_probe
from .._model import ODEModel
from .._solvers import AbstractRosenbrock


def make_term(model: ODEModel) -> diffrax.ODETerm:
    """The vector field, reading the parameters from `args[0]`."""
    return diffrax.ODETerm(lambda t, y, args: model(t, y, args[0]))  # pyright: ignore[reportArgumentType]


def with_model_jacobian(
    solver: diffrax.AbstractSolver, model: ODEModel
) -> diffrax.AbstractSolver:
    """A Rosenbrock solver given the model's own Jacobian, where it has one."""
    jacobian = model.jacobian
    if isinstance(solver, AbstractRosenbrock) and jacobian is not None:
        solver = dataclasses.replace(
            solver, jacobian=lambda t, y, args: jacobian(t, y, args[0])
        )
    return solver


def make_controller(
    model: ODEModel, crossings: tuple[Crossing, ...], rtol, atol, max_step_size
) -> diffrax.AbstractStepSizeController:
    """The PID controller; with crossings, guarded against stepping over two of them."""
    controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmax=max_step_size)
    if crossings:
        # Rejects steps over which a crossing function may reach its level and come
        # back (two crossings hidden in one step); one vector-field evaluation a step.
        probe = crossing_probe(model, crossings, rtol, atol)
        controller = CrossingGuard(controller, probe)  # pyright: ignore[reportCallIssue]
    return controller


def locates_crossings(adjoint: diffrax.AbstractAdjoint) -> bool:
    """Whether odeinfer locates a crossing inside its step (`_event_time.py`) rather
    than diffrax's root finder. For every adjoint but `DirectAdjoint`:
    `RecursiveCheckpointAdjoint` differentiates once in reverse and `ForwardMode`
    any number of times forward, both exact with the implicit-function-theorem rule;
    a reverse derivative of that rule differentiated again (`jax.hessian` =
    forward-over-reverse, which only `DirectAdjoint` allows) came out wrong, so that
    keeps diffrax's root find (optimistix, implicit derivative through lineax)."""
    return not isinstance(adjoint, diffrax.DirectAdjoint)


def make_event(
    crossings: tuple[Crossing, ...], adjoint: diffrax.AbstractAdjoint
) -> diffrax.Event | None:
    """One diffrax condition function per crossing (`None` without crossings)."""
    if not crossings:
        return None

    def condition(index):
        def cond_fn(t, y, args, *, t0, **kwargs):
            del kwargs
            params_, levels_, override, active = args
            value = crossings[index].fn(t, y, params_) - levels_[index]
            return jnp.where(active[index] & (t == t0), override[index], value)

        return cond_fn

    # Without a root finder diffrax stops at the end of the step over which a crossing
    # happened, and `_event_time.py` locates it in that step: half the program to
    # compile for a reverse-mode gradient, and no host callback (lineax's check) in it.
    root_finder = None
    if not locates_crossings(adjoint):
        root_finder = optx.Newton(rtol=1e-12, atol=1e-12)
    return diffrax.Event(
        cond_fn=tuple(condition(i) for i in range(len(crossings))),
        root_finder=root_finder,
        direction=tuple(c.diffrax_direction for c in crossings),
    )
