"""Small pytree helpers of the segment loop."""

import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree


def tree_where(pred: Bool[ArrayLike, ""], a: PyTree, b: PyTree) -> PyTree:
    """`jnp.where(pred, a, b)` leaf by leaf."""
    return jtu.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def all_finite(tree: PyTree) -> Bool[Array, ""]:
    """Whether every element of every leaf is finite (`True` for an empty tree)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def max_abs(tree: PyTree) -> Float[Array, ""]:
    """The largest absolute value in the tree (0 for an empty tree)."""
    leaves = [jnp.max(jnp.abs(x), initial=0.0) for x in jtu.tree_leaves(tree)]
    return jnp.max(jnp.stack(leaves)) if leaves else jnp.array(0.0)


def take_last(ys: PyTree) -> PyTree:
    """The last entry along the leading axis of every leaf."""
    return jtu.tree_map(lambda x: x[-1], ys)


def fill(tree: PyTree, size: int) -> PyTree:
    """A buffer of `size` copies of `tree`'s shapes, filled with `inf`."""
    return jtu.tree_map(lambda x: jnp.full((size,) + jnp.shape(x), jnp.inf), tree)
