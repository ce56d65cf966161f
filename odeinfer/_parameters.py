"""Named parameters, each with a transform to the unconstrained real line.

Optimisers and samplers work on one flat vector `u` (the free parameters, unconstrained,
in the order given); models see a dict of constrained values with the fixed ones filled
in. The transforms are numpyro's bijections (`biject_to(support)`), so the Jacobian
correction samplers need is numpyro's own.
"""

import abc
import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to


class AbstractParameter(eqx.Module):
    """A parameter spec of [`odeinfer.Parameters`][]: its initial value (which also
    fixes its shape), its `support` (a numpyro constraint) and bounds `lower`/`upper`.

    Specs can be built inside the user's `jax.jit`, `jax.vmap` or `jax.grad`: an
    initial (or fixed) value that is traced there is taken as it is, with its
    derivatives; its checks (finite, inside the bounds) run only on concrete values.
    The bounds fix the transform and must be concrete numbers."""

    init: Float[Array, "..."]

    @property
    @abc.abstractmethod
    def support(self): ...

    @property
    def lower(self) -> float:
        return -math.inf

    @property
    def upper(self) -> float:
        return math.inf

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.init.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))

    def transform(self):
        """The bijection from the real line onto `support`."""
        return biject_to(self.support)

    def contains(self, value) -> bool:
        """Whether (concrete) `value` is finite and strictly inside `(lower, upper)`."""
        value = np.asarray(value, dtype=float)
        return bool(
            np.all(np.isfinite(value) & (value > self.lower) & (value < self.upper))
        )


def _as_init(init, name: str) -> tuple[Array, np.ndarray | None]:
    """`init` as a JAX array of floats, and as a numpy array to check, or `None` where
    it is traced (built inside the user's `jax.jit`, `jax.vmap` or `jax.grad`: no
    value to check before the caller's program runs)."""
    try:
        value = jnp.asarray(init, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: `init` must be a number or an array of numbers; got {init!r:.100}."
        ) from None
    try:
        # From `init`, not `value`: inside `jax.jit` even a constant's `jnp` array is
        # traced.
        concrete = np.asarray(init, dtype=float)
    except jax.errors.TracerArrayConversionError:
        return value, None
    if not np.all(np.isfinite(concrete)):
        raise ValueError(f"{name}: `init` must be finite; got {init!r}.")
    return value, concrete


def _as_bound(bound, name: str) -> float:
    """A bound as a Python float (static: it fixes the transform)."""
    if isinstance(bound, jax.core.Tracer):
        raise TypeError(
            f"{name}: `lower` and `upper` fix the transform, so they must be concrete "
            f"numbers; got a traced value ({bound}). Build the spec outside `jax.jit`, "
            "`jax.vmap` and `jax.grad` (its `init` may be traced), or use oi.Fixed for "
            "a parameter that the traced value gives."
        )
    try:
        return float(bound)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: `lower` and `upper` must be numbers; got {bound!r:.100}."
        ) from None


class Real(AbstractParameter):
    """A parameter on the whole real line (identity transform).

    **Arguments:**

    - `init`: initial value (a scalar or an array; its shape is the parameter's shape).
    """

    def __init__(self, init: ArrayLike = 0.0):
        self.init, _ = _as_init(init, "Real")

    @property
    def support(self):
        return constraints.real


class Positive(AbstractParameter):
    """A positive parameter (log transform: `value = exp(u)`).

    **Arguments:**

    - `init`: initial value, `> 0`.
    """

    def __init__(self, init: ArrayLike = 1.0):
        self.init, concrete = _as_init(init, "Positive")
        if concrete is not None and not np.all(concrete > 0):
            raise ValueError(f"Positive: `init` must be > 0; got {init!r}.")

    @property
    def support(self):
        return constraints.positive

    @property
    def lower(self) -> float:
        return 0.0


