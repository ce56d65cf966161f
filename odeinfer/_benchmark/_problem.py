"""`BenchmarkProblem` and `Reference`: what a benchmark solves and what it is compared with."""

import functools
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import numpy as np

from .._events import Crossing
from .._model import ODEModel
from .._validation import trace_user_function


def _finite_array(owner: str, name: str, value, ndim: int | None = None) -> np.ndarray:
    """`value` as a float array with finite entries (and `ndim` dimensions)."""
    try:
        if value is None:  # numpy would make it NaN
            raise TypeError
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: `{name}` must be an array of numbers; got {value!r}."
        ) from None
    if ndim is not None and array.ndim != ndim:
        raise ValueError(
            f"{owner}: `{name}` must be a {ndim}-D array; got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner}: `{name}` must be finite; got {array}.")
    return array


def _positive(owner: str, name: str, value, *, integer: bool = False):
    kind = int if integer else (int, float, np.integer, np.floating)
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        what = "an integer >= 1" if integer else "a finite number > 0"
        raise ValueError(f"{owner}: `{name}` must be {what}; got {value!r}.")
    return value


def _converted(name: str, value):
    if value is None:
        return None
    return _finite_array("Reference", name, value)


class Reference(eqx.Module):
    """A reference solution of a [`odeinfer.benchmarking.BenchmarkProblem`][].

    **Arguments:**

    - `y_final`: the state at `t1`.
    - `ys`: the states at the problem's `saveat` times (`None` when it has none).
    - `event_times`: the times of every recorded crossing, in order (`None`: no events).
    - `gradient`: d `quantity` / d params, in the order of `sorted(params)` (`None`:
        computed when gradients are benchmarked).
    - `source`: where it comes from (a paper, "closed form", "scipy DOP853 rtol=1e-13").
    """

    # Finite numbers only: a NaN reference would make every error NaN or inf.
    y_final: np.ndarray = eqx.field(
        converter=functools.partial(_finite_array, "Reference", "y_final")
    )
    ys: np.ndarray | None = eqx.field(
        default=None, converter=functools.partial(_converted, "ys")
    )
    event_times: np.ndarray | None = eqx.field(
        default=None, converter=functools.partial(_converted, "event_times")
    )
    gradient: np.ndarray | None = eqx.field(
        default=None, converter=functools.partial(_converted, "gradient")
    )
    source: str = eqx.field(static=True, default="given")

    def __check_init__(self):
        if self.y_final.ndim != 1:
            raise ValueError(
                "Reference: `y_final` must be a 1-D array (the state at t1); got shape "
                f"{self.y_final.shape}."
            )
        if not isinstance(self.source, str):
            raise TypeError(
                f"Reference: `source` must be a string; got {self.source!r}."
            )


def check_reference(y0: np.ndarray, saveat, reference: Reference) -> None:
    """A reference of the problem's shapes: `y_final` like `y0`, `ys` one row per
    `saveat` time."""
    if reference.y_final.shape != y0.shape:
        raise ValueError(
            f"`reference.y_final` has shape {reference.y_final.shape} but the state y0 "
            f"has shape {y0.shape}: the reference is of another problem."
        )
    if saveat is not None and reference.ys is not None:
        expected = (len(saveat),) + y0.shape
        if np.shape(reference.ys) != expected:
            raise ValueError(
                f"`reference.ys` has shape {np.shape(reference.ys)}; the problem's "
                f"`saveat` and y0 need {expected}."
            )


def _check_vector_field(model: ODEModel, y0: np.ndarray, params: dict):
    """Trace the vector field once: a parameter it reads that `params` lacks, or a
    derivative of another shape than `y0`, is an error here, before any solver runs."""
    scalar = jax.ShapeDtypeStruct((), np.float64)
    abstract = {k: scalar for k in params}
    y = jax.ShapeDtypeStruct(y0.shape, np.float64)
    try:
        out = trace_user_function("model.vector_field", model, scalar, y, abstract)
    except KeyError as error:
        # A plain KeyError: a subclass already carries its own message.
        key = error.args[0] if error.args else None
        if type(error) is not KeyError or not isinstance(key, str) or key in params:
            raise
        raise ValueError(
            f"BenchmarkProblem: the vector field reads the parameter {key!r}, which "
            f"`params` does not give (params: {list(params)})."
        ) from None
    if jax.tree.structure(out) != jax.tree.structure(y) or np.shape(out) != y0.shape:
        raise ValueError(
            f"BenchmarkProblem: the vector field returns {jax.tree.map(np.shape, out)} "
            f"for a state y0 of shape {y0.shape}; `y0` must have one entry per state "
            "variable of the model."
        )


