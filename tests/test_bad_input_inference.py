"""Bad input to the inference layer (`sample`, `variational`, `predictive`,
`prior_stress_test`, `Posterior`): each case is a clear error naming the argument
(raised before anything is compiled), a `SamplingWarning`, or a documented result —
never a silent wrong answer. Also: the parameter order of a callable likelihood with a
priors dict that is not in sorted order, at every entry point."""

import warnings
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.scipy.stats import norm

import odeinfer as oi
from odeinfer._density import log_density, masked_potential
from odeinfer._inference import SamplingWarning
from odeinfer._inference._init import initial_points, potentials
from odeinfer._inference._posterior import warn_if_unreliable

Y = np.array([1.2, 0.4, 2.1, 1.5, 0.9])


def ll_m(p):
    return jnp.sum(norm.logpdf(Y, p["m"], 1.0))


PRIORS = {"m": dist.Normal(0.0, 2.0)}

# Two independent parameters with very different locations, scales and supports, so
# that a swap is visible: b ~ N(10, 0.1) (positive), a ~ N(-5, 3) (real).
B_MEAN, B_SD, A_MEAN, A_SD = 10.0, 0.1, -5.0, 3.0


def ll_ab(p):
    return norm.logpdf(p["b"], B_MEAN, B_SD) + norm.logpdf(p["a"], A_MEAN, A_SD)


def unsorted_priors():
    # "b" before "a": JAX flattens dicts in sorted order, the user's order is kept.
    return {"b": dist.LogNormal(np.log(10.0), 1.0), "a": dist.Normal(0.0, 20.0)}


# The posterior of a: conjugate normal. Of b: quadrature on a grid.
A_POST_PREC = 1 / A_SD**2 + 1 / 20.0**2
A_POST_MEAN = A_MEAN / A_SD**2 / A_POST_PREC
A_POST_SD = A_POST_PREC**-0.5


def b_posterior_moments():
    grid = np.linspace(9.0, 11.0, 20001)
    log_density = np.asarray(
        norm.logpdf(grid, B_MEAN, B_SD)
        + dist.LogNormal(np.log(10.0), 1.0).log_prob(grid)
    )
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    mean = float((weights * grid).sum())
    return mean, float(np.sqrt((weights * (grid - mean) ** 2).sum()))


@pytest.fixture
def no_compile():
    """Fail the test if `sample` gets as far as compiling a program."""

    def refuse(*args, **kwargs):
        raise AssertionError("sample compiled a program for a bad input")

    with mock.patch("odeinfer._inference._sample.compile_chains", refuse):
        yield


# ---------------------------------------------------------------------------------
# Blocker: parameter order with a callable likelihood, at every entry point.


def test_compiled_potential_equals_plain_potential_for_unsorted_priors():
    density = log_density(ll_ab, unsorted_priors())
    assert density.names == ("b", "a")
    u = jnp.array([[np.log(10.0), -5.0], [np.log(9.8), 1.0], [0.3, 4.0]])
    compiled = potentials(density, u)
    plain = [masked_potential(density, row) for row in u]
    np.testing.assert_allclose(np.asarray(compiled), np.asarray(plain), rtol=1e-12)


def test_initial_points_follow_the_unconstrained_order():
    density = log_density(ll_ab, unsorted_priors())
    u0 = initial_points(density, {"a": -5.0, "b": 10.0}, jax.random.key(0), 2, 0.0)
    np.testing.assert_allclose(u0, [[np.log(10.0), -5.0]] * 2)


def test_sample_with_unsorted_priors_matches_the_analytic_posterior():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        post = oi.sample(
            ll_ab,
            unsorted_priors(),
            num_warmup=300,
            num_samples=400,
            num_chains=1,
            init={"b": 10.0, "a": -5.0},
            key=0,
        )
    assert post.names == ("b", "a")
    # The unconstrained columns are in the names' order: log(b), a.
    np.testing.assert_allclose(post.unconstrained[..., 0], np.log(post.draws["b"]))
    np.testing.assert_allclose(post.unconstrained[..., 1], post.draws["a"])
    b_mean, b_sd = b_posterior_moments()
    # Tolerances: about 5 Monte Carlo standard errors for ~150 effective draws.
    assert abs(post.mean()["b"] - b_mean) < 5 * b_sd / np.sqrt(150)
    assert abs(post.mean()["a"] - A_POST_MEAN) < 5 * A_POST_SD / np.sqrt(150)
    assert 0.6 < post.std()["a"] / A_POST_SD < 1.4
    assert 0.6 < post.std()["b"] / b_sd < 1.4


