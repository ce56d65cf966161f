"""One NUTS or HMC transition, assembled from numpyro's own pieces (`build_tree`,
`velocity_verlet`, `warmup_adapter`, `momentum_generator`) so that the trajectory is
visible: a transition that ended at a failed solve reports it, with the point.

numpyro's `hmc` sample kernel runs the same steps but returns only the new state; a
failed solve gives a potential of `+inf` with gradient exactly 0 (see
`odeinfer._density.masked_potential`), which ends the trajectory as a divergence at
that leaf, one of the tree's two edges. Its initial state is numpyro's `init_kernel`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import random
from numpyro.infer.hmc import HMCState, hmc, momentum_generator
from numpyro.infer.hmc_util import (
    IntegratorState,
    build_tree,
    euclidean_kinetic_energy,
    velocity_verlet,
    warmup_adapter,
)

_MAX_DELTA_ENERGY = 1000.0  # numpyro's divergence threshold


class KernelSettings(NamedTuple):
    """The static settings of a kernel (hashable: they select the compiled program)."""

    algo: str  # "NUTS" or "HMC"
    num_warmup: int
    target_accept_prob: float
    max_tree_depth: int
    dense_mass: bool
    num_steps: int | None
    trajectory_length: float | None


class Transition(NamedTuple):
    state: HMCState
    failed: jax.Array  # the trajectory ended at a failed evaluation
    failed_at: jax.Array  # that point (unconstrained); meaningless unless `failed`


def initial_state(
    potential_fn: Callable, settings: KernelSettings, u0, key
) -> HMCState:
    """numpyro's initial HMC state at `u0` (step size found by its heuristic)."""
    init_kernel, _ = hmc(potential_fn=potential_fn, algo=settings.algo)
    options = {}
    if settings.algo == "HMC":
        options["num_steps"] = settings.num_steps
        if settings.trajectory_length is not None:
            options["trajectory_length"] = settings.trajectory_length
    return init_kernel(
        u0,
        settings.num_warmup,
        rng_key=key,
        dense_mass=settings.dense_mass,
        target_accept_prob=settings.target_accept_prob,
        max_tree_depth=settings.max_tree_depth,
        **options,
    )


def _is_failed(grad) -> jax.Array:
    return jnp.all(grad == 0.0)


def transition(
    potential_fn: Callable, settings: KernelSettings, state: HMCState
) -> Transition:
    """One transition from `state`, with the window adaptation of numpyro's `hmc`
    during the first `num_warmup` iterations."""
    kinetic_fn = euclidean_kinetic_energy
    _, vv_update = velocity_verlet(potential_fn, kinetic_fn)
    _, wa_update = warmup_adapter(
        settings.num_warmup,
        adapt_step_size=True,
        adapt_mass_matrix=True,
        dense_mass=settings.dense_mass,
        target_accept_prob=settings.target_accept_prob,
        find_reasonable_step_size=None,
        regularize_mass_matrix=True,
    )
    adapt = state.adapt_state
    rng_key, key_momentum, key_transition = random.split(state.rng_key, 3)
    r = momentum_generator(state.z, adapt.mass_matrix_sqrt, key_momentum)
    start = IntegratorState(state.z, r, state.potential_energy, state.z_grad)
    if settings.algo == "NUTS":
        tree = build_tree(
            vv_update,
            kinetic_fn,
            start,
            adapt.inverse_mass_matrix,
            adapt.step_size,
            key_transition,
            max_delta_energy=_MAX_DELTA_ENERGY,
            max_tree_depth=settings.max_tree_depth,
        )
        accept_prob = tree.sum_accept_probs / tree.num_proposals
        num_steps = tree.num_proposals
        new = IntegratorState(
            tree.z_proposal, r, tree.z_proposal_pe, tree.z_proposal_grad
        )
        energy = tree.z_proposal_energy
        diverging = tree.diverging
        left, right = _is_failed(tree.z_left_grad), _is_failed(tree.z_right_grad)
        failed = diverging & (left | right)
        failed_at = jnp.where(left, tree.z_left, tree.z_right)
    else:
        step_size = adapt.step_size
        if settings.num_steps is not None:
            num_steps = settings.num_steps
        else:
            num_steps = jnp.maximum(
                jnp.ceil(state.trajectory_length / step_size).astype(int), 1
            )
        if state.trajectory_length is not None:
            step_size = state.trajectory_length / num_steps

        def leapfrog(i, carry):
            vv_state, failed, failed_at = carry
            vv_state = vv_update(step_size, adapt.inverse_mass_matrix, vv_state)
            now = _is_failed(vv_state.z_grad) & ~failed
            return (
                vv_state,
                failed | now,
                jnp.where(now, vv_state.z, failed_at),
            )

        proposal, failed, failed_at = jax.lax.fori_loop(
            0, num_steps, leapfrog, (start, jnp.array(False), state.z)
        )
        energy_old = start.potential_energy + kinetic_fn(
            adapt.inverse_mass_matrix, start.r
        )
        energy_new = proposal.potential_energy + kinetic_fn(
            adapt.inverse_mass_matrix, proposal.r
        )
        delta = energy_new - energy_old
        delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
        accept_prob = jnp.clip(jnp.exp(-delta), None, 1.0)
        diverging = delta > _MAX_DELTA_ENERGY
        accept = random.bernoulli(key_transition, accept_prob)
        new, energy = jax.tree.map(
            lambda a, b: jnp.where(accept, a, b),
            (proposal, energy_new),
            (start, energy_old),
        )
    warming = state.i < settings.num_warmup
    adapt = jax.lax.cond(
        warming,
        lambda: wa_update(state.i, accept_prob, new, adapt),
        lambda: adapt,
    )
    i = state.i + 1
    n = jnp.where(warming, i, i - settings.num_warmup)
    mean_accept_prob = (
        state.mean_accept_prob + (accept_prob - state.mean_accept_prob) / n
    )
    new_state = HMCState(
        i,
        new.z,
        new.z_grad,
        new.potential_energy,
        energy,
        None,
        state.trajectory_length,
        jnp.asarray(num_steps, state.num_steps.dtype),
        accept_prob,
        mean_accept_prob,
        diverging,
        adapt,
        rng_key,
    )
    return Transition(new_state, failed, failed_at)
