"""`steady_state`: the state an autonomous ODE settles at from `y0`, with derivatives.

Two stages:

1. **Integrate** from `y0` with [`odeinfer.solve`][] (default [`odeinfer.Rodas5P`][]:
    models with steady states are mostly stiff) until AMICI's convergence criterion
    holds: the weighted RMS of dy/dt, with weights `atol + rtol·|y|`, below 1. It is
    checked on a geometric grid of times (8 a decade, read from the dense output at no
    extra steps), not by a terminal `Crossing` of it: near the steady state f(y) is
    computed with cancellation, and the noise in the criterion (~eps/rtol) defeats the
    event's root finder (found on the first test).
    Integrating first, rather than trying Newton from `y0`, finds the steady state the
    system actually reaches from `y0` (Newton from a far start can land on an unstable
    or unphysical root, and on a limit cycle it finds the unstable focus inside), and it
    keeps the conserved totals of `y0`.
2. **Polish** with Newton on `f(y) = 0` through `optimistix.root_find`, started from the
    integrated state (stop-gradient'd), in units of the tolerance weights.

Derivatives with respect to `params` and `y0` come from the implicit function theorem
(`optimistix.ImplicitAdjoint`): dy*/dθ = −J⁻¹ ∂f/∂θ. Linear conservation laws (conserved
totals of mass-action networks) make `J` singular; their directions `C` (the left null
space of `J` at the integrated state, from an SVD) are handled by solving the square
system `g(y) = f(y) + C Cᵀ (y − y0) = 0` instead. Where `Cᵀ f ≡ 0` (a conservation law),
its roots are the steady states with the totals of `y0`, its Jacobian `J + C Cᵀ` is
nonsingular when the steady state is isolated on that manifold, and the implicit
function theorem on it gives the bordered-system derivatives `J dy = −f_θ dθ`,
`Cᵀ dy = Cᵀ dy0`.
"""

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from . import _validation as validate
from ._custom_types import Params, Scalar, ScalarLike, State
from ._model import ODEModel
from ._results import RESULTS, describe, raise_on_failure
from ._solve import solve
from ._solvers import Rodas5P
from ._solvers._fused import AbstractFusedSolver

# Newton stops when both its step and f are below this fraction of the tolerance
# weights atol + rtol·|y|: 1000× tighter than the steady-state criterion, and (Newton
# converging quadratically) the last step leaves an error far below that.
_NEWTON_TOLERANCE = 1e-3
# The integration is checked against the criterion on this grid of times, as
# fractions of `t_max` (8 a decade; interpolated from the dense output, so it costs no
# steps). AMICI checks after every step; a terminal Crossing of the criterion would stop
# there too, but the criterion is computed from f(y) near cancellation (|f| ≈ rtol·|y|
# while its terms are ≈ k·|y|), so it carries noise of eps/rtol ≈ 1e-8 relative, and the
# event's root finder (tolerance 1e-12) does not converge on it.
_GRID = np.logspace(-12.0, 0.0, 97)
# A singular value of J below this multiple of n·eps·σ_max is a conservation law: exact
# null directions come out at rounding level (~n·eps·σ_max), while the smallest genuine
# singular values of stiff models (ROBER: σ_min/σ_max ≈ 1e-9) stay far above it.
_NULL_SPACE_FACTOR = 1e3


class SteadyState(eqx.Module):
    """The result of [`odeinfer.steady_state`][].

    **Attributes:**

    - `y`: the steady state, with the structure of `y0`.
    - `result`: an [`odeinfer.RESULTS`][] code: `RESULTS.successful`, or
        `RESULTS.steady_state_not_reached`, or the code of an invalid traced input.
    - `residual_norm`: the Euclidean norm ‖f(y)‖ of the vector field at `y`.
    - `weighted_residual`: the weighted RMS of f(y) with weights `atol + rtol·|y|`;
        below 1 at a steady state.
    - `t`: the integration time used until the criterion held (`0` when `y0` already
        met it; `t_max` or less when it never did).
    - `num_conservation_laws`: the dimension of the left null space of the Jacobian
        found at the steady state (linear conservation laws).
    - `stats`: `num_steps` (integration), `num_newton_steps`.
    """

    y: State
    result: RESULTS
    residual_norm: Scalar
    weighted_residual: Scalar
    t: Scalar
    num_conservation_laws: Int[Array, ""]
    stats: dict[str, Int[Array, ""]]

    @property
    def successful(self):
        """`True` where a steady state was reached."""
        return self.result == RESULTS.successful


