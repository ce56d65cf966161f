"""Work counts of a solve (vector-field evaluations, Jacobians, LU factorisations) from
its step counts, for the solvers whose work per step is fixed."""

import diffrax
import jax.numpy as jnp

from ._rosenbrock import AbstractRosenbrock


def work_counts(solver: diffrax.AbstractSolver, num_steps, num_segments) -> dict:
    """`num_fevals`, `num_jacobians` and `num_lu_decompositions` of a solve that made
    `num_steps` steps (accepted and rejected) over `num_segments` segments; -1 where the
    solver's work per step is not fixed (the Newton iterations of diffrax's implicit
    Runge–Kutta methods)."""
    unknown = jnp.array(-1, dtype=jnp.int32)
    # diffrax's initial step size selection evaluates the vector field twice per
    # segment (`solver.func`).
    initial = 2 * num_segments
    if isinstance(solver, AbstractRosenbrock):
        # One evaluation per stage, and with `refine_stages` one Jacobian-vector
        # product of the vector field per stage (its refinement's residual), counted as
        # an evaluation; the Jacobian (jacfwd, or the model's own) and the time
        # derivative (one jvp) are counted apart.
        stages = solver.tableau.num_stages * (2 if solver.refine_stages else 1)
        return dict(
            num_fevals=stages * num_steps + initial,
            num_jacobians=num_steps,
            num_lu_decompositions=num_steps,
        )
    if isinstance(solver, diffrax.AbstractERK):
        tableau = solver.tableau
        per_step = tableau.num_stages - (1 if tableau.fsal else 0)  # pyright: ignore[reportAttributeAccessIssue]  (an ERK's tableau is a ButcherTableau)
        # Per segment, one more evaluation for the first stage.
        zero = jnp.zeros_like(num_steps)
        return dict(
            num_fevals=per_step * num_steps + initial + num_segments,
            num_jacobians=zero,
            num_lu_decompositions=zero,
        )
    return dict(
        num_fevals=unknown, num_jacobians=unknown, num_lu_decompositions=unknown
    )