class Bounded(AbstractParameter):
    """A parameter in the open interval `(lower, upper)` (scaled logistic transform).

    **Arguments:**

    - `lower`, `upper`: finite bounds, `lower < upper`.
    - `init`: initial value strictly inside; default the midpoint.
    """

    bounds: tuple[float, float] = eqx.field(static=True)

    def __init__(self, lower: float, upper: float, init: ArrayLike | None = None):
        lower, upper = _as_bound(lower, "Bounded"), _as_bound(upper, "Bounded")
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise ValueError(
                f"Bounded: need finite `lower < upper`; got ({lower}, {upper}). Use "
                "oi.Positive for (0, inf) or oi.Real for the whole line."
            )
        self.bounds = (lower, upper)
        default = 0.5 * (lower + upper)
        self.init, value = _as_init(default if init is None else init, "Bounded")
        if value is not None and not np.all((value > lower) & (value < upper)):
            raise ValueError(
                f"Bounded: `init`={init!r} must lie strictly inside ({lower}, {upper})."
            )

    @property
    def support(self):
        return constraints.interval(self.bounds[0], self.bounds[1])

    @property
    def lower(self) -> float:
        return self.bounds[0]

    @property
    def upper(self) -> float:
        return self.bounds[1]


class HalfLine(AbstractParameter):
    """A parameter on a half-line `(lower, inf)` or `(-inf, upper)` other than
    `(0, inf)` (numpyro's `biject_to` of `greater_than(lower)`/`less_than(upper)`):
    what `parameters_from_priors` makes of e.g.
    `TruncatedNormal(..., low=1.0)`.

    **Arguments:**

    - `lower`, `upper`: one finite, the other infinite.
    - `init`: initial value strictly inside; default one unit inside the bound.
    """

    bounds: tuple[float, float] = eqx.field(static=True)

    def __init__(self, lower: float, upper: float, init: ArrayLike | None = None):
        lower, upper = _as_bound(lower, "HalfLine"), _as_bound(upper, "HalfLine")
        if math.isfinite(lower) == math.isfinite(upper) or not lower < upper:
            raise ValueError(
                f"HalfLine: need one finite bound, `lower < upper`; got ({lower}, "
                f"{upper}). Use oi.Bounded for two finite bounds, oi.Real for none."
            )
        self.bounds = (lower, upper)
        default = lower + 1.0 if math.isfinite(lower) else upper - 1.0
        self.init, value = _as_init(default if init is None else init, "HalfLine")
        if value is not None and not np.all((value > lower) & (value < upper)):
            raise ValueError(
                f"HalfLine: `init`={init!r} must lie strictly inside ({lower}, {upper})."
            )

    @property
    def support(self):
        if math.isfinite(self.bounds[0]):
            return constraints.greater_than(self.bounds[0])
        return constraints.less_than(self.bounds[1])

    @property
    def lower(self) -> float:
        return self.bounds[0]

    @property
    def upper(self) -> float:
        return self.bounds[1]


class Fixed(AbstractParameter):
    """A parameter held at `value` (not estimated; filled into the params dict)."""

    def __init__(self, value: ArrayLike):
        self.init, _ = _as_init(value, "Fixed")

    @property
    def value(self):
        return self.init

    @property
    def support(self):
        return constraints.real


