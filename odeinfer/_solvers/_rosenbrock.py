"""Rosenbrock (linearly implicit) solvers for stiff problems, as diffrax solvers.

diffrax has only ESDIRK methods for stiff problems (a Newton iteration per stage); it has
no Rosenbrock or BDF method (diffrax issue #8). A Rosenbrock step needs one Jacobian, one
LU factorisation of `W = I/(γh) - J` and a fixed number of triangular solves: no
iteration, no convergence failure, fixed shapes — which suits JAX. Measured with
`benchmarks/stiff.py` on this 2-core machine at rtol 1e-8, Rodas5P takes 7–16× fewer
steps than Kvaerno5 on ROBER and HIRES (accepted and rejected), is 10–100× faster per
solve on the Bari stiff set, and solves VDPOL, where Kvaerno5 fails.

Being ordinary `diffrax.AbstractAdaptiveSolver`s, these solvers work everywhere a diffrax
solver does in odeinfer: `solve` with crossings, resets, doses, dense output and the
adjoints, `first_crossing`/`all_crossings`, `Problem`, `fit`, `sample` and `benchmark`.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
from jax.flatten_util import ravel_pytree

from .._fast._rosenbrock import rosenbrock_step
from ._tableaus import RODAS4, RODAS5P, ROS3P, RosenbrockTableau


class _RosenbrockInterpolation(diffrax.AbstractLocalInterpolation):
    """The stiff-aware dense output of a Rosenbrock step:
    `y(t0 + θh) = (1-θ) y0 + θ (y1 + (1-θ)(D_1 + θ (D_2 + θ D_3 …)))`."""

    t0: Any
    t1: Any
    y0: Any
    y1: Any
    k: Any  # the D_k, stacked along a leading axis, with the structure of y

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
    linear solves from `lineax` (`linear_solver`, a dense LU by default: one
    factorisation per step, reused by every stage and by the derivatives).
    """

    tableau: ClassVar[RosenbrockTableau]
    linear_solver: lx.AbstractLinearSolver | None = None
    jacobian: Callable | None = eqx.field(static=True, default=None)
    refine_stages: bool = eqx.field(static=True, default=True)

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
        y, unravel = ravel_pytree(y0)

        def f(t, y_flat, _):
            return ravel_pytree(terms.vf(t, unravel(y_flat), args))[0]

        user_jacobian = self.jacobian

        def flat_jacobian(t, y_flat, _):
            assert user_jacobian is not None  # only passed on when given
            return user_jacobian(t, unravel(y_flat), args)

        jacobian = None if user_jacobian is None else flat_jacobian

        # The same step as the fused loop's (`_fast/_rosenbrock.py`); a non-finite
        # stage or a singular W comes back as an infinite error: the controller rejects
        # the step and shrinks h.
        y1, error, dense = rosenbrock_step(
            self.tableau,
            f,
            jacobian,
            t0,
            t1 - t0,
            y,
            None,
            self.linear_solver,
            refine=self.refine_stages,
        )
        y1_tree = unravel(y1)
        dense_info = dict(y0=y0, y1=y1_tree, k=jax.vmap(unravel)(dense))
        return y1_tree, unravel(error), dense_info, None, diffrax.RESULTS.successful


class Rodas5P(AbstractRosenbrock):
    """Rodas5P: a stiffly accurate, L-stable Rosenbrock method of order 5(4) with 8
    stages and a stiff-aware 4th-order dense output (Steinebach 2023). The default for
    stiff problems of up to a few hundred states, at all but loose tolerances; PEtab.jl's
    and SciML's default for small stiff models.

    **Arguments:**

    - `linear_solver`: a `lineax` solver for `W = I/(γh) - J`. `None` (default): up
        to 12 states, array operations unrolled over the states, which vectorise under
        `jax.vmap` (8× the batch throughput of `lineax.LU` on ROBER): `W⁻¹` by
        Gauss–Jordan for the refined stage solves, a dense LU with partial pivoting
        ([`odeinfer.SmallLU`][]) without refinement; `lineax.LU()` above.
    - `jacobian`: `None` (default): take the Jacobian from the model (its own
        `jacobian` if it has one, else `jax.jacfwd`). Set by `odeinfer.solve`; you do not
        normally pass it.
    - `refine_stages`: `True` (default): each stage solve is refined once, its
        residual `b - W x` taken with `J x` as a Jacobian-vector product of the vector
        field. Without it the round-off of the solve (`ε γh |J| |x|`, large on stiff
        steps) breaks the model's linear conservation laws, which decides components
        far smaller than the others: on the Bari problem E5 (`y2, y3 ≈ 1e-22`) the
        final state was wrong by a factor 2-600 at rtol 1e-4...1e-10, and is within
        0.4% at rtol 1e-8 refined. Costs one Jacobian-vector product per stage; up to
        12 states the refined step forms `W⁻¹` (Gauss–Jordan) instead of an LU and is
        as fast as the unrefined one, single or under `jax.vmap` (measured on ROBER,
        HIRES and E5). `False` for the unrefined step.

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
