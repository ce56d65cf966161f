"""`oi.sample`: posterior moments against closed forms, failure handling, chain
methods, bad input."""

import os
import subprocess
import sys
import textwrap
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import integrate

import odeinfer as oi
from odeinfer._inference import _chains

# Normal–Normal conjugate model: y_i ~ N(mu, 1), mu ~ N(0, 2).
Y = np.array([1.2, 0.4, 2.1, 1.5, 0.9])
PRIOR_SD = 2.0
POST_PREC = 1 / PRIOR_SD**2 + Y.size
POST_MEAN = Y.sum() / POST_PREC
POST_SD = POST_PREC**-0.5


def normal_log_likelihood(p):
    return jnp.sum(jax.scipy.stats.norm.logpdf(Y, p["mu"], 1.0))


@pytest.fixture(scope="module")
def conjugate_posterior():
    return oi.sample(
        normal_log_likelihood,
        {"mu": dist.Normal(0.0, PRIOR_SD)},
        num_warmup=300,
        num_samples=1000,
        num_chains=2,
        key=1,
    )


@pytest.mark.parametrize("init", ["prior", "uniform", "optimize"])
def test_random_initial_points_reach_the_conjugate_posterior(init):
    # Every random start (numpyro's find_valid_initial_params; BFGS steps after it for
    # "optimize") leads to the analytic posterior.
    post = oi.sample(
        normal_log_likelihood,
        {"mu": dist.Normal(0.0, PRIOR_SD)},
        num_warmup=300,
        num_samples=1000,
        num_chains=2,
        key=3,
        init=init,
    )
    assert abs(post.mean()["mu"] - POST_MEAN) < 0.08
    assert abs(post.std()["mu"] / POST_SD - 1) < 0.1


def test_unknown_init_strategy_is_an_error():
    with pytest.raises(ValueError, match="'uniform', 'optimize'"):
        oi.sample(normal_log_likelihood, {"mu": dist.Normal(0.0, 1.0)}, init="map")


def test_conjugate_normal_moments(conjugate_posterior):
    post = conjugate_posterior
    assert post.draws["mu"].shape == (2, 1000)
    # Monte Carlo SE of the mean ~ 0.44/sqrt(ESS ~ 700) ~ 0.017: 5 SE.
    assert abs(post.mean()["mu"] - POST_MEAN) < 0.08
    assert abs(post.std()["mu"] / POST_SD - 1) < 0.1
    assert post.num_failures == 0
    table = post.summary()
    for col in (
        "mean",
        "sd",
        "r_hat",
        "ess_bulk",
        "ess_tail",
        "mcse_mean",
        "q5",
        "q95",
    ):
        assert col in table.columns
    assert table.loc["mu", "r_hat"] < 1.05


def test_default_runs_threaded_chains_with_a_dense_metric(conjugate_posterior):
    # On a CPU the default chains run in threads; with few parameters the metric is
    # dense (one (d, d) inverse mass matrix per chain).
    if jax.default_backend() == "cpu" and jax.device_count() < 2:
        assert conjugate_posterior.chain_method == "threaded"
    assert conjugate_posterior.inverse_mass_matrix.shape == (2, 1, 1)


def test_threaded_chains_equal_sequential_chains_draw_for_draw():
    # The same compiled chain with the same keys: running the chains concurrently in
    # threads must not change a single draw. A 2-D correlated Gaussian, diagonal metric.
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    prec = np.linalg.inv(cov)

    def log_likelihood(p):
        x = jnp.stack([p["a"], p["b"]])
        return -0.5 * x @ prec @ x

    priors = {"a": dist.Normal(0.0, 100.0), "b": dist.Normal(0.0, 100.0)}
    runs = {
        method: oi.sample(
            log_likelihood,
            priors,
            num_warmup=100,
            num_samples=100,
            num_chains=3,
            chain_method=method,
            dense_mass=False,
            key=4,
        )
        for method in ("threaded", "sequential")
    }
    for n in ("a", "b"):
        np.testing.assert_array_equal(
            runs["threaded"].draws[n], runs["sequential"].draws[n]
        )
    assert runs["threaded"].inverse_mass_matrix.shape == (3, 2)


