"""Compile time of odeinfer: first call of a solve, its gradient and a NUTS-ready
log-density, and a check that new tolerances, crossing levels or data do not recompile.

The log-density is posteriordb's lynx–hare Lotka–Volterra model (Hudson's Bay Company
pelts 1900–1920), written directly with `odeinfer.solve` and `numpyro.distributions`:
theta_1, theta_3 ~ N(1, 0.5) T[0,), theta_2, theta_4 ~ N(0.05, 0.05) T[0,), sigma_j ~
LogNormal(-1, 1), z_init_j ~ LogNormal(log 10, 1), y_init ~ LogNormal(log z_init, sigma),
y ~ LogNormal(log z(t), sigma), dz/dt = [(a - b v) u, (-c + d u) v], on the unconstrained
(log) scale with its Jacobian, as NUTS sees it (value and gradient).

Traces are counted by a Python counter inside each jitted function (it runs once per
trace, i.e. once per compilation).

Run `python benchmarks/compile_time.py`. Writes `benchmarks/results/compile_time.json`.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

import odeinfer as oi

RESULTS_DIR = Path(__file__).parent / "results"
DATA = Path(__file__).parents[1] / "../shared/data/posteriordb"
DATA_FILE = "hudson_lynx_hare-lotka_volterra.json"


def lotka_volterra(t, z, p):
    u, v = z[0], z[1]
    a, b, c, d = p["theta"][0], p["theta"][1], p["theta"][2], p["theta"][3]
    return jnp.stack([(a - b * v) * u, (-c + d * u) * v])


MODEL = oi.ODEModel(lotka_volterra, name="lynx_hare")
TRACES = {"solve": 0, "gradient": 0, "log_density": 0, "crossing": 0}


def load_data():
    for folder in (
        DATA,
        Path(__file__).resolve().parents[2] / "shared/data/posteriordb",
    ):
        if (folder / DATA_FILE).exists():
            raw = json.loads((folder / DATA_FILE).read_text())
            return (jnp.asarray(raw["ts"], dtype=float),
                    jnp.asarray(raw["y_init"], dtype=float),
                    jnp.asarray(raw["y"], dtype=float))  # fmt: skip
    raise FileNotFoundError(DATA_FILE)


def predict(theta, z_init, ts, rtol, atol):
    sol = oi.solve(MODEL, z_init, {"theta": theta}, t0=0.0, t1=ts[-1], saveat=ts,
                   rtol=rtol, atol=atol, max_events=1, throw=False)  # fmt: skip
    return sol.ys


@jax.jit
def solve_fn(theta, z_init, ts, rtol, atol):
    TRACES["solve"] += 1
    return predict(theta, z_init, ts, rtol, atol)


@jax.jit
def gradient_fn(theta, z_init, ts, y, rtol, atol):
    TRACES["gradient"] += 1

    def loss(theta):
        return jnp.sum(
            (jnp.log(predict(theta, z_init, ts, rtol, atol)) - jnp.log(y)) ** 2
        )

    return jax.grad(loss)(theta)


def log_density(u, ts, y_init, y, rtol, atol):
    """Unconstrained u = log(theta_1..4, z_init_1..2, sigma_1..2); includes log|J|."""
    theta, z_init, sigma = jnp.exp(u[:4]), jnp.exp(u[4:6]), jnp.exp(u[6:8])
    prior = (
        dist.TruncatedNormal(jnp.array([1.0, 0.05, 1.0, 0.05]),
                             jnp.array([0.5, 0.05, 0.5, 0.05]), low=0.0)
        .log_prob(theta).sum()
        + dist.LogNormal(-1.0, 1.0).log_prob(sigma).sum()
        + dist.LogNormal(jnp.log(10.0), 1.0).log_prob(z_init).sum()
    )  # fmt: skip
    z = predict(theta, z_init, ts, rtol, atol)
    likelihood = (
        dist.LogNormal(jnp.log(z_init), sigma).log_prob(y_init).sum()
        + dist.LogNormal(jnp.log(z), sigma).log_prob(y).sum()
    )
    return prior + likelihood + jnp.sum(u)  # log|d exp(u)/du| = sum(u)


@jax.jit
def log_density_fn(u, ts, y_init, y, rtol, atol):
    TRACES["log_density"] += 1
    return jax.value_and_grad(log_density)(u, ts, y_init, y, rtol, atol)


@jax.jit
def crossing_fn(theta, z_init, level, rtol):
    TRACES["crossing"] += 1
    hares = oi.Crossing(lambda t, z, p: z[0], level, direction="rising")
    sol = oi.solve(MODEL, z_init, {"theta": theta}, t0=0.0, t1=20.0, events=hares,
                   rtol=rtol, atol=1e-8, max_events=8, throw=False)  # fmt: skip
    return sol.events.times


def timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    ts, y_init, y = load_data()
    theta = jnp.array([0.55, 0.028, 0.80, 0.024])
    u = jnp.log(jnp.concatenate([theta, y_init, jnp.array([0.25, 0.25])]))
    rtol, atol = jnp.asarray(1e-6), jnp.asarray(1e-6)

    results = {}
    for name, fn, call_args, changed in (
        ("solve", solve_fn, (theta, y_init, ts, rtol, atol),
         (theta * 1.01, y_init, ts, jnp.asarray(1e-8), jnp.asarray(1e-9))),
        ("gradient", gradient_fn, (theta, y_init, ts, y, rtol, atol),
         (theta, y_init, ts, y * 1.1, jnp.asarray(1e-8), jnp.asarray(1e-9))),
        ("log_density", log_density_fn, (u, ts, y_init, y, rtol, atol),
         (u + 0.01, ts, y_init * 0.9, y * 1.1, jnp.asarray(1e-5), jnp.asarray(1e-3))),
        ("crossing", crossing_fn, (theta, y_init, jnp.asarray(40.0), rtol),
         (theta, y_init, jnp.asarray(60.0), jnp.asarray(1e-9))),
    ):  # fmt: skip
        first, _ = timed(fn, *call_args)
        second, _ = timed(fn, *call_args)
        changed_time, _ = timed(fn, *changed)
        results[name] = dict(
            first_call_s=first,
            second_call_s=second,
            call_after_changing_tolerance_level_or_data_s=changed_time,
            traces=TRACES[name],
            recompiled=TRACES[name] > 1,
        )
        print(f"{name:12s} first call {first:6.2f} s, later {second * 1e3:8.2f} ms, after "
              f"changing tolerances/level/data {changed_time * 1e3:8.2f} ms, traces "
              f"{TRACES[name]}", flush=True)  # fmt: skip
    assert not any(r["recompiled"] for r in results.values()), (
        "unexpected recompilation"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "compile_time.json"
    path.write_text(json.dumps(dict(machine=platform.platform(),
                                    jax=jax.__version__, results=results), indent=1))  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
