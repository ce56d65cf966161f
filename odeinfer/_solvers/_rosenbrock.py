"""Rosenbrock (linearly implicit) solvers for stiff problems, as diffrax solvers.

diffrax has only ESDIRK methods for stiff problems (a Newton iteration per stage); it has
no Rosenbrock or BDF method (diffrax issue #8). A Rosenbrock step needs one Jacobian, one
LU factorisation of `W = I/(γh) - J` and a fixed number of triangular solves: no
iteration, no convergence failure, fixed shapes — which suits JAX. Measured with
`benchmarks/stiff.py` on this 2-core machine at rtol 1e-8, Rodas5P takes 5–10× fewer
steps than Kvaerno5 on ROBER and HIRES and solves VDPOL, where Kvaerno5 fails.

Being ordinary `diffrax.AbstractAdaptiveSolver`s, these solvers work everywhere a diffrax
solver does in odeinfer: `solve` with crossings, resets, doses, dense output and the
adjoints, `first_crossing`/`all_crossings`, `Problem`, `fit`, `sample` and `benchmark`.
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import numpy as np
from jax.flatten_util import ravel_pytree

from ._tableaus import RODAS4, RODAS5P, ROS3P, RosenbrockTableau


class _RosenbrockInterpolation(diffrax.AbstractLocalInterpolation):
    """The stiff-aware dense output of a Rosenbrock step:
    `y(t0 + θh) = (1-θ) y0 + θ (y1 + (1-θ)(D_1 + θ (D_2 + θ D_3 …)))`."""

    t0: diffrax._custom_types.RealScalarLike
    t1: diffrax._custom_types.RealScalarLike
    y0: object
    y1: object
    k: object  # the D_k, stacked along a leading axis, with the structure of y

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(
                lambda a, b: a - b, self.evaluate(t1), self.evaluate(t0)
            )
        h = self.t1 - self.t0
        theta = jnp.where(h == 0, 1.0, (t0 - self.t0) / jnp.where(h == 0, 1.0, h))

        def leaf(y0, y1, k):
            inner = jnp.zeros_like(y0)
            for j in range(k.shape[0] - 1, -1, -1):
                inner = k[j] + theta * inner
            return (1 - theta) * y0 + theta * (y1 + (1 - theta) * inner)

        return jtu.tree_map(leaf, self.y0, self.y1, self.k)


class AbstractRosenbrock(diffrax.AbstractAdaptiveSolver):
    """A Rosenbrock–Wanner method with an embedded error estimate and dense output.

    The Jacobian `∂f/∂y` comes from `jax.jacfwd` (or the model's own `jacobian`, see
    [`odeinfer.ODEModel`][]), the time derivative `∂f/∂t` from one `jax.jvp`, and the
    linear solves from `lineax` (`linear_solver`, dense LU by default: one
    factorisation per step, reused by every stage and by the derivatives).
    """

    tableau: ClassVar[RosenbrockTableau]
    linear_solver: lx.AbstractLinearSolver = lx.LU()
    jacobian: Callable | None = eqx.field(static=True, default=None)

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        _RosenbrockInterpolation
    )

    def order(self, terms):
        return self.tableau.order

    def error_order(self, terms):
        return self.tableau.embedded_order + 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        tab = self.tableau
        s = tab.num_stages
        y, unravel = ravel_pytree(y0)
        dtype = y.dtype
        h = t1 - t0

        def f(t, y_flat):
            return ravel_pytree(terms.vf(t, unravel(y_flat), args))[0]

        # f(t0, y0), the Jacobian and ∂f/∂t at the start of the step.
        if self.jacobian is None:
            f0, jvp_y = jax.linearize(lambda y_: f(t0, y_), y)
            J = jax.vmap(jvp_y, out_axes=1)(jnp.eye(y.shape[0], dtype=dtype))
        else:
            f0 = f(t0, y)
            J = jnp.asarray(self.jacobian(t0, unravel(y), args), dtype=dtype)
        dT = jax.jvp(lambda t: f(t, y), (t0,), (jnp.ones_like(t0),))[1]

        safe_h = jnp.where(h == 0, 1.0, h)
        W = jnp.eye(y.shape[0], dtype=dtype) / (tab.gamma * safe_h) - J
        operator = lx.MatrixLinearOperator(W)
        state = self.linear_solver.init(operator, {})
        a = np.asarray(tab.a)
        C = np.asarray(tab.C)
        U = []
        for i in range(s):
            if i == 0:
                fi = f0
            else:
                ui = y + sum(a[i, j] * U[j] for j in range(i) if a[i, j] != 0)
                fi = f(t0 + tab.c[i] * h, ui)
            rhs = fi
            coupling = [C[i, j] * U[j] for j in range(i) if C[i, j] != 0]
            if coupling:
                rhs = rhs + sum(coupling) / safe_h
            if tab.d[i] != 0:
                rhs = rhs + (tab.d[i] * h) * dT
            solution = lx.linear_solve(
                operator, rhs, self.linear_solver, state=state, throw=False
            )
            U.append(solution.value)
        U = jnp.stack(U)
        y1 = y + jnp.asarray(tab.b, dtype) @ U
        error = jnp.asarray(tab.e, dtype) @ U
        dense = jnp.asarray(tab.H, dtype) @ U
        # A singular W or a non-finite stage: reject the step (the controller shrinks h).
        finite = jnp.all(jnp.isfinite(y1)) & jnp.all(jnp.isfinite(error))
        error = jnp.where(finite, error, jnp.inf)
        y1_tree = unravel(jnp.where(finite, y1, y))
        k = jax.vmap(unravel)(dense)
        dense_info = dict(y0=y0, y1=y1_tree, k=k)
        return y1_tree, unravel(error), dense_info, None, diffrax.RESULTS.successful


class Rodas5P(AbstractRosenbrock):
    """Rodas5P: a stiffly accurate, L-stable Rosenbrock method of order 5(4) with 8
    stages and a stiff-aware 4th-order dense output (Steinebach 2023). The default for
    stiff problems of up to a few hundred states, at all but loose tolerances; PEtab.jl's
    and SciML's default for small stiff models.

    **Arguments:**

    - `linear_solver`: a `lineax` solver for `W = I/(γh) - J` (default dense LU).
    - `jacobian`: `None` (default): take the Jacobian from the model (its own
        `jacobian` if it has one, else `jax.jacfwd`). Set by `odeinfer.solve`; you do not
        normally pass it.

    !!! Example

        ```python
        import jax.numpy as jnp
        import odeinfer as oi

        def rober(t, y, p):
            y1, y2, y3 = y
            return jnp.stack([
                -0.04 * y1 + 1e4 * y2 * y3,
                0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2**2,
                3e7 * y2**2,
            ])

        sol = oi.solve(oi.ODEModel(rober), jnp.array([1.0, 0.0, 0.0]), {},
                       t0=0.0, t1=1e5, solver=oi.Rodas5P())
        ```
    """

    tableau: ClassVar[RosenbrockTableau] = RODAS5P


class Rodas4(AbstractRosenbrock):
    """Rodas4: Hairer & Wanner's stiffly accurate, L-stable Rosenbrock method of order
    4(3) with 6 stages and its 3rd-order dense output. The companion of
    [`odeinfer.Rodas5P`][] for loose tolerances (rtol ≥ 1e-5), where it takes fewer
    right-hand-side evaluations."""

    tableau: ClassVar[RosenbrockTableau] = RODAS4


class _ROS3P(AbstractRosenbrock):
    """ROS3P (Lang & Verwer 2001), order 3(2), 3 stages; kept for the measurement that
    chose the low-order companion (`benchmarks/stiff.py`), not exported."""

    tableau: ClassVar[RosenbrockTableau] = ROS3P