def test_static_hmc_sequential_conjugate():
    post = oi.sample(
        normal_log_likelihood,
        {"mu": dist.Normal(0.0, PRIOR_SD)},
        kernel="hmc",
        num_steps=5,
        chain_method="sequential",
        num_warmup=200,
        num_samples=800,
        num_chains=2,
        key=3,
        init={"mu": 0.0},
    )
    assert post.kernel == "hmc" and post.chain_method == "sequential"
    assert np.all(post.num_steps == 5)
    assert abs(post.mean()["mu"] - POST_MEAN) < 0.1
    assert abs(post.std()["mu"] / POST_SD - 1) < 0.15


def decay_problem(max_steps=4096):
    times = np.linspace(0.5, 3.0, 6)
    rng = np.random.default_rng(0)
    data = 2.0 * np.exp(-0.7 * times) + 0.05 * rng.normal(size=times.size)
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
    experiment = oi.Experiment(
        times, data, observables=lambda t, y, p: y, noise=oi.Gaussian(0.05), y0=2.0
    )
    space = oi.Parameters({"k": oi.Positive(init=1.0)})
    return (
        oi.Problem(model, experiment, space, rtol=1e-6, atol=1e-8, max_steps=max_steps),
        times,
        data,
    )


def test_problem_posterior_matches_quadrature():
    problem, times, data = decay_problem()
    prior = dist.LogNormal(0.0, 1.0)
    post = oi.sample(
        problem, {"k": prior}, num_warmup=150, num_samples=400, num_chains=2, key=2
    )

    def unnormalised(k):
        pred = 2.0 * np.exp(-k * times)
        return np.exp(
            -0.5 * np.sum((data - pred) ** 2) / 0.05**2
            + float(prior.log_prob(k))
            + 200.0  # keeps the scale of the integrand O(1)
        )

    lo, hi = 0.55, 0.85
    z = integrate.quad(unnormalised, lo, hi, points=[0.7], limit=200)[0]
    mean = integrate.quad(lambda k: k * unnormalised(k), lo, hi, limit=200)[0] / z
    var = (
        integrate.quad(lambda k: (k - mean) ** 2 * unnormalised(k), lo, hi, limit=200)[
            0
        ]
        / z
    )
    assert abs(post.mean()["k"] - mean) < 4 * np.sqrt(var) / np.sqrt(200)
    assert abs(post.std()["k"] / np.sqrt(var) - 1) < 0.15


DECAY = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")


def _decay_state(t, y, p):
    return y


def test_new_data_of_the_same_shape_reuses_the_compiled_chain():
    # Two data sets from k = 0.7 and k = 1.2: the second run must not compile, and its
    # posterior must be that of its own data (the data are inputs of the program).
    times = np.linspace(0.5, 3.0, 6)
    rng = np.random.default_rng(5)
    space = oi.Parameters({"k": oi.Positive(init=1.0)})
    posteriors, traced = [], []
    for k_true in (0.7, 1.2):
        data = 2.0 * np.exp(-k_true * times) + 0.02 * rng.normal(size=times.size)
        experiment = oi.Experiment(
            times, data, observables=_decay_state, noise=oi.Gaussian(0.02), y0=2.0
        )
        problem = oi.Problem(DECAY, experiment, space, rtol=1e-8, atol=1e-10)
        spy = mock.patch.object(_chains, "transition", wraps=_chains.transition)
        with spy as transition:
            posteriors.append(
                oi.sample(
                    problem,
                    {"k": dist.LogNormal(0.0, 1.0)},
                    num_warmup=150,
                    num_samples=200,
                    num_chains=2,
                    key=7,
                )
            )
        traced.append(min(transition.call_count, 1))
    assert posteriors[0].timing["compile"] > 0
    # the second run traced nothing: JAX's cache served the compiled chain
    assert traced == [1, 0]
    # The posterior sd of k is ~0.01 here: each mean is within 0.05 of its own truth.
    assert abs(posteriors[0].mean()["k"] - 0.7) < 0.05
    assert abs(posteriors[1].mean()["k"] - 1.2) < 0.05


