"""NUTS on the lynx–hare Lotka–Volterra model (posteriordb priors) with `oi.sample`.

Data, model and priors are posteriordb's `hudson_lynx_hare-lotka_volterra` (the data and
the reference posterior means ship in `odeinfer/data/`).

python examples/lynx_hare_nuts.py --num-warmup 500 --num-samples 500 --num-chains 4
"""

import argparse
import json
import pathlib

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import odeinfer as oi

# posteriordb's data and reference posterior means, shipped with the package.
DATA_DIR = pathlib.Path(oi.__file__).parent / "data"


def load_data():
    return json.loads((DATA_DIR / "hudson_lynx_hare-lotka_volterra.json").read_text())


NAMES = ("theta1", "theta2", "theta3", "theta4", "z1", "z2", "sigma1", "sigma2")


def reference_posterior():
    """posteriordb's reference posterior means and their MCSE (shipped with odeinfer),
    keyed by `NAMES`."""
    path = DATA_DIR / "hudson_lynx_hare-lotka_volterra.reference_mean.json"
    reference = json.loads(path.read_text())
    return {
        "mean": dict(zip(NAMES, reference["mean"], strict=True)),
        "mcse_mean": dict(zip(NAMES, reference["mcse_mean"], strict=True)),
    }


def priors():
    # posteriordb: theta ~ N+(.) (truncated at 0 by the <lower=0> declaration),
    # z_init ~ LogNormal(log 10, 1), sigma ~ LogNormal(-1, 1).
    return {
        "theta1": dist.TruncatedNormal(1.0, 0.5, low=0.0),
        "theta2": dist.TruncatedNormal(0.05, 0.05, low=0.0),
        "theta3": dist.TruncatedNormal(1.0, 0.5, low=0.0),
        "theta4": dist.TruncatedNormal(0.05, 0.05, low=0.0),
        "z1": dist.LogNormal(jnp.log(10.0), 1.0),
        "z2": dist.LogNormal(jnp.log(10.0), 1.0),
        "sigma1": dist.LogNormal(-1.0, 1.0),
        "sigma2": dist.LogNormal(-1.0, 1.0),
    }


def lotka_volterra(t, z, p):
    u, v = z[0], z[1]
    return jnp.stack(
        [(p["theta1"] - p["theta2"] * v) * u, (-p["theta3"] + p["theta4"] * u) * v]
    )


MODEL = oi.ODEModel(lotka_volterra, name="lotka_volterra")

INIT = {
    "theta1": 0.55,
    "theta2": 0.028,
    "theta3": 0.8,
    "theta4": 0.024,
    "z1": 33.0,
    "z2": 6.0,
    "sigma1": 0.25,
    "sigma2": 0.25,
}


def make_problem(data, rtol=1e-6, atol=1e-6, max_steps=4096):
    """posteriordb's model as an `oi.Problem`: the pelts at t = 1..20 and the initial
    counts `y_init` at t = 0, each species with its own log-normal noise."""
    times = np.concatenate([[0.0], np.asarray(data["ts"], float)])
    pelts = np.concatenate(
        [np.asarray(data["y_init"], float)[None], np.asarray(data["y"], float)]
    )
    experiment = oi.Experiment(
        times,
        pelts,
        observables={"hare": lambda t, z, p: z[0], "lynx": lambda t, z, p: z[1]},
        noise=[oi.LogNormal("sigma1"), oi.LogNormal("sigma2")],
        y0=lambda p: jnp.stack([p["z1"], p["z2"]]),
        t0=0.0,
    )
    parameters = oi.Parameters({n: oi.Positive(init=INIT[n]) for n in NAMES})
    return oi.Problem(
        MODEL, experiment, parameters, rtol=rtol, atol=atol, max_steps=max_steps
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the summary as JSON here")
    args = parser.parse_args(argv)
    data = load_data()
    problem = make_problem(data, rtol=1e-6, atol=1e-6)
    posterior = oi.sample(
        problem,
        priors(),
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        key=args.seed,
        init=INIT,
    )
    table = posterior.summary()
    print(table[["mean", "sd", "q5", "q95", "ess_bulk", "r_hat"]])
    print(
        f"divergences: {posterior.num_divergences}, solver failures: {posterior.num_failures}"
    )
    if args.output:
        pathlib.Path(args.output).write_text(
            json.dumps(
                {
                    n: [float(table.loc[n, "mean"]), float(table.loc[n, "sd"])]
                    for n in NAMES
                }
            )
        )
    return posterior


if __name__ == "__main__":
    main()