def _weighted_rms(dy: Float[Array, " n"], y: Float[Array, " n"], rtol, atol):
    return jnp.sqrt(jnp.mean((dy / (atol + rtol * jnp.abs(y))) ** 2))


def _conservation_laws(
    jacobian: Float[Array, "n n"],
) -> tuple[Bool[Array, " n"], Float[Array, "n n"]]:
    """Which left singular vectors of `jacobian` span its left null space (the linear
    conservation laws), and the projector `C Cᵀ` onto them."""
    jacobian = jnp.where(jnp.isfinite(jacobian), jacobian, 0.0)
    u, s, _ = jnp.linalg.svd(jacobian)
    n, eps = jacobian.shape[0], jnp.finfo(jacobian.dtype).eps
    null = s <= _NULL_SPACE_FACTOR * n * eps * s[0]
    return null, (u * null) @ u.T


def steady_state_tangents(
    model: ODEModel,
    steady: SteadyState,
    params: Params,
    d_params: Params,
    d_y0: Float[Array, "D n"],
) -> Float[Array, "D n"]:
    """The derivatives of a steady state `steady` (of [`odeinfer.steady_state`][],
    with a state that is one array) along `D` directions at once: `d_params`, the
    structure of `params` with a leading axis `D`, and `d_y0`, the initial state's. The
    implicit function theorem as `jax.jvp` of `steady_state` applies it,
    `(J + C Cᵀ) dy = −f_θ dθ + C Cᵀ dy0` at `y*` (`C`: the conservation laws, here
    found at `y*`); zero where no steady state was reached.

    For code that needs many directions: `jax.vmap` of `jax.jvp` of `steady_state`
    traces the whole steady-state program (its integration and Newton loops) again
    under both transformations (Raimundez_PCB2020, 4 preequilibrations along 57
    directions: 1.41 s of trace against 0.77 s for this Jacobian, product and solve;
    the same derivatives to 1e-15 relative)."""
    y = steady.y
    if not isinstance(y, jax.Array) or y.ndim != 1:
        raise TypeError(
            "steady_state_tangents: the steady state must be one 1-D array."
        )

    def f(y_, p_):
        return model(steady.t, y_, p_)

    jacobian = jax.jacfwd(f)(y, params)
    _, projector = _conservation_laws(jacobian)
    f_theta = jax.vmap(lambda d: jax.jvp(lambda p_: f(y, p_), (params,), (d,))[1])(
        d_params
    )
    rhs = d_y0 @ projector - f_theta  # the projector is symmetric
    dy = jnp.linalg.solve(jacobian + projector, rhs.T).T
    return jnp.where(steady.successful, dy, 0.0)


