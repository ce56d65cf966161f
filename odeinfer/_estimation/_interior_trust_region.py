"""`InteriorTrustRegion`: Fides' interior trust-region method (Coleman & Li's affine
scaling and reflections, a two-dimensional subspace, Gauss–Newton then BFGS) with a
whole optimisation inside one compiled XLA program: a `lax.while_loop` whose every
iteration is one residual + Jacobian evaluation and the small linear algebra of the
step. Many starts run as a vmapped batch, `workers` batches at a time on host
threads (XLA releases the GIL while a compiled call runs).

optimistix 0.1.0 has no bounded least-squares solver (its `_misc.feasible_step_length`
and `clip` are helpers for its own line searches, not a solver on a box), and lineax
solves linear systems only; this is the part neither does.
"""

import functools
import math
import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from ._interior_steps import trust_region_step
from ._threads import run_in_threads
from ._trust_region import (
    AbstractBoxLeastSquares,
    Outcome,
    Residuals,
    box,
    inside,
    residuals_and_jacobian_at,
)

_EPS = float(np.finfo(np.float64).eps)
# Fides' defaults (Nocedal & Wright 2006): acceptance and enlargement thresholds of the
# trust-region ratio, shrink and growth factors, the initial radius, and the largest
# fraction of the way to a bound a step may go.
_MU, _ETA, _GAMMA1, _GAMMA2, _DELTA_INIT, _THETA_MAX = 0.25, 0.75, 0.25, 2.0, 1.0, 0.95

CONVERGED, BUDGET_SPENT, RADIUS_COLLAPSED, START_FAILED = 0, 1, 2, 3
_MESSAGES = {
    CONVERGED: "converged (change of ½‖r‖² or scaled gradient below tolerance)",
    BUDGET_SPENT: "the evaluation budget is spent; increase `max_steps`",
    RADIUS_COLLAPSED: "the trust region shrank below machine precision (no step "
    "decreases ½‖r‖²: failed solves all around, or a non-smooth objective)",
    START_FAILED: "the residuals are not finite at the starting point (the solve "
    "failed)",
}
_RESULTS = {
    CONVERGED: optx.RESULTS.successful,
    BUDGET_SPENT: optx.RESULTS.nonlinear_max_steps_reached,
    RADIUS_COLLAPSED: optx.RESULTS.nonlinear_divergence,
    START_FAILED: optx.RESULTS.nonlinear_divergence,
}


class BoxSolution(eqx.Module):
    """One optimisation inside the compiled program: the best point found, ½‖r‖²
    there, a result code (`CONVERGED`, `BUDGET_SPENT`, `RADIUS_COLLAPSED`,
    `START_FAILED`), residual + Jacobian evaluations and accepted steps."""

    v: Float[Array, " n"]
    cost: Float[Array, ""]
    code: Int[Array, ""]
    evaluations: Int[Array, ""]
    accepted: Int[Array, ""]


class _State(NamedTuple):
    x: Float[Array, " n"]
    cost: Float[Array, ""]
    grad: Float[Array, " n"]
    hess: Float[Array, "n n"]
    bfgs: Float[Array, "n n"]
    switched: Bool[Array, ""]
    delta: Float[Array, ""]
    since_update: Int[Array, ""]
    evaluations: Int[Array, ""]
    accepted: Int[Array, ""]
    converged: Bool[Array, ""]
    x_min: Float[Array, " n"]
    cost_min: Float[Array, ""]


def _summaries(fn, x):
    """At `x`, from `(r, J) = fn(x)`: ½‖r‖², its gradient Jᵀr and the Gauss–Newton
    matrix JᵀJ; `finite` whether all are (a failed solve gives NaN)."""
    r, jacobian = fn(x)
    cost = 0.5 * r @ r
    grad = jacobian.T @ r
    gauss_newton = jacobian.T @ jacobian
    finite = (
        jnp.isfinite(cost)
        & jnp.all(jnp.isfinite(grad))
        & jnp.all(jnp.isfinite(gauss_newton))
    )
    return cost, grad, gauss_newton, finite


