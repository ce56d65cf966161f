"""One Rosenbrock step on flat arrays: the step of [`odeinfer.Rodas5P`][] and
[`odeinfer.Rodas4`][] (the diffrax-path solvers call it) and of the fused loop.

`rosenbrock_step` advances the state; `rosenbrock_sensitivity_step` also advances
forward sensitivities with the exact derivative of the same discrete step at fixed `t`,
`h` (written out below, `_tangent_stages`), sharing the step's LU factorisation of
`W = I/(γh) - J` across all directions.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from .._solvers._small_lu import SmallLU, gauss_jordan_inverse
from .._solvers._tableaus import RosenbrockTableau

# Up to this many states the stage solves are unrolled array operations that vectorise
# under vmap (`W⁻¹` by `gauss_jordan_inverse`, unrefined: `SmallLU`). Measured (loaded
# 2-core machine, rtol 1e-6): 1,000 vmapped ROBER solves (n = 3) took 0.053 s with
# SmallLU against 0.44 s with lineax.LU (diffrax-path Rodas5P; fused 0.12 vs 0.71 s),
# a single solve 0.65 vs 1.3 ms; HIRES (n = 8) 0.77 vs 1.14 s batched.
SMALL = 12

# XLA:CPU's `ThunkExecutor` runs a loop body inline only where no buffer exceeds this
# many bytes (`_Register`).
SEQUENTIAL_BYTES = 512


class _Frame:
    """What every stage of one step shares: `W⁻¹` (or `W`'s factorisation) and the
    stage solve.

    The stage solve is refined once (`refine`): `x = W⁻¹b`, then `x += W⁻¹(b - W x)`
    with the residual's `J x` taken as a Jacobian-vector product of the vector field
    (`jvp_y`), not from the matrix `J`. Why: the residual through `J`'s entries has the
    round-off `ε |J| |x|`, which breaks the model's linear invariants (a row of `J`
    that is a difference of two others is only equal to it to `ε`), and a stiff step
    (`γh |J| ≫ 1`) multiplies that by `γh`. On E5 (Bari set, the conserved
    `y2 - y3 - y4` with `y2, y3 ≈ 1e-22` at `t = 1e13`) the unrefined solve left the
    invariant off by 2e-22 after `t = 1e4`, and the final `y2, y3` wrong by a factor
    2-600 at rtol 1e-4...1e-10 (Radau: 6e-3...9e-4); refined through the matrix `J`,
    no better; refined through `jvp_y`, 0.03...2e-3 (diffrax-path Rodas5P). The
    extra cost is one Jacobian-vector product per stage: `W⁻¹` is formed once per
    step (Gauss–Jordan up to `SMALL` states, no LU), and both products of the stage
    solve are with it (`refined_solve`, `_matvec`). Measured against the unrefined LU
    step (1,000 vmapped ROBER solves 0.061 s against 0.063; a single solve per step,
    rtol 1e-8: ROBER 1.3-1.5 µs against 1.7, HIRES 2.5 against 4.5, E5 1.5 against
    2.2).
    """

    def __init__(self, tableau, J, jvp_y, h, y, finite, linear_solver, refine):
        n = y.shape[0]
        if linear_solver is None:
            linear_solver = SmallLU() if n <= SMALL else lx.LU()
        # A zero-length step (a finished trajectory under `jax.vmap`) must not divide
        # by zero, and lineax must never see a non-finite matrix or vector (it raises
        # even with `throw=False` in its derivative rules): such a step is marked
        # failed, and the step-size controller rejects it.
        self.zero_step = h == 0
        self.h = jnp.where(self.zero_step, 1.0, h)
        self.inverse_gamma_h = 1.0 / (tableau.gamma * self.h)
        W = jnp.eye(n, dtype=y.dtype) * self.inverse_gamma_h - J
        self.finite = finite & _finite(W)
        self.W = jnp.where(self.finite, W, jnp.eye(n, dtype=y.dtype))
        self.linear_solver = linear_solver
        self.jvp_y = jvp_y
        self.refine = refine
        # A small refined system needs no factorisation: `W⁻¹` comes from Gauss–Jordan
        # (`inverse`), and the transposed solve of reverse mode is a product with it.
        small = isinstance(linear_solver, SmallLU)
        self.state = (
            None
            if small and refine
            else linear_solver.init(lx.MatrixLinearOperator(self.W), {})
        )
        # Formed here, once per step, not in the stage solves: inside the stages'
        # `lax.scan` XLA cannot merge the per-stage copies (measured per step with the
        # LU-based inverse: ROBER 3.5 -> 3.0 µs, HIRES 7.1 -> 6.4).
        self.W_inverse = self.inverse() if refine else None

    def plain_solve(self, b):
        """`W⁻¹ b` from the factorisation, unrefined."""
        assert self.state is not None  # factorised unless small and refined
        return self.linear_solver.compute(self.state, b, {})[0]

    def inverse(self):
        """`W⁻¹`: by Gauss–Jordan up to `SMALL` states (see `gauss_jordan_inverse`:
        it vectorises under `jax.vmap`), else from the step's factorisation."""
        if isinstance(self.linear_solver, SmallLU):
            return gauss_jordan_inverse(self.W)
        eye = jnp.eye(self.W.shape[0], dtype=self.W.dtype)
        return jax.vmap(self.plain_solve, out_axes=1)(eye)

    def transpose_solve(self, b):
        """`W⁻ᵀ b` (reverse mode through `solve`)."""
        if self.W_inverse is not None:
            return _matvec(self.W_inverse.T, b)
        assert self.state is not None
        transposed, _ = self.linear_solver.transpose(self.state, {})
        return self.linear_solver.compute(transposed, b, {})[0]

    def refined_solve(self, b):
        if self.W_inverse is None:
            return self.plain_solve(b)
        # With the refinement, the first solve is a product with `W⁻¹` too, not the LU
        # substitutions (`2n` dependent row updates): one refinement step brings it to
        # the refined LU solve's accuracy (E5 at rtol 1e-8: Rodas5P 5.9e-4,
        # FusedRodas5P 1.1e-3; unrefined 0.96, 27).
        x = _matvec(self.W_inverse, b)
        residual = b - x * self.inverse_gamma_h + self.jvp_y(x)
        residual = jnp.where(_finite(residual), residual, 0.0)
        return x + _matvec(self.W_inverse, residual)

    def solve(self, rhs):
        """The stage solve, as `lax.custom_linear_solve` rather than
        `lx.linear_solve`: the same implicit derivative rule (`x' = W⁻¹(b' - W' x)`),
        without the host callback that lineax's tangent solves carry (they always
        throw), which would keep every program with a Rosenbrock gradient out of JAX's
        persistent compilation cache."""
        return jax.lax.custom_linear_solve(
            lambda x: self.W @ x,
            rhs,
            solve=lambda _, b: self.refined_solve(b),
            transpose_solve=lambda _, b: self.transpose_solve(b),
        )


