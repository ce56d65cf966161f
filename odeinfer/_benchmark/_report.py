"""`BenchmarkResults`: the rows of a benchmark as a table, CSV, JSON and work-precision
plots. pandas and matplotlib are imported only when a table or a plot is asked for."""

import json
import math
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

COLUMNS = (
    "problem",
    "solver",
    "rtol",
    "atol",
    "error",
    "error_final",
    "error_saveat",
    "event_error",
    "gradient_error",
    "time_s",
    "compile_s",
    "gradient_time_s",
    "gradient_compile_s",
    "steps",
    "fevals",
    "success",
    "message",
)


_NUMERIC_COLUMNS = (
    "rtol", "atol", "error", "error_final", "error_saveat", "event_error",
    "gradient_error", "time_s", "compile_s", "gradient_time_s", "gradient_compile_s",
    "steps", "fevals",
)  # fmt: skip


class BenchmarkResults:
    """What [`odeinfer.benchmarking.benchmark`][] measured: one row per problem × solver × tolerance.

    **Columns:** `problem`, `solver`, `rtol`, `atol`; `error` (max of `error_final`
    and `error_saveat`: `max |y - y_ref| / max(|y_ref|, error_floor)`), `event_error`
    (max |t - t_ref| over crossings; `inf` when the count differs), `gradient_error`
    (relative 2-norm error of the gradient); `time_s` (median wall time of the repeats,
    compilation excluded) and `compile_s` (first call minus median), the same for the
    gradient; `steps`, `fevals` (-1 where the solver does not report them); `success`
    and `message`. Missing measurements are `nan`.

    **Methods:** `table()` (a pandas DataFrame), `to_csv(path)`, `to_json(path)`,
    `plot(path=None, ...)` (work-precision diagram), `str(results)` (a text table).
    """

    def __init__(self, rows: Sequence[dict], references: dict | None = None):
        self.rows = [dict(row) for row in rows]
        self.references = dict(references or {})

    def __add__(self, other: "BenchmarkResults") -> "BenchmarkResults":
        if not isinstance(other, BenchmarkResults):
            return NotImplemented
        return BenchmarkResults(
            self.rows + other.rows, {**self.references, **other.references}
        )

    def __len__(self) -> int:
        return len(self.rows)

    def table(self):
        """The rows as a `pandas.DataFrame`."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def to_csv(self, path) -> Path:
        """Write the rows as CSV; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table().to_csv(path, index=False)
        return path

    def to_json(self, path, **metadata) -> Path:
        """Write `{"rows": [...], "references": {...}, **metadata}` as JSON (non-finite
        numbers as strings `"inf"`/`"nan"`); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**metadata, "references": self.references, "rows": self.rows}
        path.write_text(json.dumps(_jsonable(payload), indent=1))
        return path

    def __str__(self) -> str:
        fields = ("problem", "solver", "rtol", "error", "event_error", "gradient_error",
                  "time_s", "compile_s", "steps", "fevals", "success")  # fmt: skip
        cells = [[_fmt(row.get(name)) for name in fields] for row in self.rows]
        # Columns as wide as their longest entry: names are never cut
        # ("odeinfer/Kvaerno3" and "odeinfer/Kvaerno5" differ in their last letter).
        widths = [max([14, len(name)] + [len(c[i]) for c in cells])
                  for i, name in enumerate(fields)]  # fmt: skip
        lines = [
            "  ".join(f"{name:>{w}}" for name, w in zip(fields, widths, strict=True))
        ]
        for row in cells:
            lines.append(
                "  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True))
            )
        return "\n".join(lines)

    def plot(self, path=None, *, x: str = "time_s", y: str = "error", problem=None):
        """A work-precision diagram: `y` against `x`, log-log, one line per solver
        (failed runs left out).

        **Arguments:**

        - `path`: where to save a PNG (`None`: do not save).
        - `x`, `y`: the columns (e.g. `x="fevals"`, `y="event_error"`).
        - `problem`: plot only this problem (default: the first one in the rows).

        **Returns:**

        The matplotlib `Figure`.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        for name, column in (("x", x), ("y", y)):
            if column not in _NUMERIC_COLUMNS:
                raise ValueError(
                    f"`{name}` must be a numeric column, one of {_NUMERIC_COLUMNS}; "
                    f"got {column!r}."
                )
        problems = list(dict.fromkeys(r.get("problem") for r in self.rows))
        if problem is not None and problem not in problems:
            raise ValueError(
                f"`problem` {problem!r} is not in these results (problems: {problems})."
            )
        problem = problem or (problems[0] if problems else "")
        fig, ax = plt.subplots(figsize=(6, 4.5))
        solvers = dict.fromkeys(
            r["solver"] for r in self.rows if r["problem"] == problem
        )
        for solver in solvers:
            # Joined in tolerance order, so noisy timings show as noise, not zigzags.
            rows = sorted(
                (
                    r
                    for r in self.rows
                    if r["problem"] == problem and r["solver"] == solver
                ),
                key=lambda r: -r["rtol"],
            )
            points = [
                (r[x], r[y])
                for r in rows
                if r.get("success") and _positive(r.get(x)) and _positive(r.get(y))
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                style = "o-" if solver.startswith("odeinfer") else "s--"
                ax.loglog(xs, ys, style, label=solver, markersize=4)
        ax.set_xlabel({"time_s": "wall time per solve [s]"}.get(x, x))
        ax.set_ylabel({"error": "max relative error"}.get(y, y))
        ax.set_title(f"work-precision: {problem}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        return _jsonable(np.asarray(value).tolist())
    return value
