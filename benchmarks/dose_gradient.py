"""A 12-subject oral one-compartment PK likelihood with one `oi.Dose` per subject: the
cost of a log-likelihood gradient with the default fused solver (`FusedAuto`, which
takes the doses in its own loop), with the diffrax path (`diffrax.Tsit5()`, where doses
went before the fused solvers took them), and with the dose folded into y0 (the
workaround users had). Prints a table and writes `benchmarks/results/dose_gradient.json`.

    python benchmarks/dose_gradient.py [--repeats 30]
"""

import argparse
import json
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import odeinfer as oi

SUBJECTS = 12
TIMES = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0])
DOSE = 100.0
TRUE = {"ka": 1.2, "ke": 0.15, "V": 20.0, "sigma": 0.1}


def field(t, y, p):
    gut, central = y[0], y[1]
    return jnp.stack([-p["ka"] * gut, p["ka"] * gut - p["ke"] * central])


MODEL = oi.ODEModel(field, name="oral_pk")


def concentration(t, y, p):
    return y[1] / p["V"]


def data(rng):
    ka, ke, v = TRUE["ka"], TRUE["ke"], TRUE["V"]
    clean = DOSE / v * ka / (ka - ke) * (np.exp(-ke * TIMES) - np.exp(-ka * TIMES))
    return clean * np.exp(TRUE["sigma"] * rng.standard_normal((SUBJECTS, TIMES.size)))


def problem(values, *, folded: bool, solver):
    experiments = []
    for i in range(SUBJECTS):
        if folded:
            experiment = oi.Experiment(
                TIMES, values[i], observables=concentration,
                noise=oi.LogNormal("sigma"),
                y0=lambda p: jnp.array([DOSE, 0.0]), t0=0.0,
            )  # fmt: skip
        else:
            experiment = oi.Experiment(
                TIMES, values[i], observables=concentration,
                noise=oi.LogNormal("sigma"), y0=lambda p: jnp.zeros(2), t0=0.0,
                doses=oi.Dose(0.0, DOSE, target=0),
            )  # fmt: skip
        experiments.append(experiment)
    parameters = oi.Parameters({k: oi.Positive(init=v) for k, v in TRUE.items()})
    return oi.Problem(MODEL, experiments, parameters, solver=solver, rtol=1e-6,
                      atol=1e-8)  # fmt: skip


def measure(prob, repeats):
    params = {k: jnp.asarray(v) for k, v in TRUE.items()}
    value = jax.jit(lambda p: oi.log_likelihood(prob, p))
    grad = jax.jit(jax.grad(lambda p: oi.log_likelihood(prob, p)))
    start = time.perf_counter()
    jax.block_until_ready(grad(params))
    compile_grad = time.perf_counter() - start
    jax.block_until_ready(value(params))
    out = {"compile_grad_s": compile_grad}
    for name, fn in (("value_ms", value), ("grad_ms", grad)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(params))
            times.append(time.perf_counter() - start)
        out[name] = 1e3 * float(np.median(times))
    out["llh"] = float(value(params))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    values = data(np.random.default_rng(0))
    rows = {
        "FusedAuto + Dose (default)": problem(values, folded=False, solver=None),
        "diffrax Tsit5 + Dose": problem(values, folded=False, solver=diffrax.Tsit5()),
        "FusedAuto, dose in y0": problem(values, folded=True, solver=None),
    }
    results = {name: measure(prob, args.repeats) for name, prob in rows.items()}
    llhs = [r["llh"] for r in results.values()]
    assert np.allclose(llhs, llhs[0], rtol=1e-6), llhs  # same likelihood three ways
    base = results["FusedAuto + Dose (default)"]["grad_ms"]
    print(f"{'':30s} {'value ms':>9s} {'grad ms':>9s} {'grad/default':>13s} "
          f"{'compile s':>10s}")  # fmt: skip
    for name, r in results.items():
        print(f"{name:30s} {r['value_ms']:9.2f} {r['grad_ms']:9.2f} "
              f"{r['grad_ms'] / base:13.2f} {r['compile_grad_s']:10.1f}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dose_gradient.json").write_text(
        json.dumps({"subjects": SUBJECTS, "rtol": 1e-6, "results": results}, indent=1)
    )


if __name__ == "__main__":
    main()