def _non_degenerate(x, lower, upper):
    """`x` moved 100 eps off a bound it sits on (Fides' `make_non_degenerate`)."""
    eps = 100 * _EPS
    x = jnp.where(upper - x < eps, x - eps, x)
    return jnp.where(x - lower < eps, x + eps, x)


def _affine_scaling(x, grad, lower, upper):
    """Coleman–Li: the distance to the bound the negative gradient points to (1 where
    that bound is infinite) and whether it is finite."""
    bound = jnp.where(grad < 0, upper, lower)
    finite = jnp.isfinite(bound)
    v = jnp.where(finite, x - bound, jnp.sign(grad) + (grad == 0))
    return v, finite.astype(x.dtype)


def _bfgs(matrix, s, y):
    """The BFGS update of `matrix`, skipped where the curvature condition yᵀs > 0
    fails (Fides' `broyden_class_update`, φ = 0)."""
    u = matrix @ s
    c = u @ s
    b = y @ s
    ok = (b > 0) & (c > 0)
    update = jnp.outer(y, y) / jnp.where(ok, b, 1.0) - jnp.outer(u, u) / jnp.where(
        ok, c, 1.0
    )
    return jnp.where(ok, matrix + update, matrix)


class InteriorTrustRegion(AbstractBoxLeastSquares):
    """Bounded least squares with each start one compiled XLA program, for
    [`odeinfer.fit`][] and [`odeinfer.multistart`][]: the algorithm of
    [`odeinfer.Fides`][] (Fröhlich & Sorger 2022, PLoS Comput. Biol. 18:e1010322,
    with its defaults: Coleman & Li's interior affine-scaling trust region on the box
    of the `Bounded` parameters, a two-dimensional Newton/gradient subspace, steps
    stepped back from the bounds with a gradient step and reflections as
    alternatives, the Gauss–Newton matrix `JᵀJ` of the standardised residuals as
    Hessian until the trust region has stayed the same for `switch_iteration`
    iterations and BFGS updates afterwards) written in JAX: a `lax.while_loop` with
    one residual + forward-mode Jacobian evaluation per iteration and the convergence
    tests and the evaluation budget inside, so no Python runs between evaluations.

    A residual vector or Jacobian that is not finite (a failed solve) rejects the
    step and shrinks the trust region. The result is the lowest ½‖r‖² seen.

    [`odeinfer.multistart`][] runs the starts in vmapped batches of `batch_size`
    (its argument), `workers` batches at a time on host threads. Needs no optional
    package.

    **Arguments:**

    - `rtol`, `atol`: convergence when an accepted step changes ½‖r‖² by less than
        `atol + rtol · ½‖r‖²` (Fides' `frtol`, `fatol`).
    - `gtol`: convergence when Coleman–Li's scaled gradient `max |vᵢ ∂ᵢ½‖r‖²|` is at
        most `gtol` (`vᵢ` the distance to the bound the gradient points away from, 1
        without one; scipy's `trf` criterion, which vanishes at an optimum on a bound
        where Fides' plain gradient norm does not).
    - `switch_iteration`: iterations with an unchanged trust region after which the
        BFGS update replaces `JᵀJ` (Fides' `HybridFixed`, default 20).

    `fit`'s `max_steps` caps the residual + Jacobian evaluations, the first included.
    """

    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-8)
    gtol: float = eqx.field(static=True, default=1e-6)
    switch_iteration: int = eqx.field(static=True, default=20)

    def solve(self, fn, v0, lower, upper, max_evaluations) -> BoxSolution:
        """Minimise ½‖r‖² from `v0` within `[lower, upper]`, where `fn(v)` returns
        the residuals and their Jacobian; traceable (jit, vmap)."""
        n = v0.shape[0]
        x = _non_degenerate(v0, lower, upper)
        cost, grad, _, finite = _summaries(fn, x)
        eye = jnp.eye(n, dtype=x.dtype)
        state = _State(
            x=x,
            cost=cost,
            grad=grad,
            hess=eye,  # Fides' HybridFixed starts from the identity
            bfgs=eye,
            switched=jnp.asarray(False),
            delta=jnp.asarray(_DELTA_INIT, x.dtype),
            since_update=jnp.asarray(0),
            evaluations=jnp.asarray(1),
            accepted=jnp.asarray(0),
            converged=jnp.asarray(False),
            x_min=x,
            cost_min=jnp.where(finite, cost, jnp.inf),
        )

        def cond(state: _State):
            return (
                finite
                & ~state.converged
                & (state.evaluations < max_evaluations)
                & (state.delta >= _EPS)
            )

        def body(state: _State) -> _State:
            return self._iterate(fn, state, lower, upper)

        state = jax.lax.while_loop(cond, body, state)
        code = jnp.where(
            ~finite,
            START_FAILED,
            jnp.where(
                state.converged,
                CONVERGED,
                jnp.where(state.delta < _EPS, RADIUS_COLLAPSED, BUDGET_SPENT),
            ),
        )
        return BoxSolution(
            v=state.x_min,
            cost=state.cost_min,
            code=code,
            evaluations=state.evaluations,
            accepted=state.accepted,
        )

    def _iterate(self, fn, state: _State, lower, upper) -> _State:
        x, grad = state.x, state.grad
        v, dv = _affine_scaling(x, grad, lower, upper)
        scaling = jnp.sqrt(jnp.abs(v))
        theta = jnp.maximum(_THETA_MAX, 1 - jnp.max(jnp.abs(v * grad)))
        step = trust_region_step(
            x, grad, state.hess, scaling, state.delta, dv, theta, lower, upper
        )
        x_new = x + step.s + step.s0
        cost, grad_new, gauss_newton, finite = _summaries(fn, x_new)
        # The trust-region update (Fides' `update_tr_radius`).
        scaled_step = step.ss + step.ss0
        step_norm = jnp.linalg.norm(scaled_step)
        correction = 0.5 * scaled_step @ (dv * jnp.abs(grad_new) * scaled_step)
        actual = state.cost - cost - correction
        predicted = -step.qp
        ratio = jnp.where(
            finite & (predicted > 0),
            actual / jnp.where(predicted > 0, predicted, 1),
            0.0,
        )
        ratio = jnp.where(jnp.isfinite(ratio), ratio, 0.0)
        grow = finite & (ratio >= _ETA) & (step_norm >= 0.9 * state.delta)
        shrink = ~grow & (ratio <= _MU)
        shrunk = jnp.minimum(state.delta * _GAMMA1, step_norm / 4)
        shrunk = jnp.where(jnp.isnan(shrunk), state.delta * _GAMMA1, shrunk)
        delta = jnp.where(
            grow, _GAMMA2 * state.delta, jnp.where(shrink, shrunk, state.delta)
        )
        since = jnp.where(grow | shrink, 0, state.since_update + 1)
        accepted = finite & (ratio > 0)
        # First-order optimality on the box: Coleman–Li's scaled gradient ‖v·∇‖∞ (as
        # scipy's `trf`), which vanishes at an optimum on a bound; Fides' plain ‖∇‖
        # does not, so there it stopped only by the change of ½‖r‖².
        v_new, _ = _affine_scaling(x_new, grad_new, lower, upper)
        converged = finite & (
            (
                (ratio > _MU)
                & (
                    jnp.abs(cost - state.cost)
                    < self.atol + self.rtol * jnp.abs(state.cost)
                )
            )
            | (jnp.max(jnp.abs(v_new * grad_new)) <= self.gtol)
        )
        better = finite & (cost < state.cost_min)
        # The Hessian: JᵀJ, or BFGS once switched (updated from the start).
        bfgs = _bfgs(state.bfgs, step.s + step.s0, grad_new - grad)
        hess = jnp.where(state.switched, bfgs, gauss_newton)
        switched = state.switched | (since >= self.switch_iteration)

        def pick(new, old):
            return jnp.where(accepted, new, old)

        return _State(
            x=pick(_non_degenerate(x_new, lower, upper), x),
            cost=pick(cost, state.cost),
            grad=pick(grad_new, grad),
            hess=pick(hess, state.hess),
            bfgs=pick(bfgs, state.bfgs),
            switched=pick(switched, state.switched),
            delta=delta,
            since_update=since,
            evaluations=state.evaluations + 1,
            accepted=state.accepted + accepted.astype(state.accepted.dtype),
            converged=converged,
            x_min=jnp.where(better, x_new, state.x_min),
            cost_min=jnp.where(better, cost, state.cost_min),
        )


