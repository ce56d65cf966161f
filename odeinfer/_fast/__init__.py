"""A fast Dormand–Prince solve saved at fixed times, with forward-sensitivity derivatives."""

from ._solve_at_times import solve_at_times as solve_at_times
