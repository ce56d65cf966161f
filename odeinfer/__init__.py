"""odeinfer: differentiable ODE solves with events, for estimation and inference."""

from ._config import enable_x64 as _enable_x64

_enable_x64()

from ._crossings import AllCrossings as AllCrossings  # noqa: E402
from ._crossings import FirstCrossing as FirstCrossing  # noqa: E402
from ._crossings import all_crossings as all_crossings  # noqa: E402
from ._crossings import first_crossing as first_crossing  # noqa: E402
from ._events import Crossing as Crossing  # noqa: E402
from ._events import Dose as Dose  # noqa: E402
from ._model import ODEModel as ODEModel  # noqa: E402
from ._results import RESULTS as RESULTS  # noqa: E402
from ._results import is_successful as is_successful  # noqa: E402
from ._solution import EventLog as EventLog  # noqa: E402
from ._solution import Solution as Solution  # noqa: E402
from ._solve import solve as solve  # noqa: E402
from ._validation import NumpyInTracedCodeError as NumpyInTracedCodeError  # noqa: E402

__version__ = "0.1.0"