@eqx.filter_jit
def solve_batch(
    model: Residuals, solver: InteriorTrustRegion, v0s, lower, upper, max_evaluations
) -> BoxSolution:
    """`solver.solve` from each row of `v0s`, vmapped, in one compiled program. A
    single row is solved without `vmap`: under `vmap` every `lax.cond` of the ODE
    solver becomes a `select` that runs both branches."""

    def one(v0):
        return solver.solve(
            lambda v: residuals_and_jacobian_at(model, v),
            v0,
            lower,
            upper,
            max_evaluations,
        )

    if v0s.shape[0] == 1:
        return jax.tree.map(lambda x: x[None], one(v0s[0]))
    return jax.vmap(one)(v0s)


@eqx.filter_jit
def _log_likelihoods(model: Residuals, vs):
    return jax.vmap(model.log_likelihood)(vs)


def optimise_starts(
    model: Residuals,
    solver: InteriorTrustRegion,
    v0s: list[np.ndarray],
    max_evaluations: int,
    *,
    batch_size: int,
    workers: int,
    record,
    compile_first: bool = True,
) -> None:
    """The optimisations from `v0s`, in vmapped batches of `batch_size` (the last one
    padded with copies of its first start, so one program serves all), `workers`
    batches at a time on host threads. `record(indices, outcomes, seconds)` is called
    as each batch finishes, with the wall time since the first batch began. With
    `compile_first`, the program is compiled (and run once on the first batch with a
    budget of one evaluation) before the first batch, so the batches' times exclude
    compilation."""
    lower, upper = box(model.parameters)
    starts = np.stack([inside(np.asarray(v, float), lower, upper) for v in v0s])
    batches = [
        list(range(i, min(i + batch_size, len(v0s))))
        for i in range(0, len(v0s), batch_size)
    ]
    lower_j, upper_j = jnp.asarray(lower), jnp.asarray(upper)

    def run(indices: list[int], budget: int) -> list[Outcome]:
        chunk = starts[indices + [indices[0]] * (batch_size - len(indices))]
        begin = time.perf_counter()
        out = solve_batch(
            model, solver, jnp.asarray(chunk), lower_j, upper_j, jnp.asarray(budget)
        )
        vs = np.asarray(out.v)[: len(indices)]
        vs = np.stack([inside(v, lower, upper) for v in vs])
        values = np.asarray(_log_likelihoods(model, jnp.asarray(vs)))
        seconds = time.perf_counter() - begin
        codes = np.asarray(out.code)
        evaluations = np.asarray(out.evaluations)
        return [
            Outcome(
                vs[k],
                _RESULTS[int(codes[k])],
                int(evaluations[k]),
                int(evaluations[k]),
                float(values[k]) if np.isfinite(values[k]) else -math.inf,
                seconds,
                "InteriorTrustRegion: " + _MESSAGES[int(codes[k])],
            )
            for k in range(len(indices))
        ]

    if compile_first:
        run(batches[0], 1)
    begin = time.perf_counter()
    run_in_threads(
        [functools.partial(run, indices, max_evaluations) for indices in batches],
        workers,
        lambda k, outcomes: record(batches[k], outcomes, time.perf_counter() - begin),
    )


def optimise(
    model: Residuals, solver: InteriorTrustRegion, v0, max_evaluations: int
) -> Outcome:
    """One optimisation from the box vector `v0` (`oi.fit`)."""
    outcomes: list[Outcome] = []
    optimise_starts(
        model,
        solver,
        [np.asarray(v0, float)],
        max_evaluations,
        batch_size=1,
        workers=1,
        record=lambda _, out, __: outcomes.extend(out),
        compile_first=False,
    )
    return outcomes[0]
