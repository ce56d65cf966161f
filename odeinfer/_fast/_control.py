"""Step-size control: Hairer's error norm, PI controller and initial step.

From Hairer's `dopri5.f` (Hairer, Nørsett, Wanner, *Solving ODEs I*, sec. II.4): the
root-mean-square error scaled by `atol + rtol * max(|y|, |y1|)` (with sensitivities in
the error test, its largest value over the state and sensitivity rows, as in CVODES),
the PI controller with `beta = 0.04` (Gustafsson's "Lund stabilisation"), safety factor 0.9 and step
ratios h_new / h in [0.2, 10] (no growth right after a rejection), and the initial-step
heuristic `hinit` (one extra evaluation of the vector field).
"""

import jax.numpy as jnp

SAFETY = 0.9
BETA = 0.04
EXPONENT = 0.2 - 0.75 * BETA
MIN_FACTOR = 0.2  # smallest ratio h_new / h (dopri5.f: fac1)
MAX_FACTOR = 10.0  # largest ratio h_new / h (dopri5.f: fac2)
FACOLD_FLOOR = 1e-4


def error_norm(error, y, y1, rtol, atol):
    """`sqrt(mean((error / (atol + rtol * max(|y|, |y1|)))^2))`."""
    scale = atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1))
    return jnp.sqrt(jnp.mean(jnp.square(error / scale)))


def sensitivity_error_norm(error, Y, Y1, rtol, atol):
    """CVODES's norm with sensitivities in the error test (`CVodeSetSensErrCon`, with
    `rtol_S = rtol`, `atol_S = atol` as AMICI sets them): the largest of the rows'
    `error_norm`s, state and each sensitivity direction alike. Not the RMS over all
    rows: with it, each row's error was averaged with the others', so its control
    loosened with the number of directions (Brannmark's 25 directions: a row could
    hold 5x the tolerance); there its gradient error at rtol = atol = 1e-8 was 3.5e-5
    (3.5x the steps of the state's control), with this 4.1e-6 (4.9x)."""
    scale = atol + rtol * jnp.maximum(jnp.abs(Y), jnp.abs(Y1))
    return jnp.max(jnp.sqrt(jnp.mean(jnp.square(error / scale), axis=-1)))


def propose_step(h, err, facold, rejected_last):
    """PI control. **Returns:** `(accept, h_next, facold_next)`."""
    fac11 = err**EXPONENT
    accept = err <= 1.0
    # Accepted: h / clip((err^e / facold^beta) / safety, 1/MAX_FACTOR, 1/MIN_FACTOR).
    fac = jnp.clip(fac11 / facold**BETA / SAFETY, 1 / MAX_FACTOR, 1 / MIN_FACTOR)
    h_accept = h / fac
    h_accept = jnp.where(rejected_last, jnp.minimum(h_accept, h), h_accept)
    # Rejected: shrink by err^e / safety, at most by MIN_FACTOR; a non-finite error
    # (overflow in a trial stage) shrinks by MIN_FACTOR.
    shrink = jnp.where(
        jnp.isfinite(err), jnp.minimum(1 / MIN_FACTOR, fac11 / SAFETY), 1 / MIN_FACTOR
    )
    h_reject = h / shrink
    h_next = jnp.where(accept, h_accept, h_reject)
    facold_next = jnp.where(accept, jnp.maximum(err, FACOLD_FLOOR), facold)
    return accept, h_next, facold_next


def initial_step(f, t0, y0, f0, t1, rtol, atol):
    """Hairer's `hinit` for a 5th-order method, capped at `t1 - t0`."""
    scale = atol + rtol * jnp.abs(y0)
    d0 = jnp.sqrt(jnp.mean(jnp.square(y0 / scale)))
    d1 = jnp.sqrt(jnp.mean(jnp.square(f0 / scale)))
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    span = t1 - t0
    h0 = jnp.minimum(h0, span)
    f1 = f(t0 + h0, y0 + h0 * f0)
    d2 = jnp.sqrt(jnp.mean(jnp.square((f1 - f0) / scale))) / h0
    dmax = jnp.maximum(d1, d2)
    h1 = jnp.where(
        dmax <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.where(dmax <= 1e-15, 1.0, dmax)) ** (1 / 5),
    )
    h = jnp.minimum(jnp.minimum(100 * h0, h1), span)
    ok = jnp.isfinite(h) & (h > 0)
    return jnp.where(ok, h, 1e-6 * span)
