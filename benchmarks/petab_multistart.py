"""Multistart fits of PEtab benchmark problems by bounded trust-region least squares
(`oi.multistart(problem, ...)`, i.e. `oi.TrustRegionReflective`), next to pyPESTO +
Fides + AMICI's stored numbers (`results/amici_peer_multistart.json`, 100 starts on
2 forked workers).

Per problem: compile time (a 1-start warm-up run with 2 evaluations), then `--starts`
starts for each `--workers` value (1: one after another; 2: two at a time in threads,
`oi.multistart(..., workers=2)`); per start the log-likelihood, residual and Jacobian
evaluations and wall time; the number of starts within 0.1 of the best published value
(Hass et al. 2019, from the collection overview) and the wall time from the first
start's beginning until the first of them finished (time-to-best, compile excluded).
The machine's load average and the process's CPU time are recorded: timings on a
shared machine are noisy.

Run `python benchmarks/petab_multistart.py --problems Boehm_JProteomeRes2014
--starts 20 --optimizer fides --workers 1 2`. Writes
`benchmarks/results/petab_multistart.json`
(or `--out`). Stored runs: `results/petab_multistart_boehm_fides_workers.json` (100
starts, `--workers 1 2 --profile 20`, load average 1.3-1.8: 0.43 and 0.22 s per start),
`results/petab_multistart_boehm_fides.json` (100 starts),
`results/petab_multistart_boehm_trf.json` (20 starts),
`results/petab_multistart_fujita_fides.json` (40 starts), the last three at load
averages of 6-7 and with the older layout (one `odeinfer` entry per problem).
"""

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
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


class Timed(oi.AbstractHostBoxLeastSquares):
    """`inner` with the residual and Jacobian calls it makes timed (`calls`: seconds
    of each), for `--profile`: the rest of a start's time is the optimiser's own work
    and odeinfer's host code around it."""

    inner: oi.AbstractHostBoxLeastSquares
    calls: list = eqx.field(default_factory=list)

    def minimise(self, fun, jac, fun_and_jac, v0, lower, upper, max_evaluations):
        def timed(function):
            def call(v):
                start = time.perf_counter()
                out = function(v)  # NumPy arrays: the computation has finished
                self.calls.append(time.perf_counter() - start)
                return out

            return call

        return self.inner.minimise(
            timed(fun), timed(jac), timed(fun_and_jac), v0, lower, upper,
            max_evaluations,
        )  # fmt: skip


def profile(problem, away, starts: int, seed: int, max_steps: int, solver) -> dict:
    """Where a start's time goes, per residual (and Jacobian) evaluation: inside the
    compiled calls the optimiser makes, and outside them."""
    timed = Timed(solver)
    result = oi.multistart(
        problem,
        starts,
        key=seed,
        parameters=away,
        solver=timed,
        max_steps=max_steps,
        throw=False,
    )
    assert result.seconds is not None and result.num_evaluations is not None
    seconds = float(np.sum(np.asarray(result.seconds)))
    evaluations = int(np.sum(np.asarray(result.num_evaluations)))
    inside = float(np.sum(timed.calls))
    out = {
        "n_starts": starts,
        "evaluations": evaluations,
        "calls": len(timed.calls),
        "ms_per_evaluation": 1e3 * seconds / evaluations,
        "ms_per_call_inside": 1e3 * inside / len(timed.calls),
        "ms_per_evaluation_outside": 1e3 * (seconds - inside) / evaluations,
        "loadavg": os.getloadavg(),
    }
    print(
        f"profile, {starts} starts: {out['ms_per_evaluation']:.2f} ms per evaluation, "
        f"{out['ms_per_call_inside']:.2f} ms in the residual/Jacobian call, "
        f"{out['ms_per_evaluation_outside']:.2f} ms outside it (the optimiser's own "
        f"work, odeinfer's host code); load {out['loadavg'][0]:.1f}",
        flush=True,
    )
    return out


