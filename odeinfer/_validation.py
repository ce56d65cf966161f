"""Checks made before any work starts: clear errors that name the argument and the fix.

Values that are concrete (not traced by an enclosing `jax.jit`/`vmap`/`grad`) are checked
here in Python. Traced values are checked inside the solve and reported as
`RESULTS.invalid_input`.
"""

import warnings

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

_NUMPY_HINT = (
    "It looks like `{name}` calls numpy (`np.…`), `math.…` or `float(…)` on a traced "
    "value. odeinfer differentiates and compiles `{name}` with JAX, which needs "
    "`jax.numpy` throughout: replace `import numpy as np` by `import jax.numpy as jnp` "
    "inside it (and `math.exp` by `jnp.exp`, `float(x)` by `x`). In other frameworks this "
    "mistake silently gives zero or wrong gradients; here it is an error.\n"
    "Original error: {error}"
)


class NumpyInTracedCodeError(TypeError):
    """A user function called numpy/math on a value that JAX traces."""


class UnknownNameError(KeyError):
    """A user function looked up a name (e.g. `params["k2"]`) that its input lacks."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


def is_concrete(tree) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jtu.tree_leaves(tree))


def check_time_span(t0, t1) -> None:
    for name, t in (("t0", t0), ("t1", t1)):
        if is_concrete(t):
            value = np.asarray(t)
            if value.shape != ():
                raise ValueError(
                    f"`{name}` must be a scalar time; got shape {value.shape}."
                )
            if not np.isfinite(value):
                raise ValueError(f"`{name}` must be finite; got {value}.")
    if is_concrete((t0, t1)) and not float(t1) > float(t0):
        raise ValueError(
            f"`t1` must be greater than `t0`; got t0={float(t0)}, t1={float(t1)}. "
            "odeinfer integrates forward in time: swap them or shift the time origin."
        )


def check_tolerances(rtol, atol) -> None:
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if is_concrete(tol):
            value = np.asarray(tol)
            if not (np.all(np.isfinite(value)) and np.all(value > 0)):
                raise ValueError(
                    f"`{name}` must be positive and finite; got {value}. Typical values: "
                    "rtol=1e-8, atol=1e-10 in float64."
                )


def check_finite(name: str, tree) -> None:
    if not is_concrete(tree):
        return
    for path, leaf in jtu.tree_leaves_with_path(tree):
        value = np.asarray(leaf)
        if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
            where = jtu.keystr(path) or ""
            raise ValueError(
                f"`{name}{where}` contains NaN or inf ({value}); give finite values."
            )


def check_times(name: str, times, t0=None, t1=None) -> None:
    """Concrete `times`: finite, sorted, and within `[t0, t1]` where those are given.
    (Comparisons with NaN are false, so NaN must be refused before the range checks.)"""
    if not is_concrete((times, t0, t1)):
        return
    values = np.asarray(times)
    if not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values))
        raise ValueError(
            f"`{name}` contains NaN or inf at positions {bad.tolist()} ({values}); give "
            "finite times."
        )
    if np.any(np.diff(values) < 0):
        raise ValueError(f"`{name}` times must be sorted in increasing order; sort it.")
    low = -np.inf if t0 is None else float(t0)
    high = np.inf if t1 is None else float(t1)
    if values.size and (values.min() < low or values.max() > high):
        raise ValueError(
            f"`{name}` times must lie in [t0, t1] = [{low}, {high}]; got "
            f"[{values.min()}, {values.max()}]."
        )


def check_max_step_size(max_step_size) -> None:
    if max_step_size is None or not is_concrete(max_step_size):
        return
    value = np.asarray(max_step_size)
    if value.shape != () or not np.isfinite(value) or not value > 0:
        raise ValueError(
            "`max_step_size` must be a positive finite scalar (or None for no bound); "
            f"got {value}. It bounds the solver's step, e.g. max_step_size=0.1 to "
            "resolve a crossing function that varies on a time scale of 0.1."
        )


def check_precision(rtol, dtype) -> None:
    """Warn when `rtol` is below what the floating-point type can resolve."""
    if not is_concrete(rtol):
        return
    eps = float(jnp.finfo(dtype).eps)
    smallest = float(np.min(np.asarray(rtol)))
    if smallest < 5 * eps:
        hint = (
            " odeinfer runs in float32 because ODEINFER_NO_X64 is set: unset it for "
            "float64, or use rtol >= 1e-6."
            if jnp.dtype(dtype) == jnp.float32
            else ""
        )
        warnings.warn(
            f"`rtol={smallest:g}` is below the precision of {jnp.dtype(dtype).name} "
            f"(machine epsilon {eps:.1e}): the solver cannot meet it, and will take "
            f"tiny steps or fail. Use rtol >= {5 * eps:.1e}.{hint}",
            stacklevel=3,
        )


def check_max(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")


def trace_user_function(name: str, fn, *args):
    """`jax.eval_shape(fn, *args)`, turning numpy-on-tracer errors into an explanation."""
    try:
        return jax.eval_shape(fn, *args)
    except jax.errors.TracerBoolConversionError as e:
        # Checked first: it is a subclass of ConcretizationTypeError.
        raise TypeError(
            f"`{name}` uses Python `if`/`and`/`or` on a traced value. Use "
            f"`jnp.where(cond, a, b)` instead.\nOriginal error: {e}"
        ) from None
    except (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
    ) as e:
        raise NumpyInTracedCodeError(_NUMPY_HINT.format(name=name, error=e)) from None
    except KeyError as e:
        if isinstance(e, UnknownNameError) or len(e.args) != 1:
            raise
        labels = {1: ("params",), 3: ("t", "y", "params")}.get(
            len(args), tuple(f"argument {i}" for i in range(len(args)))
        )
        available = [
            f"{label} has {sorted(map(str, arg))}"
            for label, arg in zip(labels, args, strict=True)
            if isinstance(arg, dict)
        ]
        known = "; ".join(available) if available else "no named entries are given"
        raise UnknownNameError(
            f"`{name}` looks up {e.args[0]!r}, which is not defined: {known}. Add "
            f"{e.args[0]!r} to the parameters (or the state), or fix the name in "
            f"`{name}`."
        ) from None


def as_arrays(tree):
    """Numbers and numpy arrays in `tree` as JAX arrays: `eqx.filter_jit` treats Python
    numbers as static, so a new value would otherwise mean a new compilation."""

    def convert(x):
        if isinstance(x, bool) or not isinstance(
            x, (int, float, np.ndarray, np.generic)
        ):
            return x
        return jnp.asarray(x)

    return jtu.tree_map(convert, tree)


def _describe(tree) -> str:
    return str(jtu.tree_map(lambda x: f"{x.dtype}{list(x.shape)}", tree))


def check_same_structure(name: str, produced, expected, fix: str) -> None:
    same_tree = jtu.tree_structure(produced) == jtu.tree_structure(expected)
    same_shapes = same_tree and all(
        jnp.shape(a) == jnp.shape(b)
        for a, b in zip(
            jtu.tree_leaves(produced), jtu.tree_leaves(expected), strict=True
        )
    )
    if not same_shapes:
        raise ValueError(
            f"`{name}` returned {_describe(produced)} but the state y0 is "
            f"{_describe(expected)}. {fix}"
        )


def probe_indexing(label: str, fn, t0, y0, params) -> None:
    """Evaluate `fn(t0, y0, params)` once on numpy copies of concrete inputs. JAX clamps
    an out-of-range index (`y[2]` of a 2-vector reads `y[1]`) without a word; numpy
    raises `IndexError`, reported here naming the function. Any other failure (numpy
    inputs a JAX-only function cannot take, traced inputs) is left to the traced
    checks."""
    if not is_concrete((t0, y0, params)):
        return
    leaves = jtu.tree_leaves((t0, y0, params))
    if not all(isinstance(x, np.ndarray | jax.Array | float | int) for x in leaves):
        return  # abstract shapes (ShapeDtypeStruct) or other objects: nothing to probe
    try:
        y = jtu.tree_map(np.asarray, y0)
        p = jtu.tree_map(np.asarray, params)
        t = float(np.asarray(t0))
    except Exception:
        return
    try:
        fn(t, y, p)
    except IndexError as error:
        shapes = jtu.tree_map(np.shape, y)
        raise ValueError(
            f"`{label}` indexes the state out of range ({error}); the state y0 has "
            f"shape {shapes}. JAX would silently clamp the index and use the wrong "
            "component: fix the index (or y0)."
        ) from None
    except Exception:
        return


def check_user_functions(model, crossings, y0, params, t0) -> None:
    """Trace the vector field, crossing and reset functions once on abstract values."""
    t = jax.ShapeDtypeStruct((), jnp.result_type(float))
    y_abstract = jtu.tree_map(
        lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), y0
    )
    name = getattr(model.vector_field, "__name__", "vector_field")
    dy = trace_user_function(
        f"vector_field ({name})", model.vector_field, t, y_abstract, params
    )
    probe_indexing(f"vector_field ({name})", model.vector_field, t0, y0, params)
    check_same_structure(
        "vector_field",
        dy,
        y_abstract,
        "dy/dt must have the same structure and shapes as y: check `y0` (its length "
        "or keys) against the vector field.",
    )
    for i, crossing in enumerate(crossings):
        label = f"Crossing {i} ({crossing.name}).fn"
        value = trace_user_function(label, crossing.fn, t, y_abstract, params)
        if jtu.tree_structure(value) != jtu.tree_structure(0) or jnp.shape(value) != ():
            raise ValueError(
                f"`{label}` must return a scalar; got {_describe(value)}. Reduce it, e.g. "
                "`jnp.linalg.norm(y[:3])` or `y[0]`, and use one Crossing per scalar."
            )
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise ValueError(f"`{label}` must return a float; got dtype {value.dtype}.")
        if crossing.reset is not None:
            label = f"Crossing {i} ({crossing.name}).reset"
            new_y = trace_user_function(label, crossing.reset, t, y_abstract, params)
            check_same_structure(
                label,
                new_y,
                y_abstract,
                "reset(t, y, params) must return a new state like y.",
            )
