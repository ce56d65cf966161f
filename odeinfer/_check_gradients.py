"""`check_gradients`: autodiff against finite differences (and, for event times, the
implicit-function formula), with the failure modes that silently break gradients flagged.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.flatten_util as jfu
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._crossings import first_crossing
from ._events import Crossing
from ._model import ODEModel
from ._results import RESULTS
from ._solve import solve

_STEPS = (1e-3, 1e-4, 1e-5, 1e-6)


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """The result of [`odeinfer.check_gradients`][]; `print(report)` shows a table.

    - `names`: one label per checked component (`"k"`, `"A[0,1]"`, ...).
    - `value`: `fn(x)`.
    - `autodiff`: the autodiff gradient (NaN where it failed).
    - `finite_difference`: the central difference that agrees best with autodiff.
    - `steps`: the relative step sizes tried; `errors[i, j]`: relative error of
        autodiff against the central difference with `steps[j]` for component `i`.
    - `error`: the smallest relative error per component.
    - `reference`, `reference_error`: an extra reference gradient (the implicit-function
        formula for event times) and autodiff's relative error against it, or `None`.
    - `flags`: per component, a tuple of problems: `"nan"`, `"zero-gradient"` (autodiff
        is zero where finite differences are not: a numpy call, a `pure_callback`
        or a `stop_gradient` in `fn`), `"mismatch"`, `"grazing"`, `"autodiff-error"`,
        `"nonfinite-value"` (`fn(x)` itself is `-inf`/`inf`/NaN, e.g. a failed solve:
        its gradient, often exactly 0, means nothing).
    - `message`: the autodiff exception, if any.
    - `ok`: no flags anywhere.
    """

    names: tuple[str, ...]
    value: float
    autodiff: np.ndarray
    finite_difference: np.ndarray
    steps: tuple[float, ...]
    errors: np.ndarray
    error: np.ndarray
    reference: np.ndarray | None
    reference_error: np.ndarray | None
    flags: tuple[tuple[str, ...], ...]
    message: str

    @property
    def ok(self) -> bool:
        return not any(self.flags)

    def __str__(self) -> str:
        head = (
            f"{'parameter':>14} {'autodiff':>14} {'finite diff':>14} {'rel. error':>10}"
        )
        if self.reference is not None:
            head += f" {'implicit':>14} {'rel. error':>10}"
        lines = [f"check_gradients: value {self.value:.10g}", head + "  flags"]
        for i, name in enumerate(self.names):
            row = (
                f"{name:>14} {self.autodiff[i]:>14.7g} {self.finite_difference[i]:>14.7g} "
                f"{self.error[i]:>10.2e}"
            )
            if self.reference is not None and self.reference_error is not None:
                row += f" {self.reference[i]:>14.7g} {self.reference_error[i]:>10.2e}"
            lines.append(row + "  " + ",".join(self.flags[i]))
        hints = {
            "zero-gradient": "autodiff is zero where finite differences are not: look for "
            "numpy (np.…), jax.pure_callback, float() or stop_gradient in the function.",
            "nan": "autodiff is NaN/inf: a failed solve, a sqrt/log at 0, or a where() "
            "whose other branch is NaN.",
            "mismatch": "autodiff and finite differences disagree at every step size.",
            "grazing": "the crossing is (nearly) tangent: the event time is not "
            "differentiable there.",
            "nonfinite-value": "fn(x) is not finite (a failed solve gives -inf with a "
            "zero gradient): check a point where fn is finite.",
        }
        for flag, hint in hints.items():
            if any(flag in f for f in self.flags):
                lines.append(f"! {flag}: {hint}")
        if self.message:
            lines.append(f"! autodiff failed: {self.message}")
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def _labels(x) -> tuple[str, ...]:
    labels = []
    for path, leaf in jtu.tree_leaves_with_path(x):
        base = jtu.keystr(path)
        base = base[2:-2] if base.startswith("['") and base.endswith("']") else base
        shape = np.shape(leaf)
        if shape == ():
            labels.append(base or "x")
        else:
            for index in np.ndindex(shape):
                labels.append(f"{base or 'x'}[{','.join(map(str, index))}]")
    return tuple(labels)


def _relative(a, b):
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)


def _evaluate_all(scalar: Callable, points: np.ndarray, jit: bool) -> np.ndarray:
    """`scalar` at every row of `points`: one `jax.vmap`ped call (compiled when
    `jit`), or, for a function that cannot be traced or batched (numpy inside, a
    callback without a batching rule), one call per row (compiled when possible)."""
    try:
        batched = jax.vmap(scalar)
        return np.asarray((jax.jit(batched) if jit else batched)(jnp.asarray(points)))
    except Exception:  # not batchable: one point at a time
        pass
    evaluate = scalar
    if jit:
        try:
            evaluate = jax.jit(scalar)
            evaluate(points[0])
        except Exception:  # not traceable: finite differences still work eagerly
            evaluate = scalar
    return np.stack([np.asarray(evaluate(point)) for point in points])


def check_gradients(
    fn: Callable,
    x,
    *,
    steps: Sequence[float] = _STEPS,
    rtol: float = 1e-5,
    reference=None,
    grazing=None,
    mode: str = "reverse",
    jit: bool = True,
) -> GradientReport:
    """Compare `jax.grad(fn)(x)` with central finite differences, per component.

    **Arguments:**

    - `fn`: a scalar function of `x` (any pytree of float arrays: a params dict, an
        array), e.g. a log-density or `lambda p: oi.log_likelihood(problem, p)`.
    - `x`: the point.
    - `steps`: relative step sizes `h` (the step for component `x_i` is
        `h * max(1, |x_i|)`), all computed in float64.
    - `rtol`: relative error above which a component is flagged `"mismatch"` (the
        best over the steps is used, so round-off at small steps and truncation at
        large ones do not trigger it).
    - `reference`: an extra reference gradient with the structure of `x` (for example
        [`odeinfer.event_time_gradient`][]'s implicit-function formula).
    - `grazing`: `True` to flag every component `"grazing"` (set by
        [`odeinfer.check_event_gradients`][]).
    - `mode`: `"reverse"` (`jax.grad`; solves with the default
        `RecursiveCheckpointAdjoint`) or `"forward"` (`jax.jacfwd`; for solves with
        `diffrax.ForwardMode()`).
    - `jit`: compile `fn` for the finite differences. Pass `False` when `fn` is
        already compiled inside (such as `odeinfer.log_likelihood`).

    The value and every finite difference are one `jax.vmap`ped evaluation of `fn`
    over the perturbed points (one compilation, whatever the number of components);
    a function that cannot be batched is evaluated one point at a time.

    **Returns:**

    A [`odeinfer.GradientReport`][]; `print` it for a table, read `.ok` in tests.
    """
    if not callable(fn):
        raise TypeError(
            f"check_gradients: `fn` must be a scalar function of `x`; got {fn!r:.100}."
        )
    try:
        flat, unravel = jfu.ravel_pytree(
            jtu.tree_map(lambda v: jnp.asarray(v, float), x)
        )
    except (TypeError, ValueError):
        raise TypeError(
            "check_gradients: `x` must be a pytree of float arrays (a params dict, an "
            f"array); got {x!r:.100}."
        ) from None
    flat = np.asarray(flat, dtype=np.float64)
    if flat.size == 0:
        raise ValueError(
            "check_gradients: `x` has no components, so there is nothing to check; "
            "pass the point whose gradient you want checked."
        )
    if not np.all(np.isfinite(flat)):
        raise ValueError(
            "check_gradients: `x` must be finite (finite differences around NaN or inf "
            f"mean nothing); got {x!r:.200}."
        )
    names = _labels(x)

    def scalar(v):
        return fn(unravel(jnp.asarray(v)))

    if mode not in ("reverse", "forward"):
        raise ValueError(
            f"check_gradients: `mode` must be 'reverse' or 'forward'; got {mode!r}."
        )
    steps = tuple(steps)
    if not steps or not all(
        isinstance(h, int | float | np.number) and np.isfinite(h) and 0 < h < 1
        for h in steps
    ):
        raise ValueError(
            "check_gradients: `steps` must be relative step sizes in (0, 1), e.g. "
            f"(1e-3, 1e-4, 1e-5, 1e-6); got {steps!r}."
        )
    if not (
        isinstance(rtol, int | float | np.number) and np.isfinite(rtol) and rtol > 0
    ):
        raise ValueError(
            f"check_gradients: `rtol` must be a positive number (e.g. 1e-5); got {rtol!r}."
        )
    n, steps = flat.size, tuple(float(s) for s in steps)
    # Row 0 is x; then, per component i and step j, x + step e_i and x - step e_i.
    sizes = np.asarray(steps)[None, :] * np.maximum(1.0, np.abs(flat))[:, None]
    shifts = np.zeros((n, len(steps), n))
    shifts[np.arange(n), :, np.arange(n)] = sizes
    shifts = shifts.reshape(n * len(steps), n)
    points = np.concatenate([flat[None], flat + shifts, flat - shifts])
    outputs = _evaluate_all(scalar, points, jit)
    if outputs.shape[1:] != ():
        raise ValueError(
            f"check_gradients: `fn` must return a scalar; it returned shape "
            f"{outputs.shape[1:]}. Reduce it (e.g. `jnp.sum`) or check one output at a "
            "time."
        )
    value = float(outputs[0])
    message = ""
    derivative = jax.grad if mode == "reverse" else jax.jacfwd
    try:
        autodiff = np.asarray(derivative(scalar)(jnp.asarray(flat)), dtype=np.float64)
    except Exception as error:  # report, do not raise: this is a diagnostic tool
        autodiff = np.full(flat.shape, np.nan)
        message = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    up, down = np.split(outputs[1:].astype(np.float64), 2)
    fd = ((up - down).reshape(n, len(steps))) / (2 * sizes)
    errors = np.stack(
        [_relative(autodiff, fd[:, j]) for j in range(len(steps))], axis=1
    )
    errors = np.where(np.isnan(errors), np.inf, errors)
    best = np.argmin(errors, axis=1)
    error = errors[np.arange(n), best]
    finite_difference = fd[np.arange(n), best]
    ref = ref_error = None
    if reference is not None:
        ref = np.asarray(
            jfu.ravel_pytree(jtu.tree_map(jnp.asarray, reference))[0], float
        )
        ref_error = _relative(autodiff, ref)
    flags = []
    for i in range(n):
        f = []
        finite = np.abs(fd[i])[np.isfinite(fd[i])]
        fd_scale = finite.max() if finite.size else 0.0
        if not np.isfinite(value):
            f.append("nonfinite-value")
        elif message:
            f.append("autodiff-error")
        elif not np.isfinite(autodiff[i]):
            f.append("nan")
        elif autodiff[i] == 0 and fd_scale > 1e-8 * max(1.0, abs(value)):
            f.append("zero-gradient")
        elif error[i] > rtol and (ref_error is None or ref_error[i] > rtol):
            f.append("mismatch")
        if grazing:
            f.append("grazing")
        flags.append(tuple(f))
    return GradientReport(
        names=names,
        value=value,
        autodiff=autodiff,
        finite_difference=finite_difference,
        steps=steps,
        errors=errors,
        error=error,
        reference=ref,
        reference_error=ref_error,
        flags=tuple(flags),
        message=message,
    )


class EventTimeGradient(eqx.Module):
    """The implicit-function derivative of a crossing time (see
    [`odeinfer.event_time_gradient`][])."""

    time: jax.Array
    gradient: dict
    slope: jax.Array
    grazing: bool = eqx.field(static=True)


def event_time_gradient(
    model: ODEModel,
    y0,
    params,
    crossing: Crossing,
    *,
    t0,
    t1,
    grazing_tol: float = 1e-3,
    **solve_options,
) -> EventTimeGradient:
    """`dt*/dθ = -(∂g/∂θ + ∂g/∂y · ∂y/∂θ) / (dg/dt)` at the first crossing `t*` of
    `g(t, y, θ) = crossing.fn(t, y, θ) - level`, an independent check of the autodiff
    event-time gradient.

    `∂y(t*)/∂θ` (with `t*` held fixed) is `jax.jacfwd` of a solve to `t*` with
    `diffrax.ForwardMode()`; `dg/dt = ∂g/∂t + ∂g/∂y · f` is the total derivative along
    the flow. The crossing is flagged `grazing` when the solve reports
    `RESULTS.tangent_crossing` or `|dg/dt|` is below `grazing_tol` times
    `|∂g/∂t| + |∂g/∂y|·|f|`: then `t*` is barely (or not) differentiable.

    **Returns:**

    An [`odeinfer.EventTimeGradient`][]: `time`, `gradient` (structured like
    `params`), `slope` (`dg/dt`), `grazing`.
    """
    options = {k: v for k, v in solve_options.items() if k not in ("adjoint", "throw")}
    hit = first_crossing(
        model, y0, params, crossing, t0=t0, t1=t1, throw=False, **options
    )
    if not bool(hit.found):
        raise ValueError(
            "event_time_gradient: the crossing does not happen in [t0, t1]."
        )
    t_star = hit.time

    def state_at(p):
        solution = solve(
            model,
            y0,
            p,
            t0=t0,
            t1=t_star,
            saveat=jnp.reshape(t_star, (1,)),
            adjoint=diffrax.ForwardMode(),
            **options,
        )
        return jtu.tree_map(lambda v: v[0], solution.ys)

    y_star = state_at(params)
    g_t, g_y, g_theta = jax.grad(crossing.fn, argnums=(0, 1, 2))(t_star, y_star, params)
    flow = model(t_star, y_star, params)
    along = sum(
        jnp.sum(a * b)
        for a, b in zip(jtu.tree_leaves(g_y), jtu.tree_leaves(flow), strict=True)
    )
    slope = g_t + along
    scale = jnp.abs(g_t) + math.sqrt(
        sum(float(jnp.sum(a**2)) for a in jtu.tree_leaves(g_y))
    ) * math.sqrt(sum(float(jnp.sum(b**2)) for b in jtu.tree_leaves(flow)))

    # ∂g/∂y · ∂y/∂θ: contract the flattened state axis.
    gy_flat, _ = jfu.ravel_pytree(g_y)

    def y_flat(p):
        return jfu.ravel_pytree(state_at(p))[0]

    jac = jax.jacfwd(y_flat)(params)  # pytree like params, leaves (n_y, *param_shape)
    gradient = jtu.tree_map(
        lambda d_theta, j: -(d_theta + jnp.tensordot(gy_flat, j, axes=1)) / slope,
        g_theta,
        jac,
    )
    return EventTimeGradient(
        time=t_star,
        gradient=gradient,
        slope=slope,
        grazing=bool(hit.result == RESULTS.tangent_crossing)
        or bool(jnp.abs(slope) <= grazing_tol * scale),
    )


def check_event_gradients(
    model: ODEModel,
    y0,
    params,
    crossing: Crossing,
    *,
    t0,
    t1,
    steps: Sequence[float] = _STEPS,
    rtol: float = 1e-5,
    mode: str = "reverse",
    **solve_options,
) -> GradientReport:
    """[`odeinfer.check_gradients`][] for the first crossing time `t*(params)`:
    autodiff (through [`odeinfer.first_crossing`][]) against central finite
    differences and the implicit-function formula ([`odeinfer.event_time_gradient`][]),
    flagging grazing crossings. With `mode="forward"` pass
    `adjoint=diffrax.ForwardMode()` among the solve options."""
    implicit = event_time_gradient(
        model, y0, params, crossing, t0=t0, t1=t1, **solve_options
    )

    def time(p):
        return first_crossing(
            model, y0, p, crossing, t0=t0, t1=t1, **solve_options
        ).time

    return check_gradients(
        time,
        params,
        steps=steps,
        rtol=rtol,
        reference=implicit.gradient,
        grazing=implicit.grazing,
        mode=mode,
    )
