"""Gradient-speed benchmark (issue 5): the lynx–hare Lotka–Volterra log-density.

The posteriordb model `hudson_lynx_hare-lotka_volterra`: du/dt = (α − βv)u,
dv/dt = (−γ + δu)v with θ = (α, β, γ, δ), initial state z_init at t = 0, observations
y_init ~ LogNormal(log z_init, σ) at t = 0 and y(t) ~ LogNormal(log z(t), σ) at
t = 1..20; priors θ₁, θ₃ ~ N⁺(1, 0.5), θ₂, θ₄ ~ N⁺(0.05, 0.05),
z_init ~ LogNormal(log 10, 1), σ ~ LogNormal(−1, 1). The log-density is taken on the
unconstrained scale a sampler sees (x = log of the 8 positive parameters, with the
log-Jacobian), at a point near the posterior mean.

Per call (jitted, after warm-up; the smallest over `--rounds` interleaved rounds of the
median of `--repeats` calls), at two tolerances
(rtol = atol = 1e-6, and Stan's rtol = 1e-5, atol = 1e-3):

- `diffrax reverse`: `odeinfer.solve` (Tsit5, diffrax's default
  `RecursiveCheckpointAdjoint`), value and `jax.grad`;
- `diffrax forward`: `odeinfer.solve` with `diffrax.ForwardMode()`, gradient by
  `jax.jacfwd`;
- `fast`: `odeinfer.solve_at_times` (Dormand–Prince with forward sensitivities),
  gradient by `jax.grad` (transposed forward sensitivities) and by `jax.jacfwd`; also
  with the sensitivities' Jacobian products formed by `jax.jacfwd` of the vector field
  per stage instead of one vmapped `jax.jvp`, and with error control on the
  sensitivities too.

Every gradient is compared with a reference gradient (diffrax `ForwardMode` at
rtol = atol = 1e-12). Run `python benchmarks/gradient_speed.py` (or `--quick`); writes
`benchmarks/results/gradient_speed.json`.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

import odeinfer as oi
from odeinfer._fast._solve_at_times import _solve_at_times

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared/data/posteriordb/hudson_lynx_hare-lotka_volterra.json"
)
RESULTS_DIR = Path(__file__).parent / "results"
TOLERANCES = {"1e-6/1e-6": (1e-6, 1e-6), "stan 1e-5/1e-3": (1e-5, 1e-3)}
# log of (θ, z_init, σ) near the posterior mean.
X0 = jnp.log(jnp.array([0.55, 0.028, 0.80, 0.024, 33.9, 5.9, 0.25, 0.25]))


def lotka_volterra(t, z, theta):
    u, v = z
    alpha, beta, gamma, delta = theta
    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


MODEL = oi.ODEModel(lotka_volterra, name="lotka_volterra")


def lognormal_logpdf(y, log_median, sigma):
    return norm.logpdf(jnp.log(y), log_median, sigma) - jnp.log(y)


def make_log_density(solve_states, data):
    """`x -> log p(x | data)` on the unconstrained (log) scale; `solve_states(z_init,
    theta) -> (states at ts, ok)`."""
    y_init = jnp.asarray(data["y_init"], float)
    y = jnp.asarray(data["y"], float)

    def log_density(x):
        params = jnp.exp(x)
        theta, z_init, sigma = params[:4], params[4:6], params[6:8]
        z, ok = solve_states(z_init, theta)
        prior = (
            jnp.sum(norm.logpdf(theta[jnp.array([0, 2])], 1.0, 0.5))
            + jnp.sum(norm.logpdf(theta[jnp.array([1, 3])], 0.05, 0.05))
            + jnp.sum(lognormal_logpdf(z_init, jnp.log(10.0), 1.0))
            + jnp.sum(lognormal_logpdf(sigma, -1.0, 1.0))
        )
        likelihood = jnp.sum(
            lognormal_logpdf(y_init, jnp.log(z_init), sigma)
        ) + jnp.sum(lognormal_logpdf(y, jnp.log(z), sigma))
        value = prior + likelihood + jnp.sum(x)  # + log|d params / d x|
        return jnp.where(ok, value, -jnp.inf)

    return log_density


def diffrax_states(ts, rtol, atol, adjoint):
    def solve_states(z_init, theta):
        sol = oi.solve(
            MODEL,
            z_init,
            theta,
            t0=0.0,
            t1=ts[-1],
            saveat=ts,
            rtol=rtol,
            atol=atol,
            adjoint=adjoint,
            throw=False,
        )
        return sol.ys, sol.successful

    return solve_states


def fast_states(ts, rtol, atol, **options):
    def solve_states(z_init, theta):
        return _solve_at_times(
            MODEL,
            z_init,
            theta,
            ts,
            rtol=rtol,
            atol=atol,
            max_steps=4096,
            t0=0.0,
            sensitivity_error_control=options.get("error_control", False),
            sensitivity_mode=options.get("mode", "jvp"),
        )

    return solve_states


def median_time(fn, x, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timings(functions, x, repeats, rounds):
    """Per function, the smallest over `rounds` interleaved rounds of the median of
    `repeats` calls (after compilation and warm-up): robust to a busy machine."""
    for fn in functions.values():
        for _ in range(20):
            jax.block_until_ready(fn(x))
    best = dict.fromkeys(functions, np.inf)
    for _ in range(rounds):
        for key, fn in functions.items():
            best[key] = min(best[key], median_time(fn, x, repeats))
    return best


def jacfwd_gradient(log_density):
    return jax.jacfwd(log_density)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 repeats, 1 round")
    parser.add_argument("--data", type=Path, default=DATA, help="posteriordb data file")
    args = parser.parse_args()
    repeats = 200 if args.quick else args.repeats
    if args.quick:
        args.rounds = 1

    data = json.loads(args.data.read_text())
    ts = jnp.asarray(data["ts"], float)
    reference = make_log_density(
        diffrax_states(ts, 1e-12, 1e-12, diffrax.ForwardMode()), data
    )
    ref_value = float(jax.jit(reference)(X0))
    ref_grad = np.asarray(jax.jit(jax.jacfwd(reference))(X0))

    rows, functions, labels = [], {}, []
    for tol_name, (rtol, atol) in TOLERANCES.items():
        variants = [
            (
                "diffrax reverse (grad)",
                diffrax_states(ts, rtol, atol, diffrax.RecursiveCheckpointAdjoint()),
                jax.grad,
            ),
            (
                "diffrax forward (jacfwd)",
                diffrax_states(ts, rtol, atol, diffrax.ForwardMode()),
                jacfwd_gradient,
            ),
            ("fast (grad)", fast_states(ts, rtol, atol), jax.grad),
            ("fast (jacfwd)", fast_states(ts, rtol, atol), jacfwd_gradient),
            (
                "fast, jacfwd per stage (grad)",
                fast_states(ts, rtol, atol, mode="jacfwd"),
                jax.grad,
            ),
            (
                "fast, error control on S (grad)",
                fast_states(ts, rtol, atol, error_control=True),
                jax.grad,
            ),
        ]
        for name, states, gradient in variants:
            log_density = make_log_density(states, data)
            family = name.split(" (")[0].split(",")[0]
            functions[(tol_name, family, "value")] = jax.jit(log_density)
            functions[(tol_name, name, "gradient")] = jax.jit(gradient(log_density))
            labels.append((tol_name, family, name))
    times = timings(functions, X0, repeats, args.rounds)
    for tol_name, family, name in labels:
        value_fn = functions[(tol_name, family, "value")]
        grad_fn = functions[(tol_name, name, "gradient")]
        t_value = times[(tol_name, family, "value")]
        t_grad = times[(tol_name, name, "gradient")]
        value = float(value_fn(X0))
        grad = np.asarray(grad_fn(X0))
        row = {
            "tolerance": tol_name,
            "method": name,
            "value_us": 1e6 * t_value,
            "gradient_us": 1e6 * t_grad,
            "ratio": t_grad / t_value,
            "value_error": abs(value - ref_value),
            "gradient_rel_error": float(
                np.max(np.abs(grad - ref_grad)) / np.max(np.abs(ref_grad))
            ),
        }
        rows.append(row)
        print(
            f"{tol_name:>15} {name:<34} value {row['value_us']:8.1f} us  "
            f"gradient {row['gradient_us']:8.1f} us  ratio {row['ratio']:5.2f}  "
            f"|dvalue| {row['value_error']:.1e}  grad rel err "
            f"{row['gradient_rel_error']:.1e}",
            flush=True,
        )
    # Gradient agreement between the fast path and diffrax at the same tolerance.
    agreement = {}
    for tol_name, (rtol, atol) in TOLERANCES.items():
        g_fast = jax.jit(jax.grad(make_log_density(fast_states(ts, rtol, atol), data)))(
            X0
        )
        g_dfx = jax.jit(
            jax.grad(
                make_log_density(
                    diffrax_states(
                        ts, rtol, atol, diffrax.RecursiveCheckpointAdjoint()
                    ),
                    data,
                )
            )
        )(X0)
        agreement[tol_name] = float(
            np.max(np.abs(g_fast - g_dfx)) / np.max(np.abs(g_dfx))
        )
    print("max |grad fast - grad diffrax| / max |grad diffrax|:", agreement)

    RESULTS_DIR.mkdir(exist_ok=True)
    out = {
        "benchmark": "gradient_speed",
        "model": "hudson_lynx_hare-lotka_volterra (8 parameters, log scale)",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "jax": jax.__version__,
            "diffrax": diffrax.__version__,
            "backend": jax.default_backend(),
        },
        "repeats": repeats,
        "rounds": args.rounds,
        "timing": "min over interleaved rounds of the median per call (jitted, warm)",
        "reference": "diffrax ForwardMode, rtol = atol = 1e-12",
        "rows": rows,
        "fast_vs_diffrax_gradient_rel_diff": agreement,
    }
    path = RESULTS_DIR / "gradient_speed.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
