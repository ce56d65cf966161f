"""`oi.SmallLU` (the unrolled dense LU of the Rosenbrock solvers) and the unrolled
Gauss–Jordan inverse against numpy, with pivoting forced, and the LU's derivatives
against lineax's LU."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import odeinfer as oi
from odeinfer._solvers._small_lu import gauss_jordan_inverse, lu_factor, lu_solve


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_solves_and_transposed_solves_match_numpy(n):
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n))
    A[0, 0] = 1e-14  # a zero-ish leading pivot: wrong without row exchanges
    b = rng.standard_normal(n)
    factors = lu_factor(jnp.asarray(A))
    np.testing.assert_allclose(lu_solve(factors, jnp.asarray(b)), np.linalg.solve(A, b),
                               rtol=1e-10, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(
        lu_solve(factors, jnp.asarray(b), transpose=True),
        np.linalg.solve(A.T, b),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 12])
def test_gauss_jordan_inverse_matches_numpy(n):
    """Single and under `jax.vmap`, with a zero leading pivot (row exchanges needed)
    and rows scaled over 1e±6 (as in a stiff `W = I/(γh) - J`)."""
    rng = np.random.default_rng(n)
    A = rng.standard_normal((4, n, n)) * 10.0 ** rng.uniform(-6, 6, (4, n, 1))
    A[:, 0, 0] = 0.0
    A = A + (n == 1)  # a 1x1 needs a nonzero entry
    expected = np.linalg.inv(A)
    batched = jax.vmap(gauss_jordan_inverse)(jnp.asarray(A))
    for k in range(4):
        single = np.asarray(gauss_jordan_inverse(jnp.asarray(A[k])))
        scale = np.abs(expected[k]).max()
        np.testing.assert_allclose(single, expected[k], atol=1e-10 * scale)
        np.testing.assert_allclose(batched[k], single, atol=1e-14 * scale)


def test_lineax_solver_contract_and_derivatives():
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.standard_normal((4, 4)) + 4 * np.eye(4))
    b = jnp.asarray(rng.standard_normal(4))

    def solve(solver, A_, b_):
        return lx.linear_solve(lx.MatrixLinearOperator(A_), b_, solver).value

    for argnum in (0, 1):
        ours = jax.jacrev(lambda *a: solve(oi.SmallLU(), *a), argnums=argnum)(A, b)
        theirs = jax.jacrev(lambda *a: solve(lx.LU(), *a), argnums=argnum)(A, b)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    batched = jax.vmap(lambda A_: solve(oi.SmallLU(), A_, b))(jnp.stack([A, 2 * A]))
    np.testing.assert_allclose(batched[1], np.linalg.solve(2 * np.asarray(A), b),
                               rtol=1e-10)  # fmt: skip