def run(
    name: str, starts: int, seed: int, max_steps: int, solver, workers, profiled: int
) -> dict:
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
    # Drawing `starts` starting points compiles its eager operations for that shape
    # (~0.5-1 s): done here, so that the first timed run does not pay it alone. With
    # `max_steps=1`: Fides' warning for each start that its budget is spent, silenced.
    logging.disable(logging.WARNING)
    oi.multistart(
        problem,
        starts,
        key=seed,
        parameters=away,
        solver=solver,
        max_steps=1,
        throw=False,
    )
    logging.disable(logging.NOTSET)
    target = published_best(name)
    other = peer(name)
    out = {"compile_s": compile_s, "pypesto_fides_amici": other}
    if profiled:
        out["profile"] = profile(problem, away, profiled, seed, max_steps, solver)
    first = None
    for count in workers:
        load = os.getloadavg()
        t, cpu = time.perf_counter(), time.process_time()
        result = oi.multistart(
            problem,
            starts,
            key=seed,
            parameters=away,
            solver=solver,
            max_steps=max_steps,
            workers=count,
            progress_bar=True,
            throw=False,
        )
        total, cpu = time.perf_counter() - t, time.process_time() - cpu
        ours = summary(result, target)
        ours = {
            "workers": count,
            "n_starts": starts,
            "seed": seed,
            "max_evaluations": max_steps,
            "loadavg_before": load,
            "loadavg_after": os.getloadavg(),
            "total_wall_s": total,
            "wall_s_per_start": total / starts,
            "cpu_s": cpu,
            **ours,
        }
        ratios = {}
        if other is not None:
            ratios = {
                "evaluations_per_start (ours / pyPESTO)": ours[
                    "evaluations_per_start_mean"
                ]
                / other["evaluations_per_start"],
                "seconds_per_start (ours / pyPESTO optimizer time)": ours[
                    "seconds_per_start_mean"
                ]
                / other["optimizer_seconds_per_start"],
                "wall_s_per_start (ours / pyPESTO, 2 workers)": ours["wall_s_per_start"]
                / (other["total_wall_s_2_workers"] / other["n_starts"]),
            }
        if first is None:
            first = ours
        else:
            # The same starts, the same results: only the timings may differ.
            ours["same_results_as_workers_" + str(first["workers"])] = all(
                ours[k] == first[k] for k in ("llh", "evaluations", "jacobians")
            )
        hits = ours["n_starts_within_0.1_of_published"]
        print(
            f"{name}, workers {count}: best llh {ours['best_llh']:.4f} (published "
            f"{target:.4f}); {hits}/{starts} starts within 0.1, time-to-best "
            f"{ours['time_to_within_0.1_s']} s; "
            f"{ours['evaluations_per_start_mean']:.0f} evaluations and "
            f"{ours['seconds_per_start_mean']:.2f} s per start (mean), wall "
            f"{total:.1f} s ({total / starts:.3f} s per start), CPU {cpu:.1f} s; "
            f"compile {compile_s:.1f} s; load {load[0]:.1f}",
            flush=True,
        )
        out[f"odeinfer_workers_{count}"] = {"odeinfer": ours, "ratios": ratios}
    return out


def summary(result, target: float) -> dict:
    assert result.num_evaluations is not None and result.seconds is not None
    assert result.elapsed is not None
    llh = np.asarray(result.log_objective, float)
    evaluations = np.asarray(result.num_evaluations, int)
    jacobians = np.asarray(result.num_steps, int)
    seconds = np.asarray(result.seconds, float)
    elapsed = np.asarray(result.elapsed, float)
    hits = np.flatnonzero(llh >= target - 0.1)
    return {
        "best_llh": float(np.max(llh[np.isfinite(llh)]))
        if np.isfinite(llh).any()
        else None,
        "published_best_llh": target,
        "n_starts_within_0.1_of_published": int(hits.size),
        "time_to_within_0.1_s": float(np.min(elapsed[hits])) if hits.size else None,
        "evaluations_per_start_median": float(np.median(evaluations)),
        "evaluations_per_start_mean": float(np.mean(evaluations)),
        "jacobians_per_start_mean": float(np.mean(jacobians)),
        "seconds_per_start_median": float(np.median(seconds)),
        "seconds_per_start_mean": float(np.mean(seconds)),
        "seconds_per_evaluation": float(np.sum(seconds) / np.sum(evaluations)),
        "converged": int(np.sum(np.asarray(result.converged))),
        "llh": llh.tolist(),
        "evaluations": evaluations.tolist(),
        "jacobians": jacobians.tolist(),
        "seconds": seconds.tolist(),
        "elapsed": elapsed.tolist(),
    }


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
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="starts at a time (oi.multistart's `workers`); several values run the "
        "same starts once for each, e.g. --workers 1 2",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="K",
        help="first run K starts with the optimiser's residual and Jacobian calls "
        "timed: time per evaluation inside and outside them",
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
        "optimizer": repr(solver),
        "problems": {
            name: run(
                name,
                args.starts,
                args.seed,
                args.max_steps,
                solver,
                args.workers,
                args.profile,
            )
            for name in args.problems
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