def test_variational_with_unsorted_priors_matches_the_analytic_posterior():
    result = oi.variational(
        ll_ab,
        unsorted_priors(),
        num_steps=1500,
        learning_rate=0.05,
        num_particles=4,
        num_draws=2000,
        key=1,
    )
    assert result.names == ("b", "a")
    np.testing.assert_allclose(result.unconstrained[:, 0], np.log(result.draws["b"]))
    np.testing.assert_allclose(result.unconstrained[:, 1], result.draws["a"])
    b_mean, b_sd = b_posterior_moments()
    assert abs(result.mean()["b"] - b_mean) < 0.05
    assert abs(result.mean()["a"] - A_POST_MEAN) < 0.5
    assert 0.7 < result.std()["a"] / A_POST_SD < 1.3
    # b's guide scale (on log b, 0.01) is still shrinking from its initial 0.1.
    assert 0.5 < result.std()["b"] / b_sd < 2.5


def test_prior_stress_test_with_unsorted_priors_evaluates_each_draw():
    result = oi.prior_stress_test(ll_ab, unsorted_priors(), n=32, key=0)
    assert result.names == ("b", "a")
    assert np.all(result.params["b"] > 0)  # b's prior is the LogNormal
    expected = [
        float(ll_ab({"a": a, "b": b}))
        for a, b in zip(result.params["a"], result.params["b"], strict=True)
    ]
    np.testing.assert_allclose(result.log_likelihood, expected, rtol=1e-12)


def test_predictive_with_unsorted_draws_simulates_each_draw():
    rng = np.random.default_rng(0)
    posterior = {"b": rng.lognormal(2.3, 0.1, 50), "a": rng.normal(-5.0, 3.0, 50)}
    result = oi.predictive(
        None, posterior, simulate=lambda p: p["b"] - 2 * p["a"], num_draws=None
    )
    np.testing.assert_allclose(
        result.draws, result.params["b"] - 2 * result.params["a"]
    )
    np.testing.assert_allclose(
        np.sort(result.params["b"]), np.sort(posterior["b"])
    )  # the b draws stay b draws


# ---------------------------------------------------------------------------------
# key= and seed=


def test_key_and_seed_give_the_same_draws():
    # `seed=` is the deprecated spelling: it warns and still gives the same draws.
    with pytest.warns(DeprecationWarning, match="`seed=` is deprecated"):
        by_seed = oi.prior_stress_test(ll_m, PRIORS, n=8, seed=3)
    for key in (3, jax.random.key(3), jax.random.PRNGKey(3)):
        by_key = oi.prior_stress_test(ll_m, PRIORS, n=8, key=key)
        np.testing.assert_array_equal(by_key.params["m"], by_seed.params["m"])


# ---------------------------------------------------------------------------------
# Warnings: a chain that does not mix, too few effective draws, divergences, failures.


def synthetic_posterior(draws, *, divergences=None, num_failures=0, num_steps=7):
    chains, samples = draws.shape
    return oi.Posterior(
        names=("m",),
        draws={"m": draws},
        unconstrained=draws[..., None],
        divergences=(
            np.zeros((chains, samples), bool) if divergences is None else divergences
        ),
        num_steps=np.full((chains, samples), num_steps),
        accept_prob=np.full((chains, samples), 0.8),
        potential_energy=np.zeros((chains, samples)),
        step_size=np.ones(chains),
        inverse_mass_matrix=np.ones((chains, 1, 1)),
        num_failures=num_failures,
        failed_params=np.zeros((0, 1)),
        kernel="nuts",
        chain_method="sequential",
        num_warmup=100,
        seed=0,
        timing={},
    )


def _iid(chains=2, samples=1000, seed=0):
    return np.random.default_rng(seed).normal(size=(chains, samples))


