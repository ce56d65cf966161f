"""`SmallLU`: a dense LU with partial pivoting, unrolled for small matrices, as a lineax
solver.

`lineax.LU` calls LAPACK's `getrf`/`getrs` through XLA custom calls. For the 3–10 state
models of pharmacology and kinetics that call dominates a Rosenbrock step, and under
`jax.vmap` XLA loops over the batch calling LAPACK once per matrix. Written as `n`
elimination steps of plain array operations, the factorisation vectorises across a batch
and fuses with the rest of the step. Measured in `benchmarks/stiff.py` (batch section).
"""

from typing import Any

import equinox.internal as eqxi
import jax.numpy as jnp
import lineax as lx
from lineax._solver.misc import (
    pack_structures,
    ravel_vector,
    transpose_packed_structures,
    unravel_solution,
)


def lu_factor(A):
    """`P A = L U` by Gaussian elimination with partial pivoting, `n` static steps.

    **Returns:** `(LU, perm)`: `L` (unit lower) and `U` packed in one matrix, and the row
    permutation (`(P A)[i] = A[perm[i]]`)."""
    n = A.shape[0]
    perm = jnp.arange(n)
    rows = jnp.arange(n)
    for k in range(n - 1):
        pivot_row = k + jnp.argmax(jnp.abs(A[k:, k]))
        swap = jnp.where(rows == k, pivot_row, jnp.where(rows == pivot_row, k, rows))
        A = A[swap]
        perm = perm[swap]
        factors = A[k + 1 :, k] / A[k, k]
        A = A.at[k + 1 :, k].set(factors)
        A = A.at[k + 1 :, k + 1 :].add(-factors[:, None] * A[k, k + 1 :][None, :])
    return A, perm


def lu_solve(lu_perm, b, transpose: bool = False):
    """Solve `A x = b` (or `Aᵀ x = b`) from `lu_factor(A)`."""
    LU, perm = lu_perm
    n = LU.shape[0]
    if not transpose:
        # Products as `sum(a * b)`, not `a @ b`: under `jax.vmap` (the fused loop's
        # sensitivities, batches) `@` becomes a `dot` that XLA does not fuse; measured
        # 4.7 against 5.1 µs per HIRES Rodas5P step.
        y = b[perm]
        for i in range(1, n):  # L y = P b, unit diagonal
            y = y.at[i].add(-jnp.sum(LU[i, :i] * y[:i]))
        for i in range(n - 1, -1, -1):  # U x = y
            y = y.at[i].set((y[i] - jnp.sum(LU[i, i + 1 :] * y[i + 1 :])) / LU[i, i])
        return y
    # Aᵀ = Uᵀ Lᵀ P: Uᵀ z = b, Lᵀ w = z, x = Pᵀ w.
    z = b
    for i in range(n):
        z = z.at[i].set((z[i] - jnp.sum(LU[:i, i] * z[:i])) / LU[i, i])
    for i in range(n - 2, -1, -1):
        z = z.at[i].add(-jnp.sum(LU[i + 1 :, i] * z[i + 1 :]))
    return jnp.zeros_like(z).at[perm].set(z)


def gauss_jordan_inverse(A):
    """`A⁻¹` by Gauss–Jordan elimination with partial pivoting, `n` static steps of
    plain array operations (the row swaps as `lu_factor`'s), in place: column `k` of the
    result is built where `A`'s column `k` was eliminated.

    Why not `A⁻¹` from `lu_factor` by two triangular solves: XLA on CPU runs those as
    LAPACK `trsm` calls, and under `jax.vmap` as a loop of one call per matrix. Measured
    per matrix (loaded 2-core machine, in a `fori_loop`, factorisation included): n = 3
    single 0.19 µs (LU and `trsm` 0.77), 1,000 vmapped 0.033 µs each (0.18); n = 8
    single 1.0 µs (2.7), vmapped 0.56 µs (1.7). Above ~10 states a single LAPACK
    inverse is faster (n = 12: 2.3 µs against 4.3).
    """
    n = A.shape[0]
    rows = jnp.arange(n)
    perm = rows
    for k in range(n):
        pivot_row = k + jnp.argmax(jnp.abs(A[k:, k]))
        swap = jnp.where(rows == k, pivot_row, jnp.where(rows == pivot_row, k, rows))
        A = A[swap]
        perm = perm[swap]
        # Row k divided by the pivot, with 1/pivot in the pivot column; the other rows
        # eliminated, their column k becoming -A[i, k]/pivot.
        row = jnp.where(rows == k, 1.0, A[k]) / A[k, k]
        factors = jnp.where(rows == k, 0.0, A[:, k])
        A = jnp.where(rows[None, :] == k, 0.0, A) - factors[:, None] * row[None, :]
        A = A.at[k].set(row)
    # That is `(P A)⁻¹ = A⁻¹ Pᵀ`: undo the permutation of the columns, column `i` of
    # `A` going to column `perm[i]`, as `n` selects rather than the inverse
    # permutation's scatter (which XLA on CPU runs as a loop of `n` iterations).
    moved = perm[:, None] == rows[None, :]
    out = jnp.zeros_like(A)
    for i in range(n):
        out = out + jnp.where(moved[i], A[:, i : i + 1], 0.0)
    return out


class SmallLU(lx.AbstractLinearSolver):
    """Dense LU with partial pivoting unrolled over the `n` columns: the default linear
    solver of the Rosenbrock methods for up to `SMALL` states (then `lineax.LU`)."""

    def init(self, operator, options: dict[str, Any]):
        del options
        if operator.in_size() != operator.out_size():
            raise ValueError("`SmallLU` needs a square matrix.")
        return (
            lu_factor(operator.as_matrix()),
            pack_structures(operator),
            eqxi.Static(False),
        )

    def compute(self, state, vector, options: dict[str, Any]):
        del options
        lu_perm, packed, transpose = state
        x = lu_solve(lu_perm, ravel_vector(vector, packed), transpose.value)
        return unravel_solution(x, packed), lx.RESULTS.successful, {}

    def transpose(self, state, options: dict[str, Any]):
        lu_perm, packed, transpose = state
        return (
            (
                lu_perm,
                transpose_packed_structures(packed),
                eqxi.Static(not transpose.value),
            ),
            {},
        )

    def conj(self, state, options: dict[str, Any]):
        (LU, perm), packed, transpose = state
        return ((LU.conj(), perm), packed, eqxi.Static(not transpose.value)), {}

    def assume_full_rank(self):
        return True
