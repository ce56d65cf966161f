"""Plots of inference results (matplotlib, imported when a plot is drawn; install with
`pip install 'odeinfer[plot]'`)."""

import odeinfer as _odeinfer  # noqa: F401  (turns on float64 before anything is traced)

from .._inference._plots import plot_event_times as plot_event_times
from .._inference._plots import plot_predictive_bands as plot_predictive_bands

__all__ = ["plot_event_times", "plot_predictive_bands"]
