"""Solvers written for odeinfer: Rosenbrock methods for stiff problems."""

from ._jacobian import JacobianCheck as JacobianCheck
from ._jacobian import check_jacobian as check_jacobian
from ._rosenbrock import AbstractRosenbrock as AbstractRosenbrock
from ._rosenbrock import Rodas4 as Rodas4
from ._rosenbrock import Rodas5P as Rodas5P