def _disagreeing_chains():
    draws = _iid()
    draws[1] += 3.0  # the second chain is stuck elsewhere
    return synthetic_posterior(draws)


def _random_walk():
    return synthetic_posterior(np.cumsum(_iid(), axis=1))


def _divergent():
    divergences = np.zeros((2, 1000), bool)
    divergences[0, :5] = True
    return synthetic_posterior(_iid(), divergences=divergences)


def _failing():
    return synthetic_posterior(_iid(), num_failures=500)


@pytest.mark.parametrize(
    "make, match",
    [
        (_disagreeing_chains, "R-hat"),
        (_random_walk, "bulk ESS"),
        (_divergent, "5 divergent"),
        (_failing, "500 evaluation"),
    ],
    ids=["rhat", "ess", "divergences", "failures"],
)
def test_unreliable_draws_warn(make, match):
    posterior = make()
    assert any(match in message for message in posterior.diagnostics())
    with pytest.warns(SamplingWarning, match=match):
        warn_if_unreliable(posterior)


def test_healthy_draws_have_no_diagnostics():
    assert synthetic_posterior(_iid()).diagnostics() == []
    # a few failures while warm-up searches for a step size: below the 1% threshold
    assert synthetic_posterior(_iid(), num_failures=10).diagnostics() == []
    assert synthetic_posterior(_iid(), num_failures=10).diagnostics(
        max_failure_rate=0.0
    )


def test_a_short_run_warns_about_its_effective_sample_size():
    with pytest.warns(SamplingWarning, match="bulk ESS"):
        oi.sample(ll_m, PRIORS, num_warmup=30, num_samples=20, num_chains=1)


# ---------------------------------------------------------------------------------
# sample: bad input, reported before anything is compiled.


def ll_numpy(p):
    return jnp.sum(norm.logpdf(Y, np.log(p["m"]), 1.0))


def ll_float(p):
    return jnp.sum(norm.logpdf(Y, float(p["m"]), 1.0))


def ll_reads_unknown(p):
    return jnp.sum(norm.logpdf(Y, p["m"] + p["k2"], 1.0))


def ll_vector(p):
    return norm.logpdf(Y, p["m"], 1.0)


def ll_if(p):
    return ll_m(p) if p["m"] > 0 else -jnp.inf


def ll_positive(p):
    return jnp.sum(norm.logpdf(Y, p["m"], 1.0))


POSITIVE = {"m": dist.LogNormal(0.0, 1.0)}
UNIT = {"m": dist.Uniform(0.0, 1.0)}

