"""posteriordb's lynx–hare posterior (`hudson_lynx_hare-lotka_volterra`) as an
[`odeinfer.Problem`][] with its priors and published reference posterior: the sampling
benchmark the examples, the tests and `benchmarks/nuts_lynx_hare.py` share (the data and
the reference means ship in `odeinfer/data/`)."""

import json
import pathlib
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .._likelihood import Problem
from .._model import ODEModel
from .._observations import Experiment, LogNormal
from .._parameters import Parameters, Positive

_DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
_NAMES = ("theta1", "theta2", "theta3", "theta4", "z1", "z2", "sigma1", "sigma2")
# A point in the bulk of the posterior (posteriordb's reference means, rounded).
_INIT = {
    "theta1": 0.55,
    "theta2": 0.028,
    "theta3": 0.8,
    "theta4": 0.024,
    "z1": 33.0,
    "z2": 6.0,
    "sigma1": 0.25,
    "sigma2": 0.25,
}


class PosteriorBenchmark(NamedTuple):
    """A posterior to sample, with its published reference.

    - `problem`: the likelihood, an [`odeinfer.Problem`][].
    - `priors`: name -> numpyro distribution, for [`odeinfer.sample`][].
    - `init`: a point in the bulk of the posterior.
    - `names`: the parameter names, in posteriordb's order.
    - `reference`: `{"mean": {name: value}, "mcse_mean": {name: value}}`, posteriordb's
        reference posterior means and their Monte Carlo standard errors.
    - `data`: posteriordb's data, as read from its JSON.
    """

    problem: Problem
    priors: dict[str, dist.Distribution]
    init: dict[str, float]
    names: tuple[str, ...]
    reference: dict[str, dict[str, float]]
    data: dict[str, Any]


def _lotka_volterra(t, z, p):
    u, v = z[0], z[1]
    return jnp.stack(
        [(p["theta1"] - p["theta2"] * v) * u, (-p["theta3"] + p["theta4"] * u) * v]
    )


def lynx_hare(
    rtol: float = 1e-6, atol: float = 1e-6, max_steps: int = 4096
) -> PosteriorBenchmark:
    """posteriordb's `hudson_lynx_hare-lotka_volterra`: Hudson's Bay Company hare and
    lynx pelts 1900–1920 under a Lotka–Volterra model.

    The model is `du/dt = (θ₁ − θ₂ v) u`, `dv/dt = (−θ₃ + θ₄ u) v` from
    `(u, v)(0) = (z₁, z₂)`; the pelts at t = 1..20 and the initial counts at t = 0 are
    log-normal around the states, each species with its own scale `σ`. The priors are
    posteriordb's: `θ₁, θ₃ ~ N⁺(1, 0.5)`, `θ₂, θ₄ ~ N⁺(0.05, 0.05)`,
    `z ~ LogNormal(log 10, 1)`, `σ ~ LogNormal(−1, 1)`.

    **Arguments:** the solver tolerances and step bound of the problem (posteriordb's
    Stan model solves at `rtol = 1e-5`, `atol = 1e-3`).

    **Returns:** a [`odeinfer.benchmarking.PosteriorBenchmark`][].
    """
    data = json.loads((_DATA / "hudson_lynx_hare-lotka_volterra.json").read_text())
    reference = json.loads(
        (_DATA / "hudson_lynx_hare-lotka_volterra.reference_mean.json").read_text()
    )
    times = np.concatenate([[0.0], np.asarray(data["ts"], float)])
    pelts = np.concatenate(
        [np.asarray(data["y_init"], float)[None], np.asarray(data["y"], float)]
    )
    experiment = Experiment(
        times,
        pelts,
        observables={"hare": lambda t, z, p: z[0], "lynx": lambda t, z, p: z[1]},
        noise=[LogNormal("sigma1"), LogNormal("sigma2")],
        y0=lambda p: jnp.stack([p["z1"], p["z2"]]),
        t0=0.0,
    )
    parameters = Parameters({n: Positive(init=_INIT[n]) for n in _NAMES})
    problem = Problem(
        ODEModel(_lotka_volterra, name="lotka_volterra"),
        experiment,
        parameters,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
    )
    # posteriordb: theta ~ normal(.) T[0,] (its <lower=0> declaration truncates).
    priors = {
        "theta1": dist.TruncatedNormal(1.0, 0.5, low=0.0),
        "theta2": dist.TruncatedNormal(0.05, 0.05, low=0.0),
        "theta3": dist.TruncatedNormal(1.0, 0.5, low=0.0),
        "theta4": dist.TruncatedNormal(0.05, 0.05, low=0.0),
        "z1": dist.LogNormal(jnp.log(10.0), 1.0),
        "z2": dist.LogNormal(jnp.log(10.0), 1.0),
        "sigma1": dist.LogNormal(-1.0, 1.0),
        "sigma2": dist.LogNormal(-1.0, 1.0),
    }
    return PosteriorBenchmark(
        problem=problem,
        priors=priors,
        init=dict(_INIT),
        names=_NAMES,
        reference={
            key: dict(zip(_NAMES, reference[key], strict=True))
            for key in ("mean", "mcse_mean")
        },
        data=data,
    )
