"""`Experiment`: observation times, data, observables, noise, and the experiment's own
initial state, doses and parameter overrides."""

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._events import Dose
from ._event_time import EventTimeObservation
from ._frame import frame_to_arrays, is_dataframe
from ._noise import AbstractNoise

# Beyond this, (data - prediction)**2 / sigma**2 overflows float64 for any sigma <= 1.
_LARGEST_DATA = 1e150


def _identity_observable(t, y, params):
    del t, params
    return jnp.ravel(y)


class Experiment(eqx.Module):
    """One experiment: what was measured, when, under which conditions.

    **Arguments:**

    - `times`: observation times `(n_times,)`, sorted, `>= t0` (or `None` when only
        event times were observed).
    - `data`: observed values, `(n_times,)` for one observable or
        `(n_times, n_observables)`; or a tidy `pandas.DataFrame` with columns `time`,
        `value` and (for several observables) `observable`, in which case `times` is
        `None` and NaN or absent rows mean missing.
    - `observables`: what is measured, `h(t, y, params)`:
        - a function returning a scalar (one observable) or a vector of
          `n_observables` values;
        - a dict `name -> h` (or list) of scalar functions, one per data column;
        - `None` (default): the state itself (a 1-D array state).
    - `noise`: a noise model ([`odeinfer.Gaussian`][], [`odeinfer.LogNormal`][], ...)
        for every observable, or a list (dict by observable name) with one per column.
    - `y0`: the initial state, or a function `y0(params)` (to estimate it, or to derive
        it from parameters).
    - `t0`: the initial time.
    - `doses`: [`odeinfer.Dose`][]s given in this experiment.
    - `overrides`: experiment-specific parameter values, `{"name": value}`, where a
        value is a number or the name of another parameter (`{"k": "k_patient2"}`).
    - `mask`: boolean, same shape as `data`, `True` where a value was observed.
        Masked entries are ignored (never dropped: the shapes stay fixed). NaN in `data`
        needs a `mask` that is `False` there (the DataFrame path builds it).
    - `event_times`: a list of [`odeinfer.EventTimeObservation`][].
    - `name`: a label.
    """

    times: Float[Array, " n_times"]
    data: Float[Array, "n_times n_observables"]
    mask: Bool[Array, "n_times n_observables"]
    observables: tuple[Callable, ...] = eqx.field(static=True)
    observable_names: tuple[str, ...] = eqx.field(static=True)
    noise: tuple[AbstractNoise, ...]
    y0: object
    y0_fn: Callable | None = eqx.field(static=True)
    t0: Float[Array, ""]
    doses: tuple[Dose, ...]
    override_values: dict[str, Array]
    override_names: tuple[tuple[str, str], ...] = eqx.field(static=True)
    event_times: tuple[EventTimeObservation, ...]
    name: str = eqx.field(static=True)
    # Per event-time observation, the index of the distinct crossing it observes (the
    # same object, or the same function, direction and level): one solve records each.
    _crossing_slots: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        times=None,
        data=None,
        *,
        observables=None,
        noise: AbstractNoise
        | Sequence[AbstractNoise]
        | Mapping[str, AbstractNoise]
        | None = None,
        y0=None,
        t0=0.0,
        doses: Dose | Sequence[Dose] | None = None,
        overrides: Mapping[str, object] | None = None,
        mask=None,
        event_times: Sequence[EventTimeObservation] | None = None,
        name: str = "experiment",
    ):
        self.name = str(name)
        # Observables.
        if observables is None:
            fns, names = (_identity_observable,), ("y",)
        elif callable(observables):
            fns, names = (observables,), (getattr(observables, "__name__", "h"),)
        elif isinstance(observables, Mapping):
            fns, names = tuple(observables.values()), tuple(str(k) for k in observables)
        elif isinstance(observables, Sequence):
            fns = tuple(observables)
            names = tuple(getattr(f, "__name__", f"h{i}") for i, f in enumerate(fns))
        else:
            raise TypeError(
                f"Experiment `{name}`: `observables` must be a function h(t, y, params), a "
                f"dict or list of them, or None; got {observables!r}."
            )
        for f in fns:
            if not callable(f):
                raise TypeError(
                    f"Experiment `{name}`: observable {f!r} is not callable."
                )
        if data is not None and is_dataframe(data):
            if times is not None or mask is not None:
                raise ValueError(
                    f"Experiment `{name}`: with a DataFrame `data`, leave `times` and "
                    "`mask` as None (they come from the frame; NaN means missing)."
                )
            named = isinstance(observables, Mapping) or len(fns) > 1
            times, data, mask = frame_to_arrays(data, names if named else None, name)
        # Times and data.
        if times is None:
            if data is not None:
                raise ValueError(f"Experiment `{name}`: `data` given without `times`.")
            times_np = np.zeros((0,))
            data_np = np.zeros((0, len(fns)))
        else:
            times_np = _as_float_array(times, f"Experiment `{name}`: `times`")
            if times_np.ndim != 1:
                raise ValueError(
                    f"Experiment `{name}`: `times` must be 1-D; got shape {times_np.shape}."
                )
            if data is None:
                raise ValueError(f"Experiment `{name}`: `times` given without `data`.")
            data_np = _as_float_array(data, f"Experiment `{name}`: `data`")
            if data_np.ndim == 1:
                data_np = data_np[:, None]
            if data_np.ndim != 2 or data_np.shape[0] != times_np.shape[0]:
                raise ValueError(
                    f"Experiment `{name}`: `data` must have shape (n_times,) or (n_times, "
                    f"n_observables) with n_times={times_np.shape[0]}; got {np.shape(data)}."
                )
        if times_np.size == 0 and not event_times:
            raise ValueError(
                f"Experiment `{name}`: no data. Give `times` and `data` (at least one "
                "observation) or `event_times`; an experiment without data adds nothing "
                "to the likelihood, and a fit of it would report success at its start."
            )
        if not np.all(np.isfinite(times_np)):
            bad = int(np.flatnonzero(~np.isfinite(times_np))[0])
            raise ValueError(
                f"Experiment `{name}`: `times` must be finite; entry {bad} is "
                f"{times_np[bad]}. Drop that observation (or mask its data)."
            )
        if np.any(np.diff(times_np) < 0):
            first = int(np.flatnonzero(np.diff(times_np) < 0)[0])
            raise ValueError(
                f"Experiment `{name}`: `times` must be sorted increasing; entry "
                f"{first + 1} ({times_np[first + 1]}) comes before entry {first} "
                f"({times_np[first]}). Sort `times` and the rows of `data` together, e.g. "
                "`order = np.argsort(times)`."
            )
        try:
            t0_np = np.asarray(t0, dtype=float)
        except (TypeError, ValueError):
            t0_np = np.asarray(np.nan)
        if t0_np.shape != () or not np.isfinite(t0_np):
            raise ValueError(
                f"Experiment `{name}`: `t0` must be a finite scalar; got {t0!r}."
            )
        if times_np.size and times_np[0] < t0_np:
            raise ValueError(
                f"Experiment `{name}`: `times[0]` = {times_np[0]} lies before t0 "
                f"(`t0` = {t0}), where the solve starts. Give an earlier `t0` or drop the "
                "observations before it."
            )
        n_columns = data_np.shape[1]
        if len(fns) > 1 and len(fns) != n_columns:
            raise ValueError(
                f"Experiment `{name}`: {len(fns)} observables {list(names)} but data has "
                f"{n_columns} column(s); give data of shape (n_times, {len(fns)})."
            )
        if len(fns) == 1 and n_columns > 1:
            names = tuple(f"{names[0]}[{i}]" for i in range(n_columns))
        # Mask and missing values.
        if mask is None:
            bad = ~np.isfinite(data_np)
            if np.any(bad):
                rows, cols = np.nonzero(bad)
                raise ValueError(
                    f"Experiment `{name}`: `data` has {bad.sum()} non-finite value(s) (first "
                    f"at row {rows[0]}, column {cols[0]}) and no `mask`. Pass "
                    "`mask=np.isfinite(data)` to treat them as missing, or build the "
                    "experiment from a DataFrame, where NaN means missing."
                )
            mask_np = np.ones(data_np.shape, dtype=bool)
        else:
            mask_np = np.asarray(mask)
            if mask_np.ndim == 1 and data_np.shape[1] == 1:
                mask_np = mask_np[:, None]
            if mask_np.shape != data_np.shape or mask_np.dtype != bool:
                raise ValueError(
                    f"Experiment `{name}`: `mask` must be a boolean array shaped like `data` "
                    f"{data_np.shape}; got {mask_np.dtype} {np.shape(mask)}."
                )
            if np.any(~np.isfinite(data_np) & mask_np):
                raise ValueError(
                    f"Experiment `{name}`: `data` is non-finite where `mask` is True; mark "
                    "those entries False (missing)."
                )
        if mask_np.size and not mask_np.any() and not event_times:
            raise ValueError(
                f"Experiment `{name}`: `mask` is False everywhere, so there is no data; "
                "mark the observed entries True (or give `event_times`)."
            )
        largest = float(np.max(np.abs(data_np[mask_np]), initial=0.0))
        if largest > _LARGEST_DATA:
            raise ValueError(
                f"Experiment `{name}`: `data` has a value of magnitude {largest:.3g}; "
                "squared in a log density it overflows float64 to -inf for every "
                "parameter value. Rescale the data (and the observables), e.g. to "
                "other units."
            )
        # A valid placeholder at masked entries keeps every log density finite.
        filled = data_np.copy()
        for j in range(n_columns):
            seen = data_np[mask_np[:, j], j]
            filled[~mask_np[:, j], j] = seen[0] if seen.size else 1.0
        self.times = jnp.asarray(times_np)
        self.data = jnp.asarray(filled)
        self.mask = jnp.asarray(mask_np)
        self.observables = fns
        self.observable_names = names
        # Noise.
        if isinstance(noise, AbstractNoise):
            noises = (noise,) * n_columns
        elif isinstance(noise, Mapping):
            missing = [n for n in names if n not in noise]
            if missing or len(noise) != n_columns:
                raise ValueError(
                    f"Experiment `{name}`: `noise` dict must have one entry per observable "
                    f"{list(names)}; missing {missing}."
                )
            noises = tuple(noise[n] for n in names)
        elif isinstance(noise, Sequence) and not isinstance(noise, str):
            noises = tuple(noise)
            if len(noises) != n_columns:
                raise ValueError(
                    f"Experiment `{name}`: {len(noises)} noise models for {n_columns} data "
                    "column(s)."
                )
        elif noise is None and times_np.size == 0:
            noises = ()
        else:
            raise TypeError(
                f"Experiment `{name}`: `noise` must be a noise model such as "
                f"oi.Gaussian(0.1) (or one per observable); got {noise!r}."
            )
        for n in noises:
            if not isinstance(n, AbstractNoise):
                raise TypeError(
                    f"Experiment `{name}`: `noise` {n!r} is not a noise model; give e.g. "
                    "oi.Gaussian(0.1), oi.LogNormal(0.1) or oi.Poisson()."
                )
        for j, n in enumerate(noises):
            n.check_data(
                data_np[mask_np[:, j], j],
                f"Experiment `{name}`: `data` column {j} ({names[j]!r})",
            )
        self.noise = noises
        # Initial state.
        if y0 is None:
            raise ValueError(
                f"Experiment `{name}`: give `y0`, the initial state (or a function "
                "y0(params))."
            )
        if callable(y0):
            self.y0, self.y0_fn = None, y0
        else:
            self.y0, self.y0_fn = y0, None
        self.t0 = jnp.asarray(t0_np)
        if doses is None:
            doses = ()
        elif isinstance(doses, Dose):
            doses = (doses,)
        doses = tuple(doses)
        for d in doses:
            if not isinstance(d, Dose):
                raise TypeError(
                    f"Experiment `{name}`: `doses` must be oi.Dose objects."
                )
        self.doses = doses
        if overrides is not None and not isinstance(overrides, Mapping):
            raise TypeError(
                f"Experiment `{name}`: `overrides` must be a dict {{name: value or other "
                f"parameter's name}}; got {overrides!r}."
            )
        values, named = {}, []
        for key, value in dict(overrides or {}).items():
            if isinstance(value, str):
                named.append((str(key), value))
                continue
            number = _as_float_array(
                value, f"Experiment `{name}`: `overrides[{key!r}]`"
            )
            if not np.all(np.isfinite(number)):
                raise ValueError(
                    f"Experiment `{name}`: `overrides[{key!r}]` must be finite; got "
                    f"{value!r}."
                )
            values[str(key)] = jnp.asarray(number)
        self.override_values = values
        self.override_names = tuple(named)
        events = tuple(event_times or ())
        for e in events:
            if not isinstance(e, EventTimeObservation):
                raise TypeError(
                    f"Experiment `{name}`: `event_times` must be oi.EventTimeObservation "
                    f"objects; got {e!r}."
                )
        self.event_times = events
        self._crossing_slots = _crossing_slots(events)

    @property
    def crossing_slots(self) -> tuple[int, ...]:
        """Per event-time observation, the index of the distinct crossing it observes
        (numbered in order of first appearance)."""
        return self._crossing_slots

    @property
    def n_observables(self) -> int:
        return int(self.data.shape[1])

    @property
    def t_end(self):
        """The end of the main solve: the last observation time."""
        return self.times[-1]

    def parameters_for(self, params: Mapping) -> dict:
        """`params` with this experiment's overrides applied."""
        out = dict(params)
        out.update(self.override_values)
        for key, source in self.override_names:
            out[key] = params[source]
        return out

    def initial_state(self, params: Mapping):
        if self.y0_fn is not None:
            return self.y0_fn(params)
        return self.y0

    def observe(self, t, y, params) -> Float[Array, " n_observables"]:
        """The predicted observables at one time, as a vector."""
        if len(self.observables) == 1:
            value = self.observables[0](t, y, params)
            return jnp.reshape(jnp.asarray(value, dtype=float), (self.n_observables,))
        return jnp.stack(
            [
                jnp.reshape(jnp.asarray(h(t, y, params), dtype=float), ())
                for h in self.observables
            ]
        )

    def padded(self, n_times: int) -> "Experiment":
        """A copy observed at `n_times >= len(times)` times: the last time repeated,
        its data row copied and masked out. The likelihood and its gradient do not
        change (masked entries never enter them); experiments of different lengths
        padded to one are stacked for `jax.vmap`."""
        extra = n_times - self.times.shape[0]
        if extra < 0 or (extra and self.times.shape[0] == 0):
            raise ValueError(
                f"Experiment `{self.name}`: cannot pad {self.times.shape[0]} times to "
                f"{n_times}."
            )
        if extra == 0:
            return self
        return replace(
            self,
            times=jnp.concatenate([self.times, jnp.repeat(self.times[-1:], extra)]),
            data=jnp.concatenate(
                [self.data, jnp.repeat(self.data[-1:], extra, axis=0)]
            ),
            mask=jnp.concatenate(
                [self.mask, jnp.zeros((extra, self.n_observables), dtype=bool)]
            ),
        )

    def parameter_names(self) -> set[str]:
        """Names this experiment reads from the params dict (noise scales, overrides)."""
        names = {s for _, s in self.override_names}
        for n in self.noise:
            names.update(n.parameter_names())
        for e in self.event_times:
            names.update(e.noise.parameter_names())
        return names


