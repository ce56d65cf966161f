"""`oi.variational`: conjugate posterior, the two-Normal mixture ELBO optimum
(against quadrature), and the ELBO gradient against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import Trace_ELBO
from scipy import integrate, optimize, stats

import odeinfer as oi
from odeinfer._density import log_density
from odeinfer._inference._variational import unconstrained_model

# y_i ~ N(mu_j, 1) for two independent means, mu_j ~ N(0, 2): known Gaussian posterior.
Y = np.array([[1.2, 0.4, 2.1, 1.5, 0.9], [-0.3, 0.2, -1.1, 0.0, -0.6]])
POST_PREC = 1 / 4 + Y.shape[1]
POST_MEAN = Y.sum(axis=1) / POST_PREC
POST_SD = POST_PREC**-0.5
PRIORS = {"mu1": dist.Normal(0.0, 2.0), "mu2": dist.Normal(0.0, 2.0)}


def conjugate_ll(p):
    return jnp.sum(jax.scipy.stats.norm.logpdf(Y[0], p["mu1"], 1.0)) + jnp.sum(
        jax.scipy.stats.norm.logpdf(Y[1], p["mu2"], 1.0)
    )


@pytest.mark.parametrize("guide", ["meanfield", "fullrank"])
def test_conjugate_normal(guide):
    result = oi.variational(
        conjugate_ll,
        PRIORS,
        guide=guide,
        num_steps=2000,
        learning_rate=0.02,
        num_particles=8,
        num_draws=4000,
        key=0,
    )
    assert result.elbo.shape == (2000,)
    assert result.elbo[-100:].mean() > result.elbo[:10].mean()
    for i, n in enumerate(("mu1", "mu2")):
        assert abs(result.mean()[n] - POST_MEAN[i]) < 0.05
        assert abs(result.std()[n] / POST_SD - 1) < 0.1


def mixture_ll(p):
    x = p["x"]
    return jnp.log(0.5) + jnp.logaddexp(
        jax.scipy.stats.norm.logpdf(x, -3.0, 1.0),
        jax.scipy.stats.norm.logpdf(x, 3.0, 1.0),
    )


MIXTURE_PRIOR = {"x": dist.ImproperUniform(dist.constraints.real, (), ())}


def centred_guide():
    # q(x) = N(0, s): the location is held at 0.
    s = numpyro.param("s", 1.0, constraint=dist.constraints.positive)
    numpyro.sample("u", dist.Normal(0.0, s).expand([1]).to_event(1))


def quadrature_elbo(s):
    def integrand(x):
        log_p = np.log(0.5) + np.logaddexp(
            stats.norm.logpdf(x, -3, 1), stats.norm.logpdf(x, 3, 1)
        )
        return stats.norm.pdf(x, 0, s) * log_p

    expected = integrate.quad(integrand, -12 * s, 12 * s, limit=200)[0]
    return expected + 0.5 * np.log(2 * np.pi * np.e * s**2)


def test_mixture_elbo_optimum_matches_quadrature():
    best = optimize.minimize_scalar(
        lambda s: -quadrature_elbo(s),
        bounds=(0.5, 6),
        method="bounded",
        options={"xatol": 1e-8},
    )
    assert abs(best.x - 2.74) < 0.01  # the value
    result = oi.variational(
        mixture_ll,
        MIXTURE_PRIOR,
        guide=centred_guide,
        num_steps=2000,
        learning_rate=0.02,
        num_particles=16,
        key=1,
    )
    s_fit = float(result.guide_params["s"])
    assert abs(s_fit - best.x) < 0.15
    # the reported ELBO (averaged over the last steps) is the quadrature ELBO
    assert abs(result.elbo[-300:].mean() - quadrature_elbo(s_fit)) < 0.1


def test_elbo_gradient_matches_finite_differences():
    model = unconstrained_model(log_density(mixture_ll, MIXTURE_PRIOR))
    elbo = Trace_ELBO(num_particles=8)
    key = jax.random.key(3)  # fixed reparameterisation noise

    def loss(log_s):
        params = {"s_auto": jnp.exp(log_s)}

        def guide():
            s = numpyro.param("s_auto", 1.0)
            numpyro.sample("u", dist.Normal(0.0, s).expand([1]).to_event(1))

        return elbo.loss(key, params, model, guide)

    loss = jax.jit(loss)
    grad_fn = jax.jit(jax.grad(loss))
    for log_s in (0.0, 1.0, 1.5):
        grad = grad_fn(log_s)
        h = 1e-5
        fd = (loss(log_s + h) - loss(log_s - h)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # ... and its expectation matches the derivative of the quadrature ELBO
    s = 1.5
    big = Trace_ELBO(num_particles=4000)

    def loss_big(log_s):
        def guide():
            numpyro.sample(
                "u", dist.Normal(0.0, jnp.exp(log_s)).expand([1]).to_event(1)
            )

        return big.loss(jax.random.key(4), {}, model, guide)

    d_quad = (
        quadrature_elbo(s * np.exp(1e-4)) - quadrature_elbo(s * np.exp(-1e-4))
    ) / 2e-4
    assert abs(-float(jax.jit(jax.grad(loss_big))(np.log(s))) - d_quad) < 0.08


def test_bad_guide():
    with pytest.raises(ValueError, match="guide"):
        oi.variational(conjugate_ll, PRIORS, guide="gaussian")