def _frame(tableau, f, J, t, h, y, theta, f0, dT, linear_solver, refine) -> _Frame:
    """The step's `_Frame` at `(t, y, θ)`, finite where `f0` and `f_t` are. The
    refinement's `J x` is a `jax.jvp` of `f`, not `jax.linearize`'s linear function
    (measured slower per call inside the stage solves)."""

    def jvp_y(x):
        return jax.jvp(lambda z: f(t, z, theta), (y,), (x,))[1]

    finite = _finite(f0) & _finite(dT)
    return _Frame(tableau, J, jvp_y, h, y, finite, linear_solver, refine)


def _coefficients(tableau: RosenbrockTableau, dtype):
    """The rows of stages 2..s, scanned over."""
    s = tableau.num_stages
    return (
        jnp.asarray(tableau.a[1:], dtype),
        jnp.asarray(tableau.C[1:], dtype),
        jnp.asarray(tableau.c[1:], dtype),
        jnp.asarray(tableau.d[1:], dtype),
        jnp.arange(1, s),
    )


def rosenbrock_step(
    tableau: RosenbrockTableau,
    f: Callable,
    jacobian: Callable | None,
    t,
    h,
    y,
    theta,
    linear_solver: lx.AbstractLinearSolver | None = None,
    refine: bool = True,
):
    """Advance `y` from `t` to `t + h` (flat arrays).

    **Arguments:** `f(t, y, theta)` and optionally `jacobian(t, y, theta)` on flat
    arrays; `linear_solver` for `W` (one factorisation, reused by every stage; `None`:
    `SmallLU` up to `SMALL` states, `lineax.LU` above); `refine`: one step of
    iterative refinement of each stage solve (see `_Frame`).

    **Returns:** `(y1, error, dense)`: the solution, the embedded error estimate and the
    dense-output coefficients `D` of shape `(len(H), n)`.
    """
    n = y.shape[0]
    f0, jvp_y = jax.linearize(lambda y_: f(t, y_, theta), y)
    if jacobian is None:
        J = jax.vmap(jvp_y, out_axes=1)(jnp.eye(n, dtype=y.dtype))
    else:
        J = jnp.asarray(jacobian(t, y, theta), y.dtype)
    dT = jax.jvp(lambda t_: f(t_, y, theta), (t,), (jnp.ones_like(t),))[1]
    frame = _frame(tableau, f, J, t, h, y, theta, f0, dT, linear_solver, refine)
    dT = jnp.where(frame.finite, dT, 0.0)
    safe_h = frame.h
    rhs0 = f0 + (tableau.d[0] * safe_h) * dT if tableau.d[0] != 0 else f0
    finite = frame.finite & _finite(rhs0)
    U0 = frame.solve(jnp.where(finite, rhs0, 0.0))
    s = tableau.num_stages
    U_init = jnp.zeros((s, n), y.dtype).at[0].set(U0)

    # Stages 2..s run in a `lax.scan` rather than unrolled: the vector field and the
    # triangular solves then appear once in the compiled program instead of once per
    # stage. Measured on Zheng_PNAS2012 (15 states, loaded 2-core machine): compiling
    # a FusedRodas5P solve took 8.6 s unrolled.
    def stage(carry, row):
        U, finite = carry
        a_i, C_i, c_i, d_i, i = row
        yi = y + _weighted(a_i, U)
        rhs = f(t + c_i * safe_h, yi, theta) + _weighted(C_i, U) / safe_h
        rhs = rhs + (d_i * safe_h) * dT
        finite = finite & _finite(rhs)
        U_i = frame.solve(jnp.where(finite, rhs, 0.0))
        return (_set_row(U, U_i, i), finite), None

    (U, finite), _ = jax.lax.scan(
        stage, (U_init, finite), _coefficients(tableau, y.dtype)
    )
    y1, error, dense, _ = _finish(tableau, frame, finite, y, U)
    return y1, error, dense


