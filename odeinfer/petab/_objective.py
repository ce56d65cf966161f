"""The PEtab log-likelihood and standardised residuals from a `Simulator`'s
predictions.

Conventions are AMICI's and pyPESTO's, so values compare directly: natural log,
normalisation constants included, and for log/log10 observables the density of the
measurement itself (the Jacobian term −log(y) or −log(y·ln 10))."""

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._groups import positions
from ._likelihood import Simulator


def log_density(
    transformation: str, distribution: str, data, simulation, sigma
) -> Array:
    """The log density of each measurement (natural log, normalised)."""
    if transformation == "log":
        data_t, sim_t, jacobian = jnp.log(data), jnp.log(simulation), -jnp.log(data)
    elif transformation == "log10":
        data_t, sim_t = jnp.log10(data), jnp.log10(simulation)
        jacobian = -jnp.log(data * math.log(10.0))
    else:
        data_t, sim_t, jacobian = data, simulation, 0.0
    r = (data_t - sim_t) / sigma
    if distribution == "laplace":
        return -jnp.log(2.0 * sigma) - jnp.abs(r) + jacobian
    return -0.5 * jnp.log(2.0 * math.pi * sigma**2) - 0.5 * r**2 + jacobian


def log_likelihood_fn(simulator: Simulator) -> Callable:
    """`fn(x) -> (llh, ok)` for the estimated parameters `x` on their scale."""

    def fn(x: Float[Array, " n"]) -> tuple[Float[Array, ""], Bool[Array, ""]]:
        predictions, ok = simulator.predictions(x)
        total = jnp.zeros(())
        for g, (simulation, sigma) in zip(simulator.groups, predictions, strict=True):
            terms = log_density(
                g.observable.transformation,
                g.observable.distribution,
                jnp.asarray(g.rows.measurement),
                simulation,
                sigma,
            )
            total = total + jnp.sum(terms)
        ok = jnp.all(ok) & jnp.isfinite(total)
        return total, ok

    return fn


# Data2Dynamics' constant for the noise residuals (`ar.config.add_c`): with it,
# log(2πσ²) + C > 0 for every σ above exp(-C/2)/√(2π) ≈ 5.5e-12.
SIGMA_RESIDUAL_CONSTANT = 50.0


def residual_blocks(transformation: str, data, simulation, sigma) -> Array:
    """The standardised residual of each measurement on the transformed scale."""
    if transformation == "log":
        return (jnp.log(data) - jnp.log(simulation)) / sigma
    if transformation == "log10":
        return (jnp.log10(data) - jnp.log10(simulation)) / sigma
    return (data - simulation) / sigma


def noise_residual_rows(
    simulator: Simulator, sigma_residuals: tuple[str, ...]
) -> np.ndarray:
    """For each noise residual of `residuals_fn`, the index of the data residual of
    the same measurement row (the two blocks are laid out in the same order)."""
    offsets, start = {}, 0
    for oid, rows in simulator.layout.observables.items():
        size = len(np.asarray(rows.measurement))
        offsets[oid] = np.arange(start, start + size)
        start += size
    pairs = [
        offsets[oid] for oid in simulator.layout.observables if oid in sigma_residuals
    ]
    return np.concatenate(pairs) if pairs else np.zeros(0, int)


def fisher_from_noise_residuals(
    r: Float[Array, " m"], jacobian: Float[Array, "m n"], noise_rows: np.ndarray
) -> Float[Array, "n n"]:
    """The Fisher information of Gaussian noise with estimated σ from the residuals of
    `residuals_fn` and their Jacobian, first derivatives only:
    `Σ_i ∇μ_i ∇μ_iᵀ/σ_i² + 2 ∇σ_i ∇σ_iᵀ/σ_i²` (μ on the observable's transformed
    scale). With `e_i = (d_i − μ_i)/σ_i` and the noise residual
    `s_i = sqrt(log(2πσ_i²) + C)`: `∇σ_i/σ_i = s_i ∇s_i` and
    `∇μ_i/σ_i = −∇e_i − e_i ∇σ_i/σ_i`. (The observed information, the Hessian, needs
    second-order sensitivities: compiling it took 13–16 s on Boehm against ~3 s for
    a Jacobian, and 40 ms per evaluation.)"""
    m_data = r.shape[0] - noise_rows.shape[0]
    e, de = r[:m_data], jacobian[:m_data]
    s, ds = r[m_data:], jacobian[m_data:]
    b = s[:, None] * ds  # ∇σ/σ of the rows with a noise residual
    a = -de
    a = a.at[noise_rows].add(-e[noise_rows][:, None] * b)
    return a.T @ a + 2.0 * (b.T @ b)


def residuals_fn(simulator: Simulator, sigma_residuals: tuple[str, ...]) -> Callable:
    """`fn(x) -> (r, ok)`: the standardised residuals of every measurement (observables
    in table order), followed by one noise residual `sqrt(log(2πσ²) + C)` per row of
    each observable in `sigma_residuals` (those whose σ moves with the estimated
    parameters: Data2Dynamics' augmentation, so that ½‖r‖² = −log L + constant with
    estimated σ too). Normal noise only; `ok` is `False` where a solve failed, a residual
    is not finite or a σ is so small that its noise residual does not exist."""

    groups, table_order = simulator.groups, tuple(simulator.layout.observables)
    # The groups' rows laid end to end -> the observables' rows in table order.
    data_order = positions(groups, table_order)
    if np.array_equal(data_order, np.arange(data_order.size)):
        data_order = None
    noise_order = positions(groups, [o for o in table_order if o in sigma_residuals])

    def fn(x: Float[Array, " n"]) -> tuple[Float[Array, " m"], Bool[Array, ""]]:
        predictions, ok = simulator.predictions(x)
        data_parts, sigma_parts = [], []
        for g, (simulation, sigma) in zip(groups, predictions, strict=True):
            data = jnp.asarray(g.rows.measurement)
            data_parts.append(
                residual_blocks(g.observable.transformation, data, simulation, sigma)
            )
            sigma_parts.append(sigma)
        r = jnp.concatenate(data_parts)
        if data_order is not None:
            r = r[data_order]
        if noise_order.size:
            sigma = jnp.concatenate(sigma_parts)[noise_order]
            square = jnp.log(2.0 * math.pi * sigma**2) + SIGMA_RESIDUAL_CONSTANT
            ok = ok & jnp.all(square > 0)
            r = jnp.concatenate([r, jnp.sqrt(jnp.maximum(square, 0.0))])
        return r, jnp.all(ok) & jnp.all(jnp.isfinite(r))

    return fn
