"""Bad input: clear errors naming the argument before any work, and result codes for
traced bad values under `jax.jit`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeinfer as oi


def _field(t, y, p):
    return -p["k"] * y


def _value(t, y, p):
    return y[0]


DECAY = oi.ODEModel(_field, name="decay")
Y0 = jnp.array([1.0, 2.0])
PARAMS = {"k": jnp.array(0.5)}


def _solve(**overrides):
    arguments = dict(model=DECAY, y0=Y0, params=PARAMS, t0=0.0, t1=1.0)
    arguments.update(overrides)
    model, y0, params = (arguments.pop(n) for n in ("model", "y0", "params"))
    return oi.solve(model, y0, params, **arguments)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(t0=1.0, t1=1.0), "`t1` must be greater than `t0`"),
        (dict(t0=2.0, t1=1.0), "`t1` must be greater than `t0`"),
        (dict(t1=np.inf), "`t1` must be finite"),
        (dict(t0=np.nan), "`t0` must be finite"),
        (dict(y0=jnp.array([1.0, np.nan])), "`y0` contains NaN"),
        (dict(params={"k": jnp.array(np.inf)}), r"`params\['k'\]` contains NaN or inf"),
        (dict(rtol=0.0), "`rtol` must be positive"),
        (dict(atol=-1e-10), "`atol` must be positive"),
        (dict(rtol=np.nan), "`rtol` must be positive"),
        (dict(max_events=0), "`max_events` must be an integer"),
        (dict(max_steps=10.5), "`max_steps` must be an integer"),
        (dict(saveat=jnp.array([0.5, 0.2])), "`saveat` times must be sorted"),
        (dict(saveat=jnp.array([0.5, 2.0])), "`saveat` times must lie in"),
        (dict(doses=oi.Dose([-1.0], 1.0)), "`doses`: a dose time"),
        (
            dict(events=oi.Crossing(_value, 0.5), adjoint=diffrax.BacksolveAdjoint()),
            "BacksolveAdjoint",
        ),
    ],
)
def test_bad_values_raise_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        _solve(**overrides)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(model=_field), "`model` must be an odeinfer.ODEModel"),
        (dict(events=[_value]), "`events` must be a Crossing"),
        (dict(doses=[1.0]), "`doses` must be a Dose"),
        (dict(solver="tsit5"), "`solver` must be a solver instance"),
    ],
)
def test_bad_types_raise_type_error(overrides, match):
    with pytest.raises(TypeError, match=match):
        _solve(**overrides)


def test_crossing_returning_a_vector():
    crossing = oi.Crossing(lambda t, y, p: y, 0.5, name="whole_state")
    with pytest.raises(
        ValueError, match=r"Crossing 0 \(whole_state\)\.fn.*must return a scalar"
    ):
        _solve(events=crossing)


def test_vector_field_with_wrong_output_shape():
    model = oi.ODEModel(lambda t, y, p: jnp.sum(y))
    with pytest.raises(ValueError, match="`vector_field` returned .* but the state y0"):
        _solve(model=model)


def test_reset_with_wrong_output_shape():
    crossing = oi.Crossing(_value, 0.5, reset=lambda t, y, p: y[0], name="bad_reset")
    with pytest.raises(ValueError, match=r"Crossing 0 \(bad_reset\)\.reset"):
        _solve(events=crossing)


def test_bad_crossing_and_dose_arguments():
    with pytest.raises(ValueError, match="`direction` must be"):
        oi.Crossing(_value, 0.0, direction="up")
    with pytest.raises(ValueError, match="`level` must be a scalar"):
        oi.Crossing(_value, [0.0, 1.0])
    with pytest.raises(TypeError, match="`fn` must be callable"):
        oi.Crossing(0.5)
    with pytest.raises(ValueError, match="`amounts` has shape"):
        oi.Dose([0.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="`crossing` must be one odeinfer.Crossing"):
        oi.first_crossing(DECAY, Y0, PARAMS, [oi.Crossing(_value)], t0=0.0, t1=1.0)


def _numpy_field(t, y, p):
    return -p["k"] * np.sin(y)


def _numpy_crossing(t, y, p):
    return np.cos(y[0])


def test_numpy_in_vector_field():
    with pytest.raises(oi.NumpyInTracedCodeError, match="jax.numpy") as error:
        _solve(model=oi.ODEModel(_numpy_field))
    assert "_numpy_field" in str(error.value)
    assert isinstance(error.value, TypeError)


def test_numpy_in_crossing_function():
    with pytest.raises(oi.NumpyInTracedCodeError, match="jnp") as error:
        _solve(events=oi.Crossing(_numpy_crossing, 0.5))
    assert "_numpy_crossing" in str(error.value)


def test_python_branch_on_traced_value():
    model = oi.ODEModel(lambda t, y, p: -y if p["k"] > 0 else y)
    with pytest.raises(TypeError, match="jnp.where"):
        _solve(model=model)


def test_max_steps_reached():
    sol = _solve(t1=50.0, max_steps=2, throw=False)
    assert sol.result == oi.RESULTS.max_steps_reached
    assert not bool(sol.successful)
    with pytest.raises(eqx.EquinoxRuntimeError, match="increasing `max_steps`"):
        _solve(t1=50.0, max_steps=2)


def _cosine(t, y, p):
    return jnp.cos(t) * jnp.ones_like(y)


def _state(t, y, p):
    return y


def test_tangent_crossing():
    """y' = cos t, y(0) = 0 touches 1 at t = pi/2; the level 1 - 1e-9 is crossed once
    before t1 = pi/2 with slope ~4.5e-5, tangent to within the tolerance."""
    model = oi.ODEModel(_cosine)
    arguments = dict(model=model, y0=jnp.array(0.0), t1=np.pi / 2, throw=False)
    sol = _solve(events=oi.Crossing(_state, 1 - 1e-9), **arguments)
    assert sol.result == oi.RESULTS.tangent_crossing
    np.testing.assert_allclose(sol.events.times[0], np.pi / 2, atol=1e-3)
    # A transversal crossing of the same function (same compilation) is fine: sin t = 0.5 at pi/6.
    fine = _solve(events=oi.Crossing(_state, 0.5), **arguments)
    assert fine.result == oi.RESULTS.successful
    np.testing.assert_allclose(fine.events.times[0], np.pi / 6, rtol=1e-8)


@jax.jit
def _traced_solve(t1, y0, k, rtol):
    sol = oi.solve(DECAY, y0, {"k": k}, t0=0.0, t1=t1, rtol=rtol, throw=False)
    return sol.result, sol.y_final


@pytest.mark.parametrize(
    "t1, y0, k, rtol",
    [
        (1.0, [1.0, 1.0], 0.5, 1e-8),  # valid: the reference for the code
        (0.0, [1.0, 1.0], 0.5, 1e-8),
        (-1.0, [1.0, 1.0], 0.5, 1e-8),
        (1.0, [np.nan, 1.0], 0.5, 1e-8),
        (1.0, [1.0, 1.0], np.inf, 1e-8),
        (1.0, [1.0, 1.0], 0.5, 0.0),
    ],
)
def test_traced_bad_values_give_invalid_input(t1, y0, k, rtol):
    code, y_final = _traced_solve(
        jnp.array(t1), jnp.array(y0), jnp.array(k), jnp.array(rtol)
    )
    if t1 == 1.0 and np.isfinite(y0[0]) and np.isfinite(k) and rtol > 0:
        assert bool(code == oi.RESULTS.successful)
        np.testing.assert_allclose(y_final, np.exp(-0.5), rtol=1e-7)
    else:
        assert bool(code == oi.RESULTS.invalid_input)