def rosenbrock_sensitivity_step(
    tableau: RosenbrockTableau,
    f: Callable,
    jacobian: Callable | None,
    t,
    h,
    y,
    theta,
    S,
    Theta,
    linear_solver: lx.AbstractLinearSolver | None = None,
    refine: bool = True,
):
    """`rosenbrock_step` with forward sensitivities: the derivative of the discrete
    step at fixed `t`, `h` along each direction `(S[k], Theta[k])` (initial state,
    parameters), written out rather than left to `jax.linearize`.

    Differentiating a stage `W U_i = f(t_i, Y_i) + Σ_j C_ij U_j / h + d_i h f_t` with
    `W = I/(γh) - J(y, θ)`, `Y_i = y + Σ_j a_ij U_j`:

        W dU_i = f_y(Y_i) dY_i + f_θ(Y_i) p + Σ_j C_ij dU_j / h + d_i h df_t + dJ U_i

    with `dY_i = s + Σ_j a_ij dU_j`, and `dJ`, `df_t` the derivatives of `J` and `f_t`
    at `(y, θ)` along `(s, p)` (`df_t` by one `jax.jvp` per step, vectorised over the
    directions; `dJ U_i` per stage as a second derivative of `f` where the
    sensitivities are small, else from `dJ`, formed once per step with `df_t` and the
    first stage's `f_y s + f_θ p`: see `_Register`).
    Per stage and direction: one Jacobian-vector product of `f` and one product with
    `W⁻¹`, formed once per step (`_Frame.inverse`). The state's own stage solves are
    the same as without sensitivities, so the state is bit for bit the state computed
    without them.

    Why written out and with `W⁻¹`: the small systems this path serves are bound by
    the number of operations XLA runs per step, not by arithmetic. Measured per step
    (HIRES, 7 parameter directions, loaded 2-core machine, process time): the
    linearized step 43 µs; written out with triangular solves per stage 40 µs; with
    `W⁻¹` and fused products 13 µs; the step without sensitivities 5 µs. The
    derivative terms `dJ U_i` (second derivatives of `f`) were not measurable.

    Why Jacobian-vector products along the `D` directions and not the stage Jacobian
    `f_y` (`n` vector-Jacobian products, then products with the directions): that
    measured slower on every problem tried, with `D/n` from 0.9 to 7 (gradient of the
    PEtab log-likelihood, or of one output for ROBER/HIRES, ms: Boehm 4.0 against 4.9
    (n = 8, D = 16), Fujita 37 / 45 (10, 26, six conditions vmapped), Borghans 46 / 70
    (3, 22), Elowitz 18.5 / 22.4 (8, 19), ROBER 2.4 / 3.2 (3, 3), HIRES 2.6 / 3.7
    (8, 7)).

    **Arguments:** as `rosenbrock_step`, and `S` (shape `(D, n)`, the state's
    sensitivities), `Theta` (shape `(D, len(theta))`, the parameter part of each
    direction).

    **Returns:** `((y1, error, dense), (S1, error_S, dense_S))`, the sensitivity parts
    with a leading axis of length `D`.
    """
    n = y.shape[0]
    eye = jnp.eye(n, dtype=y.dtype)
    one = jnp.ones_like(t)

    def time_derivative(y_, theta_):
        """`f_t` at `(t, y_, θ_)`."""
        return jax.jvp(lambda t_: f(t_, y_, theta_), (t,), (one,))[1]

    def local(y_, theta_):
        """`f`, `J` and `f_t` at `(t, y_, θ_)`: without `jacobian`, from one `jax.vmap`
        of `n + 1` Jacobian-vector products in `(t, y)` (the states' unit vectors, then
        time's), so that their derivatives along the directions are one copy of the
        vector field's second derivatives, not three (value, Jacobian, time
        derivative; Alkan_SciSignal2018: 17,094 -> 13,153 operations in the gradient's
        program)."""
        if jacobian is not None:
            J_ = jnp.asarray(jacobian(t, y_, theta_), y.dtype)
            return f(t, y_, theta_), J_, time_derivative(y_, theta_)
        d_t = jnp.concatenate([jnp.zeros((n,), one.dtype), one[None]])
        d_y = jnp.concatenate([eye, jnp.zeros((1, n), y.dtype)])
        f_, columns = jax.vmap(
            lambda dt_, dy_: jax.jvp(
                lambda t_, z: f(t_, z, theta_), (t, y_), (dt_, dy_)
            ),
            out_axes=(None, 1),
        )(d_t, d_y)
        return f_, columns[:, :n], columns[:, n]

    # Where the stage loop's arrays fit in XLA's sequential threshold (`_Register`: the
    # sensitivities, `W⁻¹`, the state's stages), `dJ U_i` is a second derivative of
    # `f` per stage, not a product with `dJ`: an array of shape `(D, n, n)` would not
    # fit. Above it, per stage costs more than it saves (gradient ms: Brannmark,
    # D n = 230, 30 -> 42; Fujita, 275, 27 -> 36).
    s = tableau.num_stages
    small = all(_fits(shape, y.dtype) for shape in (S.shape, (n, n), (s, n)))
    if small:
        J = _jacobian(f, jacobian, t, y, theta, eye)
        dT, d_dT = jax.vmap(
            lambda s_, p: jax.jvp(time_derivative, (y, theta), (s_, p)),
            out_axes=(None, 0),
        )(S, Theta)
    else:
        # `f`'s derivative along the directions (`K0`, the first stage's) comes with
        # `dJ`.
        (f0, J, dT), (K0, dJ, d_dT) = jax.vmap(
            lambda s_, p: jax.jvp(local, (y, theta), (s_, p)), out_axes=(None, 0)
        )(S, Theta)

    def jacobian_derivative_product(x):
        """`dJ x` along every direction, shape `(D, n)`."""
        if not small:
            # Multiply-adds of columns, not `sum(a * b)` over the states: see
            # `_matvec`.
            if n <= SMALL:
                return _weighted(x, jnp.moveaxis(dJ, -1, 0))
            return jnp.sum(dJ * x, axis=-1)
        return jax.vmap(
            lambda s_, p: jax.jvp(
                lambda y_, th: _jacobian_product(f, jacobian, t, y_, th, x),
                (y, theta),
                (s_, p),
            )[1]
        )(S, Theta)

    def field_jvp(t_i, y_i, dY):
        """`f(t_i, y_i)` and its derivative along every `(dY[k], Theta[k])`. (A
        `jax.vmap` of `jax.jvp`: `jax.linearize`'s linear function measured 3×
        slower per call here.)"""
        return jax.vmap(
            lambda s_, p: jax.jvp(lambda z, th: f(t_i, z, th), (y_i, theta), (s_, p)),
            out_axes=(None, 0),
        )(dY, Theta)

    if small:
        f0, K0 = field_jvp(t, y, S)
    frame = _frame(tableau, f, J, t, h, y, theta, f0, dT, linear_solver, refine)
    dT = jnp.where(frame.finite, dT, 0.0)
    safe_h = frame.h
    W_inverse = frame.inverse() if frame.W_inverse is None else frame.W_inverse

    def tangent_stage(K, C_dU, d_i, U_i, finite):
        """`dU_i = W⁻¹ (K + Σ_j C_ij dU_j / h + d_i h df_t + dJ U_i)`, all directions
        (`C_dU = Σ_j C_ij dU_j`)."""
        rhs = K + C_dU / safe_h + (d_i * safe_h) * d_dT
        rhs = rhs + jacobian_derivative_product(U_i)
        rhs = jnp.where(finite, rhs, 0.0)
        # The product as multiply-adds of columns (`_matvec`), not `sum(a * b)` over
        # the states: the gradient of a PEtab log-likelihood runs under `jax.vmap`
        # (over conditions), where XLA loops over such short reductions. Gradient ms:
        # Boehm 11.3 -> 4.1, Fujita 50 -> 37, Borghans 76 -> 46, Elowitz 55 -> 18.5;
        # unbatched ROBER 2.5 -> 2.4, HIRES 2.3 -> 2.4-2.5.
        return _matvec(W_inverse, rhs)

    d0 = tableau.d[0]
    rhs0 = f0 + (d0 * safe_h) * dT if d0 != 0 else f0
    finite = frame.finite & _finite(rhs0)
    U0 = frame.solve(jnp.where(finite, rhs0, 0.0))
    dU0 = tangent_stage(K0, jnp.zeros_like(K0), d0, U0, finite)
    U_init = jnp.zeros((s, n), y.dtype).at[0].set(U0)
    register = _Register(s - 1, S, small)

    def combined(weights, dU):
        """`Σ_j weights[j] dU_j` over all stages (`weights` in the register's order:
        `_Register.rows`)."""
        return weights[0] * dU0 + register.combine(weights[1:], dU)

    def stage(carry, row):
        U, dU, finite = carry
        a_i, C_i, c_i, d_i, i, a_dU, C_dU = row
        f_i, K = field_jvp(
            t + c_i * safe_h, y + _weighted(a_i, U), S + combined(a_dU, dU)
        )
        rhs = f_i + _weighted(C_i, U) / safe_h + (d_i * safe_h) * dT
        finite = finite & _finite(rhs)
        U_i = frame.solve(jnp.where(finite, rhs, 0.0))
        dU_i = tangent_stage(K, combined(C_dU, dU), d_i, U_i, finite)
        return (_set_row(U, U_i, i), register.push(dU, dU_i, i), finite), None

    rows = _coefficients(tableau, y.dtype) + tuple(
        jnp.asarray(register.rows(m), y.dtype) for m in (tableau.a, tableau.C)
    )
    (U, dU, finite), _ = jax.lax.scan(stage, (U_init, register.empty(), finite), rows)
    y1, error, dense, ok = _finish(tableau, frame, finite, y, U)
    # The same selections as `_finish`'s, on the derivatives; after the last stage the
    # register holds stages 2..s in order.
    S1 = jnp.where(ok, S + combined(tableau.b, dU), S)
    error_S = jnp.where(ok, combined(tableau.e, dU), 0.0)
    dense_S = tuple(jnp.where(ok, combined(row, dU), 0.0) for row in tableau.H)
    return (y1, error, dense), (S1, error_S, dense_S)


