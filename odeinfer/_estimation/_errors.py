"""`FitError`: how `fit` and `multistart` report a failure with `throw=True`."""

from typing import Any


class FitError(RuntimeError):
    """Raised by [`odeinfer.fit`][] and [`odeinfer.multistart`][] with `throw=True`
    when the optimiser did not converge or the log-likelihood is `-inf` where it
    stopped. A `RuntimeError`, as before, so existing `except RuntimeError` still
    catch it.

    **Attributes:**

    - `result`: the [`odeinfer.FitResult`][] that failed (its `result` code,
        `solve_ok` and `failure` say why), or `None` where no start of a multistart
        produced one worth returning.

    With `throw=False` the same information is on the returned result instead, as
    for [`odeinfer.solve`][] and its `RESULTS` code.
    """

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result
