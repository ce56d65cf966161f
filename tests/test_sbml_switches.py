"""`odeinfer.sbml` switches in time as doses (`switch_doses`, for the fused solvers),
`needs_crossings`, and constants set by initial assignments that `params` may replace
(`assigned_constant_ids`): small inline SBML documents against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_sbml import make

import odeinfer as oi

libsbml = pytest.importorskip("libsbml")
import odeinfer.sbml as sbml  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-10)

# A decays at rate k1 until t_on, then at rate k2; the switch is written as a
# comparison affine in time (not `time < t_on`), as Fujita's model writes its input.
DECAY = make(
    species={"A": ("c", 2.0)},
    parameters={"k1": 0.8, "k2": 0.15, "t_on": 1.7},
    reactions={"R": (["A"], [], "piecewise(k1, (time - t_on) < 0, k2) * A * c")},
)
PARAMS = {"k1": 0.8, "k2": 0.15, "t_on": 1.7}
TS = np.array([0.5, 1.0, 1.6, 1.8, 3.0, 6.0])


def decay_exact(ts, a0=2.0, k1=0.8, k2=0.15, t_on=1.7):
    """The piecewise-exponential solution."""
    ts = np.asarray(ts)
    return np.where(
        ts < t_on,
        a0 * np.exp(-k1 * ts),
        a0 * np.exp(-k1 * t_on - k2 * (ts - t_on)),
    )


@pytest.fixture(scope="module")
def decay():
    return sbml.load(DECAY)


def test_switch_affine_in_time_gives_its_time_and_a_dose(decay):
    assert decay.switches == ("(time - t_on) < 0",)
    assert not decay.needs_crossings
    assert decay.species_ids == ("A",)
    (flag_id,) = decay.switch_state_ids
    flag = decay.state_ids.index(flag_id)
    np.testing.assert_allclose(decay.switch_times({"t_on": 2.5}), [2.5], rtol=1e-14)

    y0 = decay.initial_state(PARAMS)
    assert y0[flag] == 1.0  # time - t_on < 0 holds at t = 0
    (dose,) = decay.switch_doses(y0, PARAMS)
    assert dose.target == flag
    np.testing.assert_allclose(dose.times, [1.7], rtol=1e-14)
    np.testing.assert_allclose(dose.amounts, -1.0)  # the flag drops to 0

    # A switch at or before t0 has already happened: its flag says so, no jump.
    early = {**PARAMS, "t_on": -1.0}
    y_early = decay.initial_state(early)
    assert y_early[flag] == 0.0
    (dose,) = decay.switch_doses(y_early, early)
    np.testing.assert_allclose(dose.times, [0.0])
    np.testing.assert_allclose(dose.amounts, 0.0)
    (dose,) = decay.switch_doses(y0, PARAMS, t0=2.0)
    np.testing.assert_allclose(dose.amounts, 0.0)


def test_scaled_time_switch_solves_for_its_time():
    """`2 * time > t_end`: the switch time is t_end / 2 (the root of the affine
    difference), and the flag starts false, so the dose raises it."""
    model = sbml.load(
        make(
            species={"A": ("c", 0.0)},
            parameters={"u": 1.0, "t_end": 3.0},
            reactions={"R": ([], ["A"], "piecewise(u, 2 * time > t_end, 0)")},
        )
    )
    assert not model.needs_crossings
    y0 = model.initial_state()
    (dose,) = model.switch_doses(y0, {"t_end": 3.0})
    np.testing.assert_allclose(dose.times, [1.5], rtol=1e-14)
    np.testing.assert_allclose(dose.amounts, 1.0)


def _solve_fused(model, params):
    y0 = model.initial_state(params)
    return oi.solve(
        model.model,
        y0,
        params,
        t0=0.0,
        t1=float(TS[-1]),
        saveat=jnp.asarray(TS),
        solver=oi.FusedRodas5P(),
        doses=model.switch_doses(y0, params),
        **TOL,
    )


def test_fused_solve_with_switch_doses_matches_closed_form_and_crossings(decay):
    """The fused solve (the switch a dose) against the piecewise exponential and
    against Rodas5P stopping on the switch crossing; the fused gradient in the rates
    against the closed form A(T) = A0 exp(-k1 t_on - k2 (T - t_on)), T > t_on."""
    a = decay.state_ids.index("A")
    T = float(TS[-1])

    def final(rates):
        # t_on stays a constant: the fused solvers take no dose-time derivatives.
        ys = _solve_fused(decay, {**rates, "t_on": 1.7}).ys
        return ys[-1, a], ys

    rates = {"k1": 0.8, "k2": 0.15}
    (value, ys), grad = jax.value_and_grad(final, has_aux=True)(rates)
    np.testing.assert_allclose(ys[:, a], decay_exact(TS), rtol=1e-8)
    exact = decay_exact(T)
    np.testing.assert_allclose(value, exact, rtol=1e-8)
    np.testing.assert_allclose(grad["k1"], -1.7 * exact, rtol=1e-6)
    np.testing.assert_allclose(grad["k2"], -(T - 1.7) * exact, rtol=1e-6)

    crossed = oi.solve(
        decay.model,
        decay.initial_state(PARAMS),
        PARAMS,
        t0=0.0,
        t1=T,
        saveat=jnp.asarray(TS),
        solver=oi.Rodas5P(),
        events=decay.crossings,
        **TOL,
    )
    assert float(crossed.events.times[0]) == pytest.approx(1.7, abs=1e-10)
    np.testing.assert_allclose(ys, crossed.ys, rtol=1e-8, atol=1e-12)


def test_events_and_state_dependent_switches_need_crossings():
    with_event = sbml.load(
        make(
            species={"A": ("c", 1.0)},
            parameters={"k": 1.0},
            reactions={"R": (["A"], [], "k * A")},
            events=[("refill", "A < 0.5", {"A": "1"})],
        )
    )
    state_switch = sbml.load(
        make(
            species={"A": ("c", 1.0)},
            parameters={"k1": 1.0, "k2": 0.1},
            reactions={"R": (["A"], [], "piecewise(k1, A > 0.5, k2) * A")},
        )
    )
    # A switch whose time depends on the state through a product with time.
    mixed = sbml.load(
        make(
            species={"A": ("c", 1.0)},
            parameters={"k1": 1.0, "k2": 0.1},
            reactions={"R": (["A"], [], "piecewise(k1, A * time < 1, k2) * A")},
        )
    )
    for model in (with_event, state_switch, mixed):
        assert model.needs_crossings
        with pytest.raises(ValueError, match="cannot be doses.*events=model.crossings"):
            model.switch_doses(model.initial_state(), model.parameters)


def test_params_override_initial_assignments():
    """Species A starts at [A] = A0 with A0 = 3 · scale (an initial assignment of a
    constant parameter), in a compartment of size c = scale, decaying at kdeg =
    scale / 4. Overriding A0, c or kdeg by `params` replaces their assignments."""
    model = sbml.load(
        make(
            compartments={"c": 1.0},
            species={"A": ("c", 0.0)},
            parameters={"scale": 2.0, "A0": None, "kdeg": None},
            reactions={"R": (["A"], [], "kdeg * A * c")},
            initial_assignments={
                "A0": "3 * scale",
                "kdeg": "scale / 4",
                "c": "scale",
                "A": "A0",
            },
        )
    )
    assert model.assigned_constant_ids == ("A0", "c", "kdeg")
    assert "A0" not in model.parameter_ids
    # Defaults: [A](0) = 3 · 2 = 6 in c = 2, so the amount is 12.
    np.testing.assert_allclose(model.initial_state(), [12.0], rtol=1e-14)
    np.testing.assert_allclose(model.initial_state({"scale": 1.0}), [3.0], rtol=1e-14)
    # The override replaces A0's assignment; c still follows scale.
    np.testing.assert_allclose(model.initial_state({"A0": 5.0}), [10.0], rtol=1e-14)
    np.testing.assert_allclose(
        model.initial_state({"A0": 5.0, "c": 0.5}), [2.5], rtol=1e-14
    )
    # Differentiable in the override.
    grad = jax.grad(lambda a0: model.initial_state({"A0": a0})[0])(5.0)
    np.testing.assert_allclose(grad, 2.0, rtol=1e-14)
    # The vector field reads the overrides: d(amount)/dt = -kdeg · [A] · c, with
    # [A] = amount / c.
    y = jnp.array([4.0])
    np.testing.assert_allclose(model.model(0.0, y, {}), [-0.5 * 2.0 * 2.0], rtol=1e-14)
    np.testing.assert_allclose(
        model.model(0.0, y, {"kdeg": 1.5}), [-1.5 * 2.0 * 2.0], rtol=1e-14
    )
    np.testing.assert_allclose(
        model.model(0.0, y, {"kdeg": 1.5, "c": 4.0}), [-1.5 * 1.0 * 4.0], rtol=1e-14
    )
    with pytest.raises(KeyError, match="'A1'"):
        model.initial_state({"A1": 1.0})