class _Register:
    """The sensitivity increments of stages 2..s in the stage loop, in chunks of at
    most `SEQUENTIAL_BYTES` where the stage loop's arrays are small (`_fits`): each stage
    pushes its increment in at the end and the oldest out, so that no stage writes at
    its traced index into a larger array. Otherwise (or where all stages fit in one
    chunk) one stack of shape `(s - 1, D, n)`, written in place at the stage's index.

    Why: XLA on CPU runs the operations of a loop body (or of a program) inline, one
    after the other, only where none of its buffers exceeds 512 bytes (`ThunkExecutor`'s
    sequential threshold); otherwise through its dependency-graph executor, which hands
    operations between threads, several times slower per operation and sensitive to
    the machine's load. The stack passes that size for `D n > 9` (float64), `dJ` of
    shape `(D, n, n)` for `D n² > 64`: both did for HIRES (`D n = 56`) and Boehm (48).
    Gradient, loaded 2-core machine, process time, fastest of 15 x 50 calls: HIRES
    (jacfwd over 7 rate constants, 223 steps; a solve 0.60 ms) 2.51 -> 1.59 ms, Boehm
    (PEtab log-likelihood) 2.09 -> 1.80, ROBER 0.96 -> 0.85. Tried: `s - 1` arrays each
    written by a select on the stage index (HIRES 1.84 ms: XLA copies the increment's
    computation into every select); the stages unrolled (3.1 ms: XLA copies producers
    into their many consumers); a shift of one large stack (Brannmark 27.8 -> 57 ms).
    """

    def __init__(self, size, S, small):
        self.size = size
        self.shape = S.shape
        self.dtype = S.dtype
        stages = SEQUENTIAL_BYTES // max(S.size * S.dtype.itemsize, 1)
        self.per_chunk = max(1, min(size, stages)) if small else size

    def empty(self):
        return tuple(
            jnp.zeros((min(self.per_chunk, self.size - k),) + self.shape, self.dtype)
            for k in range(0, self.size, self.per_chunk)
        )

    def push(self, chunks, x, i):
        """The register after stage `i` (0-based, `1 <= i < s`) with increment `x`:
        a single chunk is written at row `i - 1` in place (`_set_row`); chunks are
        shifted."""
        if len(chunks) == 1:
            return (_set_row(chunks[0], x, i - 1),)
        incoming = [chunk[:1] for chunk in chunks[1:]] + [x[None]]
        return tuple(
            jnp.concatenate([chunk[1:], new])
            for chunk, new in zip(chunks, incoming, strict=True)
        )

    def combine(self, weights, chunks):
        """`Σ_k weights[k] register[k]`."""
        out, start = None, 0
        for chunk in chunks:
            w = weights[start : start + chunk.shape[0]]
            term = jnp.sum(w[:, None, None] * chunk, axis=0)
            out = term if out is None else out + term
            start += chunk.shape[0]
        return out

    def rows(self, coefficients):
        """The rows 2..s of a stage-coefficient matrix (`a`, `C`: shape `(s, s)`) in
        the register's order: column 0 weights stage 1, column `k + 1` register slot
        `k`. A single chunk holds stage `k + 2` at slot `k`; shifted chunks, before
        stage `i` (0-based), stage `k + i - s + 1` (none where that is below 1)."""
        s = self.size + 1
        if self.per_chunk == self.size:
            return np.asarray(coefficients[1:])
        out = np.zeros((s - 1, s))
        for i in range(1, s):
            out[i - 1, 0] = coefficients[i, 0]
            for k in range(s - 1):
                m = k + i - self.size
                if m >= 1:
                    out[i - 1, k + 1] = coefficients[i, m]
        return out


