"""odeinfer demo: the two seed problems of issue 2, checked against independent answers.

1. Logistic growth dy/dt = k y (1 - y), y(0) = 0.5, k = 0.01: when does y reach 0.8?
   Closed form t* = ln 4 / k = 100 ln 4, and dt*/dk = -ln 4 / k^2.
2. A 3-D spring, F = sqrt(x^2 + y^2 + z^2), x'' = (1/F - 1) k x, y'' = (1/F - 1) k y,
   z'' = (1/F - 1) k z - g with k = 250, g = 10, x(0) = y(0) = 0, z(0) = 0.7,
   x'(0) = 0.1, y'(0) = 1.5, z'(0) = 0 on 0 < t < 5: when is F = 0.85, the first time and
   every time, and how do those times move with z(0) and with the spring constant k?
   Checked against scipy `solve_ivp` (DOP853, rtol = atol = 1e-13) and central finite
   differences of scipy's event times.

3. NUTS on the lynx–hare Lotka–Volterra posterior (posteriordb), a short run of
   `oi.sample` with its defaults: posterior means against posteriordb's reference
   posterior (Stan, shipped in `odeinfer/data/`), within four combined Monte Carlo
   standard errors. `--no-nuts` skips it.

Prints a table of every check, writes `demo_output/spring_crossings.png` and exits with
status 1 if any check fails. Run: `python examples/demo.py` (or `make demo`).
"""

import argparse
import sys
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import odeinfer as oi
import odeinfer.benchmarking as oib

RTOL, ATOL = 1e-10, 1e-12  # odeinfer's tolerances in this demo
REF_TOL = 1e-13  # scipy reference tolerance


class Checks:
    """Collects (name, value, reference, error, tolerance) rows and prints them."""

    def __init__(self):
        self.rows = []

    def add(self, name, value, reference, tolerance, relative=False):
        value, reference = np.asarray(value, float), np.asarray(reference, float)
        error = np.abs(value - reference)
        if relative:
            error = error / np.maximum(np.abs(reference), 1e-300)
        error = (
            float(np.max(error, initial=0.0))
            if value.shape == reference.shape
            else np.inf
        )
        self.rows.append((name, value, reference, error, tolerance, relative))
        return error <= tolerance

    def print(self):
        print(
            f"\n{'check':48} {'odeinfer':>14} {'reference':>14} {'error':>9} {'tol':>8}  ok"
        )
        print("-" * 102)
        for name, value, reference, error, tolerance, relative in self.rows:
            kind = "rel" if relative else "abs"
            show = (
                (lambda a: f"{float(a):14.8f}")
                if value.size == 1
                else (lambda a: f"{'[' + str(a.size) + ' values]':>14}")
            )
            ok = "yes" if error <= tolerance else "NO"
            print(
                f"{name:48} {show(value)} {show(reference)} {error:9.1e} "
                f"{tolerance:8.0e}  {ok} ({kind})"
            )

    @property
    def passed(self):
        return all(error <= tol for _, _, _, error, tol, _ in self.rows)


# ---------------------------------------------------------------- 1. logistic


def logistic_demo(checks):
    model = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y), name="logistic")
    reach = oi.Crossing(lambda t, y, p: y, 0.8, direction="rising")

    def threshold_time(k):
        hit = oi.first_crossing(
            model,
            0.5,
            {"k": k},
            reach,
            t0=0.0,
            t1=1000.0,
            rtol=RTOL,
            atol=ATOL,
            solver=oi.FusedDopri5(),  # one terminal crossing: the fused loop
        )
        return hit.time

    k = 0.01
    t_star = threshold_time(k)
    dt_dk = jax.grad(threshold_time)(k)
    print(
        f"logistic: y reaches 0.8 at t* = {float(t_star):.10f}; dt*/dk = {float(dt_dk):.4f}"
    )
    checks.add("logistic t* vs 100 ln 4", t_star, np.log(4) / k, 1e-6)
    checks.add(
        "logistic dt*/dk vs -ln4/k^2", dt_dk, -np.log(4) / k**2, 1e-6, relative=True
    )