def _default_quantity(y_final, event_times):
    del event_times
    weights = (1.0 + np.arange(y_final.shape[-1])) / y_final.shape[-1]
    return (y_final * weights).sum()


class BenchmarkProblem(eqx.Module):
    """An initial value problem to benchmark solvers on: a model, its data, its events,
    and (optionally) a reference solution.

    **Arguments:**

    - `name`: a label for tables and plots.
    - `model`: an [`odeinfer.ODEModel`][]; the state is a 1-D array.
    - `y0`: the initial state, a 1-D array.
    - `params`: a dict of named scalar parameters (gradients are taken w.r.t. these).
    - `t0`, `t1`: the interval.
    - `saveat`: times at which errors are also measured, or `None` (final time only).
    - `events`: [`odeinfer.Crossing`][]s recorded during the solve (resets and
        terminal crossings are supported by odeinfer and scipy peers).
    - `reference`: a [`odeinfer.benchmarking.Reference`][], or `None` to compute one at tight
        tolerance when benchmarking.
    - `stiff`: whether the problem is stiff (chooses the reference method, Radau vs
        DOP853, and the default solvers).
    - `atol_scale`: benchmarks run at `atol = atol_scale * rtol`.
    - `error_floor`: errors are `|y - y_ref| / max(|y_ref|, error_floor)`; components
        smaller than the floor are measured absolutely, scaled by it.
    - `numpy_vector_field`: optional `f(t, y, params)` written with numpy, used by the
        scipy and SUNDIALS peers (otherwise they call the jitted JAX vector field).
    - `quantity`: `quantity(y_final, event_times) -> scalar`, the output whose gradient
        w.r.t. `params` is benchmarked; written with operators and `.sum()` only so it
        works on numpy and JAX arrays. Default: a weighted sum of `y_final`.
    - `max_events`: the event buffer size for odeinfer.
    - `max_steps`: the per-segment step budget for odeinfer.
    - `description`: one line for listings.
    """

    name: str = eqx.field(static=True)
    model: ODEModel
    y0: np.ndarray
    params: dict
    t0: float
    t1: float
    saveat: np.ndarray | None
    events: tuple[Crossing, ...]
    reference: Reference | None
    stiff: bool = eqx.field(static=True)
    atol_scale: float
    error_floor: float
    numpy_vector_field: Callable | None = eqx.field(static=True)
    quantity: Callable = eqx.field(static=True)
    max_events: int = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    description: str = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        model: ODEModel,
        y0,
        params: dict,
        *,
        t0: float,
        t1: float,
        saveat=None,
        events: Crossing | Sequence[Crossing] | None = None,
        reference: Reference | None = None,
        stiff: bool = False,
        atol_scale: float = 1e-2,
        error_floor: float = 1e-8,
        numpy_vector_field: Callable | None = None,
        quantity: Callable | None = None,
        max_events: int = 16,
        max_steps: int = 100_000,
        description: str = "",
    ):
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"BenchmarkProblem: `name` must be a non-empty string; got {name!r}."
            )
        if not isinstance(model, ODEModel):
            raise TypeError(
                f"BenchmarkProblem: `model` must be an odeinfer.ODEModel; got "
                f"{type(model).__name__}."
            )
        owner = "BenchmarkProblem"
        y0 = _finite_array(owner, "y0", y0)
        if y0.ndim != 1 or y0.size == 0:
            raise ValueError(
                f"BenchmarkProblem: `y0` must be a non-empty 1-D array (scipy and "
                f"SUNDIALS peers need flat states); got shape {y0.shape}."
            )
        if not isinstance(params, dict):
            raise TypeError(
                "BenchmarkProblem: `params` must be a dict of named scalar parameters; "
                f"got {type(params).__name__}."
            )
        for key, value in params.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"BenchmarkProblem: `params` keys must be strings; got {key!r}."
                )
            value = _finite_array(owner, f"params['{key}']", value)
            if value.shape != ():
                raise ValueError(
                    f"BenchmarkProblem: `params['{key}']` must be a scalar (gradients "
                    f"are reported per named scalar); got shape {value.shape}."
                )
        t0 = float(_finite_array(owner, "t0", t0, ndim=0))
        t1 = float(_finite_array(owner, "t1", t1, ndim=0))
        if not t1 > t0:
            raise ValueError(f"BenchmarkProblem: need t0 < t1; got t0={t0}, t1={t1}.")
        if saveat is not None:
            saveat = _finite_array(owner, "saveat", saveat, ndim=1)
            if saveat.size == 0:
                raise ValueError(
                    "BenchmarkProblem: `saveat` is empty; give times in [t0, t1] or "
                    "None (final time only)."
                )
            if np.any(np.diff(saveat) <= 0) or saveat[0] < t0 or saveat[-1] > t1:
                raise ValueError(
                    "BenchmarkProblem: `saveat` must be strictly increasing times in "
                    f"[t0, t1] = [{t0}, {t1}]; got {saveat}."
                )
        for option, value in (("atol_scale", atol_scale), ("error_floor", error_floor)):
            _positive(owner, option, value)
        for option, value in (("max_events", max_events), ("max_steps", max_steps)):
            _positive(owner, option, value, integer=True)
        for option, value in (
            ("quantity", quantity),
            ("numpy_vector_field", numpy_vector_field),
        ):
            if value is not None and not callable(value):
                raise TypeError(
                    f"BenchmarkProblem: `{option}` must be a callable or None; got "
                    f"{value!r}."
                )
        _check_vector_field(model, y0, params)
        if isinstance(events, Crossing):
            events = (events,)
        events = tuple(events) if events is not None else ()
        for event in events:
            if not isinstance(event, Crossing):
                raise TypeError(
                    f"BenchmarkProblem: `events` must hold odeinfer.Crossing objects; "
                    f"got {type(event).__name__}."
                )
        if reference is not None and not isinstance(reference, Reference):
            raise TypeError(
                "BenchmarkProblem: `reference` must be an odeinfer.benchmarking.Reference or None "
                f"(computed at tight tolerance); got {type(reference).__name__}."
            )
        if reference is not None:
            check_reference(y0, saveat, reference)
        self.name = name
        self.model = model
        self.y0 = y0
        self.params = {k: float(v) for k, v in params.items()}
        self.t0 = float(t0)
        self.t1 = float(t1)
        self.saveat = saveat
        self.events = events
        self.reference = reference
        self.stiff = bool(stiff)
        self.atol_scale = float(atol_scale)
        self.error_floor = float(error_floor)
        self.numpy_vector_field = numpy_vector_field
        self.quantity = quantity if quantity is not None else _default_quantity
        self.max_events = int(max_events)
        self.max_steps = int(max_steps)
        self.description = description

    def replace(self, **changes) -> "BenchmarkProblem":
        """A copy with some arguments changed, e.g.
        `problem.replace(params={...}, max_steps=1000)`."""
        names = ("saveat", "events", "reference", "stiff", "atol_scale", "error_floor",
                 "numpy_vector_field", "quantity", "max_events", "max_steps",
                 "description", "t0", "t1")  # fmt: skip
        options = {name: getattr(self, name) for name in names}
        options.update({k: v for k, v in changes.items() if k in names})
        positional = {k: changes.get(k, getattr(self, k))
                      for k in ("name", "model", "y0", "params")}  # fmt: skip
        unknown = set(changes) - set(names) - set(positional)
        if unknown:
            raise TypeError(
                f"BenchmarkProblem.replace: unknown arguments {sorted(unknown)}."
            )
        return BenchmarkProblem(**positional, **options)

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names in the order gradients are reported."""
        return tuple(sorted(self.params))
