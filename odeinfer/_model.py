"""The model layer: a vector field over pytree states and named parameters."""

from collections.abc import Callable

import equinox as eqx

from ._custom_types import Params, Scalar, State


class ODEModel(eqx.Module):
    """An ordinary differential equation `dy/dt = vector_field(t, y, params)`.

    **Arguments:**

    - `vector_field`: a function `f(t, y, params) -> dy/dt` written with `jax.numpy`.
        `y` is any pytree of arrays (an array, a tuple, a dict of named states) and
        `dy/dt` must have the same structure, shapes and dtypes. `params` is any pytree;
        a dict of named parameters (`{"k": 0.01}`) is the usual choice.
    - `name`: an optional label used in reports and benchmark tables.
    - `jacobian`: optional `J(t, y, params) -> ∂f/∂y`, an `(n, n)` array for a 1-D state
        of length `n`, used by the Rosenbrock solvers ([`odeinfer.Rodas5P`][]) instead
        of `jax.jacfwd` of the vector field. It must be exact (a Rosenbrock method loses
        its order with a wrong Jacobian): check it once with
        [`odeinfer.check_jacobian`][].

    The vector field is traced by JAX: use `jax.numpy`, never `numpy` or `math`, on
    anything that depends on `t`, `y` or `params`. odeinfer checks this before solving
    and raises a `TypeError` that names the function if it finds a numpy call.

    !!! Example

        ```python
        import jax.numpy as jnp
        import odeinfer as oi

        logistic = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y), name="logistic")
        sol = oi.solve(logistic, jnp.array(0.5), {"k": 0.01}, t0=0.0, t1=200.0)
        ```

    Keep one `ODEModel` instance per model: a new instance wrapping a new `lambda`
    is a new static argument, and triggers a new compilation.
    """

    vector_field: Callable = eqx.field(static=True)
    name: str = eqx.field(static=True, default="ode")
    jacobian: Callable | None = eqx.field(static=True, default=None)

    def __call__(self, t: Scalar, y: State, params: Params) -> State:
        return self.vector_field(t, y, params)