SAMPLE_CASES = [
    # priors
    ("prior-not-distribution", dict(priors={"m": 3.0}), TypeError, r"priors\['m'\]"),
    ("prior-is-string", dict(priors={"m": "normal"}), TypeError, r"priors\['m'\]"),
    ("priors-empty", dict(priors={}), ValueError, r"`priors` is empty"),
    ("priors-none", dict(priors=None), TypeError, r"`priors` must be a dict"),
    (
        "priors-list",
        dict(priors=[dist.Normal()]),
        TypeError,
        r"`priors` must be a dict",
    ),
    ("priors-int-key", dict(priors={1: dist.Normal()}), TypeError, r"`priors` keys"),
    ("prior-discrete", dict(priors={"m": dist.Poisson(3.0)}), ValueError, "discrete"),
    (
        "prior-vector",
        dict(priors={"m": dist.Normal(jnp.zeros(2), 1.0)}),
        ValueError,
        r"priors\['m'\].*scalar",
    ),
    # the log-likelihood callable
    ("problem-number", dict(problem=3.0), TypeError, r"`problem` must be"),
    ("ll-numpy", dict(problem=ll_numpy), oi.NumpyInTracedCodeError, "ll_numpy"),
    ("ll-float", dict(problem=ll_float), oi.NumpyInTracedCodeError, "ll_float"),
    ("ll-python-if", dict(problem=ll_if), TypeError, "jnp.where"),
    ("ll-unknown-name", dict(problem=ll_reads_unknown), (KeyError, ValueError), "k2"),
    ("ll-vector", dict(problem=ll_vector), ValueError, "scalar"),
    # init
    (
        "init-outside-support",
        dict(priors=POSITIVE, init={"m": -1.0}),
        ValueError,
        r"init\['m'\].*outside the support",
    ),
    (
        "init-on-boundary",
        dict(priors=POSITIVE, init={"m": 0.0}),
        ValueError,
        r"init\['m'\].*outside the support",
    ),
    (
        "init-above-uniform",
        dict(priors=UNIT, init={"m": 1.5}),
        ValueError,
        r"init\['m'\].*\(0.0, 1.0\)",
    ),
    ("init-nan", dict(init={"m": float("nan")}), ValueError, r"init\['m'\].*finite"),
    ("init-inf", dict(init={"m": float("inf")}), ValueError, r"init\['m'\].*finite"),
    ("init-unknown", dict(init={"m": 1.0, "q": 2.0}), ValueError, r"`init` names"),
    ("init-missing", dict(init={}), ValueError, r"`init` lacks"),
    ("init-string-value", dict(init={"m": "one"}), TypeError, r"init\['m'\]"),
    ("init-vector", dict(init={"m": [1.0, 2.0]}), ValueError, r"init\['m'\].*shape"),
    ("init-bad-string", dict(init="posterior"), ValueError, r"`init` must be"),
    ("init-number", dict(init=1.0), TypeError, r"`init` must be"),
    # counts and options
    ("num-chains-zero", dict(num_chains=0), ValueError, "num_chains"),
    ("num-chains-float", dict(num_chains=2.5), ValueError, "num_chains"),
    ("num-chains-string", dict(num_chains="4"), ValueError, "num_chains"),
    ("num-chains-none", dict(num_chains=None), ValueError, "num_chains"),
    ("num-chains-bool", dict(num_chains=True), ValueError, "num_chains"),
    ("num-samples-nan", dict(num_samples=float("nan")), ValueError, "num_samples"),
    ("num-samples-zero", dict(num_samples=0), ValueError, "num_samples"),
    ("num-warmup-negative", dict(num_warmup=-1), ValueError, "num_warmup"),
    ("max-tree-depth-zero", dict(max_tree_depth=0), ValueError, "max_tree_depth"),
    ("accept-prob-one", dict(target_accept_prob=1.0), ValueError, "target_accept"),
    ("accept-prob-nan", dict(target_accept_prob=float("nan")), ValueError, "target_"),
    ("jitter-negative", dict(init_jitter=-0.1), ValueError, "init_jitter"),
    ("jitter-inf", dict(init_jitter=float("inf")), ValueError, "init_jitter"),
    ("dense-mass-string", dict(dense_mass="yes"), TypeError, "dense_mass"),
    (
        "trajectory-negative",
        dict(kernel="hmc", trajectory_length=-1.0),
        ValueError,
        "trajectory_length",
    ),
    ("num-steps-zero", dict(kernel="hmc", num_steps=0), ValueError, "num_steps"),
    ("kernel-unknown", dict(kernel="mala"), ValueError, "`kernel`"),
    ("chain-method-unknown", dict(chain_method="pmap"), ValueError, "chain_method"),
    ("progress-bar-string", dict(progress_bar="yes"), TypeError, "progress_bar"),
    # randomness
    ("seed-float", dict(seed=1.5), TypeError, "`seed`"),
    ("seed-and-key", dict(seed=1, key=2), ValueError, "either `key=`"),
    ("key-string", dict(key="abc"), TypeError, "`key`"),
    (
        "key-batch",
        dict(key=jax.random.split(jax.random.key(0), 3)),
        ValueError,
        "`key`",
    ),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in SAMPLE_CASES],
    ids=[case[0] for case in SAMPLE_CASES],
)
def test_sample_bad_input(no_compile, arguments, error, match):
    arguments = dict(arguments)
    problem = arguments.pop("problem", ll_m)
    priors = arguments.pop("priors", PRIORS)
    arguments = {"num_warmup": 10, "num_samples": 10, **arguments}
    with pytest.raises(error, match=match):
        oi.sample(problem, priors, **arguments)