class Parameters(eqx.Module):
    """The named parameters of a problem and their transforms.

    **Arguments:**

    - `specs`: a dict `name -> spec`, each spec one of [`odeinfer.Real`][],
        [`odeinfer.Positive`][], [`odeinfer.Bounded`][], [`odeinfer.Fixed`][]; or a
        plain number, which means `Fixed(number)`.

    The free parameters (all but the fixed ones) form the unconstrained vector `u`, in
    the order given; array-valued parameters take `size` consecutive entries.

    !!! Example

        ```python
        space = oi.Parameters({"k": oi.Positive(init=0.5), "g": oi.Fixed(9.81)})
        u = space.to_unconstrained(space.initial())   # [log 0.5]
        space.from_unconstrained(u)                     # {"k": 0.5, "g": 9.81}
        ```
    """

    specs: dict[str, AbstractParameter]
    # JAX flattens dicts in sorted key order; the user's order is kept here.
    order: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, specs: Mapping[str, AbstractParameter | float]):
        if isinstance(specs, Parameters):
            specs = specs.specs
        if not isinstance(specs, Mapping) or not specs:
            raise TypeError(
                "Parameters: give a non-empty dict name -> spec, e.g. "
                "{'k': oi.Positive(init=1.0), 'g': oi.Fixed(9.81)}."
            )
        checked = {}
        for name, spec in specs.items():
            if not isinstance(name, str):
                raise TypeError(f"Parameters: names must be strings; got {name!r}.")
            if isinstance(spec, int | float | np.ndarray | np.generic | jax.Array):
                spec = Fixed(spec)
            if not isinstance(spec, AbstractParameter):
                raise TypeError(
                    f"Parameters: `{name}` must be oi.Real/Positive/Bounded/Fixed or a "
                    f"number; got {spec!r}."
                )
            checked[name] = spec
        self.specs = checked
        self.order = tuple(checked)

    def _items(self):
        return [(name, self.specs[name]) for name in self.order]

    @property
    def names(self) -> tuple[str, ...]:
        """The free (estimated) parameter names, in order."""
        return tuple(n for n, s in self._items() if not isinstance(s, Fixed))

    @property
    def all_names(self) -> tuple[str, ...]:
        return self.order

    @property
    def fixed(self) -> dict[str, Array]:
        """The fixed parameters and their values."""
        return {n: s.init for n, s in self._items() if isinstance(s, Fixed)}

    @property
    def size(self) -> int:
        """Length of the unconstrained vector."""
        return sum(self.specs[n].size for n in self.names)

    def initial(self) -> dict[str, Array]:
        """All parameters (constrained) at their initial values, fixed ones included."""
        return {n: s.init for n, s in self._items()}

    def complete(self, params: Mapping[str, ArrayLike]) -> dict[str, Array]:
        """Check `params` (free names, optionally fixed ones too) and fill in the fixed
        values. Raises `ValueError` for unknown or missing names."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`params` must be a dict name -> value; got {type(params)}."
            )
        unknown = sorted(set(params) - set(self.specs))
        if unknown:
            raise ValueError(
                f"`params` has unknown parameter name(s) {unknown}; the problem's "
                f"parameters are {list(self.specs)}."
            )
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(
                f"`params` is missing free parameter(s) {missing}; give a value for each "
                f"of {list(self.names)} (fixed ones {list(self.fixed)} are filled in)."
            )
        out = {}
        for name, spec in self._items():
            value = params[name] if name in params else spec.init
            try:
                value = jnp.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise TypeError(
                    f"`params['{name}']` must be a number or an array of numbers; got "
                    f"{value!r:.100}."
                ) from None
            if value.shape != spec.shape:
                raise ValueError(
                    f"`params['{name}']` has shape {value.shape}; its spec has shape "
                    f"{spec.shape}."
                )
            out[name] = value
        return out

    def to_unconstrained(self, params: Mapping[str, ArrayLike]) -> Float[Array, " n"]:
        """The unconstrained vector `u` of the free parameters in `params`."""
        parts = []
        for name in self.names:
            spec = self.specs[name]
            value = jnp.asarray(params[name], dtype=float)
            parts.append(jnp.reshape(spec.transform().inv(value), (-1,)))
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    def _split(self, u):
        u = jnp.asarray(u, dtype=float)
        if u.shape != (self.size,):
            raise ValueError(
                f"The unconstrained vector must have shape ({self.size},) for "
                f"{list(self.names)}; got {u.shape}."
            )
        start = 0
        for name in self.names:
            spec = self.specs[name]
            yield name, spec, jnp.reshape(u[start : start + spec.size], spec.shape)
            start += spec.size

    def from_unconstrained(self, u: Float[ArrayLike, " n"]) -> dict[str, Array]:
        """The constrained params dict (fixed values filled in) for `u`."""
        out = dict(self.fixed)
        for name, spec, piece in self._split(u):
            out[name] = spec.transform()(piece)
        return {n: out[n] for n in self.order}

    def log_abs_det_jacobian(self, u: Float[ArrayLike, " n"]) -> Float[Array, ""]:
        """`log |d params / d u|`: add it to a log density in `params` to get one in `u`."""
        total = jnp.zeros(())
        for _, spec, piece in self._split(u):
            transform = spec.transform()
            total = total + jnp.sum(
                transform.log_abs_det_jacobian(piece, transform(piece))
            )
        return total

    def inside(self, params: Mapping[str, ArrayLike]) -> Bool[Array, ""]:
        """Whether every free value in `params` is finite and strictly inside its spec's
        range `(lower, upper)`; works on traced values (a JAX boolean)."""
        ok = jnp.array(True)
        for name in self.names:
            spec = self.specs[name]
            value = jnp.asarray(params[name], dtype=float)
            ok = ok & jnp.all(
                jnp.isfinite(value) & (value > spec.lower) & (value < spec.upper)
            )
        return ok

    def check_inside(
        self, params: Mapping[str, ArrayLike], what: str = "params"
    ) -> None:
        """Raise `ValueError` if a (concrete) free value lies outside its spec's range."""
        for name in self.names:
            if name in params:
                value = params[name]
                try:
                    value = np.asarray(value, dtype=float)
                except Exception:  # traced: cannot check here
                    continue
                spec = self.specs[name]
                if not spec.contains(value):
                    raise ValueError(
                        f"`{what}['{name}']`={value} lies outside its range "
                        f"({spec.lower}, {spec.upper}) ({type(spec).__name__}); give a "
                        "value strictly inside."
                    )