@eqx.filter_jit
def _steady_state(
    model: ODEModel,
    y0,
    params,
    t0,
    t_max,
    solver: diffrax.AbstractSolver,
    rtol,
    atol,
    max_steps: int,
    newton_max_steps: int,
) -> SteadyState:
    y0 = jtu.tree_map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)), y0)
    y0_flat, unravel = ravel_pytree(y0)

    def f_flat(t, y_flat, p):
        return ravel_pytree(model(t, unravel(y_flat), p))[0]

    # Stage 1: integrate, without derivatives (they come from stage 2).
    y0_c, params_c = lax.stop_gradient((y0, params))
    start = lax.stop_gradient(y0_flat)
    converged_at_start = (
        _weighted_rms(f_flat(t0, start, params_c), start, rtol, atol) < 1
    )

    # rtol/atol travel with the parameters (not closed over) into the inner solve.
    def wrapped_field(t, y, args):
        return model(t, y, args[0])

    user_jacobian = model.jacobian

    def jacobian_of_wrapped(t, y, args):
        assert user_jacobian is not None  # only passed on when given
        return user_jacobian(t, y, args[0])

    wrapped_jacobian = None if user_jacobian is None else jacobian_of_wrapped

    wrapped = ODEModel(wrapped_field, name=model.name, jacobian=wrapped_jacobian)

    def integrate(_):
        times = t0 + t_max * _GRID
        solution = solve(
            wrapped,
            y0_c,
            (params_c, rtol, atol),
            t0=t0,
            t1=t0 + t_max,
            saveat=times,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            throw=False,
        )
        ys = jax.vmap(lambda tree: ravel_pytree(tree)[0])(solution.ys)
        dys = jax.vmap(lambda t, y: f_flat(t, y, params_c))(times, ys)
        norms = jax.vmap(lambda dy, y: _weighted_rms(dy, y, rtol, atol))(dys, ys)
        holds = norms < 1  # False for NaN/inf (the points after a failed solve)
        first = jnp.argmax(holds)
        last = holds.shape[0] - 1 - jnp.argmax(holds[::-1])
        steps = jnp.asarray(solution.stats["num_steps"], dtype=jnp.int32)
        reached = jnp.any(holds)
        t_report = jnp.where(reached, times[first], solution.t_final)
        # Without convergence: the state where the integration stopped (the result
        # then reports that state, and its residual, instead of a Newton root that
        # may be an unstable one, such as the focus inside a limit cycle).
        y_stop = ravel_pytree(solution.y_final)[0]
        y_start = jnp.where(reached, ys[last], y_stop)
        t_start = jnp.where(reached, times[last], solution.t_final)
        return y_start, t_start, t_report, reached, steps

    def skip(_):
        return start, t0, t0, jnp.array(True), jnp.array(0, dtype=jnp.int32)

    y_int, t_int, t_first, reached, num_steps = lax.cond(
        converged_at_start, skip, integrate, None
    )
    y_int, t_int = lax.stop_gradient((y_int, t_int))

    # Conservation laws: the left null space of J at the integrated state.
    n = y_int.shape[0]
    eps = jnp.finfo(y_int.dtype).eps
    null, projector = _conservation_laws(
        jax.jacfwd(f_flat, argnums=1)(t_int, y_int, params_c)
    )
    projector = lax.stop_gradient(projector)

    # Stage 2: Newton on g(y) = f(y) + P (y - y0) = 0, in z = y / w.
    weights = lax.stop_gradient(atol + rtol * jnp.abs(y_int))
    weights = jnp.where(jnp.isfinite(weights), weights, 1.0)

    def residual(z, args):
        p, y0_, projector_, weights_, t_ = args
        y = weights_ * z
        return (f_flat(t_, y, p) + projector_ @ (y - y0_)) / weights_

    newton = optx.root_find(
        residual,
        optx.Newton(rtol=0.0, atol=_NEWTON_TOLERANCE),
        y_int / weights,
        args=(params, y0_flat, projector, weights, t_int),
        max_steps=newton_max_steps,
        adjoint=optx.ImplicitAdjoint(),
        throw=False,
    )
    y_flat = jnp.where(reached, weights * newton.value, y_int)

    dy = f_flat(t_int, y_flat, params)
    weighted = _weighted_rms(dy, y_flat, rtol, atol)
    # An isolated steady state has a nonsingular bordered Jacobian J + P (in the
    # weighted coordinates Newton uses). Where it is singular by the conservation-law
    # rule above, there is none: e.g. A <-> B with kf < 0 keeps A + B = 4 while A grows
    # linearly; AMICI's relative criterion then holds at large |y| and Newton stops on
    # a "root" of f with A + B = 0, which breaks the conserved total.
    bordered = jax.jacfwd(f_flat, argnums=1)(t_int, y_flat, params_c) + projector
    bordered = bordered * weights[None, :] / weights[:, None]
    bordered = lax.stop_gradient(jnp.where(jnp.isfinite(bordered), bordered, 0.0))
    singular_values = jnp.linalg.svd(bordered, compute_uv=False)
    isolated = singular_values[-1] > (_NULL_SPACE_FACTOR * n * eps * singular_values[0])
    ok = (
        reached
        & (newton.result == optx.RESULTS.successful)
        & (weighted < 1)
        & isolated
        & jnp.all(jnp.isfinite(y_flat))
    )
    valid = (
        jnp.all(jnp.isfinite(start))
        & jnp.all(
            jnp.stack(
                [jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(params_c)]
                or [jnp.array(True)]
            )
        )
        & (rtol > 0)
        & (atol > 0)
        & (t_max > 0)
        & jnp.isfinite(t_max)
    )
    result = RESULTS.where(ok, RESULTS.successful, RESULTS.steady_state_not_reached)
    result = RESULTS.where(valid, result, RESULTS.invalid_input)
    steady = SteadyState(
        y=unravel(y_flat),
        result=result,
        residual_norm=jnp.linalg.norm(dy),
        weighted_residual=weighted,
        t=lax.stop_gradient(t_first - t0),
        num_conservation_laws=jnp.sum(null).astype(jnp.int32),
        stats=dict(
            num_steps=jnp.asarray(num_steps, dtype=jnp.int32),
            num_newton_steps=jnp.asarray(newton.stats["num_steps"], dtype=jnp.int32),
        ),
    )
    return steady