# ---------------------------------------------------------------- 2. spring


def spring_field(t, s, p):
    x, y, z, vx, vy, vz = s
    c = (1 / jnp.sqrt(x**2 + y**2 + z**2) - 1) * p["k"]
    return jnp.stack([vx, vy, vz, c * x, c * y, c * z - p["g"]])


spring = oi.ODEModel(spring_field, name="spring")
length = oi.Crossing(lambda t, s, p: jnp.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2), 0.85)
Y0 = jnp.array([0.0, 0.0, 0.7, 0.1, 1.5, 0.0])
PARAMS = {"k": jnp.array(250.0), "g": jnp.array(10.0)}
T1 = 5.0
MAX_EVENTS = 32


def scipy_crossings(z0=0.7, k=250.0):
    """Every F = 0.85 crossing by scipy DOP853 at rtol = atol = 1e-13 (the reference)."""

    def field(t, s):
        x, y, z, vx, vy, vz = s
        c = (1 / np.sqrt(x * x + y * y + z * z) - 1) * k
        return [vx, vy, vz, c * x, c * y, c * z - 10.0]

    def event(t, s):
        return np.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2) - 0.85

    y0 = [0.0, 0.0, z0, 0.1, 1.5, 0.0]
    sol = solve_ivp(
        field, (0, T1), y0, method="DOP853", rtol=REF_TOL, atol=REF_TOL, events=event
    )
    return sol.t_events[0]


def crossing_times(z0, k):
    """All crossing times as a fixed-size vector (0 in unused slots: gradient-safe).

    Every crossing needs the diffrax path (the fused solvers take one terminal crossing).
    """
    found = oi.all_crossings(
        spring,
        Y0.at[2].set(z0),
        {**PARAMS, "k": k},
        length,
        t0=0.0,
        t1=T1,
        max_events=MAX_EVENTS,
        rtol=RTOL,
        atol=ATOL,
        adjoint=diffrax.ForwardMode(),
    )
    return jnp.where(found.mask, found.times, 0.0), found.count


def spring_demo(checks, output):
    first = oi.first_crossing(
        spring,
        Y0,
        PARAMS,
        length,
        t0=0.0,
        t1=T1,
        rtol=RTOL,
        atol=ATOL,
        solver=oi.FusedDopri5(),
    )
    # F(t) on a grid for the plot: a plain solve, no events needed.
    grid = jnp.linspace(0.0, T1, 2001)
    sol = oi.solve(
        spring,
        Y0,
        PARAMS,
        t0=0.0,
        t1=T1,
        saveat=grid,
        rtol=RTOL,
        atol=ATOL,
        solver=oi.FusedDopri5(),
    )

    # Every crossing time and its sensitivities to z(0) and to k: forward mode, one
    # solve (the times themselves come back as the auxiliary output).
    def times_and_count(z0, k):
        times, count = crossing_times(z0, k)
        return times, (times, count)

    sens_fn = jax.jit(jax.jacfwd(times_and_count, argnums=(0, 1), has_aux=True))
    (dz0, dk), (all_times, found) = sens_fn(jnp.array(0.7), jnp.array(250.0))
    count = int(found)
    times = np.asarray(all_times)[:count]
    dz0, dk = np.asarray(dz0)[:count], np.asarray(dk)[:count]

    reference = scipy_crossings()
    # Central finite differences of scipy's event times (steps ~ 1e-5 relative).
    hz, hk = 1e-5, 250.0 * 1e-5
    fd = {}
    for name, plus, minus, h in (
        ("z0", dict(z0=0.7 + hz), dict(z0=0.7 - hz), hz),
        ("k", dict(k=250.0 + hk), dict(k=250.0 - hk), hk),
    ):
        up, down = scipy_crossings(**plus), scipy_crossings(**minus)
        fd[name] = (
            (up - down) / (2 * h) if up.size == down.size == reference.size else None
        )

    print(
        f"\nspring: first crossing of F = 0.85 at t = {float(first.time):.10f} "
        f"(found={bool(first.found)}, slope dF/dt = {float(first.slope):.3f})"
    )
    print(
        f"spring: {count} crossings of F = 0.85 on 0 < t < {T1} (scipy: {reference.size})"
    )
    print(
        f"\n{'#':>3} {'t (odeinfer)':>15} {'t (scipy)':>15} {'dt/dz0':>12} "
        f"{'FD dt/dz0':>12} {'dt/dk':>12} {'FD dt/dk':>12}"
    )
    for i in range(count):
        ref_t = reference[i] if i < reference.size else np.nan
        fz = fd["z0"][i] if fd["z0"] is not None else np.nan
        fk = fd["k"][i] if fd["k"] is not None else np.nan
        print(
            f"{i + 1:3d} {times[i]:15.10f} {ref_t:15.10f} {dz0[i]:12.6f} {fz:12.6f} "
            f"{dk[i]:12.3e} {fk:12.3e}"
        )

    checks.add(
        "spring first crossing vs scipy DOP853 1e-13", first.time, reference[0], 1e-7
    )
    checks.add("spring number of crossings vs scipy", count, reference.size, 0)
    checks.add("spring all crossing times vs scipy (max)", times, reference, 1e-7)
    # Scale the sensitivity errors by the largest sensitivity (FD noise is absolute).
    for name, ours in (("z0", dz0), ("k", dk)):
        if fd[name] is None:
            checks.add(f"spring dt/d{name}: FD crossing count matches", 0, 1, 0)
            continue
        scale = np.max(np.abs(fd[name]))
        checks.add(
            f"spring dt/d{name} vs central FD of scipy (max, scaled)",
            ours / scale,
            fd[name] / scale,
            1e-4,
        )

    plot(np.asarray(grid), np.asarray(sol.ys), times, output)


