"""The fused forward-sensitivity solvers: strategy objects for [`odeinfer.solve`][]
whose derivatives come from sensitivities integrated with the state in one loop."""

from typing import ClassVar

import equinox as eqx


class AbstractFusedSolver(eqx.Module):
    """A solver of odeinfer's fused loop: the state and its forward sensitivities
    (with respect to `y0`, the parameters the vector field reads and the dose amounts)
    advance together on the same steps, so a gradient costs a few solves, not the
    10–40 of a diffrax adjoint on a small model. Saves at `saveat`, takes doses and
    one terminal crossing without reset (so [`odeinfer.first_crossing`][] works with
    it): the solve stops at the crossing, located on the dense output of the step over
    which it happened, its time differentiated by the implicit function theorem from
    the sensitivities there. No other crossings (several, recorded, resetting), dense
    output or diffrax adjoints (use a diffrax solver for those).

    **Arguments:**

    - `sensitivity_error_control`: `False` (default): the step sizes are controlled by
        the error of the state only, so a derivative costs no extra steps and the value
        computed with derivatives is exactly the value computed without them. `True`:
        the sensitivities' errors are controlled too, as CVODES's `errconS` with
        AMICI's sensitivity tolerances: a step is accepted when the state's error norm
        and every direction's (`rtol`, `atol` alike) are at most 1. More accurate
        derivatives for more steps (PEtab at rtol = atol = 1e-8: Brannmark's gradient
        error 8.3e-4 -> 4.1e-6 for 4.9x the steps, 4.6x the time; Fujita's 3.5e-4 ->
        5.7e-7 for 2.8x the time); the value then comes from a finer mesh when
        derivatives are taken.
    - `refine_stages`: refine each Rosenbrock stage solve once (see
        [`odeinfer.Rodas5P`][]; `True` by default; no effect on Dormand–Prince steps).
    """

    sensitivity_error_control: eqx.AbstractVar[bool]
    refine_stages: eqx.AbstractVar[bool]
    method: eqx.AbstractClassVar[str]


class FusedDopri5(AbstractFusedSolver):
    """Dormand–Prince 5(4) (Hairer's `dopri5.f`: PI step control, 4th-order dense
    output) with fused forward sensitivities. For non-stiff problems. When it runs out
    of `max_steps` on a problem whose steps are limited by stability, the result is
    `RESULTS.looks_stiff`, which names the stiff solvers."""

    sensitivity_error_control: bool = False
    refine_stages: bool = True
    method: ClassVar[str] = "dopri5"


class FusedRodas5P(AbstractFusedSolver):
    """Rodas5P (the method of [`odeinfer.Rodas5P`][]) with fused forward
    sensitivities: the derivative of each step, sharing the step's LU factorisation of
    `W = I/(γh) - J` across all directions. For stiff problems."""

    sensitivity_error_control: bool = False
    refine_stages: bool = True
    method: ClassVar[str] = "rodas5p"


class FusedAuto(AbstractFusedSolver):
    """Dormand–Prince 5(4) that switches to Rodas5P, for the rest of the solve, once the
    problem is detected stiff — the idea of SciML's `AutoTsit5(Rodas5P())`.

    The test is Hairer's (`dopri5.f`): after each accepted step, `h |λ|` is estimated
    from the last two stages (`h ‖k7 - k6‖ / ‖y1 - y6‖`, with the step the controller
    wanted); when it exceeds 2.5 (near the edge of DP5's stability region, 3.3: the
    step is limited by stability, not accuracy) on 15 steps without 6 calm steps in a
    row between them, the solve switches. (`dopri5.f` uses 3.25, which on ROBER at
    rtol 1e-8 took ~3,800 DP5 steps to trigger; 2.5 takes ~200 and still leaves the
    non-stiff 3-D spring on DP5 at rtol 1e-3.) A non-stiff
    problem costs what [`odeinfer.FusedDopri5`][] costs (under `jax.vmap` both methods'
    steps are computed for every trajectory once any is stiff). The default of
    [`odeinfer.Problem`][], so that an optimiser or sampler wandering into a stiff
    region of parameter space keeps going."""

    sensitivity_error_control: bool = False
    refine_stages: bool = True
    method: ClassVar[str] = "auto"