def _fits(shape, dtype) -> bool:
    """Whether an array of `shape` and `dtype` is within XLA's sequential threshold."""
    return int(np.prod(shape)) * np.dtype(dtype).itemsize <= SEQUENTIAL_BYTES


def _jacobian_product(f, jacobian, t, y, theta, x):
    """`J(t, y, θ) x`."""
    if jacobian is None:
        return jax.jvp(lambda z: f(t, z, theta), (y,), (x,))[1]
    return jnp.asarray(jacobian(t, y, theta), y.dtype) @ x


def _jacobian(f, jacobian, t, y, theta, eye):
    """`J(t, y, θ)`, from `jacobian` or by `n` Jacobian-vector products."""
    if jacobian is None:
        return jax.vmap(
            lambda e: _jacobian_product(f, None, t, y, theta, e), out_axes=1
        )(eye)
    return jnp.asarray(jacobian(t, y, theta), y.dtype)


def _set_row(stack, row, i):
    """`stack.at[i].set(row)` for an index known to be in bounds: a dynamic update in
    place, without the bounds test of `.at[].set`'s scatter (two more operations per
    stage, where XLA on CPU pays per operation: Boehm's stage loop 22 -> 18 operations,
    PEtab gradient 2.75 -> 2.33 ms, fastest of 200, same run; ROBER unchanged)."""
    return jax.lax.dynamic_update_index_in_dim(stack, row, i, 0)


