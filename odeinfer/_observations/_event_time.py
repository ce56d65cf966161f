"""Event-time observations: the observed time at which a crossing happened."""

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._events import Crossing
from ._noise import AbstractNoise

Censoring = Literal["right", "interval"]


def _finite_time(value, what):
    number = np.asarray(value, dtype=float)
    if number.shape != () or not np.isfinite(number):
        raise ValueError(
            f"EventTimeObservation: `{what}` must be a finite time; got {value!r}."
        )
    return jnp.asarray(number)


class EventTimeObservation(eqx.Module):
    """The observed time of a crossing, "F reached 0.85 at t = 0.071 ± 0.002".

    The model predicts the time `t*` of the first crossing after the experiment's `t0`
    (with [`odeinfer.first_crossing`][], so gradients flow through `t*`), and the
    observation is `time ~ noise(t*)`.

    **Arguments:**

    - `crossing`: the [`odeinfer.Crossing`][] whose first occurrence is observed.
    - `time`: the observed time (exact observations).
    - `noise`: a continuous noise model for the time, e.g. `oi.Gaussian(0.002)`.
    - `censoring`:
        - `None`: `time` was observed: contributes `log p(time | t*)`.
        - `"right"`: the event was not seen by `end_time`: contributes
          `log P(T > end_time | t*)`, the noise's log survival function. If the
          predicted crossing does not happen before `t_max` it contributes 0 ("not seen
          before the end", probability one).
        - `"interval"`: the event happened in `interval = (a, b]`: contributes
          `log(F(b | t*) - F(a | t*))`.
    - `end_time`: the end of observation, for right-censoring (required there).
    - `interval`: `(a, b)` for interval-censoring (required there).
    - `t_max`: how far the predicted crossing is searched for. Default: `t0 + 2 (T -
        t0)`, `T` the observed time, `end_time` or `b`. A crossing not found before
        `t_max` gives `-inf` for exact and interval observations.
    """

    crossing: Crossing
    noise: AbstractNoise
    time: Float[Array, ""] | None
    censoring: Censoring | None = eqx.field(static=True)
    end_time: Float[Array, ""] | None
    interval: tuple[Float[Array, ""], Float[Array, ""]] | None
    t_max: Float[Array, ""] | None

    def __init__(
        self,
        crossing: Crossing,
        time=None,
        noise: AbstractNoise | None = None,
        *,
        censoring: Censoring | None = None,
        end_time=None,
        interval=None,
        t_max=None,
    ):
        if not isinstance(crossing, Crossing):
            raise TypeError(
                f"EventTimeObservation: `crossing` must be an oi.Crossing; got {crossing!r}."
            )
        if not isinstance(noise, AbstractNoise):
            raise TypeError(
                "EventTimeObservation: `noise` must be a noise model such as "
                f"oi.Gaussian(0.01); got {noise!r}."
            )
        if not type(noise).continuous:
            raise TypeError(
                f"EventTimeObservation: event times need a continuous noise model "
                f"(Gaussian, LogNormal, StudentT); got {type(noise).__name__}."
            )
        if censoring not in (None, "right", "interval"):
            raise ValueError(
                "EventTimeObservation: `censoring` must be None, 'right' or 'interval'; "
                f"got {censoring!r}."
            )
        self.crossing = crossing
        self.noise = noise
        self.censoring = censoring
        self.time = self.end_time = self.interval = None
        if censoring is None:
            if time is None:
                raise ValueError(
                    "EventTimeObservation: give the observed `time`, or censoring='right' "
                    "with `end_time` when the event was not seen."
                )
            self.time = _finite_time(time, "time")
        elif censoring == "right":
            if end_time is None:
                raise ValueError(
                    "EventTimeObservation: censoring='right' needs `end_time`, the time "
                    "observation ended without seeing the event."
                )
            self.end_time = _finite_time(end_time, "end_time")
        else:
            if interval is None or len(interval) != 2:
                raise ValueError(
                    "EventTimeObservation: censoring='interval' needs `interval=(a, b)`, the "
                    "times between which the event happened."
                )
            a, b = (_finite_time(v, "interval") for v in interval)
            if not float(a) < float(b):
                raise ValueError(
                    f"EventTimeObservation: need a < b in `interval`; got {interval}."
                )
            self.interval = (a, b)
        self.t_max = None if t_max is None else _finite_time(t_max, "t_max")

    def horizon(self, t0) -> Float[Array, ""]:
        """The end of the search for the predicted crossing."""
        if self.t_max is not None:
            return self.t_max
        last = {None: self.time, "right": self.end_time}.get(
            self.censoring, None if self.interval is None else self.interval[1]
        )
        return t0 + 2.0 * (last - t0)

    def log_prob(self, predicted, found, params) -> Float[Array, ""]:
        """The log-likelihood contribution given the predicted crossing time (`found`:
        whether it happened before the horizon). Never NaN."""
        noise = self.noise
        if self.censoring is None:
            assert self.time is not None  # checked in __init__
            safe = jnp.where(found, predicted, self.time)
            value = noise.log_prob(self.time, safe, params)
            return jnp.where(found, value, -jnp.inf)
        if self.censoring == "right":
            assert self.end_time is not None  # checked in __init__
            safe = jnp.where(found, predicted, self.end_time)
            value = noise.log_survival(self.end_time, safe, params)
            return jnp.where(found, value, 0.0)
        assert self.interval is not None  # checked in __init__
        a, b = self.interval
        safe = jnp.where(found, predicted, 0.5 * (a + b))
        log_fb = noise.log_cdf(b, safe, params)
        log_fa = noise.log_cdf(a, safe, params)
        # log(F(b) - F(a)) without cancellation: log F(b) + log1p(-exp(log F(a) - log F(b))).
        value = log_fb + jnp.log1p(-jnp.exp(jnp.minimum(log_fa - log_fb, -1e-300)))
        return jnp.where(found, value, -jnp.inf)
