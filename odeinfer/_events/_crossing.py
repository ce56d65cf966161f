"""`Crossing`: the event "fn(t, y, params) reaches level"."""

from typing import Any, Literal

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._custom_types import EventFunction, ResetFunction, Scalar, ScalarLike

Direction = Literal["rising", "falling", "either"]
_DIFFRAX_DIRECTION = {"rising": True, "falling": False, "either": None}


class Crossing(eqx.Module):
    """The event `fn(t, y, params) == level`, located by root finding on the solver's
    dense output.

    **Arguments:**

    - `fn`: a scalar function `fn(t, y, params)` written with `jax.numpy`.
    - `level`: the value to cross. It is a traced array: changing it does not
        recompile, and derivatives with respect to it are available.
    - `direction`: `"rising"` (fn goes from below to above `level`), `"falling"`, or
        `"either"` (default).
    - `reset`: optional `reset(t, y, params) -> y_new` applied at the crossing; the
        solve then continues from `y_new` (a bouncing ball, a switched control).
    - `terminal`: stop the solve at the first such crossing (after applying `reset`).
    - `name`: a label for reports.

    Crossings are detected as a sign change of `fn - level` between the ends of each
    accepted step, as in `scipy.integrate.solve_ivp`. A step over which `fn` turns back
    close to the level is retried smaller, so that two crossings close together are
    not lost in one step; a function that oscillates several times within one step can
    still hide crossings: set `max_step_size` in [`odeinfer.solve`][] then.
    """

    fn: EventFunction = eqx.field(static=True)
    level: Scalar
    direction: Direction = eqx.field(static=True)
    reset: ResetFunction | None = eqx.field(static=True)
    terminal: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        fn: EventFunction,
        level: ScalarLike = 0.0,
        *,
        direction: Direction = "either",
        reset: ResetFunction | None = None,
        terminal: bool = False,
        name: str | None = None,
    ):
        if not callable(fn):
            raise TypeError(
                f"Crossing: `fn` must be callable fn(t, y, params); got {fn!r}."
            )
        if direction not in _DIFFRAX_DIRECTION:
            raise ValueError(
                f"Crossing: `direction` must be 'rising', 'falling' or 'either'; "
                f"got {direction!r}."
            )
        if reset is not None and not callable(reset):
            raise TypeError(
                "Crossing: `reset` must be None or callable reset(t, y, params) -> y_new; "
                f"got {reset!r}."
            )
        level = jnp.asarray(level, dtype=float)
        if level.shape != ():
            raise ValueError(
                f"Crossing: `level` must be a scalar; got shape {level.shape}. Use one "
                "Crossing per level."
            )
        # numpy, not jnp: under an enclosing jit a jnp op on a constant is traced.
        if not isinstance(level, jax.core.Tracer) and not np.isfinite(
            np.asarray(level)
        ):
            raise ValueError(
                f"Crossing: `level` must be finite; got {level}. A NaN level never "
                "compares, so the crossing could never be found."
            )
        if isinstance(terminal, str) or terminal not in (0, 1):
            raise TypeError(
                f"Crossing: `terminal` must be True or False; got {terminal!r}."
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Crossing: `name` must be a string; got {name!r}.")
        self.fn = fn
        self.level = level
        self.direction = direction
        self.reset = reset
        self.terminal = bool(terminal)
        self.name = name if name is not None else getattr(fn, "__name__", "crossing")

    def value(self, t: Scalar, y, params) -> Scalar:
        """`fn(t, y, params) - level`: zero at the crossing."""
        return self.fn(t, y, params) - self.level

    @property
    def diffrax_direction(self) -> bool | None:
        return _DIFFRAX_DIRECTION[self.direction]

    def with_options(self, **changes) -> "Crossing":
        """A copy with some fields replaced, e.g. `c.with_options(terminal=True)`."""
        fields: dict[str, Any] = dict(
            fn=self.fn,
            level=self.level,
            direction=self.direction,
            reset=self.reset,
            terminal=self.terminal,
            name=self.name,
        )
        fields.update(changes)
        fn = fields.pop("fn")
        level = fields.pop("level")
        return Crossing(fn, level, **fields)