def _matvec(M, b):
    """`M @ b` (`b` of shape `(n,)`, or `(D, n)` for `D` vectors) as `n` fused
    multiply-adds of `M`'s columns, up to `SMALL` states.

    Not `sum(M * b, axis=-1)`: under `jax.vmap` XLA on CPU runs a reduction over a
    minor axis of 3-12 elements as a scalar loop per output, where the column form is
    one elementwise loop over the batch. Not `M @ b`: a `dot`, which XLA does not fuse
    with its neighbours in a single solve. Measured for the refined stage solve (1,000
    vmapped ROBER solves, rtol 1e-6; process time, loaded 2-core machine): columns
    0.061 s (`sum` 0.119, `@` 0.066, the unrefined LU solve 0.063); HIRES 0.32-0.37 s
    (0.50, 0.33-0.35). A single solve per step: ROBER 1.6-1.7 µs (`sum` 1.5-1.7,
    `@` 1.9), HIRES 2.6-2.7 (2.5, 2.7-3.0), E5 1.6 (1.6, 1.8).
    """
    n = M.shape[-1]
    if n > SMALL:
        return jnp.sum(M * b[..., None, :], axis=-1)
    out = b[..., :1] * M[:, 0]
    for j in range(1, n):
        out = out + b[..., j : j + 1] * M[:, j]
    return out


