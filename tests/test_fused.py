"""The fused forward-sensitivity solvers (`FusedDopri5`, `FusedRodas5P`, `FusedAuto`)
as strategies of `oi.solve`: parity with the diffrax path, closed forms, published
references, derivatives against finite differences, doses, stiffness switching and the
solver contract (`Solution`, `RESULTS`, `throw`, one compilation)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _references import bolus_amount, logistic_exact, oral_central_amount

import odeinfer as oi
from odeinfer._benchmark._problems import benchmark_problem
from odeinfer._fast import _fused
from odeinfer._fast._control import error_norm, sensitivity_error_norm

# FusedAuto runs the Dormand–Prince loop on non-stiff problems, so the default tier
# covers both loops with FusedAuto and FusedRodas5P; FusedDopri5 alone is slow-tier.
FUSED = [
    pytest.param(oi.FusedDopri5(), marks=pytest.mark.slow),
    oi.FusedRodas5P(),
    oi.FusedAuto(),
]
IDS = ["FusedDopri5", "FusedRodas5P", "FusedAuto"]

LOGISTIC = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y), name="logistic_fused")
SAVE = jnp.linspace(10.0, 300.0, 8)


@pytest.mark.parametrize("solver", FUSED, ids=IDS)
def test_logistic_closed_form_and_gradient(solver):
    def saved(k):
        return oi.solve(
            LOGISTIC, jnp.array(0.2), {"k": k}, t0=0.0, t1=300.0, saveat=SAVE,
            solver=solver,
        ).ys  # fmt: skip

    k = jnp.asarray(0.02)
    np.testing.assert_allclose(saved(k), logistic_exact(SAVE, 0.2, 0.02), rtol=1e-7)
    # d/dk of 1/(1 + (1/y0 - 1) e^{-kt}) = t y (1 - y).
    y = logistic_exact(np.asarray(SAVE), 0.2, 0.02)
    np.testing.assert_allclose(jax.jacfwd(saved)(k), SAVE * y * (1 - y), rtol=1e-6)
    grad = jax.grad(lambda k: saved(k).sum())(k)
    np.testing.assert_allclose(grad, np.sum(SAVE * y * (1 - y)), rtol=1e-6)


@pytest.mark.parametrize("name", ["rober", "hires"])
def test_stiff_parity_with_diffrax_path_and_reference(name):
    """FusedRodas5P and FusedAuto against the Bari reference and against the diffrax
    Rodas5P at the same tolerance."""
    problem = benchmark_problem(name)
    options = dict(t0=problem.t0, t1=problem.t1, rtol=1e-8,
                   atol=1e-8 * problem.atol_scale, max_steps=20_000)  # fmt: skip
    y0 = jnp.asarray(problem.y0)
    reference = problem.reference.y_final
    scale = np.maximum(np.abs(reference), problem.error_floor)
    finals = {}
    for solver in (oi.Rodas5P(), oi.FusedRodas5P(), oi.FusedAuto()):
        sol = oi.solve(problem.model, y0, problem.params, solver=solver, **options)
        assert sol.result == oi.RESULTS.successful
        finals[type(solver).__name__] = np.asarray(sol.y_final)
        assert np.max(np.abs(sol.y_final - reference) / scale) < 1e-6
    np.testing.assert_allclose(
        finals["FusedRodas5P"], finals["Rodas5P"], rtol=1e-6, atol=1e-6 * scale.min()
    )


def test_auto_switches_only_when_stiff():
    rober = benchmark_problem("rober")
    sol = oi.solve(rober.model, jnp.asarray(rober.y0), rober.params, t0=rober.t0,
                   t1=rober.t1, solver=oi.FusedAuto(), rtol=1e-6,
                   atol=1e-6 * rober.atol_scale, max_steps=20_000)  # fmt: skip
    assert bool(sol.stats["switched_to_stiff"])
    lv = benchmark_problem("lotka_volterra")
    sol = oi.solve(lv.model, jnp.asarray(lv.y0), lv.params, t0=lv.t0, t1=lv.t1,
                   solver=oi.FusedAuto(), rtol=1e-6)  # fmt: skip
    assert not bool(sol.stats["switched_to_stiff"])


def test_rosenbrock_sensitivities_against_finite_differences():
    """d y(t1) / d(rate constants) of ROBER on a shortened horizon: the fused Rodas5P
    forward sensitivities (jacfwd, and grad by transposition) against central
    differences of a tight (rtol 1e-12) diffrax Rodas5P solve."""
    rober = benchmark_problem("rober")
    y0 = jnp.asarray(rober.y0)
    names = sorted(rober.params)

    def final(values, solver, rtol):
        params = dict(zip(names, values, strict=True))
        return oi.solve(rober.model, y0, params, t0=0.0, t1=40.0, solver=solver,
                        rtol=rtol, atol=rtol * 1e-6, max_steps=50_000).y_final  # fmt: skip

    theta = jnp.asarray([float(rober.params[n]) for n in names])
    jac = jax.jacfwd(lambda th: final(th, oi.FusedRodas5P(), 1e-10))(theta)
    fd = np.zeros((3, len(names)))
    for j in range(len(names)):
        step = 1e-4 * float(theta[j])
        up = final(theta.at[j].add(step), oi.Rodas5P(), 1e-12)
        down = final(theta.at[j].add(-step), oi.Rodas5P(), 1e-12)
        fd[:, j] = (np.asarray(up) - np.asarray(down)) / (2 * step)
    scale = np.abs(fd).max(axis=0)
    np.testing.assert_allclose(jac / scale, fd / scale, atol=1e-6)
    grad = jax.grad(lambda th: final(th, oi.FusedRodas5P(), 1e-10)[2])(theta)
    np.testing.assert_allclose(grad, jac[2], rtol=1e-10, atol=1e-14)
    # With the sensitivities in the error test at rtol 1e-6 (measured 8.2e-8; the
    # state's control alone 2.0e-7).
    controlled = oi.FusedRodas5P(sensitivity_error_control=True)
    jac = jax.jacfwd(lambda th: final(th, controlled, 1e-6))(theta)
    assert np.max(np.abs(jac - fd) / scale) < 1.5e-7


def test_sensitivity_error_norm_is_the_largest_row_norm():
    """CVODES's test with sensitivities: the largest of the rows' weighted RMS norms,
    so rows without error (more directions) do not loosen it."""
    rng = np.random.default_rng(0)
    error, Y, Y1 = (
        rng.normal(size=(3, 4, 5)) * np.array([1e-8, 1e-6, 1e-7, 1e-9])[:, None]
    )
    rtol, atol = 1e-6, 1e-9
    weights = atol + rtol * np.maximum(np.abs(Y), np.abs(Y1))
    expected = np.max(np.sqrt(np.mean((error / weights) ** 2, axis=1)))
    norm = sensitivity_error_norm(jnp.asarray(error), Y, Y1, rtol, atol)
    np.testing.assert_allclose(norm, expected, rtol=1e-14)
    padded = [np.concatenate([a, np.zeros((20, 5))]) for a in (error, Y, Y1)]
    np.testing.assert_allclose(
        sensitivity_error_norm(*padded, rtol, atol), expected, rtol=1e-14
    )
    np.testing.assert_allclose(
        sensitivity_error_norm(error[:1], Y[:1], Y1[:1], rtol, atol),
        error_norm(error[0], Y[0], Y1[0], rtol, atol),
        rtol=1e-14,
    )


DOSE_TIMES = np.array([0.0, 6.0, 12.0, 18.0])
DOSE_AMOUNTS = np.array([100.0, 50.0, 80.0, 20.0])
DOSE_SAVE = jnp.array([1.0, 5.999, 6.0, 9.0, 12.0, 20.0, 24.0])
BOLUS = oi.ODEModel(lambda t, y, p: -(p["CL"] / p["V"]) * y, name="bolus_fused")


@pytest.mark.parametrize("solver", FUSED, ids=IDS)
def test_bolus_doses_closed_form_and_derivatives(solver):
    """Superposed exponentials; right-continuous at dose times; derivatives with
    respect to CL and to every dose amount in closed form."""

    def saved(cl, amounts):
        return oi.solve(
            BOLUS, jnp.array(0.0), {"CL": cl, "V": jnp.asarray(10.0)}, t0=0.0,
            t1=24.0, saveat=DOSE_SAVE, solver=solver,
            doses=oi.Dose(jnp.asarray(DOSE_TIMES), amounts, target=()),
        ).ys  # fmt: skip

    cl, amounts = jnp.asarray(2.0), jnp.asarray(DOSE_AMOUNTS)
    expected = bolus_amount(DOSE_SAVE, DOSE_TIMES, DOSE_AMOUNTS, 0.2)
    np.testing.assert_allclose(saved(cl, amounts), expected, rtol=1e-7)
    d_cl, d_amounts = jax.jacfwd(saved, argnums=(0, 1))(cl, amounts)
    tau = np.asarray(DOSE_SAVE)[:, None] - DOSE_TIMES[None, :]
    decay = np.where(tau >= 0, np.exp(-0.2 * np.maximum(tau, 0.0)), 0.0)
    np.testing.assert_allclose(d_amounts, decay, rtol=1e-6, atol=1e-10)
    d_ke = -(decay * np.maximum(tau, 0.0)) @ DOSE_AMOUNTS
    np.testing.assert_allclose(d_cl, d_ke / 10.0, rtol=1e-6, atol=1e-9)
    grad = jax.grad(lambda a: saved(cl, a).sum())(amounts)
    np.testing.assert_allclose(grad, decay.sum(axis=0), rtol=1e-6)


def test_oral_doses_on_a_dict_state_match_bateman_and_the_diffrax_path():
    model = oi.ODEModel(
        lambda t, y, p: {
            "gut": -p["ka"] * y["gut"],
            "central": p["ka"] * y["gut"] - p["ke"] * y["central"],
        },
        name="oral_fused",
    )
    times, amounts = np.array([0.0, 8.0, 16.0]), np.array([100.0, 100.0, 50.0])
    save = jnp.linspace(0.5, 24.0, 12)
    args = dict(
        t0=0.0,
        t1=24.0,
        saveat=save,
        doses=oi.Dose(jnp.asarray(times), jnp.asarray(amounts), target="gut"),
    )
    y0 = {"gut": jnp.array(0.0), "central": jnp.array(0.0)}
    params = {"ka": 1.0, "ke": 0.2}
    fused = oi.solve(model, y0, params, solver=oi.FusedRodas5P(), **args)
    expected = oral_central_amount(save, times, amounts, 1.0, 0.2)
    np.testing.assert_allclose(fused.ys["central"], expected, rtol=1e-7)
    diffrax_path = oi.solve(model, y0, params, **args)
    np.testing.assert_allclose(
        fused.ys["central"], diffrax_path.ys["central"], rtol=1e-7
    )


def test_vmap_matches_single_solves():
    rober = benchmark_problem("rober")
    y0 = jnp.asarray(rober.y0)

    def final(k1):
        params = dict(rober.params, k1=k1)
        return oi.solve(rober.model, y0, params, t0=0.0, t1=100.0,
                        solver=oi.FusedRodas5P(), rtol=1e-7, atol=1e-13,
                        throw=False).y_final  # fmt: skip

    k1s = jnp.array([0.02, 0.04, 0.08])
    batch = jax.vmap(final)(k1s)
    for k1, y in zip(k1s, batch, strict=True):
        np.testing.assert_allclose(y, final(k1), rtol=1e-12)


def test_explicit_solver_out_of_steps_on_a_stiff_problem_says_looks_stiff():
    rober = benchmark_problem("rober")
    args = (rober.model, jnp.asarray(rober.y0), rober.params)
    kwargs = dict(t0=0.0, t1=1e5, rtol=1e-6, atol=1e-12, max_steps=2000)
    sol = oi.solve(*args, solver=oi.FusedDopri5(), throw=False, **kwargs)
    assert sol.result == oi.RESULTS.looks_stiff
    assert not bool(sol.successful)
    with pytest.raises(eqx.EquinoxRuntimeError, match="looks stiff"):
        oi.solve(*args, solver=oi.FusedDopri5(), **kwargs)


def test_compiled_once_for_new_values(monkeypatch):
    """New parameter values, initial states and tolerances reuse the compiled
    program (eager calls: the configuration is hashable and equal)."""
    traces = []
    original = _fused.FusedConfig.make_method

    def counting(self, theta, directions):
        traces.append(1)
        return original(self, theta, directions)

    monkeypatch.setattr(_fused.FusedConfig, "make_method", counting)
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay_once")
    for k, y0, rtol in ((0.5, 1.0, 1e-6), (0.7, 2.0, 1e-8), (0.9, 3.0, 1e-7)):
        sol = oi.solve(model, jnp.array(y0), {"k": k}, t0=0.0, t1=1.0,
                       solver=oi.FusedDopri5(), rtol=rtol)  # fmt: skip
        np.testing.assert_allclose(sol.y_final, y0 * np.exp(-k), rtol=1e-5)
    assert len(traces) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(events=oi.Crossing(lambda t, y, p: y, 0.5)),
            "only one terminal Crossing without reset",
        ),
        (dict(dense=True), "takes no `dense=True`"),
        (dict(max_step_size=0.1), "takes no `max_step_size`"),
    ],
    ids=["events", "dense", "max_step_size"],
)
def test_fused_refuses_what_it_does_not_do(kwargs, match):
    model = oi.ODEModel(lambda t, y, p: -y, name="decay_refuse")
    with pytest.raises(ValueError, match=match):
        oi.solve(model, jnp.array(1.0), {}, t0=0.0, t1=1.0, solver=oi.FusedAuto(),
                 **kwargs)  # fmt: skip


def test_dose_time_derivatives_are_refused_clearly():
    def final(t_dose):
        return oi.solve(BOLUS, jnp.array(0.0), {"CL": 2.0, "V": 10.0}, t0=0.0,
                        t1=5.0, solver=oi.FusedDopri5(),
                        doses=oi.Dose(t_dose, 1.0, target=())).y_final  # fmt: skip

    with pytest.raises(ValueError, match="dose times"):
        jax.grad(final)(jnp.array([1.0]))


PARITY = [
    ("lotka_volterra", oi.FusedDopri5(), diffrax.Tsit5()),
]
PARITY_SLOW = [
    ("pollu", oi.FusedRodas5P(), oi.Rodas5P()),
    ("kepler", oi.FusedDopri5(), diffrax.Tsit5()),
    ("vdpol", oi.FusedRodas5P(), oi.Rodas5P()),
    ("orego", oi.FusedRodas5P(), oi.Rodas5P()),
    ("vdpol", oi.FusedAuto(), oi.Rodas5P()),
]


def _parity(name, fused, counterpart):
    """The fused solver and its diffrax-path counterpart on one benchmark problem, at
    rtol 1e-8: both within 1e-4 (global error, relative with the problem's error
    floor; Kepler's orbits accumulate 3e-5) of the reference, and of each other."""
    problem = benchmark_problem(name)
    options = dict(t0=problem.t0, t1=problem.t1, rtol=1e-8,
                   atol=1e-8 * problem.atol_scale, max_steps=50_000)  # fmt: skip
    y0 = jnp.asarray(problem.y0)
    a = oi.solve(problem.model, y0, problem.params, solver=fused, **options)
    b = oi.solve(problem.model, y0, problem.params, solver=counterpart, **options)
    reference = (
        problem.reference.y_final
        if problem.reference is not None
        else np.asarray(
            oi.solve(
                problem.model,
                y0,
                problem.params,
                solver=counterpart,
                **dict(options, rtol=1e-12, atol=1e-12 * problem.atol_scale),
            ).y_final
        )  # fmt: skip
    )
    scale = np.maximum(np.abs(reference), problem.error_floor)
    for sol in (a, b):
        assert np.max(np.abs(np.asarray(sol.y_final) - reference) / scale) < 1e-4
    assert np.max(np.abs(np.asarray(a.y_final) - np.asarray(b.y_final)) / scale) < 1e-4


@pytest.mark.parametrize("name, fused, counterpart", PARITY,
                         ids=[p[0] for p in PARITY])  # fmt: skip
def test_parity_with_the_diffrax_path(name, fused, counterpart):
    _parity(name, fused, counterpart)


@pytest.mark.slow
@pytest.mark.parametrize("name, fused, counterpart", PARITY_SLOW,
                         ids=[f"{p[0]}-{type(p[1]).__name__}" for p in PARITY_SLOW])  # fmt: skip
def test_parity_with_the_diffrax_path_slow(name, fused, counterpart):
    _parity(name, fused, counterpart)


@pytest.mark.parametrize("refine, per_step", [(True, 16), (False, 8)])
def test_fused_rodas5p_counts_the_refinement(refine, per_step):
    # 8 stages per step, each refined with one Jacobian-vector product, as the
    # diffrax-path Rodas5P counts them; plus f(t0) and the initial-step probe.
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y)
    solver = oi.FusedRodas5P(refine_stages=refine)
    sol = oi.solve(model, 1.0, {"k": 2.0}, t0=0.0, t1=3.0, solver=solver)
    steps = int(sol.stats["num_steps"])
    assert steps > 5
    assert int(sol.stats["num_fevals"]) == per_step * steps + 2
