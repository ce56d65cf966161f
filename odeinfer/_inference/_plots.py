"""Plots of posteriors and predictive bands (matplotlib and arviz, imported lazily)."""

import numpy as np


def plot_trace(posterior, **kwargs):
    """Trace plot of every parameter (arviz `plot_trace`). Returns the axes."""
    import arviz as az

    return az.plot_trace(
        posterior.to_arviz(), var_names=list(posterior.names), **kwargs
    )


def plot_rank(posterior, **kwargs):
    """Rank plots per chain (arviz `plot_rank`), uniform when chains mix. Returns the axes."""
    import arviz as az

    return az.plot_rank(posterior.to_arviz(), var_names=list(posterior.names), **kwargs)


def plot_predictive_bands(
    times, bands, *, data=None, quantiles=None, ax=None, label=None
):
    """Data against posterior predictive bands.

    **Arguments:**

    - `times`: `(n_times,)`.
    - `bands`: `(n_quantiles, n_times)` from `PredictiveResult.bands` (lowest, median,
        highest quantile are drawn as a shaded band and a line).
    - `data`: optional `(n_times,)` observations, drawn as points.
    - `ax`: a matplotlib axes (new figure if `None`).

    **Returns:** the axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    bands = np.asarray(bands)
    mid = bands.shape[0] // 2
    ax.fill_between(
        times, bands[0], bands[-1], alpha=0.3, label=label or "predictive band"
    )
    ax.plot(times, bands[mid], lw=1.5)
    if data is not None:
        ax.plot(times, data, "o", ms=3, color="k", label="data")
    ax.set_xlabel("t")
    ax.legend()
    return ax


def plot_event_times(event_times, *, observed=None, ax=None, bins=40):
    """Histogram of predicted event times (non-finite ones, i.e. events not found, are
    left out and counted in the title), with observed times as vertical lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    event_times = np.asarray(event_times).reshape(-1)
    finite = np.isfinite(event_times)
    ax.hist(event_times[finite], bins=bins, density=True, alpha=0.6)
    for t in np.atleast_1d(observed) if observed is not None else ():
        ax.axvline(t, color="k", lw=1)
    ax.set_title(f"event times ({int((~finite).sum())} not found)")
    ax.set_xlabel("event time")
    return ax