def _weighted(weights, U):
    """`weights @ U` over the stages (`U` of shape `(stages, n)`) as fused multiply-adds:
    in a single solve XLA does not fuse the `dot` of `@` with its neighbours. Measured
    per step (process time, loaded 2-core machine): ROBER 1.65 -> 1.38 µs (FusedRodas5P
    2.1 -> 1.6), E5 1.57 -> 1.52 (2.1 -> 1.8), HIRES unchanged; batches unchanged;
    POLLU (20 states) 45 -> 47.5, so above `SMALL` states the `dot` stays."""
    if U.ndim == 2 and U.shape[1] > SMALL:
        return weights @ U
    out = weights[0] * U[0]
    for j in range(1, U.shape[0]):
        out = out + weights[j] * U[j]
    return out


def _finish(tableau, frame, finite, y, U):
    """`(y1, error, dense, ok)` from the stages; a failed or zero-length step keeps
    `y`, with an infinite (failed) or zero (zero length) error."""
    y1 = y + _weighted(jnp.asarray(tableau.b, y.dtype), U)
    error = _weighted(jnp.asarray(tableau.e, y.dtype), U)
    rows = [_weighted(jnp.asarray(row, y.dtype), U) for row in tableau.H]
    dense = jnp.stack(rows) if rows else jnp.zeros((0,) + y.shape, y.dtype)
    finite = finite & _finite(y1) & _finite(error)
    error = jnp.where(frame.zero_step, 0.0, jnp.where(finite, error, jnp.inf))
    ok = finite & ~frame.zero_step
    return jnp.where(ok, y1, y), error, jnp.where(ok, dense, 0.0), ok


def _finite(x):
    return jnp.all(jnp.isfinite(x))


def rosenbrock_dense(Y, Y1, dense, theta):
    """`(1-θ) Y + θ (Y1 + (1-θ)(D_1 + θ (D_2 + θ D_3)))` on `(rows, n)` arrays; `dense`
    is the sequence `D_1, D_2, …` of `(rows, n)` arrays (not one array of shape
    `(rows, len(H), n)`: see `_Register` on buffer sizes)."""
    inner = jnp.zeros_like(Y)
    for D_j in reversed(tuple(dense)):
        inner = D_j + theta * inner
    return (1 - theta) * Y + theta * (Y1 + (1 - theta) * inner)
