"""`BenchmarkProblem` and `Reference`: what a benchmark solves and what it is compared with."""

from collections.abc import Callable, Sequence

import equinox as eqx
import numpy as np

from .._events import Crossing
from .._model import ODEModel


class Reference(eqx.Module):
    """A reference solution of a [`odeinfer.BenchmarkProblem`][].

    **Arguments:**

    - `y_final`: the state at `t1`.
    - `ys`: the states at the problem's `saveat` times (`None` when it has none).
    - `event_times`: the times of every recorded crossing, in order (`None`: no events).
    - `gradient`: d `quantity` / d params, in the order of `sorted(params)` (`None`:
        computed when gradients are benchmarked).
    - `source`: where it comes from (a paper, "closed form", "scipy DOP853 rtol=1e-13").
    """

    y_final: np.ndarray
    ys: np.ndarray | None = None
    event_times: np.ndarray | None = None
    gradient: np.ndarray | None = None
    source: str = eqx.field(static=True, default="given")


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
    - `reference`: a [`odeinfer.Reference`][], or `None` to compute one at tight
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
        if not isinstance(model, ODEModel):
            raise TypeError(
                f"BenchmarkProblem: `model` must be an odeinfer.ODEModel; got "
                f"{type(model).__name__}."
            )
        y0 = np.asarray(y0, dtype=float)
        if y0.ndim != 1:
            raise ValueError(
                f"BenchmarkProblem: `y0` must be a 1-D array (scipy and SUNDIALS peers "
                f"need flat states); got shape {y0.shape}."
            )
        if not isinstance(params, dict):
            raise TypeError(
                "BenchmarkProblem: `params` must be a dict of named scalar parameters; "
                f"got {type(params).__name__}."
            )
        if not float(t1) > float(t0):
            raise ValueError(f"BenchmarkProblem: need t0 < t1; got t0={t0}, t1={t1}.")
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
                "BenchmarkProblem: `reference` must be an odeinfer.Reference or None "
                f"(computed at tight tolerance); got {type(reference).__name__}."
            )
        self.name = name
        self.model = model
        self.y0 = y0
        self.params = {k: float(v) for k, v in params.items()}
        self.t0 = float(t0)
        self.t1 = float(t1)
        self.saveat = None if saveat is None else np.asarray(saveat, dtype=float)
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
