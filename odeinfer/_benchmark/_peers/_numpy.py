"""numpy-facing callables (vector field, exact Jacobian, events, resets) for the scipy
and SUNDIALS peers, and dense-output evaluation across restarts."""

import jax
import numpy as np

from .._problem import BenchmarkProblem


def evaluate_segments(segments_t, segments_sol, s):
    for (a, b), interpolant in zip(segments_t, segments_sol, strict=True):
        if a <= s <= b:
            last = interpolant(s)
    return last


def numpy_callables(problem: BenchmarkProblem):
    """numpy-facing vector field, Jacobian, scipy event functions and resets."""
    params = problem.params
    np_field = problem.numpy_vector_field
    jitted = jax.jit(lambda t, y: problem.model(t, y, params))  # compiled on first use

    def field(t, y):
        if np_field is not None:
            return np_field(t, y, params)
        return np.asarray(jitted(t, y))

    jac_jit = jax.jit(jax.jacfwd(lambda t, y: problem.model(t, y, params), argnums=1))

    def jac(t, y):
        return np.asarray(jac_jit(t, y))

    event_fns, resets = [], []
    direction = {"rising": 1, "falling": -1, "either": 0}
    for crossing in problem.events:
        value = jax.jit(lambda t, y, c=crossing: c.value(t, y, params))

        def event(t, y, value=value):
            return float(value(t, y))

        event.terminal = crossing.terminal or crossing.reset is not None
        event.direction = direction[crossing.direction]
        event_fns.append(event)
        if crossing.reset is None:
            resets.append(None)
        else:
            reset = jax.jit(lambda t, y, fn=crossing.reset: fn(t, y, params))
            resets.append(lambda t, y, reset=reset: np.asarray(reset(t, y)))
    # Compile the JAX callables now, so that their compilation is not timed as a run.
    y0 = problem.y0
    field(problem.t0, y0)
    jac(problem.t0, y0)
    for event in event_fns:
        event(problem.t0, y0)
    for reset in resets:
        if reset is not None:
            reset(problem.t0, y0)
    return field, jac, event_fns, resets