def failing_log_likelihood(p):
    # The "solve" fails for mu > 1.5.
    return normal_log_likelihood(p), p["mu"] < 1.5


def test_reused_program_reports_failures_to_its_own_run():
    # The second run reuses the compiled chain (same function, new prior values) and
    # must count its own failures, leaving the first run's record untouched.
    runs, traces = [], []
    spy = mock.patch.object(_chains, "transition", wraps=_chains.transition)
    with spy as transition:
        for prior_sd in (PRIOR_SD, 3.0):
            runs.append(
                oi.sample(
                    failing_log_likelihood,
                    {"mu": dist.Normal(0.0, prior_sd)},
                    num_warmup=100,
                    num_samples=100,
                    num_chains=2,
                    key=4,
                    init={"mu": 0.0},
                )
            )
            traces.append(transition.call_count)
    assert traces[1] == traces[0]  # the second run reused the compiled chain
    # Were the log baked into the program, the second run would record nothing.
    assert runs[0].num_failures > 0 and runs[1].num_failures > 0
    assert np.all(runs[1].failed_params[:, 0] >= 1.5)


def test_solver_failure_is_rejected_and_counted():
    # The "solve" fails for mu > 1.5: the sampler must run through, never accept a
    # draw there, and report the failures with their parameters.
    post = oi.sample(
        failing_log_likelihood,
        {"mu": dist.Normal(0.0, PRIOR_SD)},
        num_warmup=100,
        num_samples=200,
        num_chains=2,
        key=4,
        init={"mu": 0.0},
    )
    assert post.num_failures > 0
    assert post.failed_params.shape[1] == 1
    assert np.all(post.failed_params[:, 0] >= 1.5)
    assert np.all(post.draws["mu"] < 1.5)
    assert np.all(np.isfinite(post.potential_energy))


def test_nan_log_likelihood_region_is_rejected():
    # Non-finite values (NaN) are failures too, not a crash.
    def nan_above(p):
        ll = normal_log_likelihood(p)
        return jnp.where(p["mu"] > 2.0, jnp.nan, ll)

    post = oi.sample(
        nan_above,
        {"mu": dist.Normal(0.0, PRIOR_SD)},
        num_warmup=100,
        num_samples=200,
        num_chains=1,
        key=5,
        init={"mu": 0.0},
        chain_method="sequential",
    )
    assert np.all(post.draws["mu"] <= 2.0)
    assert post.num_failures > 0


# ---- bad input -------------------------------------------------------------------


def test_missing_prior_is_an_error():
    problem, _, _ = decay_problem()
    with pytest.raises(ValueError, match="no entry for the free parameter.*'k'"):
        oi.sample(problem, {}, num_warmup=1, num_samples=1)


def test_unknown_prior_is_an_error():
    problem, _, _ = decay_problem()
    with pytest.raises(ValueError, match="not free parameters"):
        oi.sample(problem, {"k": dist.LogNormal(0.0, 1.0), "q": dist.Normal(0, 1)})


def test_prior_support_must_match_transform():
    problem, _, _ = decay_problem()
    with pytest.raises(ValueError, match="TruncatedNormal"):
        oi.sample(problem, {"k": dist.Normal(1.0, 1.0)})
    with pytest.raises(ValueError, match="support"):
        oi.sample(problem, {"k": dist.Uniform(0.0, 5.0)})


