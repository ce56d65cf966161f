"""Tidy pandas DataFrames (one row per measurement) to experiments.

Columns: `time`, `value`, `observable` (when there are several observables) and
`experiment` (when there are several experiments). NaN values and absent
(time, observable) pairs are missing: masked, never dropped.
"""

from collections.abc import Mapping
from typing import Any

from ._experiment import Experiment
from ._frame import is_dataframe


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
    if not is_dataframe(frame):
        raise TypeError(
            f"`frame` must be a pandas DataFrame; got {type(frame).__name__}."
        )
    if "experiment" in frame.columns:
        ids = list(dict.fromkeys(frame["experiment"]))
        groups = [(i, frame[frame["experiment"] == i]) for i in ids]
    else:
        groups = [("experiment", frame)]

    keys = [key for key, _ in groups]

    def per_experiment(value: Any, key, what) -> Any:
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