TIMES = np.linspace(0.5, 2.0, 4)
DECAY = oi.Problem(
    oi.ODEModel(lambda t, y, p: -p["k"] * y),
    oi.Experiment(
        TIMES,
        2.0 * np.exp(-0.7 * TIMES),
        observables=lambda t, y, p: y,
        noise=oi.Gaussian(0.1),
        y0=2.0,
    ),
    oi.Parameters({"k": oi.Positive(init=1.0), "g": oi.Fixed(1.0)}),
)
K_PRIOR = {"k": dist.LogNormal(0.0, 1.0)}

PROBLEM_CASES = [
    (
        "init-outside-support",
        dict(init={"k": -1.0}),
        ValueError,
        r"init\['k'\].*\(0.0, inf\)",
    ),
    ("init-unknown", dict(init={"k": 1.0, "z": 2.0}), ValueError, r"\['z'\]"),
    (
        "prior-support-mismatch",
        dict(priors={"k": dist.Normal(0.0, 1.0)}),
        ValueError,
        "support",
    ),
    ("prior-missing", dict(priors={}), ValueError, r"no entry.*\['k'\]"),
    (
        "prior-extra",
        dict(priors={**K_PRIOR, "q": dist.Normal()}),
        ValueError,
        r"\['q'\]",
    ),
    ("prior-for-fixed", dict(priors={**K_PRIOR, "g": dist.Normal()}), ValueError, "g"),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in PROBLEM_CASES],
    ids=[case[0] for case in PROBLEM_CASES],
)
def test_sample_problem_bad_input(no_compile, arguments, error, match):
    arguments = dict(arguments)
    priors = arguments.pop("priors", K_PRIOR)
    with pytest.raises(error, match=match):
        oi.sample(DECAY, priors, num_warmup=10, num_samples=10, **arguments)


# ---------------------------------------------------------------------------------
# variational, prior_stress_test, predictive: bad input.

VARIATIONAL_CASES = [
    ("num-steps-zero", dict(num_steps=0), ValueError, "num_steps"),
    ("num-particles-zero", dict(num_particles=0), ValueError, "num_particles"),
    ("num-draws-one", dict(num_draws=1), ValueError, "num_draws"),
    ("learning-rate-zero", dict(learning_rate=0.0), ValueError, "learning_rate"),
    ("learning-rate-nan", dict(learning_rate=float("nan")), ValueError, "learning_"),
    ("guide-unknown", dict(guide="laplace"), ValueError, "`guide`"),
    ("guide-number", dict(guide=3), TypeError, "`guide`"),
    ("prior-not-distribution", dict(priors={"m": 3.0}), TypeError, r"priors\['m'\]"),
    ("ll-numpy", dict(problem=ll_numpy), oi.NumpyInTracedCodeError, "ll_numpy"),
    ("seed-string", dict(seed="0"), TypeError, "`seed`"),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in VARIATIONAL_CASES],
    ids=[case[0] for case in VARIATIONAL_CASES],
)
def test_variational_bad_input(arguments, error, match):
    arguments = dict(arguments)
    problem = arguments.pop("problem", ll_m)
    priors = arguments.pop("priors", PRIORS)
    with pytest.raises(error, match=match):
        oi.variational(problem, priors, **arguments)


STRESS_CASES = [
    ("n-zero", dict(n=0), ValueError, "`n`"),
    ("n-float", dict(n=10.5), ValueError, "`n`"),
    ("batch-size-zero", dict(batch_size=0), ValueError, "batch_size"),
    ("priors-empty", dict(priors={}), ValueError, r"`priors` is empty"),
    ("ll-numpy", dict(problem=ll_numpy), oi.NumpyInTracedCodeError, "ll_numpy"),
    ("ll-vector", dict(problem=ll_vector), ValueError, "scalar"),
    ("key-float", dict(key=0.5), TypeError, "`key`"),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in STRESS_CASES],
    ids=[case[0] for case in STRESS_CASES],
)
def test_prior_stress_test_bad_input(arguments, error, match):
    arguments = dict(arguments)
    problem = arguments.pop("problem", ll_m)
    priors = arguments.pop("priors", PRIORS)
    with pytest.raises(error, match=match):
        oi.prior_stress_test(problem, priors, **arguments)


DRAWS = {"m": np.linspace(0.0, 1.0, 20)}


