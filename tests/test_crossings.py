"""`first_crossing` and `all_crossings` against closed forms and scipy's `solve_ivp`
events, and their derivatives against closed forms and central finite differences."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _references import (
    logistic_crossing_time,
    spring_params,
    spring_scipy_crossings,
    spring_y0,
)

import odeinfer as oi

REVERSE = diffrax.RecursiveCheckpointAdjoint()  # the default adjoint

LN4 = np.log(4.0)
TIGHT = dict(rtol=1e-10, atol=1e-12)
N_SPRING = 19  # crossings of |r| = 0.85 in (0, 5) (scipy finds 19; checked below)


def _logistic_time(logistic, k, y0, adjoint=REVERSE):
    crossing = oi.Crossing(logistic.crossing_fn, 0.8)
    hit = oi.first_crossing(
        logistic.model,
        y0,
        {"k": k},
        crossing,
        t0=0.0,
        t1=1000.0,
        adjoint=adjoint,
        **TIGHT,
    )
    return hit.time


# --- logistic --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0.01, 0.05])
def test_logistic_first_crossing_closed_form(logistic, k):
    crossing = oi.Crossing(logistic.crossing_fn, 0.8)
    hit = oi.first_crossing(
        logistic.model, jnp.array(0.5), {"k": jnp.array(k)}, crossing, t0=0.0, t1=1000.0
    )
    assert bool(hit.found)
    assert hit.result == oi.RESULTS.successful
    np.testing.assert_allclose(hit.time, LN4 / k, rtol=1e-7)  # = 100 ln 4 at k = 0.01
    np.testing.assert_allclose(hit.state, 0.8, rtol=1e-9)
    np.testing.assert_allclose(hit.slope, k * 0.8 * 0.2, rtol=1e-7)


def test_logistic_not_found(logistic):
    crossing = oi.Crossing(logistic.crossing_fn, 0.8)
    hit = oi.first_crossing(
        logistic.model,
        jnp.array(0.5),
        {"k": jnp.array(0.01)},
        crossing,
        t0=0.0,
        t1=100.0,
    )
    assert not bool(hit.found)
    assert np.isinf(hit.time)
    assert hit.result == oi.RESULTS.successful


def test_logistic_time_gradient_reverse_mode(logistic):
    k, y0 = jnp.array(0.01), jnp.array(0.5)
    dk, dy0 = jax.grad(lambda k, y0: _logistic_time(logistic, k, y0), argnums=(0, 1))(
        k, y0
    )
    np.testing.assert_allclose(dk, -LN4 / 0.01**2, rtol=1e-7)
    # t* = ln(4 (1 - y0) / y0) / k  =>  dt*/dy0 = -1 / (k y0 (1 - y0))
    np.testing.assert_allclose(dy0, -1.0 / (0.01 * 0.25), rtol=1e-7)


def test_logistic_time_jacobian_forward_mode(logistic):
    k, y0 = jnp.array(0.02), jnp.array(0.3)
    dk, dy0 = jax.jacfwd(
        lambda k, y0: _logistic_time(logistic, k, y0, diffrax.ForwardMode()),
        argnums=(0, 1),
    )(k, y0)
    np.testing.assert_allclose(
        dk, -logistic_crossing_time(0.8, 0.3, 0.02) / 0.02, rtol=1e-7
    )
    np.testing.assert_allclose(dy0, -1.0 / (0.02 * 0.3 * 0.7), rtol=1e-7)


# --- spring pendulum against scipy ------------------------------------------------------


def _spring_crossings(spring, level=0.85, direction="either", z0=0.7, k=250.0, **kw):
    crossing = oi.Crossing(spring.crossing_fn, level, direction=direction)
    options = dict(TIGHT, max_events=24)
    options.update(kw)
    return oi.all_crossings(
        spring.model,
        spring_y0(z0),
        spring_params(k),
        crossing,
        t0=0.0,
        t1=5.0,
        **options,
    )


def test_spring_all_crossings_match_scipy(spring):
    reference = spring_scipy_crossings(0.85)
    assert len(reference) == N_SPRING
    out = _spring_crossings(spring)
    assert out.result == oi.RESULTS.successful
    assert int(out.count) == N_SPRING
    np.testing.assert_array_equal(out.mask, np.arange(24) < N_SPRING)
    np.testing.assert_allclose(out.times[:N_SPRING], reference, rtol=0, atol=1e-8)
    assert np.all(np.isinf(out.times[N_SPRING:]))
    radius = np.linalg.norm(np.asarray(out.states)[:N_SPRING, :3], axis=1)
    np.testing.assert_allclose(radius, 0.85, atol=1e-9)
    # slopes alternate in sign for an "either" crossing that goes in and out.
    assert np.all(np.sign(out.slopes[:N_SPRING:2]) == 1)
    assert np.all(np.sign(out.slopes[1:N_SPRING:2]) == -1)


def test_spring_first_crossing_matches_scipy(spring):
    reference = spring_scipy_crossings(0.85)[0]
    crossing = oi.Crossing(spring.crossing_fn, 0.85)
    hit = oi.first_crossing(
        spring.model, spring_y0(), spring_params(), crossing, t0=0.0, t1=5.0, **TIGHT
    )
    assert bool(hit.found)
    np.testing.assert_allclose(hit.time, reference, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(hit.state[:3]), 0.85, atol=1e-10)


def _scipy_fd(level, index, *, dz=1e-5, dk=1e-3):
    def at(**kw):
        return spring_scipy_crossings(level, **kw)[index]

    return np.array(
        [
            (at(z0=0.7 + dz) - at(z0=0.7 - dz)) / (2 * dz),
            (at(k=250.0 + dk) - at(k=250.0 - dk)) / (2 * dk),
        ]
    )


def test_spring_crossing_time_jacobian_forward_mode(spring):
    """d(all crossing times)/d(z0, k) by jacfwd vs central differences of odeinfer
    itself at rtol 1e-12 (reusing the primal solve compiled by the test above)
    and of scipy's event times."""

    def times(z0, k, rtol=1e-10, adjoint=REVERSE):
        out = _spring_crossings(
            spring, z0=z0, k=k, rtol=rtol, atol=rtol * 1e-2, adjoint=adjoint
        )
        return out.times[:N_SPRING]

    z0, k = jnp.array(0.7), jnp.array(250.0)
    jz, jk = jax.jacfwd(
        lambda z0, k: times(z0, k, adjoint=diffrax.ForwardMode()), argnums=(0, 1)
    )(z0, k)
    dz, dk = 1e-5, 1e-3

    def tight(z, kk):
        return np.asarray(times(jnp.array(z), jnp.array(kk), rtol=1e-12))

    fd_z = (tight(0.7 + dz, 250.0) - tight(0.7 - dz, 250.0)) / (2 * dz)
    fd_k = (tight(0.7, 250.0 + dk) - tight(0.7, 250.0 - dk)) / (2 * dk)
    np.testing.assert_allclose(jz, fd_z, atol=1e-6 * np.abs(fd_z).max())
    np.testing.assert_allclose(jk, fd_k, atol=1e-6 * np.abs(fd_k).max())
    for index in (0, 4, N_SPRING - 1):
        scipy_fd = _scipy_fd(0.85, index)
        np.testing.assert_allclose([jz[index], jk[index]], scipy_fd, rtol=1e-5)
