"""`Dose`: jumps of the state at preset times (boluses, impulses)."""

from collections.abc import Hashable

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float


class Dose(eqx.Module):
    """Add `amounts[k]` to one component of the state at each time `times[k]`.

    **Arguments:**

    - `times`: dose times (any order; sorted internally). Doses after `t1` never
        happen; doses before `t0` are an error.
    - `amounts`: one amount per time, or a scalar for all. Traced: derivatives with
        respect to amounts (and times) are available.
    - `target`: where to add, `y[target] += amount`: an integer index for an array
        state, a key for a dict state, or a tuple path for nested states.

    The solver never steps over a dose: the solve is split at every dose time.
    The solution is right-continuous: a state saved at a dose time is the state after
    the dose.

    !!! Example

        ```python
        bolus = oi.Dose(times=[0.0, 12.0, 24.0], amounts=100.0, target=0)
        ```
    """

    times: Float[Array, " n"]
    amounts: Float[Array, " n"]
    target: Hashable | tuple = eqx.field(static=True)

    def __init__(self, times: ArrayLike, amounts: ArrayLike, target=0):
        times = jnp.atleast_1d(jnp.asarray(times, dtype=float))
        amounts = jnp.asarray(amounts, dtype=float)
        if times.ndim != 1:
            raise ValueError(f"Dose: `times` must be 1-D; got shape {times.shape}.")
        if amounts.ndim == 0:
            amounts = jnp.full(times.shape, amounts)
        if amounts.shape != times.shape:
            raise ValueError(
                f"Dose: `amounts` has shape {amounts.shape} but `times` has shape "
                f"{times.shape}; give one amount per time or a scalar."
            )
        self.times = times
        self.amounts = amounts
        self.target = target

    def apply(self, y, amount):
        """`y` with `amount` added at `target`."""
        path = self.target if isinstance(self.target, tuple) else (self.target,)
        return _add_at(y, path, amount)


def _add_at(y, path, amount):
    if not path:
        return y + amount
    head, rest = path[0], path[1:]
    if isinstance(y, dict):
        if head not in y:
            raise KeyError(
                f"Dose: target key {head!r} not in the state keys {list(y)}."
            )
        return {**y, head: _add_at(y[head], rest, amount)}
    if isinstance(y, (tuple, list)):
        items = list(y)
        items[head] = _add_at(items[head], rest, amount)
        return type(y)(items)
    if jtu.treedef_is_leaf(jtu.tree_structure(y)):
        y = jnp.asarray(y)
        if rest:
            raise ValueError(
                f"Dose: target path {path} is deeper than the array state."
            )
        return y.at[head].add(amount)
    raise TypeError(f"Dose: cannot index a state of type {type(y).__name__}.")
