"""Gradient cost relative to a solve, as the parameter count grows.

A linear chain of N compartments, y_1' = -k_1 y_1, y_i' = k_{i-1} y_{i-1} - k_i y_i, with
N rate parameters, solved with odeinfer (diffrax Tsit5, rtol 1e-8) on [0, 10]. The scalar
output is a weighted sum of y(10). Three ways to get its gradient w.r.t. the N rates:

- forward mode: `diffrax.ForwardMode()` + `jax.jacfwd` (cost grows with N);
- checkpointed reverse mode: `diffrax.RecursiveCheckpointAdjoint()` + `jax.grad`;
- backsolve adjoint: `diffrax.BacksolveAdjoint()` + `jax.grad`. `odeinfer.solve` cannot
  use it (it saves with `SaveAt(subs=...)`, which diffrax's BacksolveAdjoint refuses), so
  this row calls `diffrax.diffeqsolve` directly (same solver, tolerances, problem).

Reported: median wall time of each (compilation excluded), its ratio to one solve, the
first-call (compile) time, and the peak temporary memory XLA reserves for the compiled
function (`compiled.memory_analysis().temp_size_in_bytes`).

Run `python benchmarks/gradient_cost.py` (N = 2, 4, 8, 16, 32) or `--quick` (N = 2, 4).
Writes `benchmarks/results/gradient_cost.json` and `gradient_cost.png`.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import odeinfer as oi

RESULTS_DIR = Path(__file__).parent / "results"


def chain(t, y, p):
    k = p["k"]
    inflow = jnp.concatenate([jnp.zeros(1), k[:-1] * y[:-1]])
    return inflow - k * y


MODEL = oi.ODEModel(chain, name="chain")


def output(n, adjoint):
    y0 = jnp.zeros(n).at[0].set(1.0)
    weights = jnp.arange(1.0, n + 1.0)

    def value(k):
        sol = oi.solve(MODEL, y0, {"k": k}, t0=0.0, t1=10.0, rtol=1e-8, atol=1e-10,
                       adjoint=adjoint, max_events=1, max_steps=4096)  # fmt: skip
        return jnp.dot(weights, sol.y_final)

    return value


def backsolve_output(n):
    """The same output through `diffrax.diffeqsolve` with `BacksolveAdjoint`."""
    y0 = jnp.zeros(n).at[0].set(1.0)
    weights = jnp.arange(1.0, n + 1.0)
    term = diffrax.ODETerm(lambda t, y, k: chain(t, y, {"k": k}))

    def value(k):
        sol = diffrax.diffeqsolve(
            term, diffrax.Tsit5(), 0.0, 10.0, None, y0, args=k,
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
            adjoint=diffrax.BacksolveAdjoint(), max_steps=4096,
        )  # fmt: skip
        return jnp.dot(weights, sol.ys[-1])

    return value


def measure(fn, k, repeats):
    lowered = jax.jit(fn).lower(k)
    start = time.perf_counter()
    compiled = lowered.compile()
    jax.block_until_ready(compiled(k))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(k))
        times.append(time.perf_counter() - start)
    memory = compiled.memory_analysis()
    temp = getattr(memory, "temp_size_in_bytes", None) if memory is not None else None
    return statistics.median(times), first, temp, compiled(k)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=[2, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    sizes = [2, 4] if args.quick else args.sizes

    rows = []
    for n in sizes:
        k = jnp.linspace(0.5, 1.5, n)
        solve_time, solve_first, solve_mem, _ = measure(
            output(n, diffrax.RecursiveCheckpointAdjoint()), k, args.repeats
        )
        modes = {
            "forward (ForwardMode + jacfwd)": jax.jacfwd(
                output(n, diffrax.ForwardMode())
            ),
            "reverse (RecursiveCheckpointAdjoint)": jax.grad(
                output(n, diffrax.RecursiveCheckpointAdjoint())
            ),
            "backsolve (diffrax BacksolveAdjoint)": jax.grad(backsolve_output(n)),
        }
        grads = {}
        for mode, fn in modes.items():
            t, first, mem, grad = measure(fn, k, args.repeats)
            grads[mode] = np.asarray(grad)
            rows.append(dict(n=n, mode=mode, time_s=t, ratio_to_solve=t / solve_time,
                             compile_s=first - t, temp_bytes=mem, solve_time_s=solve_time,
                             solve_compile_s=solve_first - solve_time,
                             solve_temp_bytes=solve_mem))  # fmt: skip
            print(f"N={n:3d} {mode:38s} {t * 1e3:8.3f} ms  x{t / solve_time:6.2f} of a "
                  f"solve ({solve_time * 1e3:.3f} ms)  compile {first - t:5.1f} s  "
                  f"temp {mem} B", flush=True)  # fmt: skip
        reference = grads["forward (ForwardMode + jacfwd)"]
        for mode, grad in grads.items():
            error = float(np.max(np.abs(grad - reference)) / np.max(np.abs(reference)))
            for row in rows:
                if row["n"] == n and row["mode"] == mode:
                    row["relative_difference_to_forward"] = error
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "gradient_cost.json"
        path.write_text(
            json.dumps(dict(machine=platform.platform(), rows=rows), indent=1)
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in dict.fromkeys(r["mode"] for r in rows):
        points = [(r["n"], r["ratio_to_solve"]) for r in rows if r["mode"] == mode]
        ax.plot(*zip(*points, strict=True), "o-", label=mode)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of parameters N")
    ax.set_ylabel("gradient time / solve time")
    ax.set_title("gradient cost, linear chain (Tsit5, rtol 1e-8)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "gradient_cost.png", dpi=110)
    print(f"wrote {path} and gradient_cost.png")


if __name__ == "__main__":
    main()
