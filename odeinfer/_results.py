"""Result codes of odeinfer solves (an extension of `diffrax.RESULTS`)."""

import diffrax


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """Why a solve ended. `RESULTS.successful` means it reached `t1` (or a terminal
    crossing) with every requested quantity computed. Read `solution.result` under
    `jax.vmap` with `throw=False`; with `throw=True` a failure raises with the message.
    """

    event_buffer_full = (
        "More events occurred than `max_events` can record, so later events were lost. "
        "Increase `max_events`."
    )
    tangent_crossing = (
        "A crossing was tangent: the crossing function's time derivative is zero to "
        "within solver tolerance, so the event time (and its derivative) is undefined. "
        "Move the level, or tighten `rtol`/`atol` if the crossing is real."
    )
    nonfinite_state = (
        "The state became non-finite (NaN or inf). Check the parameters (the solution may "
        "blow up in finite time) or use a stiff solver such as `diffrax.Kvaerno5()`."
    )
    invalid_input = (
        "Invalid traced input: need t0 < t1, finite y0 and params, rtol > 0 and atol > 0. "
        "(Outside `jax.jit` these are reported as ValueErrors naming the argument.)"
    )


def is_successful(result: RESULTS):
    """`True` where the solve succeeded (a terminating event counts as success)."""
    return (result == RESULTS.successful) | (result == RESULTS.event_occurred)
