"""Should `oi.sample` adapt a dense or a diagonal mass matrix by default? NUTS with each
metric on four posteriors of 4 to 43 unconstrained dimensions, by max split R-hat, min
bulk ESS per 1,000 leapfrog steps (the cost unit: one gradient each, independent of the
machine's load) and per second of sampling (4 chains, the same key for both metrics).

Posteriors:

- `sir`, `one_comp`, `lynx_hare`: the posteriordb posteriors of
    `benchmarks/nuts_init.py` (4, 4 and 8 dimensions; `one_comp` needs
    `POSTERIORDB_DIR`).
- `pk12`: a hierarchical oral one-compartment PK model, 12 subjects × 9 samples,
    simulated here (seed 0): per-subject `log ke, log(ka - ke), log V` non-centred
    around population means with population scales, log-normal noise (writing
    `ka = ke + d` removes the oral model's flip-flop symmetry `ka <-> ke`, which
    otherwise gives every subject two modes). 3 means + 3 scales + sigma + 36
    subject offsets = 43 dimensions. Solved with `oi.FusedDopri5` (forward
    sensitivities, vmapped over subjects).

    python benchmarks/dense_metric.py [--num-warmup 1000 --num-samples 1000]
        [--models sir one_comp lynx_hare pk12]

Prints a table and writes `benchmarks/results/dense_metric.json`.
"""

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from nuts_init import PK_PRIORS, _pk_data, lynx_hare, pk_log_likelihood, run, sir

import odeinfer as oi

HERE = pathlib.Path(__file__).resolve().parent

# ---- 12-subject hierarchical oral PK -----------------------------------------------

SUBJECTS = 12
TIMES = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0])
DOSE = 100.0
POPULATION = {"d": 1.05, "ke": 0.15, "V": 20.0}  # ka = ke + d = 1.2
SPREAD = 0.3  # population sd of each log parameter
SIGMA = 0.15
LOG_PARAMS = ("d", "ke", "V")


def _oral(t, y, p):
    return jnp.stack([-p["ka"] * y[0], p["ka"] * y[0] - p["ke"] * y[1]])


ORAL = oi.ODEModel(_oral, name="oral_pk")


def _pk12_data():
    rng = np.random.default_rng(0)
    logs = {
        k: np.log(v) + SPREAD * rng.standard_normal(SUBJECTS)
        for k, v in POPULATION.items()
    }
    d, ke, v = (np.exp(logs[k])[:, None] for k in LOG_PARAMS)
    ka = ke + d
    clean = DOSE / v * ka / (ka - ke) * (np.exp(-ke * TIMES) - np.exp(-ka * TIMES))
    return clean * np.exp(SIGMA * rng.standard_normal(clean.shape))


def pk12():
    observed = jnp.asarray(_pk12_data())
    priors: dict = {}
    for k in LOG_PARAMS:
        priors[f"mu_{k}"] = dist.Normal(float(np.log(POPULATION[k])), 1.0)
        priors[f"tau_{k}"] = dist.HalfNormal(0.5)
        for i in range(SUBJECTS):
            priors[f"z_{k}_{i}"] = dist.Normal(0.0, 1.0)
    priors["sigma"] = dist.HalfNormal(0.5)

    def one(ka, ke, v):
        sol = oi.solve(
            ORAL, jnp.array([DOSE, 0.0]), {"ka": ka, "ke": ke}, t0=0.0,
            t1=float(TIMES[-1]), saveat=jnp.asarray(TIMES), rtol=1e-6, atol=1e-8,
            solver=oi.FusedDopri5(), throw=False,
        )  # fmt: skip
        return sol.ys[:, 1] / v, sol.successful

    def log_likelihood(p):
        per_subject = {
            k: jnp.exp(
                p[f"mu_{k}"]
                + p[f"tau_{k}"] * jnp.stack([p[f"z_{k}_{i}"] for i in range(SUBJECTS)])
            )
            for k in LOG_PARAMS
        }
        ke = per_subject["ke"]
        conc, ok = jax.vmap(one)(ke + per_subject["d"], ke, per_subject["V"])
        positive = jnp.all(conc > 0)
        safe = jnp.where(positive, conc, 1.0)
        value = dist.LogNormal(jnp.log(safe), p["sigma"]).log_prob(observed).sum()
        return value, jnp.all(ok) & positive

    return log_likelihood, priors


def one_comp():
    _pk_data()
    return pk_log_likelihood, PK_PRIORS


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models", nargs="+", default=["sir", "one_comp", "lynx_hare", "pk12"]
    )
    parser.add_argument("--output", default=str(HERE / "results" / "dense_metric.json"))
    args = parser.parse_args()
    models = {"sir": sir, "one_comp": one_comp, "lynx_hare": lynx_hare, "pk12": pk12}
    results: dict = {"config": vars(args)}
    header = (
        f"{'model':10s} {'metric':8s} {'dim':>4s} {'R-hat':>6s} {'min ESS':>8s} "
        f"{'steps/draw':>10s} {'ESS/1k steps':>12s} {'ESS/s':>7s} {'div':>4s}"
    )
    print(header, flush=True)
    for name in args.models:
        problem, priors = models[name]()
        for metric, dense in (("dense", True), ("diagonal", False)):
            row = run(problem, priors, args, dense_mass=dense)
            results.setdefault(name, {})[metric] = row
            print(
                f"{name:10s} {metric:8s} {row['dimensions']:4d} {row['rhat_max']:6.3f} "
                f"{row['min_bulk_ess']:8.0f} {row['leapfrog_steps_per_draw']:10.1f} "
                f"{row['ess_per_1000_steps']:12.2f} {row['ess_per_s']:7.1f} "
                f"{row['divergences']:4d}",
                flush=True,
            )
            pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(args.output).write_text(
                json.dumps(results, indent=2, default=float)
            )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
