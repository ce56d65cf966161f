"""Hypothesis fuzzing of `oi.solve`'s arguments (issue 12): any combination of shapes,
dtypes, NaN/inf, empty and out-of-range values gives a clear exception naming an
argument, or a Solution whose result code says whether it can be used; never a silent
non-finite or out-of-range answer."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import odeinfer as oi

DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
ERRORS = (ValueError, TypeError, KeyError, IndexError)

numbers = st.one_of(
    st.floats(-5.0, 5.0),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e300, -1e-300]),
)


@st.composite
def arguments(draw):
    n = draw(st.integers(0, 3))
    y0 = np.array(draw(st.lists(numbers, min_size=n, max_size=n)))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int32]))
    with np.errstate(all="ignore"):
        y0 = (
            y0.astype(dtype)
            if dtype is not np.int32
            else np.nan_to_num(y0).astype(dtype)
        )
    saveat = draw(
        st.one_of(
            st.none(),
            st.lists(numbers, min_size=0, max_size=3).map(np.array),
            st.just(np.zeros((2, 2))),
        )
    )
    return dict(
        y0=y0,
        params={"k": draw(numbers)},
        t0=draw(numbers),
        t1=draw(numbers),
        saveat=saveat,
        rtol=draw(st.sampled_from([1e-6, 0.0, -1.0, np.nan, 1e-3])),
        max_steps=draw(st.sampled_from([64, 0, -3, 2.5])),
        max_step_size=draw(st.sampled_from([None, 0.5, 0.0, -1.0, np.nan])),
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(arguments())
def test_solve_arguments_fail_loudly_or_succeed_correctly(kwargs):
    y0, params = kwargs.pop("y0"), kwargs.pop("params")
    try:
        sol = oi.solve(DECAY, y0, params, throw=False, **kwargs)
    except ERRORS as error:
        message = str(error)
        assert "`" in message, message  # names the argument it blames
        return
    if not bool(sol.successful):
        assert oi.RESULTS[sol.result]  # a named code with a message
        return
    t0, t1 = float(kwargs["t0"]), float(kwargs["t1"])
    assert np.all(np.isfinite(sol.y_final))
    assert float(sol.t_final) == pytest.approx(t1)
    exact = np.asarray(y0, dtype=float) * np.exp(-params["k"] * (t1 - t0))
    assert np.allclose(sol.y_final, exact, rtol=1e-3, atol=1e-6)
    if sol.ys is not None:
        assert np.all(np.isfinite(sol.ys))
        assert np.all((np.asarray(sol.ts) >= t0) & (np.asarray(sol.ts) <= t1))
