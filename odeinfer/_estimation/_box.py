"""One bounded least-squares optimisation by whichever kind of
`AbstractBoxLeastSquares` solver: a host loop or a compiled program."""

from . import _interior_trust_region as interior
from ._trust_region import (
    AbstractBoxLeastSquares,
    AbstractHostBoxLeastSquares,
    Outcome,
    Residuals,
)
from ._trust_region import optimise as optimise_host


def optimise(
    model: Residuals, solver: AbstractBoxLeastSquares, v0, max_evaluations: int
) -> Outcome:
    """One optimisation from the box vector `v0`, ending strictly inside the box."""
    if isinstance(solver, interior.InteriorTrustRegion):
        return interior.optimise(model, solver, v0, max_evaluations)
    if isinstance(solver, AbstractHostBoxLeastSquares):
        return optimise_host(model, solver, v0, max_evaluations)
    raise TypeError(
        "`solver` must be oi.InteriorTrustRegion(), oi.TrustRegionReflective(), "
        f"oi.Fides() or another oi.AbstractHostBoxLeastSquares; got {solver!r:.100}."
    )