def test_parallel_needs_enough_devices():
    n = jax.device_count() + 1
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        oi.sample(
            normal_log_likelihood,
            {"mu": dist.Normal(0, 1)},
            num_chains=n,
            chain_method="parallel",
        )


def test_non_finite_initial_point_is_an_error():
    def bad(p):
        return jnp.nan * p["mu"]

    with pytest.raises(ValueError, match="not finite at the initial point.*init="):
        oi.sample(
            bad,
            {"mu": dist.Normal(0, 1)},
            num_warmup=1,
            num_samples=1,
            init={"mu": 0.0},
        )


def test_bad_options():
    with pytest.raises(ValueError, match="chain_method"):
        oi.sample(normal_log_likelihood, {"mu": dist.Normal(0, 1)}, chain_method="pmap")
    with pytest.raises(ValueError, match="kernel"):
        oi.sample(normal_log_likelihood, {"mu": dist.Normal(0, 1)}, kernel="mala")


PARALLEL_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    import numpyro.distributions as dist
    import odeinfer as oi
    assert jax.device_count() == 2, jax.devices()
    ts = jnp.linspace(0.5, 3.0, 6)
    data = 2.0 * np.exp(-0.7 * np.asarray(ts))
    model = oi.ODEModel(lambda t, y, p: -p["k"] * y)
    def ll(p):
        # The fused solver: this test is about chains on two devices, and its
        # gradient compiles in a fraction of diffrax's (17.7 s against 43.7 s, loaded).
        sol = oi.solve(model, jnp.array(2.0), p, t0=0.0, t1=3.0, saveat=ts, throw=False,
                       max_steps=64, solver=oi.FusedDopri5())
        return jnp.sum(jax.scipy.stats.norm.logpdf(data, sol.ys, 0.1)), sol.successful
    post = oi.sample(ll, {"k": dist.LogNormal(0.0, 1.0)}, num_warmup=60, num_samples=60,
                     num_chains=2, chain_method="parallel", key=0, init={"k": 0.5})
    assert post.draws["k"].shape == (2, 60)
    assert abs(post.mean()["k"] - 0.7) < 0.1, post.mean()
    print("OK", post.mean())
    """
)


def test_parallel_chains_across_host_devices():
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
    )
    result = subprocess.run(
        [sys.executable, "-c", PARALLEL_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_reparameterised_log_prob_has_zero_location_gradient():
    # d/dmu log N(mu + sigma*eps | mu, sigma) = 0: the location cancels
    # (docs/inference.md); d/dsigma = -1/sigma.
    eps = jnp.array([-1.3, 0.2, 2.5])

    def f(mu, sigma):
        return jnp.sum(dist.Normal(mu, sigma).log_prob(mu + sigma * eps))

    gmu, gsigma = jax.grad(f, argnums=(0, 1))(0.7, 1.9)
    assert gmu == 0.0
    np.testing.assert_allclose(gsigma, -eps.size / 1.9, rtol=1e-12)
    # Holding the sample fixed (score function), the location gradient is not zero:
    x = 0.7 + 1.9 * eps
    g_score = jax.grad(lambda mu: jnp.sum(dist.Normal(mu, 1.9).log_prob(x)))(0.7)
    np.testing.assert_allclose(g_score, jnp.sum(eps) / 1.9, rtol=1e-12)


@pytest.mark.parametrize("chain_method", ["threaded", "vectorized"])
def test_progress_bar_counts_every_iteration_of_every_chain(chain_method, capfd):
    oi.sample(
        normal_log_likelihood,
        {"mu": dist.Normal(0.0, PRIOR_SD)},
        num_warmup=30,
        num_samples=27,
        num_chains=3,
        chain_method=chain_method,
        progress_bar=True,
        key=0,
    )
    err = capfd.readouterr().err
    counts = [int(part.split("/")[0].split()[-1]) for part in err.split("\r")[1:]]
    assert counts == sorted(counts)
    assert counts[-1] == 3 * 57
    assert "171/171 iterations" in err
