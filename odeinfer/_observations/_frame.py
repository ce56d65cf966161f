"""Tidy pandas DataFrames (one row per measurement) to arrays: observation times, a
data matrix and its mask. NaN values and absent (time, observable) pairs are missing:
masked, never dropped."""

import sys
from collections.abc import Sequence

import numpy as np


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


def is_dataframe(x) -> bool:
    """A pandas DataFrame, recognised without importing pandas (an optional
    dependency): an object can only be one if pandas is already imported."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(x, pandas.DataFrame)