def simulate_numpy(p):
    return np.exp(p["m"])


PREDICTIVE_CASES = [
    ("no-problem-no-simulate", dict(simulate=None), ValueError, "`simulate=`"),
    ("problem-callable", dict(problem=ll_m, simulate=None), TypeError, "`problem`"),
    ("simulate-not-callable", dict(simulate=3), TypeError, "`simulate`"),
    ("posterior-none", dict(posterior=None), TypeError, "`posterior`"),
    ("posterior-scalar", dict(posterior={"m": 1.0}), ValueError, r"posterior\['m'\]"),
    (
        "posterior-ragged",
        dict(posterior={"m": np.zeros(3), "k": np.zeros(4)}),
        ValueError,
        "same number of draws",
    ),
    ("num-draws-zero", dict(num_draws=0), ValueError, "num_draws"),
    ("quantiles-empty", dict(quantiles=()), ValueError, "`quantiles`"),
    ("quantiles-above-one", dict(quantiles=(0.5, 1.5)), ValueError, "`quantiles`"),
    ("quantiles-nan", dict(quantiles=(float("nan"),)), ValueError, "`quantiles`"),
    ("quantiles-strings", dict(quantiles=("low",)), TypeError, "`quantiles`"),
    ("fixed-overlaps", dict(fixed={"m": 1.0}), ValueError, "`fixed`"),
    ("fixed-list", dict(fixed=[1.0]), TypeError, "`fixed`"),
    (
        "simulate-numpy",
        dict(simulate=simulate_numpy),
        oi.NumpyInTracedCodeError,
        "simulate_numpy",
    ),
    ("key-and-seed", dict(key=0, seed=0), ValueError, "either `key=`"),
]


@pytest.mark.parametrize(
    "arguments, error, match",
    [case[1:] for case in PREDICTIVE_CASES],
    ids=[case[0] for case in PREDICTIVE_CASES],
)
def test_predictive_bad_input(arguments, error, match):
    arguments = {
        "problem": None,
        "posterior": DRAWS,
        "simulate": lambda p: jnp.exp(p["m"]),
        **arguments,
    }
    with pytest.raises(error, match=match):
        oi.predictive(arguments.pop("problem"), arguments.pop("posterior"), **arguments)


# ---------------------------------------------------------------------------------
# Fuzz: sample's argument validation, never compiling.

_BAD_COUNTS = st.one_of(
    st.integers(max_value=-1),
    st.floats(),  # a float is not a count, even 2.0
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)
_GOOD_COUNTS = st.integers(min_value=1, max_value=5)
_BAD_PRIORS = st.one_of(
    st.none(),
    st.just({}),
    st.floats().map(lambda x: {"m": x}),
    st.just({"m": dist.Poisson(1.0)}),
    st.just([dist.Normal()]),
)
_BAD_INIT = st.one_of(
    st.floats(max_value=0.0).map(lambda x: {"m": x}),  # outside LogNormal's support
    st.just({"m": float("nan")}),
    st.just({"q": 1.0}),
    st.text(max_size=3).filter(lambda s: s != "prior"),
    st.integers(),
)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    bad=st.sets(
        st.sampled_from(["num_chains", "num_warmup", "num_samples", "priors", "init"]),
        min_size=1,
    ),
)
def test_fuzz_sample_argument_validation(data, bad):
    arguments = {}
    for name in ("num_chains", "num_warmup", "num_samples"):
        strategy = _BAD_COUNTS if name in bad else _GOOD_COUNTS
        arguments[name] = data.draw(strategy, label=name)
    priors = data.draw(_BAD_PRIORS, label="priors") if "priors" in bad else POSITIVE
    if "init" in bad:
        arguments["init"] = data.draw(_BAD_INIT, label="init")
    else:
        arguments["init"] = {"m": 1.0}

    def refuse(*args, **kwargs):
        raise AssertionError("sample compiled a program for a bad input")

    with mock.patch("odeinfer._inference._sample.compile_chains", refuse):
        with pytest.raises((TypeError, ValueError)) as raised:
            oi.sample(ll_positive, priors, **arguments)
    message = str(raised.value)
    assert any(name in message for name in bad), (bad, message)
