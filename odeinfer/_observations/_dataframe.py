"""Tidy pandas DataFrames (one row per measurement) to experiments.

Columns: `time`, `value`, `observable` (when there are several observables) and
`experiment` (when there are several experiments). NaN values and absent
(time, observable) pairs are missing: masked, never dropped.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from ._experiment import Experiment


def _require(frame, columns, where):
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(
            f"{where}: the DataFrame lacks column(s) {absent}; it has {list(frame.columns)}. "
            "Expected a tidy frame with columns time, value (and observable, experiment)."
        )


def frame_to_arrays(frame, observable_names: Sequence[str] | None, where: str):
    """`(times, data, mask)` for one experiment from a tidy frame."""
    _require(frame, ["time", "value"], f"Experiment `{where}`")
    times = np.unique(np.asarray(frame["time"], dtype=float))
    if observable_names is None:
        if "observable" in frame.columns and frame["observable"].nunique() > 1:
            raise ValueError(
                f"Experiment `{where}`: the frame has several observables "
                f"{sorted(frame['observable'].unique())}; pass `observables` as a dict "
                "name -> h(t, y, params) with those names."
            )
        names = [None]
    elif len(observable_names) == 1 and "observable" not in frame.columns:
        names = [None]
    else:
        _require(frame, ["observable"], f"Experiment `{where}`")
        names = list(observable_names)
        unknown = sorted(set(frame["observable"].astype(str)) - set(names))
        if unknown:
            raise ValueError(
                f"Experiment `{where}`: the frame has observable(s) {unknown} not among "
                f"`observables` {names}."
            )
    data = np.full((times.size, len(names)), np.nan)
    row = np.searchsorted(times, np.asarray(frame["time"], dtype=float))
    if names == [None]:
        col = np.zeros(len(frame), dtype=int)
    else:
        index = {n: i for i, n in enumerate(names)}
        col = np.array([index[str(o)] for o in frame["observable"]], dtype=int)
    if np.unique(row * len(names) + col).size != len(frame):
        raise ValueError(
            f"Experiment `{where}`: the frame has repeated (time, observable) rows; "
            "average them or give replicates as separate experiments."
        )
    data[row, col] = np.asarray(frame["value"], dtype=float)
    return times, data, np.isfinite(data)


def experiments_from_dataframe(
    frame,
    *,
    observables=None,
    noise=None,
    y0=None,
    t0=0.0,
    doses=None,
    overrides=None,
    event_times=None,
) -> list[Experiment]:
    """Experiments from a tidy DataFrame, one per value of its `experiment` column.

    **Arguments:**

    - `frame`: a `pandas.DataFrame` with columns `time`, `value`, optionally
        `observable` and `experiment`. NaN values are missing (masked).
    - `observables`, `noise`, `t0`: as in [`odeinfer.Experiment`][], shared.
    - `y0`, `doses`, `overrides`, `event_times`: shared values, or a dict
        `experiment id -> value` for experiment-specific ones.

    **Returns:**

    A list of [`odeinfer.Experiment`][], in the order the ids first appear.
    """
    if type(frame).__name__ != "DataFrame":
        raise TypeError(
            f"`frame` must be a pandas DataFrame; got {type(frame).__name__}."
        )
    if "experiment" in frame.columns:
        ids = list(dict.fromkeys(frame["experiment"]))
        groups = [(i, frame[frame["experiment"] == i]) for i in ids]
    else:
        groups = [("experiment", frame)]

    keys = [key for key, _ in groups]

    def per_experiment(value, key, what):
        # A dict with an entry for every experiment id is per experiment; anything
        # else (including a dict-valued state) is shared.
        if isinstance(value, Mapping) and all(k in value for k in keys):
            return value[key]
        return value

    return [
        Experiment(
            data=group.drop(columns=["experiment"], errors="ignore"),
            observables=observables,
            noise=noise,
            y0=per_experiment(y0, key, "y0"),
            t0=t0,
            doses=per_experiment(doses, key, "doses"),
            overrides=per_experiment(overrides, key, "overrides"),
            event_times=per_experiment(event_times, key, "event_times"),
            name=str(key),
        )
        for key, group in groups
    ]
