"""`Dose`: jumps of the state at preset times (boluses, impulses)."""

from collections.abc import Hashable
from typing import cast

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
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
        for name, value in (("times", times), ("amounts", amounts)):
            if isinstance(value, jax.core.Tracer):
                continue
            if not np.all(np.isfinite(np.asarray(value))):
                raise ValueError(
                    f"Dose: `{name}` contains NaN or inf ({value}); give finite {name}."
                )
        path = target if isinstance(target, tuple) else (target,)
        for key in path:
            if isinstance(key, bool) or not isinstance(key, (int, str, np.integer)):
                raise TypeError(
                    f"Dose: `target` must be an integer index, a dict key (a string) or "
                    f"a tuple of them; got {target!r} ({type(key).__name__})."
                )
        self.times = times
        self.amounts = amounts
        self.target = target

    def check_target(self, y) -> None:
        """Raise a clear error if `target` does not name one component of the state
        `y` (JAX would silently drop an out-of-range `.at[index].add`)."""
        path = self.target if isinstance(self.target, tuple) else (self.target,)
        node = y
        for depth, key in enumerate(path):
            where = f"Dose: `target={self.target!r}`"
            if isinstance(node, dict):
                if key not in node:
                    raise KeyError(
                        f"{where}: key {key!r} is not in the state; its keys are "
                        f"{sorted(map(str, node))}."
                    )
                node = node[key]
                continue
            if isinstance(key, str):
                raise TypeError(
                    f"{where}: the state at this level is not a dict (it is "
                    f"{type(node).__name__}), so the target must be an integer index."
                )
            if isinstance(node, (tuple, list)):
                size = len(node)
            else:
                shape = jnp.shape(node)
                if not shape:
                    raise ValueError(
                        f"{where}: the state is a scalar, which has no index {key}; use "
                        "`target=()` for a scalar state, or make the state an array."
                    )
                if depth != len(path) - 1:
                    raise ValueError(
                        f"{where}: the path is deeper than the array state (shape "
                        f"{shape})."
                    )
                size = shape[0]
            key = cast(int, key)  # not a str (refused above): an integer index
            if not -size <= key < size:
                raise IndexError(
                    f"{where}: index {key} is out of range for a state with {size} "
                    f"components (valid: 0 to {size - 1}). Without this check JAX "
                    "would silently drop the dose."
                )
            if isinstance(node, (tuple, list)):
                node = node[key]

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
