"""Work-precision diagrams for the shipped problem suite: odeinfer (diffrax solvers) against
scipy `solve_ivp` and SUNDIALS CVODE (scikit-sundae, when installed) in the same run.

For each problem every solver runs at every tolerance; the error is measured against the
published Bari test-set value (stiff problems), the closed form (Kepler, bouncing ball,
logistic) or scipy DOP853 at rtol 1e-13 (Lotka–Volterra, spring). Wall time is the median
of `--repeats` runs after a first, compiling one; compile time is reported apart.

Also: Robertson at rtol 1e-6, atol 1e-10 to t = 1e5, the setting quoted in the issue.

Run `python benchmarks/work_precision.py` (full, about 10 minutes on 2 cores) or
`--quick` (two problems, two tolerances). Writes `benchmarks/results/work_precision.json`,
`.csv` and one `wp_<problem>.png` per problem.
"""

import argparse
import importlib.util
import platform
import time
from pathlib import Path

import numpy as np

from odeinfer import benchmarking

RESULTS_DIR = Path(__file__).parent / "results"
HAS_CVODE = importlib.util.find_spec("sksundae") is not None

NONSTIFF = ["Tsit5", "Dopri8", "scipy/RK45", "scipy/DOP853", "scipy/LSODA"]
STIFF = [
    "Rodas5P",
    "Rodas4",
    "Kvaerno3",
    "Kvaerno5",
    "scipy/Radau",
    "scipy/BDF",
    "scipy/LSODA",
]
EVENTS = ["Tsit5", "scipy/RK45", "scipy/DOP853", "scipy/LSODA"]
if HAS_CVODE:
    NONSTIFF.append("sundials/CVODE-Adams")
    STIFF.append("sundials/CVODE-BDF")
    EVENTS.append("sundials/CVODE-BDF")

PLAN = {
    "lotka_volterra": (NONSTIFF, [1e-4, 1e-6, 1e-8, 1e-10]),
    "kepler": (NONSTIFF, [1e-4, 1e-6, 1e-8, 1e-10]),
    "spring3d": (NONSTIFF, [1e-4, 1e-6, 1e-8, 1e-10]),
    "rober": (STIFF, [1e-4, 1e-6, 1e-8]),
    "hires": (STIFF, [1e-4, 1e-6, 1e-8]),
    "orego": (STIFF, [1e-4, 1e-6, 1e-8]),
    "vdpol": (STIFF, [1e-4, 1e-6, 1e-8]),
    "pollu": (STIFF, [1e-4, 1e-6, 1e-8]),
    "e5": (STIFF, [1e-4, 1e-6, 1e-8]),
    "bouncing_ball": (EVENTS, [1e-4, 1e-6, 1e-8]),
    "logistic_threshold": (EVENTS, [1e-4, 1e-6, 1e-8]),
}


def rober_to_1e5() -> benchmarking.BenchmarkProblem:
    """ROBER on [0, 1e5], the setting of the issue's timing note (a user-built problem;
    the reference is computed with scipy Radau at rtol 1e-13)."""
    rober = benchmarking.benchmark_problem("rober")
    return benchmarking.BenchmarkProblem(
        "rober_1e5",
        rober.model,
        rober.y0,
        rober.params,
        t0=0.0,
        t1=1e5,
        stiff=True,
        atol_scale=1e-4,
        error_floor=1e-12,
        numpy_vector_field=rober.numpy_vector_field,
        description="Robertson to t = 1e5, rtol 1e-6, atol 1e-10",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()

    plan = dict(PLAN)
    if args.quick:
        plan = {
            "logistic_threshold": (["Tsit5", "scipy/RK45"], [1e-4, 1e-6]),
            "hires": (["scipy/Radau", "scipy/LSODA"], [1e-4, 1e-6]),
        }
    if args.problems:
        plan = {name: plan.get(name, PLAN[name]) for name in args.problems}

    results = None
    start = time.perf_counter()
    for name, (solvers, tolerances) in plan.items():
        problem = benchmarking.benchmark_problem(name)
        part = benchmarking.benchmark(
            problem, solvers, tolerances, repeats=args.repeats
        )
        print(part, flush=True)
        part.plot(args.out / f"wp_{name}.png")
        results = part if results is None else results + part
    if not args.quick and not args.problems:
        rober = rober_to_1e5()
        part = benchmarking.benchmark(
            rober, STIFF, [(1e-6, 1e-10)], repeats=max(args.repeats, 5), progress=True
        )
        print(part, flush=True)
        results = results + part
    elapsed = time.perf_counter() - start

    table = results.table()
    summary = []
    for problem, rows in table.groupby("problem", sort=False):
        ok = rows[rows.success & np.isfinite(rows.error)]
        print(f"\n{problem}: fastest run reaching error <= 1e-6 (then <= 1e-3)")
        for target in (1e-6, 1e-3):
            hit = ok[ok.error <= target]
            if len(hit):
                best = hit.loc[hit.time_s.idxmin()]
                summary.append(dict(problem=problem, target=target, solver=best.solver,
                                    rtol=best.rtol, time_s=best.time_s))  # fmt: skip
                print(f"  <= {target:g}: {best.solver} at rtol {best.rtol:g}, "
                      f"{best.time_s * 1e3:.2f} ms")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "work_precision.csv")
    results.to_json(
        args.out / "work_precision.json",
        machine=platform.platform(),
        python=platform.python_version(),
        cvode=HAS_CVODE,
        repeats=args.repeats,
        elapsed_s=elapsed,
        summary=summary,
    )
    print(f"\nwrote {args.out}/work_precision.json (.csv, wp_*.png) in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
