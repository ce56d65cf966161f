"""SBML import: `odeinfer.sbml.load("model.xml")` → an [`odeinfer.sbml.SBMLModel`][].

Needs python-libsbml (`pip install odeinfer[sbml]`); `import odeinfer` does not import
this namespace.
"""

import odeinfer as _odeinfer  # noqa: F401  (turns on float64 before anything is traced)

try:
    import libsbml as _libsbml  # noqa: F401
except ImportError as error:  # pragma: no cover
    raise ImportError(
        "odeinfer.sbml needs python-libsbml: `pip install 'odeinfer[sbml]'` (or "
        "`pip install 'python-libsbml>=5.20,<6'`)."
    ) from error

from ._errors import SBMLError as SBMLError
from ._errors import UnsupportedSBMLError as UnsupportedSBMLError
from ._events import EventInfo as EventInfo
from ._model import SBMLModel as SBMLModel
from ._model import load as load

__all__ = ["EventInfo", "SBMLError", "SBMLModel", "UnsupportedSBMLError", "load"]
