"""Solvers written for odeinfer: Rosenbrock methods for stiff problems, and the fused
forward-sensitivity solvers."""

from ._fused import AbstractFusedSolver as AbstractFusedSolver
from ._fused import FusedAuto as FusedAuto
from ._fused import FusedDopri5 as FusedDopri5
from ._fused import FusedRodas5P as FusedRodas5P
from ._jacobian import JacobianCheck as JacobianCheck
from ._jacobian import check_jacobian as check_jacobian
from ._rosenbrock import AbstractRosenbrock as AbstractRosenbrock
from ._rosenbrock import Rodas4 as Rodas4
from ._rosenbrock import Rodas5P as Rodas5P
from ._small_lu import SmallLU as SmallLU
