"""Compile time of `jax.grad(oi.log_likelihood)` against the number of experiments.

The model is logistic growth `dy/dt = r y (1 - y / K)`. Each experiment has its own
initial state, its own observation times (8 to 11 of them, so the experiments are
ragged), Gaussian noise with an estimated scale, and, in the second column of the
table, one event-time observation: the time at which `y` crossed `K / 2`. Experiments
of the same structure should be one vectorised solve, so the compile time should not
grow with their number (issue 11, target: within 1.5x from 1 to 16 experiments).

Compile time is `jax.jit(jax.grad(f)).lower(params).compile()`: tracing, lowering and
XLA compilation, without running anything. JAX's persistent compilation cache is
turned off (`ODEINFER_COMPILATION_CACHE=0`), so that every measurement compiles. A warm-up compile (discarded) runs
first; every configuration is then measured `--repeats` times, in an interleaved
order, and the median is reported with the load average of the machine.

With `--cold`, JAX's in-memory caches are cleared before every measurement, as in a new
process: without it, the 1-experiment program (not vmapped) reuses the traces of the
warm-up's, and the vmapped ones cannot (their batching is traced anew for each size).

Run `python benchmarks/compile_experiments.py [--sizes 1 2 4 8 16] [--repeats 3]
[--label before] [--cold]`. Writes `benchmarks/results/compile_experiments.json` (or
`compile_experiments_<label>.json`).
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ["ODEINFER_COMPILATION_CACHE"] = "0"  # every measurement compiles

import jax  # noqa: E402

jax.config.update("jax_enable_compilation_cache", False)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import odeinfer as oi  # noqa: E402

RESULTS_DIR = Path(__file__).parent / "results"
K = 10.0


def growth(t, y, p):
    return p["r"] * y * (1.0 - y / K)


MODEL = oi.ODEModel(growth, name="logistic")
HALF = oi.Crossing(lambda t, y, p: y[0], K / 2)
PARAMS = {"r": 0.8, "sigma": 0.2}


def logistic(t, y0, r):
    return K / (1.0 + (K / y0 - 1.0) * np.exp(-r * t))


def problem(n_experiments: int, with_event: bool) -> oi.Problem:
    rng = np.random.default_rng(n_experiments)
    experiments = []
    for i in range(n_experiments):
        y0 = 0.5 + 0.1 * i
        times = np.linspace(0.5, 10.0, 8 + i % 4)
        data = logistic(times, y0, 0.8) + 0.2 * rng.normal(size=times.size)
        events = []
        if with_event:
            t_half = np.log(K / y0 - 1.0) / 0.8
            events = [oi.EventTimeObservation(HALF, t_half + 0.05, oi.Gaussian(0.1))]
        experiments.append(
            oi.Experiment(
                times,
                data,
                noise=oi.Gaussian("sigma"),
                y0=jnp.array([y0]),
                event_times=events,
                name=f"culture {i}",
            )
        )
    space = oi.Parameters({"r": oi.Positive(0.5), "sigma": oi.Positive(0.1)})
    return oi.Problem(MODEL, experiments, space)


def compile_seconds(n_experiments: int, with_event: bool, cold: bool = False) -> float:
    p = problem(n_experiments, with_event)
    if cold:  # forget every trace and compiled program of earlier measurements
        jax.clear_caches()
    gradient = jax.jit(jax.grad(lambda params: oi.log_likelihood(p, params)))
    start = time.perf_counter()
    gradient.lower(PARAMS).compile()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="clear JAX's in-memory caches before every measurement (what a new "
        "process pays; without it, the 1-experiment program reuses the warm-up's traces)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()

    compile_seconds(1, True)  # warm-up: imports and first traces of library code
    loads = [os.getloadavg()[0]]
    times = {(n, e): [] for e in (False, True) for n in args.sizes}
    for _ in range(args.repeats):
        for key in times:
            times[key].append(compile_seconds(*key, cold=args.cold))
            print(f"  {key[0]:3d} experiment(s), event-time observation {key[1]!s:5s}: "
                  f"{times[key][-1]:6.2f} s", flush=True)  # fmt: skip
        loads.append(os.getloadavg()[0])

    rows = []
    print(f"\n{'experiments':>11s} {'no events (s)':>14s} {'1 event each (s)':>17s}")
    for n in args.sizes:
        plain = statistics.median(times[(n, False)])
        event = statistics.median(times[(n, True)])
        rows.append(dict(experiments=n, compile_s=plain, compile_with_event_s=event,
                         all_s=times[(n, False)], all_with_event_s=times[(n, True)]))  # fmt: skip
        print(f"{n:11d} {plain:14.2f} {event:17.2f}")
    first, last = rows[0], rows[-1]
    ratios = dict(
        no_events=last["compile_s"] / first["compile_s"],
        with_event=last["compile_with_event_s"] / first["compile_with_event_s"],
    )
    print(f"ratio {last['experiments']} / {first['experiments']} experiments: "
          f"{ratios['no_events']:.2f} (no events), {ratios['with_event']:.2f} "
          f"(one event each); load average {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = "compile_experiments" + (f"_{args.label}" if args.label else "") + ".json"
    path = args.out / name
    path.write_text(json.dumps(dict(
        machine=platform.platform(), cpus=os.cpu_count(), jax=jax.__version__,
        repeats=args.repeats, cold=args.cold, load_average_1min=loads, rows=rows,
        ratio_last_to_first=ratios), indent=1))  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
