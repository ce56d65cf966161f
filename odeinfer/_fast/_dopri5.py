"""One Dormand–Prince 5(4) step with its error estimate and dense output.

The tableau and the dense-output coefficients are those of Hairer's `dopri5.f`
(E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary Differential Equations I*,
2nd ed., Springer 1993, sec. II.5 and II.6). The stage function `F(t, Y)` acts on an
array `Y` of shape `(rows, n)`: row 0 is the state, the other rows (if any) are its
forward sensitivities, so one step advances the state and its sensitivities together.
"""

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

C2, C3, C4, C5 = 1 / 5, 3 / 10, 4 / 5, 8 / 9
A21 = 1 / 5
A31, A32 = 3 / 40, 9 / 40
A41, A42, A43 = 44 / 45, -56 / 15, 32 / 9
A51, A52, A53, A54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
A61, A62, A63, A64, A65 = (
    9017 / 3168,
    -355 / 33,
    46732 / 5247,
    49 / 176,
    -5103 / 18656,
)
# 5th-order weights (= the last row of A: the method is FSAL).
B1, B3, B4, B5, B6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
# Error weights b5 - b4.
E1, E3, E4, E5, E6, E7 = (
    71 / 57600,
    -71 / 16695,
    71 / 1920,
    -17253 / 339200,
    22 / 525,
    -1 / 40,
)
# Dense output (Hairer's `contd5`, 4th-order continuous extension).
D1, D3, D4, D5, D6, D7 = (
    -12715105075 / 11282082432,
    87487479700 / 32700410799,
    -10690763975 / 1880347072,
    701980252875 / 199316789632,
    -1453857185 / 822651844,
    69997945 / 29380423,
)

Rows = Float[Array, "rows n"]


def dopri5_step(F: Callable, t, h, Y: Rows, k1: Rows):
    """Advance `Y` from `t` to `t + h`; `k1 = F(t, Y)` (reused from the last step).

    **Returns:** `(Y1, k7, Y_error, dense, h_lambda)`: the 5th-order solution,
    `F(t + h, Y1)` (the next step's `k1`), the embedded error estimate, the four
    coefficient arrays of the dense output (see `dense_output`) and Hairer's stiffness
    estimate `h |λ| ≈ h ‖k7 - k6‖ / ‖Y1 - Y6‖` on the state row (`dopri5.f`: the step is
    limited by stability when it exceeds 3.25, the edge of the stability region).
    """
    k2 = F(t + C2 * h, Y + h * (A21 * k1))
    k3 = F(t + C3 * h, Y + h * (A31 * k1 + A32 * k2))
    k4 = F(t + C4 * h, Y + h * (A41 * k1 + A42 * k2 + A43 * k3))
    k5 = F(t + C5 * h, Y + h * (A51 * k1 + A52 * k2 + A53 * k3 + A54 * k4))
    Y6 = Y + h * (A61 * k1 + A62 * k2 + A63 * k3 + A64 * k4 + A65 * k5)
    k6 = F(t + h, Y6)
    Y1 = Y + h * (B1 * k1 + B3 * k3 + B4 * k4 + B5 * k5 + B6 * k6)
    k7 = F(t + h, Y1)
    error = h * (E1 * k1 + E3 * k3 + E4 * k4 + E5 * k5 + E6 * k6 + E7 * k7)
    difference = Y1 - Y
    bspl = h * k1 - difference
    dense = (
        difference,
        bspl,
        difference - h * k7 - bspl,
        h * (D1 * k1 + D3 * k3 + D4 * k4 + D5 * k5 + D6 * k6 + D7 * k7),
    )
    numerator = jnp.sum(jnp.square(k7[0] - k6[0]))
    denominator = jnp.sum(jnp.square(Y1[0] - Y6[0]))
    h_lambda = jnp.abs(h) * jnp.sqrt(
        numerator / jnp.where(denominator > 0, denominator, 1.0)
    )
    h_lambda = jnp.where(denominator > 0, h_lambda, 0.0)
    return Y1, k7, error, dense, h_lambda


def dense_output(Y: Rows, dense, theta):
    """The interpolant at `t + theta * h`, `theta` in [0, 1] of shape `(m,)`.

    **Returns:** shape `(m, rows, n)`; exactly `Y` at `theta = 0` and the step's `Y1`
    at `theta = 1` (up to rounding).
    """
    r2, r3, r4, r5 = dense
    th = theta[:, None, None]
    th1 = 1 - th
    return Y + th * (r2 + th1 * (r3 + th * (r4 + th1 * r5)))