def _same_crossing(a, b) -> bool:
    if a is b:
        return True
    if (a.fn, a.direction) != (b.fn, b.direction):
        return False
    try:
        return bool(np.asarray(a.level) == np.asarray(b.level))
    except Exception:  # traced levels: not known to be equal
        return False


def _crossing_slots(events: Sequence[EventTimeObservation]) -> tuple[int, ...]:
    distinct, slots = [], []
    for event in events:
        for index, crossing in enumerate(distinct):
            if _same_crossing(event.crossing, crossing):
                slots.append(index)
                break
        else:
            slots.append(len(distinct))
            distinct.append(event.crossing)
    return tuple(slots)


def replace(experiment: Experiment, **changes) -> Experiment:
    """A copy of `experiment` with some fields replaced, without `__init__`'s checks:
    for values derived from checked ones (padded times, a blank name)."""
    copy = object.__new__(Experiment)
    for field in dataclasses.fields(Experiment):
        value = changes.pop(field.name, getattr(experiment, field.name))
        object.__setattr__(copy, field.name, value)
    if changes:
        raise TypeError(f"Experiment has no field(s) {sorted(changes)}.")
    return copy


def _as_float_array(value, what: str) -> np.ndarray:
    """`value` as a float array, or a `TypeError` naming `what` (strings, objects,
    complex numbers, ragged lists)."""
    try:
        array = np.asarray(value)
        if np.iscomplexobj(array):
            raise TypeError
        return np.asarray(array, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{what} must be real numbers (an array or a list of floats); got "
            f"{value!r:.200}."
        ) from None
