"""PEtab objective priors: their log density (as PEtab v1 defines them: the
`parameterScale*` types on the parameter scale, the others on the linear value), and
numpyro distributions for sampling on the parameter scale."""

import math

import jax.numpy as jnp
import numpyro.distributions as dist
import pandas as pd
from petab.v1 import C

from ._errors import PEtabError
from ._layout import Layout
from ._tables import split


def _entries(frame: pd.DataFrame, layout: Layout):
    for i, pid in enumerate(layout.estimated):
        row = frame.loc[pid]
        kind = row.get(C.OBJECTIVE_PRIOR_TYPE)
        if not isinstance(kind, str) or not kind.strip():
            continue
        a, b = split(row.get(C.OBJECTIVE_PRIOR_PARAMETERS))
        yield i, pid, kind.strip(), float(a), float(b)


def _log_density(kind: str, a: float, b: float, x, lin):
    if kind == "parameterScaleNormal":
        return dist.Normal(a, b).log_prob(x)
    if kind == "parameterScaleLaplace":
        return dist.Laplace(a, b).log_prob(x)
    if kind == "parameterScaleUniform":
        return jnp.where((x >= a) & (x <= b), -math.log(b - a), -jnp.inf)
    if kind == "normal":
        return dist.Normal(a, b).log_prob(lin)
    if kind == "laplace":
        return dist.Laplace(a, b).log_prob(lin)
    if kind == "uniform":
        return jnp.where((lin >= a) & (lin <= b), -math.log(b - a), -jnp.inf)
    if kind == "logNormal":
        return dist.LogNormal(a, b).log_prob(lin)
    if kind == "logLaplace":
        return dist.Laplace(a, b).log_prob(jnp.log(lin)) - jnp.log(lin)
    raise PEtabError(f"unknown objectivePriorType {kind!r}")  # checked at read


def log_prior_fn(frame: pd.DataFrame, layout: Layout):
    entries = list(_entries(frame, layout))
    code = layout.scale_code

    def log_prior(x):
        total = jnp.zeros(())
        for i, _, kind, a, b in entries:
            lin = jnp.where(
                code[i] == 1, jnp.exp(x[i]), jnp.where(code[i] == 2, 10.0 ** x[i], x[i])
            )
            total = total + _log_density(kind, a, b, x[i], lin)
        return total

    return log_prior


def numpyro_priors(frame: pd.DataFrame, layout: Layout) -> dict:
    out = {}
    given = {pid: (kind, a, b) for _, pid, kind, a, b in _entries(frame, layout)}
    for i, pid in enumerate(layout.estimated):
        lo, hi = float(layout.lower[i]), float(layout.upper[i])
        if pid not in given:
            out[pid] = dist.Uniform(lo, hi)
            continue
        kind, a, b = given[pid]
        # Within the bounds, as the fits are: truncated (numpyro's truncation).
        if kind in ("parameterScaleNormal", "parameterScaleLaplace"):
            base = (
                dist.Normal(a, b)
                if kind == "parameterScaleNormal"
                else dist.Laplace(a, b)
            )
            out[pid] = dist.TruncatedDistribution(base, low=lo, high=hi)
        elif kind == "parameterScaleUniform":
            out[pid] = dist.Uniform(max(a, lo), min(b, hi))
        elif layout.scales[i] == "lin" and kind in ("normal", "laplace"):
            base = dist.Normal(a, b) if kind == "normal" else dist.Laplace(a, b)
            out[pid] = dist.TruncatedDistribution(base, low=lo, high=hi)
        elif layout.scales[i] == "lin" and kind == "uniform":
            out[pid] = dist.Uniform(max(a, lo), min(b, hi))
        else:
            raise PEtabError(
                f"PEtabProblem.priors: parameter {pid!r} has an objective prior "
                f"{kind!r} on the linear value but is estimated on the "
                f"{layout.scales[i]} scale; give `oi.sample` your own prior for it "
                "(a numpyro distribution of the scaled value)."
            )
    return out
