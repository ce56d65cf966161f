"""Why a segment ran out of steps: a singular solution, or a stiff problem given to an
explicit solver. Both look at the state reached, outside the derivative."""

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.flatten_util import ravel_pytree

from .._model import ODEModel
from ._tree import all_finite, max_abs


def singular(model: ODEModel, t, y, params):
    """Whether the solution at `(t, y)` changes on a time scale below the resolution of
    `t` (finite-time blow-up), or the vector field is not finite there or one short
    explicit step ahead (it is not defined past the point reached)."""
    t, y, params = lax.stop_gradient((t, y, params))
    dy = model(t, y, params)
    eps = jnp.finfo(t.dtype).eps
    scale = jnp.maximum(jnp.abs(t), 1.0)
    blow_up = max_abs(y) <= 1e3 * eps * scale * max_abs(dy)
    h = jnp.sqrt(eps) * scale
    ahead = jtu.tree_map(lambda y_, f_: y_ + h * f_, y, dy)
    undefined = jnp.invert(all_finite((dy, model(t + h, ahead, params))))
    return blow_up | undefined


def looks_stiff(model: ODEModel, t, y, params, t0, num_steps):
    """Whether the steps taken were stability-limited: the average step times the
    largest eigenvalue modulus of ∂f/∂y at `(t, y)` (30 power iterations) exceeds 1."""
    y, params = lax.stop_gradient((y, params))
    flat, unravel = ravel_pytree(y)

    def jvp(v):
        tangent = jax.jvp(lambda z: model(t, unravel(z), params), (flat,), (v,))[1]
        return ravel_pytree(tangent)[0]

    def power(_, v):
        w = jvp(v)
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-300)

    v0 = jnp.ones_like(flat) / jnp.sqrt(flat.size)
    v = lax.fori_loop(0, 30, power, v0)
    rho = jnp.linalg.norm(jvp(v))
    h_average = (t - t0) / jnp.maximum(num_steps, 1)
    return lax.stop_gradient(jnp.isfinite(rho) & (h_average * rho > 1.0))
