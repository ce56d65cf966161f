"""Multistart fits of PEtab benchmark problems by bounded trust-region least squares
(`oi.multistart(problem, ...)`, i.e. `oi.TrustRegionReflective`), next to pyPESTO +
Fides + AMICI's stored numbers (`results/amici_peer_multistart.json`, 100 starts on
2 forked workers).

Per problem: compile time (a 1-start warm-up run with 2 evaluations), then `--starts`
starts one after another; per start the log-likelihood, residual and Jacobian
evaluations and wall time; the number of starts within 0.1 of the best published value
(Hass et al. 2019, from the collection overview) and the wall time until the first of
them finished (time-to-best, compile excluded). The machine's load average is recorded:
timings on a shared machine are noisy.

Run `python benchmarks/petab_multistart.py --problems Boehm_JProteomeRes2014
--starts 20 --optimizer fides`. Writes `benchmarks/results/petab_multistart.json`
(or `--out`). Stored runs: `results/petab_multistart_boehm_fides.json` (100 starts),
`results/petab_multistart_boehm_trf.json` (20 starts),
`results/petab_multistart_fujita_fides.json` (40 starts), at load averages of 6-7.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import odeinfer as oi
import odeinfer.petab as petab

TITLE = "Multistart fits of PEtab benchmark problems by trust-region least squares"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PETAB = Path(os.environ.get("ODEINFER_SHARED_DATA", ROOT / "tests" / "data")) / "petab"


def published_best(name: str) -> float:
    """Hass 2019's field labelled '2*Log-likelihood' is −2·log L (lin-scale data)."""
    with open(PETAB / "benchmark_collection_overview.json") as f:
        models = {m["problem_id"]: m for m in json.load(f)["models"]}
    return (
        -0.5
        * models[name]["hass2019_general_info"][
            "reported_neg2loglik_field_labelled_2xLogLik"
        ]
    )


def peer(name: str) -> dict | None:
    path = HERE / "results" / "amici_peer_multistart.json"
    if not path.is_file():
        return None
    entry = json.loads(path.read_text())["problems"].get(name)
    if entry is None:
        return None
    m = entry["multistart"]
    return {
        "n_starts": m["n_starts"],
        "best_llh": m["best_llh"],
        "n_starts_within_0.1_of_their_best": m["n_starts_within_0.1"],
        "evaluations_per_start": m["total_fun_evals"] / m["n_starts"],
        "optimizer_seconds_per_start": m["optimizer_time_sum_s"] / m["n_starts"],
        "total_wall_s_2_workers": m["total_wall_s"],
        "time_to_within_0.1_s_2_workers": m["time_to_within_0.1_s"],
    }


def run(name: str, starts: int, seed: int, max_steps: int, solver) -> dict:
    problem = petab.load(PETAB / name / f"{name}.yaml")
    # Start 0 is `init`: the middle of the box, not the nominal values (the published
    # optimum), so that every start is a real one.
    away = oi.Parameters(
        {n: oi.Bounded(s.lower, s.upper) for n, s in problem.parameters.specs.items()}
    )
    t = time.perf_counter()
    oi.multistart(
        problem, 1, key=seed, parameters=away, solver=solver, max_steps=2, throw=False
    )
    compile_s = time.perf_counter() - t
    load = os.getloadavg()
    t = time.perf_counter()
    result = oi.multistart(
        problem,
        starts,
        key=seed,
        parameters=away,
        solver=solver,
        max_steps=max_steps,
        progress_bar=True,
        throw=False,
    )
    total = time.perf_counter() - t
    assert result.num_evaluations is not None and result.seconds is not None
    llh = np.asarray(result.log_objective, float)
    evaluations = np.asarray(result.num_evaluations, int)
    jacobians = np.asarray(result.num_steps, int)
    seconds = np.asarray(result.seconds, float)
    target = published_best(name)
    hits = np.flatnonzero(llh >= target - 0.1)
    time_to_best = float(np.cumsum(seconds)[hits[0]]) if hits.size else None
    ours = {
        "n_starts": starts,
        "seed": seed,
        "max_evaluations": max_steps,
        "compile_s": compile_s,
        "loadavg_before": load,
        "loadavg_after": os.getloadavg(),
        "total_wall_s": total,
        "best_llh": float(np.max(llh[np.isfinite(llh)]))
        if np.isfinite(llh).any()
        else None,
        "published_best_llh": target,
        "n_starts_within_0.1_of_published": int(hits.size),
        "time_to_within_0.1_s": time_to_best,
        "evaluations_per_start_median": float(np.median(evaluations)),
        "evaluations_per_start_mean": float(np.mean(evaluations)),
        "jacobians_per_start_mean": float(np.mean(jacobians)),
        "seconds_per_start_median": float(np.median(seconds)),
        "seconds_per_start_mean": float(np.mean(seconds)),
        "converged": int(np.sum(np.asarray(result.converged))),
        "llh": llh.tolist(),
        "evaluations": evaluations.tolist(),
        "jacobians": jacobians.tolist(),
        "seconds": seconds.tolist(),
    }
    other = peer(name)
    ratios = {}
    if other is not None:
        ratios = {
            "evaluations_per_start (ours / pyPESTO)": ours["evaluations_per_start_mean"]
            / other["evaluations_per_start"],
            "seconds_per_start (ours, 1 process / pyPESTO optimizer time)": ours[
                "seconds_per_start_mean"
            ]
            / other["optimizer_seconds_per_start"],
        }
    print(
        f"{name}: best llh {ours['best_llh']:.4f} (published {target:.4f}); "
        f"{hits.size}/{starts} starts within 0.1, time-to-best {time_to_best} s; "
        f"{ours['evaluations_per_start_mean']:.0f} evaluations and "
        f"{ours['seconds_per_start_mean']:.2f} s per start (mean); compile "
        f"{compile_s:.1f} s; load {load[0]:.1f}",
        flush=True,
    )
    return {"odeinfer": ours, "pypesto_fides_amici": other, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument(
        "--problems",
        nargs="+",
        default=["Boehm_JProteomeRes2014", "Fujita_SciSignal2010"],
    )
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument(
        "--optimizer",
        choices=("trf", "fides"),
        default="trf",
        help="oi.TrustRegionReflective (scipy) or oi.Fides (the fides package)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "petab_multistart.json"
    )
    args = parser.parse_args()
    solver = oi.Fides() if args.optimizer == "fides" else oi.TrustRegionReflective()
    results = {
        "description": TITLE,
        "command": "python " + " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "optimizer": repr(solver) + ", one start after another",
        "problems": {
            name: run(name, args.starts, args.seed, args.max_steps, solver)
            for name in args.problems
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