def steady_state(
    model: ODEModel,
    y0: State,
    params: Params,
    *,
    solver: diffrax.AbstractSolver = Rodas5P(),
    rtol: ScalarLike = 1e-8,
    atol: ScalarLike = 1e-10,
    t0: ScalarLike = 0.0,
    t_max: ScalarLike = 1e10,
    max_steps: int = 4096,
    newton_max_steps: int = 64,
    throw: bool = True,
) -> SteadyState:
    """The steady state `y*` (f(y*) = 0) that `dy/dt = model(t, y, params)` reaches from
    `y0`, with derivatives of `y*` with respect to `params` and `y0`.

    It integrates from `y0` until the weighted RMS of dy/dt (weights `atol + rtol·|y|`,
    AMICI's criterion) is below 1, then polishes with Newton on f(y) = 0. Derivatives
    (`jax.grad`, `jax.jacfwd`, `jax.jvp`) come from the implicit function theorem at
    `y*`, not from differentiating the integration. Linear conservation laws (conserved
    totals, e.g. A + B for A ⇌ B) are detected as the left null space of the Jacobian at
    the steady state; `y*` then depends on `y0` through the totals, and its derivatives
    with respect to `y0` are those of the constrained problem.

    **Arguments:**

    - `model`: an [`odeinfer.ODEModel`][]; autonomous (a vector field that depends on
        `t` is evaluated at the time the criterion held).
    - `y0`: the initial state (any pytree of arrays).
    - `params`: the parameters (any pytree).
    - `solver`: the solver of the integration: a diffrax solver, default
        [`odeinfer.Rodas5P`][], or a fused one ([`odeinfer.FusedRodas5P`][]; the
        integration is not differentiated, so it only has to be cheap to compile).
    - `rtol`, `atol`: the integration tolerances and the weights of the convergence
        criterion. The result is polished by Newton to 1000× below the criterion.
    - `t0`: the start time (only for a vector field that reads `t`).
    - `t_max`: the longest integration, measured from `t0`.
    - `max_steps`: the step budget of the integration.
    - `newton_max_steps`: the iteration budget of Newton.
    - `throw`: raise [`odeinfer.SolveError`][] when no steady state is reached. Under
        `jax.vmap` set `throw=False` and read `steady.result`.

    **Returns:**

    An [`odeinfer.SteadyState`][].

    **Raises:**

    `ValueError`/`TypeError` before any work for invalid input (non-finite `y0` or
    `params`, non-positive tolerances, a `t_max` that is not positive and finite, a vector field whose output does
    not match `y0`, a `solver` that is not a solver).

    The limits: a model whose steady-state Jacobian is singular for any reason other than
    a linear conservation law whose coefficients do not depend on `params` (a
    bifurcation point, a conservation law that moves with `params`) has no well-defined
    derivative there, and gives `RESULTS.steady_state_not_reached` or derivatives that
    are not meaningful.

    !!! Example

        ```python
        import jax.numpy as jnp
        import odeinfer as oi

        model = oi.ODEModel(lambda t, y, p: p["k1"] - p["k2"] * y)
        steady = oi.steady_state(model, jnp.array([0.0]), {"k1": 2.0, "k2": 0.5})
        # steady.y == k1 / k2 == 4
        ```
    """
    if not isinstance(model, ODEModel):
        raise TypeError(
            f"`model` must be an odeinfer.ODEModel; got {type(model).__name__}. Wrap the "
            "vector field: `odeinfer.ODEModel(lambda t, y, params: ...)`."
        )
    if not isinstance(solver, diffrax.AbstractSolver | AbstractFusedSolver):
        raise TypeError(
            "`solver` must be a diffrax solver instance such as oi.Rodas5P() (the "
            "default) or diffrax.Tsit5(), or a fused solver such as oi.FusedRodas5P() "
            f"(the integration is not differentiated, so it compiles less). Got "
            f"{solver!r}."
        )
    for name, value, positive in (("t0", t0, False), ("t_max", t_max, True)):
        if validate.is_concrete(value) and not (
            np.shape(value) == ()
            and np.isfinite(value)
            and (float(np.asarray(value)) > 0 or not positive)
        ):
            raise ValueError(
                f"`{name}` must be a finite scalar{' > 0' if positive else ''}; got "
                f"{value!r}. (`t_max` is the longest integration from t0, default 1e10.)"
            )
    validate.check_tolerances(rtol, atol)
    validate.check_finite("y0", y0)
    validate.check_finite("params", params)
    validate.check_max("max_steps", max_steps, 1)
    validate.check_max("newton_max_steps", newton_max_steps, 1)
    if not isinstance(throw, bool):
        raise TypeError(f"`throw` must be True or False; got {throw!r}.")
    if not jtu.tree_leaves(y0) or any(jnp.size(x) == 0 for x in jtu.tree_leaves(y0)):
        raise ValueError(
            f"`y0` has no components ({y0!r}); give the initial state, e.g. "
            "`jnp.array([1.0, 0.0])`."
        )
    float_dtype = jnp.result_type(float)
    t0 = jnp.asarray(t0, dtype=float_dtype)
    t_max = jnp.asarray(t_max, dtype=float_dtype)
    validate.check_user_functions(model, (), y0, params, t0)
    validate.check_precision(rtol, float_dtype)
    y0 = validate.as_arrays(y0)
    params = validate.as_arrays(params)
    rtol = jnp.asarray(rtol, dtype=float_dtype)
    atol = jnp.asarray(atol, dtype=float_dtype)
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if tol.shape != ():
            raise ValueError(f"`{name}` must be a scalar; got shape {tol.shape}.")
    # The compiled program only returns the result code (no host callback, so JAX's
    # persistent cache keeps it); `throw` is applied after the call.
    steady = _steady_state(
        model,
        y0,
        params,
        t0,
        t_max,
        solver,
        rtol,
        atol,
        max_steps,
        newton_max_steps,
    )
    return raise_on_failure(steady, throw, _failure_message)


def _failure_message(steady: SteadyState) -> str:
    return (
        "odeinfer.steady_state failed (integrated for "
        f"{float(steady.t):.6g}, weighted residual "
        f"{float(steady.weighted_residual):.3g}): {describe(steady.result)} "
        "(Pass `throw=False` to get the SteadyState and read `steady.result`.)"
    )
