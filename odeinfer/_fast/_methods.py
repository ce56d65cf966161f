"""The methods of the fused loop, on `(rows, n)` arrays (row 0 the state, the others its
forward sensitivities): Dormand–Prince 5(4), Rodas5P, and Dormand–Prince switching to
Rodas5P once the problem is detected stiff.

Each method has `first(t0, Y0)` (its carried auxiliary value: the FSAL stage of DP5) and
`step(t, h, Y, aux, theta)`, which returns `(Y1, aux1, error, row, h_lambda)`: the step,
the next auxiliary value, the error estimate, the dense output at `t + theta h` and the
stiffness estimate (`h |λ|`, 0 where the method does not estimate it).

For a crossing found over a step, `dense(t, h, Y, aux)` recomputes that step's dense
output coefficients (`AutoRows`: `dense(t, h, Y, aux, stiff)`, `stiff` saying which
method took the step) and `evaluate(Y, dense, theta)` evaluates them at any `theta` in
`[0, 1]`.
"""

from collections.abc import Callable

import jax
import jax.lax as lax
import jax.numpy as jnp

from .._solvers._tableaus import RODAS5P
from ._dopri5 import dense_output, dopri5_step
from ._rosenbrock import (
    rosenbrock_dense,
    rosenbrock_sensitivity_step,
    rosenbrock_step,
)


class Dopri5Rows:
    """Dormand–Prince on the stage function `F(t, Y)` (state and sensitivity rows)."""

    def __init__(self, F: Callable):
        self.F = F

    def first(self, t0, Y0):
        return self.F(t0, Y0)

    def step(self, t, h, Y, k1, theta):
        Y1, k7, error, dense, h_lambda = dopri5_step(self.F, t, h, Y, k1)
        return Y1, k7, error, self.evaluate(Y, dense, theta), h_lambda

    def dense(self, t, h, Y, k1):
        return dopri5_step(self.F, t, h, Y, k1)[3]

    @staticmethod
    def evaluate(Y, dense, theta):
        return dense_output(Y, dense, theta[None])[0]


class RosenbrockRows:
    """Rodas5P on `f(t, y, θ)`; sensitivity rows are the step's exact forward
    derivative along `(S, Θ)` (`theta_directions` is `Θ`, shape
    `(directions, len(θ))`), sharing the step's LU factorisation."""

    def __init__(
        self, f, theta, theta_directions, jacobian=None, tableau=RODAS5P, refine=True
    ):
        self.f = f
        self.theta = theta
        self.theta_directions = theta_directions
        self.jacobian = jacobian
        self.tableau = tableau
        self.refine = refine

    def first(self, t0, Y0):
        return jnp.zeros_like(Y0)  # no FSAL stage

    def step(self, t, h, Y, aux, theta):
        Y1, E, D = self._advance(t, h, Y)
        row = rosenbrock_dense(Y, Y1, D, theta)
        return Y1, aux, E, row, jnp.zeros((), Y.dtype)

    def dense(self, t, h, Y, aux):
        Y1, _, D = self._advance(t, h, Y)
        return Y1, D

    @staticmethod
    def evaluate(Y, dense, theta):
        Y1, D = dense
        return rosenbrock_dense(Y, Y1, D, theta)

    def _advance(self, t, h, Y):
        """`(Y1, error, dense)` of one step, all rows; `dense` the dense-output
        coefficients as a tuple of `(rows, n)` arrays (`rosenbrock_dense`)."""
        if self.theta_directions is None:
            y1, error, dense = rosenbrock_step(
                self.tableau, self.f, self.jacobian, t, h, Y[0], self.theta,
                refine=self.refine,
            )  # fmt: skip
            Y1, E = y1[None], error[None]
            D = tuple(row[None] for row in dense)
        else:
            (y1, error, dense), (S1, ES, DS) = rosenbrock_sensitivity_step(
                self.tableau, self.f, self.jacobian, t, h, Y[0], self.theta, Y[1:],
                self.theta_directions, refine=self.refine,
            )  # fmt: skip
            Y1 = jnp.concatenate([y1[None], S1])
            E = jnp.concatenate([error[None], ES])
            D = tuple(
                jnp.concatenate([row[None], row_S])
                for row, row_S in zip(dense, DS, strict=True)
            )
        return Y1, E, D


class AutoRows:
    """Dormand–Prince until the problem looks stiff, then Rodas5P (one way): the loop
    (`_loop.py`) runs `explicit` until `STIFF_STEPS` accepted steps had
    `h |λ| > STIFF_BOUND` (Hairer's `dopri5.f` test: the step size is then limited by
    stability, not accuracy), then `stiff` from there."""

    def __init__(self, explicit: Dopri5Rows, stiff: RosenbrockRows):
        self.explicit = explicit
        self.stiff = stiff

    def dense(self, t, h, Y, aux, stiff):
        """Both methods' coefficients, those of the method not used (`stiff` says which
        took the step) zero; one is computed (`lax.cond`)."""

        def zeros(method):
            shapes = jax.eval_shape(method.dense, t, h, Y, aux)
            return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        explicit = lax.cond(
            stiff,
            lambda: zeros(self.explicit),
            lambda: self.explicit.dense(t, h, Y, aux),
        )
        implicit = lax.cond(
            stiff,
            lambda: self.stiff.dense(t, h, Y, aux),
            lambda: zeros(self.stiff),
        )
        return explicit, implicit, stiff

    @staticmethod
    def evaluate(Y, dense, theta):
        explicit, implicit, stiff = dense
        return jnp.where(
            stiff,
            RosenbrockRows.evaluate(Y, implicit, theta),
            Dopri5Rows.evaluate(Y, explicit, theta),
        )


# dopri5.f flags stiffness when h|λ| > 3.25 (the edge of DP5's stability region) on 15
# accepted steps. Measured on the Bari set with `FusedAuto` (rtol 1e-8): 3.25 switched on
# ROBER only after ~3,800 DP5 steps (4,637 in all, against 782 for Rodas5P alone); 2.5
# after ~200 (986 in all); 2.0 also switched the non-stiff 3-D spring at rtol 1e-3,
# which 2.5 does not.
STIFF_BOUND = 2.5
STIFF_STEPS = 15
