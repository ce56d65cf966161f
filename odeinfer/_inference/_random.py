"""The randomness of the inference functions: `key=` (a JAX PRNG key or an int), with
the older `seed=` (an int) still accepted for one release, with a `DeprecationWarning`."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(
        value, bool | np.bool_
    )


def as_key(key, seed) -> tuple[jax.Array, int]:
    """The PRNG key of a run from `key=` or `seed=` (at most one of them given).

    **Returns:** `(key, seed)`: a typed JAX key, and the integer it was made from
    (`-1` when a key array was given).
    """
    if key is not None and seed is not None:
        raise ValueError(
            "Give either `key=` (a JAX PRNG key or an int) or `seed=` (an int), not "
            "both."
        )
    if seed is not None and key is None:
        warnings.warn(
            "`seed=` is deprecated (removed in the next release): pass `key=` (an int "
            "or a JAX PRNG key), e.g. `key=0`, as in `oi.multistart`.",
            DeprecationWarning,
            stacklevel=3,
        )
    if key is None:
        seed = 0 if seed is None else seed
        if not _is_int(seed):
            raise TypeError(
                f"`seed` must be an integer; got {seed!r}. Pass e.g. `seed=0`, or a "
                "JAX key as `key=jax.random.key(0)`."
            )
        return jax.random.key(int(seed)), int(seed)
    if _is_int(key):
        return jax.random.key(int(key)), int(key)
    if isinstance(key, jax.Array | np.ndarray):
        # (numpy has no key dtype: a key is a jax.Array)
        if isinstance(key, jax.Array) and jnp.issubdtype(
            key.dtype, jax.dtypes.prng_key
        ):
            if key.shape != ():
                raise ValueError(
                    f"`key` must be a single PRNG key; got an array of keys of shape "
                    f"{key.shape}. Pass one of them, e.g. `key=keys[0]`."
                )
            return key, -1
        if key.dtype == np.uint32 and key.shape == (2,):  # jax.random.PRNGKey(...)
            return jax.random.wrap_key_data(jnp.asarray(key)), -1
    raise TypeError(
        f"`key` must be a JAX PRNG key (`jax.random.key(0)`) or an int; got "
        f"{type(key).__name__} {key!r}."
    )
