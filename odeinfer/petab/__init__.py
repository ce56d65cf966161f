"""PEtab import: `odeinfer.petab.load("problem.yaml")` → an
[`odeinfer.petab.PEtabProblem`][], a compiled log-likelihood on PEtab's parameter scale
that `oi.fit`, `oi.multistart`, `oi.profile` and `oi.sample` take.

Needs python-libsbml and petab (`pip install 'odeinfer[petab]'`); `import odeinfer`
does not import this namespace.
"""

import odeinfer as _odeinfer  # noqa: F401  (turns on float64 before anything is traced)

try:
    import petab.v1 as _petab  # noqa: F401
except ImportError as error:  # pragma: no cover
    raise ImportError(
        "odeinfer.petab needs the petab library: `pip install 'odeinfer[petab]'` (or "
        "`pip install 'petab>=0.5,<0.9' 'python-libsbml>=5.20,<6'`)."
    ) from error

from ._errors import PEtabError as PEtabError
from ._problem import PEtabProblem as PEtabProblem
from ._problem import load as load

__all__ = ["PEtabError", "PEtabProblem", "load"]
