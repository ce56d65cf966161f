"""PEtab parameter values to what each experiment reads: references resolved against
the parameter vector, columns constant where no estimated parameter is read, parameter
scales undone, and the distinct preequilibrations."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._layout import Layout, Refs


def resolve(refs: Refs, values: Float[Array, " p"]) -> Array:
    """References → values: the PEtab parameter vector where `index >= 0`."""
    index = jnp.asarray(refs.index)
    read = values[jnp.maximum(index, 0)]
    return jnp.where(index >= 0, read, jnp.asarray(refs.constant))


def resolve_columns(
    refs: Refs, values: Float[Array, " p"], nominal: np.ndarray, estimated: np.ndarray
) -> tuple[Array, ...]:
    """`resolve(refs, values)` of `(n_exp, k)` references as `k` columns `(n_exp,)`;
    the columns that read no estimated parameter are constants (from `nominal`), not
    functions of `values`: the solves then integrate no sensitivities for them (a
    constant parameter, or an initial state computed from constants only, has a
    symbolic zero tangent)."""
    index = np.asarray(refs.index)
    traced = resolve(refs, values)
    constant = np.where(index >= 0, nominal[np.maximum(index, 0)], refs.constant)
    reads: list[bool] = [
        bool(np.isin(index[:, j], estimated).any()) for j in range(index.shape[1])
    ]
    return tuple(
        traced[:, j] if read else jnp.asarray(constant[:, j])
        for j, read in enumerate(reads)
    )


def unscale(x: Float[Array, " n"], code) -> Float[Array, " n"]:
    code = jnp.asarray(code)
    return jnp.where(code == 1, jnp.exp(x), jnp.where(code == 2, 10.0**x, x))


def distinct_preequilibrations(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """`(first, which)`: the first experiment of each distinct preequilibration (the
    same references of its parameters and species) and, per experiment, the position
    of its own in `first` (experiments without one share the first: they ignore it)."""
    keys, first, which = {}, [], []
    for e, experiment in enumerate(layout.experiments):
        key = b"".join(
            np.ascontiguousarray(a[e]).tobytes()
            for a in (layout.pre.index, layout.pre.constant,
                      layout.pre_species.index, layout.pre_species.constant)
        ) if experiment.preequilibration is not None else None  # fmt: skip
        if key is not None and key not in keys:
            keys[key] = len(first)
            first.append(e)
        which.append(keys.get(key, 0))
    return np.asarray(first, int), np.asarray(which, int)