def support_bounds(support) -> tuple[float, float] | None:
    """`(lower, upper)` of a numpyro constraint on (an interval of) the real line, read
    through numpyro's public constraint classes; `None` for any other constraint
    (discrete, simplex, vector-valued, ...). An `independent` constraint is read
    through its base constraint."""
    if isinstance(support, constraints.independent):
        return support_bounds(support.base_constraint)
    # The bounds are numbers or arrays (numpyro's `NumLike`): read through numpy.
    if isinstance(support, constraints.interval):
        return (
            float(np.asarray(support.lower_bound)),
            float(np.asarray(support.upper_bound)),
        )
    if isinstance(support, constraints.greater_than):
        return (float(np.asarray(support.lower_bound)), math.inf)
    if isinstance(support, constraints.less_than):
        return (-math.inf, float(np.asarray(support.upper_bound)))
    if support is constraints.real:
        return (-math.inf, math.inf)
    return None


def parameter_from_support(support) -> AbstractParameter | None:
    """The parameter spec whose transform maps onto `support` (`Real`, `Positive`,
    `Bounded` or `HalfLine`), or `None` when `support` is not an interval."""
    bounds = support_bounds(support)
    if bounds is None:
        return None
    lower, upper = bounds
    if math.isinf(lower) and math.isinf(upper):
        return Real()
    if lower == 0.0 and math.isinf(upper):
        return Positive()
    if math.isfinite(lower) and math.isfinite(upper):
        return Bounded(lower, upper)
    return HalfLine(lower, upper)


def parameters_from_priors(priors: Mapping, names: tuple[str, ...]) -> Parameters:
    """The [`odeinfer.Parameters`][] of a log-likelihood function that has none: one
    spec per name in `names` (the order of the unconstrained vector), on its prior's
    support.

    `names` is passed, never read from `priors`: a dict that went through a JAX
    program comes back in sorted key order, which would silently swap parameters.

    **Raises:** `ValueError` naming a prior whose support is not an interval of the
    real line."""
    specs = {}
    for name in names:
        spec = parameter_from_support(priors[name].support)
        if spec is None:
            raise ValueError(
                f"`priors['{name}']` has support {priors[name].support}, which is not "
                "an interval of the real line; give a continuous scalar prior (e.g. "
                "`dist.Normal`, `dist.LogNormal`, `dist.Uniform`)."
            )
        specs[name] = spec
    return Parameters(specs)