def plot(grid, ys, times, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    force = np.sqrt(np.sum(ys[:, :3] ** 2, axis=1))
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    ax.plot(grid, force, lw=1.0, label="F(t) = |(x, y, z)|")
    ax.axhline(0.85, color="gray", ls="--", lw=0.8, label="level 0.85")
    ax.plot(
        times,
        np.full_like(times, 0.85),
        "o",
        color="C3",
        ms=5,
        label=f"crossings ({times.size})",
    )
    ax.set_xlabel("t")
    ax.set_ylabel("F")
    ax.set_title("3-D spring: every crossing of F = 0.85 (odeinfer.all_crossings)")
    ax.set_ylim(top=force.max() + 0.15)
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    print(f"\nwrote {output}")


# ---------------------------------------------------------------- 3. lynx–hare NUTS


def lynx_hare_demo(checks):
    # posteriordb's lynx–hare posterior, with its published reference.
    bench = oib.lynx_hare()
    start = time.perf_counter()
    posterior = oi.sample(
        bench.problem,
        bench.priors,
        num_warmup=500,
        num_samples=500,
    )
    table = posterior.summary()
    print(
        f"lynx-hare NUTS: 4 x (500 + 500) in {time.perf_counter() - start:.1f} s "
        f"({posterior.timing['compile']:.1f} s compile), min bulk ESS "
        f"{posterior.min_bulk_ess():.0f}, {posterior.num_divergences} divergences"
    )
    reference = bench.reference
    for name in bench.names:
        mcse = np.hypot(table.loc[name, "mcse_mean"], reference["mcse_mean"][name])
        checks.add(
            f"lynx-hare posterior mean {name} vs posteriordb",
            table.loc[name, "mean"],
            reference["mean"][name],
            4 * mcse,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=Path("demo_output") / "spring_crossings.png"
    )
    parser.add_argument("--no-nuts", action="store_true", help="skip the NUTS run")
    args = parser.parse_args()
    start = time.perf_counter()
    checks = Checks()
    logistic_demo(checks)
    spring_demo(checks, args.output)
    if not args.no_nuts:
        lynx_hare_demo(checks)
    checks.print()
    print(
        f"\n{'all checks passed' if checks.passed else 'SOME CHECKS FAILED'} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0 if checks.passed else 1


if __name__ == "__main__":
    sys.exit(main())
