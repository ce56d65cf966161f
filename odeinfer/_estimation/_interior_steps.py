"""The trust-region step of `InteriorTrustRegion` (Coleman & Li 1996, as in Fides,
Fröhlich & Sorger 2022): the subproblem in the affine-scaled space on a two-dimensional
Newton/gradient subspace, stepped back to `theta` of the way to the nearest bound, and
the alternatives Fides weighs when the step hits a bound (a gradient step and repeated
reflections at the bounds), the best by the value of the quadratic model.

Fixed shapes throughout (every candidate is computed, the ones Fides would not form
are masked out), so a step compiles once and vmaps. The subproblems are at most
two-dimensional: closed forms and a safeguarded Newton iteration on the secular
equation, in jnp (lineax solves linear systems, not trust-region subproblems).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

_EPS = float(jnp.finfo(jnp.float64).eps)


class Step(NamedTuple):
    """A candidate step from `x` (`s` in the parameters, `ss` in the scaled space),
    after `s0`/`ss0` already taken (reflections), stepped back by `alpha`; `og_s`,
    `og_ss` before stepping back; `min_ratio` the fraction of `og_s` to the nearest
    bound, `hit` the parameters whose bound that is; `qp` the quadratic model."""

    s: Float[Array, " n"]
    ss: Float[Array, " n"]
    s0: Float[Array, " n"]
    ss0: Float[Array, " n"]
    og_s: Float[Array, " n"]
    og_ss: Float[Array, " n"]
    alpha: Float[Array, ""]
    min_ratio: Float[Array, ""]
    hit: Bool[Array, " n"]
    qp: Float[Array, ""]


def quadratic(b, g, s) -> Float[Array, ""]:
    return 0.5 * s @ b @ s + g @ s


def _normalise(v):
    norm = jnp.linalg.norm(v)
    return jnp.where(norm > 0, v / jnp.where(norm > 0, norm, 1.0), v)


def _boundary_1d(b, g, u, ss0, delta):
    """The `t` with ‖ss0 + t·u‖ = delta of lower model value (Fides'
    `get_1d_trust_region_boundary_solution`)."""
    a = u @ u
    bb = 2 * ss0 @ u
    c = ss0 @ ss0 - delta**2
    root = jnp.sqrt(jnp.maximum(bb**2 - 4 * a * c, 0.0))
    aux = bb + jnp.where(bb >= 0, root, -root)
    safe_aux = jnp.where(aux == 0, 1.0, aux)
    t1 = -aux / (2 * jnp.where(a == 0, 1.0, a))
    t2 = jnp.where(aux == 0, 0.0, -2 * c / safe_aux)
    q1 = quadratic(b, g, ss0 + t1 * u)
    q2 = quadratic(b, g, ss0 + t2 * u)
    return jnp.where(q1 <= q2, t1, t2)


def solve_1d(b, g, u, delta, ss0) -> Float[Array, ""]:
    """Minimise the model along `ss0 + t·u` within ‖·‖ ≤ delta."""
    a = 0.5 * u @ b @ u
    slope = u @ (b @ ss0 + g)
    minq = -slope / (2 * jnp.where(a == 0, 1.0, a))
    interior = (a > 0) & (jnp.linalg.norm(minq * u + ss0) <= delta)
    tau = jnp.where(interior, minq, _boundary_1d(b, g, u, ss0, delta))
    degenerate = (delta == 0) | jnp.all(u == 0)
    return jnp.where(degenerate, 0.0, tau)


def solve_nd(b, g, delta) -> Float[Array, " k"]:
    """The exact trust-region subproblem min ½sᵀBs + gᵀs, ‖s‖ ≤ delta, for a small
    symmetric `b` (here 2×2): eigen-decomposition, then a safeguarded Newton iteration
    on 1/‖s(λ)‖ − 1/delta (Moré & Sorensen 1983), with the hard case."""
    eigenvalues, vectors = jnp.linalg.eigh(b)
    w = -vectors.T @ g
    mineig = eigenvalues[0]

    def s_of(lam, w_):
        shifted = eigenvalues + lam
        return vectors @ jnp.where(
            shifted != 0, w_ / jnp.where(shifted != 0, shifted, 1), 0
        )

    newton_step = s_of(0.0, w)
    interior = (mineig > 0) & (jnp.linalg.norm(newton_step) <= delta + jnp.sqrt(_EPS))
    lo = jnp.maximum(0.0, -mineig)
    hi = lo + jnp.linalg.norm(w) / jnp.maximum(delta, 1e-300) + 1e-300

    def norm_at(lam):
        shifted = eigenvalues + lam
        shifted = jnp.where(shifted > 0, shifted, jnp.inf)
        return jnp.sqrt(jnp.sum((w / shifted) ** 2))

    def secular(lam):
        # φ(λ) = 1/‖s(λ)‖ − 1/Δ increases with λ; its root is the boundary solution.
        return 1 / jnp.maximum(norm_at(lam), 1e-300) - 1 / delta

    def body(_, carry):
        lam, left, right = carry
        value = secular(lam)
        left = jnp.where(value < 0, lam, left)
        right = jnp.where(value >= 0, lam, right)
        slope = jax.grad(secular)(lam)
        proposal = lam - value / jnp.where(slope > 0, slope, 1.0)
        inside = (slope > 0) & (proposal > left) & (proposal < right)
        return jnp.where(inside, proposal, 0.5 * (left + right)), left, right

    start = 0.5 * (lo + hi)
    lam, _, _ = jax.lax.fori_loop(0, 60, body, (start, lo, hi))
    boundary = s_of(lam, w)
    # The hard case: the component along the lowest eigenvector is (numerically) zero
    # and the rest of the step is shorter than delta at λ = −λ_min.
    reduced = jnp.where(eigenvalues - mineig == 0, 0.0, w)
    hard_step = s_of(-mineig, reduced)
    sigma = jnp.sqrt(jnp.maximum(delta**2 - hard_step @ hard_step, 0.0))
    hard = (
        (mineig <= 0)
        & (jnp.abs(w[0]) <= _EPS * jnp.linalg.norm(w))
        & (jnp.linalg.norm(hard_step) <= delta)
    )
    hard_step = hard_step + sigma * vectors[:, 0]
    out = jnp.where(interior, newton_step, jnp.where(hard, hard_step, boundary))
    return jnp.where(delta == 0, jnp.zeros_like(out), out)


def _step_back(x, s, lower, upper, theta):
    """The fraction of `s` to the nearest bound from `x`, the parameters that reach it
    first, and `alpha = min(1, theta · fraction)`."""
    nonzero = s != 0
    safe = jnp.where(nonzero, s, 1.0)
    ratio = jnp.where(
        nonzero, jnp.maximum((upper - x) / safe, (lower - x) / safe), jnp.inf
    )
    min_ratio = jnp.min(ratio)
    hit = (ratio == min_ratio) & jnp.isfinite(ratio)
    alpha = jnp.minimum(1.0, theta * min_ratio)
    return alpha, min_ratio, hit


def _finish(x, ss, ss0, s0, scaling, shess, sg, lower, upper, theta) -> Step:
    s = scaling * ss
    alpha, min_ratio, hit = _step_back(x + s0, s, lower, upper, theta)
    return Step(
        s=alpha * s,
        ss=alpha * ss,
        s0=s0,
        ss0=ss0,
        og_s=s,
        og_ss=ss,
        alpha=alpha,
        min_ratio=min_ratio,
        hit=hit,
        qp=quadratic(shess, sg, alpha * ss + ss0),
    )


def _along(u, x, ss0, s0, scaling, shess, sg, delta, lower, upper, theta) -> Step:
    tau = solve_1d(shess, sg, u, delta, ss0)
    return _finish(x, tau * u, ss0, s0, scaling, shess, sg, lower, upper, theta)


def _reflected(step: Step, x, scaling, shess, sg, delta, lower, upper, theta) -> Step:
    """From where `step` meets its bound, on along its direction reflected there."""
    reach = jnp.minimum(step.min_ratio, 1.0)
    s0 = reach * step.og_s + step.s0
    ss0 = reach * step.og_ss + step.ss0
    u = _normalise(jnp.where(step.hit, -step.og_ss, step.og_ss))
    return _along(u, x, ss0, s0, scaling, shess, sg, delta, lower, upper, theta)


def trust_region_step(x, grad, hess, scaling, delta, dv, theta, lower, upper) -> Step:
    """Fides' `trust_region` with its defaults (two-dimensional subspace, stepback
    strategy `reflect`): the subspace step, and where it is stepped back, the gradient
    step and up to n reflections; the one with the lowest model value."""
    n = x.shape[0]
    zeros = jnp.zeros_like(x)
    sg = scaling * grad
    shess = scaling[:, None] * hess * scaling[None, :] + jnp.diag(jnp.abs(grad) * dv)
    eigenvalues, vectors = jnp.linalg.eigh(shess)
    scale = jnp.max(jnp.abs(eigenvalues))
    posdef = eigenvalues[0] > -_EPS * scale
    # `lstsq`: the pseudo-inverse, singular values below eps · largest dropped.
    keep = jnp.abs(eigenvalues) > _EPS * n * scale
    inverse = jnp.where(keep, 1 / jnp.where(keep, eigenvalues, 1.0), 0.0)
    newton = -(vectors @ (inverse * (vectors.T @ sg)))
    newton_inside = posdef & (jnp.linalg.norm(newton) < delta)
    first = _normalise(jnp.where(posdef, newton, vectors[:, 0]))
    second = jnp.where(posdef, sg, scaling * (jnp.sign(sg) + (sg == 0)))
    second = second - first * (first @ second)
    two_d = (~newton_inside) & (jnp.linalg.norm(second) > _EPS) & (n > 1)
    second = _normalise(second)
    subspace = jnp.stack([first, second], axis=1)
    coefficients = solve_nd(subspace.T @ shess @ subspace, subspace.T @ sg, delta)
    ss_2d = subspace @ coefficients
    ss_1d = solve_1d(shess, sg, first, delta, zeros) * first
    ss = jnp.where(two_d, ss_2d, ss_1d)
    tr = _finish(x, ss, zeros, zeros, scaling, shess, sg, lower, upper, theta)
    if n == 1:
        return tr
    stepped_back = tr.alpha < 1.0
    gradient = _along(
        _normalise(sg), x, zeros, zeros, scaling, shess, sg, delta, lower, upper, theta
    )
    best = jax.tree.map(
        lambda a, b: jnp.where(stepped_back & (gradient.qp < tr.qp), b, a), tr, gradient
    )

    def reflect(_, carry):
        best, previous, active = carry
        step = _reflected(previous, x, scaling, shess, sg, delta, lower, upper, theta)
        better = active & (step.qp < best.qp)
        best = jax.tree.map(lambda a, b: jnp.where(better, b, a), best, step)
        return best, step, active & (step.alpha < 1.0)

    best, _, _ = jax.lax.fori_loop(0, n, reflect, (best, tr, stepped_back))
    return best
