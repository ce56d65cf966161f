"""Stage functions on `(rows, n)` arrays: the state alone, or the state with its forward
sensitivities.

Row 0 of `Y` is the state `y`; row `1 + i` is `S[:, i] = dy/d(direction i)`, where the
directions are the initial state's components and/or the parameters' components. The
sensitivities obey `S' = J S + (df/dθ) Θ` with `J = df/dy` and `Θ` the parameter part of
each direction (a unit vector for a parameter direction, zero for an initial-state one).
Both forms below compute exactly the JVP of the vector field at each Runge–Kutta stage,
so the sensitivities are the derivatives of the discrete solution for the same steps.
"""

import jax
import jax.numpy as jnp


def state_stage(f):
    """`F(t, Y) = f(t, y)` for `Y` of shape `(1, n)`."""

    def F(t, Y):
        return f(t, Y[0])[None]

    return F


def sensitivity_stage(f_theta, theta, theta_directions, mode: str):
    """`F(t, Y) = [f(t, y); J S + (df/dθ) Θ]` for `Y = [y; S^T]`.

    **Arguments:**

    - `f_theta(t, y, theta)`: the vector field on flat arrays.
    - `theta`: the flat parameters.
    - `theta_directions`: `Θ^T`, shape `(directions, len(theta))`.
    - `mode`: `"jvp"` (one `jax.jvp` of `f`, vmapped over the directions: the primal is
        computed once) or `"jacfwd"` (the Jacobians `df/dy`, `df/dθ` once per stage,
        then two matrix products).
    """

    if mode == "jvp":

        def F(t, Y):
            def tangent(s, d):
                return jax.jvp(lambda y, th: f_theta(t, y, th), (Y[0], theta), (s, d))

            k, K = jax.vmap(tangent, out_axes=(None, 0))(Y[1:], theta_directions)
            return jnp.concatenate([k[None], K])

    elif mode == "jacfwd":

        def F(t, Y):
            y = Y[0]
            k = f_theta(t, y, theta)
            J, Jtheta = jax.jacfwd(f_theta, argnums=(1, 2))(t, y, theta)
            K = Y[1:] @ J.T + theta_directions @ Jtheta.T
            return jnp.concatenate([k[None], K])

    else:
        raise ValueError(f"Unknown sensitivity mode {mode!r}; use 'jvp' or 'jacfwd'.")
    return F
