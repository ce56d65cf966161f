"""One Rodas5P step on flat arrays, for the fused forward-sensitivity loop.

The same method as [`odeinfer.Rodas5P`][] (the coefficients of `_solvers/_tableaus.py`),
without diffrax's per-step machinery. Its sensitivities are the forward-mode derivative
of the step itself (`jax.linearize` at fixed `t`, `h`): the directions share the step's
LU factorisation of `W = I/(γh) - J` through the implicit JVP rule of
`jax.lax.custom_linear_solve` (`x' = W⁻¹(b' - W' x)`), so each direction costs
triangular solves and directional derivatives of `f` and `J`, not a factorisation.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import lineax as lx

from .._solvers._small_lu import SmallLU
from .._solvers._tableaus import RosenbrockTableau

# Up to this many states the LU is `SmallLU` (unrolled, vectorises under vmap). Measured
# (loaded 2-core machine, rtol 1e-6): 1,000 vmapped ROBER solves (n = 3) took 0.053 s
# with SmallLU against 0.44 s with lineax.LU (diffrax-path Rodas5P; fused 0.12 vs
# 0.71 s), a single solve 0.65 vs 1.3 ms; HIRES (n = 8) 0.77 vs 1.14 s batched.
SMALL = 12


def rosenbrock_step(
    tableau: RosenbrockTableau,
    f: Callable,
    jacobian: Callable | None,
    t,
    h,
    y,
    theta,
    linear_solver: lx.AbstractLinearSolver | None = None,
):
    """Advance `y` from `t` to `t + h` (flat arrays).

    **Arguments:** `f(t, y, theta)` and optionally `jacobian(t, y, theta)` on flat
    arrays; `linear_solver` for `W` (one factorisation, reused by every stage; `None`:
    `SmallLU` up to `SMALL` states, `lineax.LU` above).

    **Returns:** `(y1, error, dense)`: the solution, the embedded error estimate and the
    dense-output coefficients `D` of shape `(len(H), n)`.
    """
    n = y.shape[0]
    if linear_solver is None:
        linear_solver = SmallLU() if n <= SMALL else lx.LU()
    if jacobian is None:
        f0, jvp_y = jax.linearize(lambda y_: f(t, y_, theta), y)
        J = jax.vmap(jvp_y, out_axes=1)(jnp.eye(n, dtype=y.dtype))
    else:
        f0 = f(t, y, theta)
        J = jnp.asarray(jacobian(t, y, theta), y.dtype)
    dT = jax.jvp(lambda t_: f(t_, y, theta), (t,), (jnp.ones_like(t),))[1]
    # A zero-length step (a finished trajectory under `jax.vmap`) must not divide by
    # zero, and lineax must never see a non-finite matrix or vector (it raises even
    # with `throw=False` in its derivative rules): such a step is marked failed, and
    # the step-size controller rejects it.
    zero_step = h == 0
    safe_h = jnp.where(zero_step, 1.0, h)
    W = jnp.eye(n, dtype=y.dtype) / (tableau.gamma * safe_h) - J
    finite = _finite(W) & _finite(f0) & _finite(dT)
    W = jnp.where(finite, W, jnp.eye(n, dtype=y.dtype))
    dT = jnp.where(finite, dT, 0.0)
    operator = lx.MatrixLinearOperator(W)
    state = linear_solver.init(operator, {})
    # Stages 1..s-1 run in a `lax.scan` rather than unrolled: the vector field and the
    # triangular solves then appear once in the compiled program instead of once per
    # stage. Measured on Zheng_PNAS2012 (15 states, loaded 2-core machine): compiling
    # a FusedRodas5P solve took 8.6 s unrolled.
    dtype = y.dtype

    transposed, _ = linear_solver.transpose(state, {})

    # `lax.custom_linear_solve` rather than `lx.linear_solve`: the same derivative rule,
    # without the host callback that lineax's tangent solves carry (they always throw),
    # which would keep every program with a Rosenbrock gradient out of JAX's persistent
    # compilation cache.
    def solve_stage(rhs):
        return jax.lax.custom_linear_solve(
            lambda x: W @ x,
            rhs,
            solve=lambda _, b: linear_solver.compute(state, b, {})[0],
            transpose_solve=lambda _, b: linear_solver.compute(transposed, b, {})[0],
        )

    rhs0 = f0 + (tableau.d[0] * safe_h) * dT if tableau.d[0] != 0 else f0
    finite = finite & _finite(rhs0)
    U0 = solve_stage(jnp.where(finite, rhs0, 0.0))
    s = tableau.num_stages
    U_init = jnp.zeros((s, n), dtype).at[0].set(U0)
    coefficients = (
        jnp.asarray(tableau.a[1:], dtype),
        jnp.asarray(tableau.C[1:], dtype),
        jnp.asarray(tableau.c[1:], dtype),
        jnp.asarray(tableau.d[1:], dtype),
        jnp.arange(1, s),
    )

    def stage(carry, row):
        U, finite = carry
        a_i, C_i, c_i, d_i, i = row
        yi = y + a_i @ U
        rhs = f(t + c_i * safe_h, yi, theta) + (C_i @ U) / safe_h + (d_i * safe_h) * dT
        finite = finite & _finite(rhs)
        U_i = solve_stage(jnp.where(finite, rhs, 0.0))
        return (U.at[i].set(U_i), finite), None

    (U, finite), _ = jax.lax.scan(stage, (U_init, finite), coefficients)
    y1 = y + jnp.asarray(tableau.b, y.dtype) @ U
    error = jnp.asarray(tableau.e, y.dtype) @ U
    dense = jnp.asarray(tableau.H, y.dtype) @ U
    finite = finite & _finite(y1) & _finite(error)
    error = jnp.where(zero_step, 0.0, jnp.where(finite, error, jnp.inf))
    y1 = jnp.where(finite & ~zero_step, y1, y)
    dense = jnp.where(finite & ~zero_step, dense, 0.0)
    return y1, error, dense


def _finite(x):
    return jnp.all(jnp.isfinite(x))


def rosenbrock_dense(Y, Y1, dense, theta):
    """`(1-θ) Y + θ (Y1 + (1-θ)(D_1 + θ (D_2 + θ D_3)))` on `(rows, n)` arrays; `dense`
    has shape `(rows, len(H), n)`."""
    inner = jnp.zeros_like(Y)
    for j in range(dense.shape[1] - 1, -1, -1):
        inner = dense[:, j] + theta * inner
    return (1 - theta) * Y + theta * (Y1 + (1 - theta) * inner)
