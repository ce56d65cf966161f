"""Peer timings: AMICI (CVODES, C++) and pyPESTO on PEtab benchmark problems.

This script is NOT run with odeinfer's environment: it needs AMICI, which compiles
each model to a C++ extension, in a separate virtual environment. It measures what
odeinfer's PEtab benchmarks are compared against:

For each problem (``<data>/<id>/<id>.yaml``, PEtab v1):

- ``import``: seconds to import the PEtab problem with AMICI's PEtab v1 importer
  (``amici.importers.petab.v1.import_petab_problem``): SBML -> symbolic model ->
  generated C++ -> compiled Python extension, written under ``/tmp/amici_models``.
- ``llh`` at the PEtab nominal parameters, solver rtol = atol = 1e-8 (the settings of
  AMICI's own benchmark test, ``tests/benchmark_models/test_petab_benchmark.py``;
  max_steps = ``--max-steps``), compared with AMICI's published reference values.
- time per log-likelihood (no sensitivities), per gradient with forward
  sensitivities and per gradient with adjoint sensitivities; each is the median over
  ``--repeats`` calls after one warm-up call (``time.perf_counter``), measured three
  ways:

  * ``simulate_petab_s``: the convenience call
    ``amici.sim.sundials.petab.v1.simulate_petab`` with ExpData objects and the
    parameter mapping built once beforehand (it still fills parameters into the
    ExpData, runs the simulations and aggregates the gradient onto PEtab
    parameters in Python on every call);
  * ``run_simulations_s``: only ``amici.sim.sundials.run_simulations`` on ExpData
    objects whose parameters were filled in once (the C++ simulation plus the llh
    and the per-condition gradient, and wrapping the results for Python);
  * ``solver_cpu_s``: the CPU time that AMICI itself reports for the forward (and
    backward) integration, summed over conditions (``cpu_time + cpu_time_b``): the
    number AMICI's benchmark test checks; it leaves out pre-equilibration, which
    ``cpu_total_s`` (``cpu_time_total``: the whole C++ simulation call) includes.

- the gradient itself, on the PEtab parameter scale (e.g. d llh / d log10(theta)),
  in the order of the estimated parameters (``petab_problem.x_free_ids``), from
  forward and from adjoint sensitivities.
- an untimed reference at tight tolerances (rtol = 1e-12, atol = 1e-16, forward
  sensitivities: the defaults of AMICI's gradient check) and the error of the
  1e-8 gradients against it.
- AMICI's JAX backend (experimental; diffrax Kvaerno5 + PID controller at
  rtol = atol = 1e-8): import time, first-call (trace + XLA compile + run) time,
  then median times per llh and per gradient (``jax.grad``; both over ``--repeats``
  calls, fewer, but at least 3, once they take ``--jax-budget`` seconds) and their
  values. In AMICI 1.x it exists only behind the PEtab v2 importer
  (``amici.importers.petab.PetabImporter(..., jax=True)`` on the problem upgraded
  by ``petab.v2.Problem.from_yaml``), with parameters on the linear scale; in
  AMICI 0.3x it is ``amici.jax`` on PEtab v1 problems, parameters on the PEtab
  scale. The script uses whichever the installed AMICI has; the gradient is
  reported on the PEtab v1 scale either way. Any failure is recorded as a string
  in the JSON instead of stopping the run. (AMICI 1.0.1's JAX path gives wrong
  llh values and zero gradients on these problems; ``--jax-only`` runs the JAX
  part alone, e.g. under AMICI 0.34.2 whose CVODES API this script does not
  speak, comparing with the CVODES results of an earlier run via ``--compare``.)

With ``--multistart N`` (default 0 = skipped), also a pyPESTO multistart
optimisation for the problems in ``--multistart-problems`` (default Boehm and
Fujita): ``pypesto.petab.PetabImporter`` -> AMICI objective (same solver settings,
forward sensitivities) -> ``pypesto.optimize.minimize`` with N starts drawn
uniformly within the PEtab bounds on the parameter scale under a fixed seed,
optimizer Fides (pyPESTO's usual choice, with the Fisher information as Hessian)
when installed, else scipy's L-BFGS-B (``--optimizer``), on ``--n-procs``
forked worker processes. Recorded: total wall time, the best objective value
(pyPESTO's fval = negative log-likelihood), and the wall time at which the first
start reaching within 0.1 of the best value finished (measured: the engine used
here records when each start's result arrives).

Install the peers (separate from odeinfer's environment, here next to the checkout;
AMICI builds from source
with g++ and takes a few minutes; swig, cmake and BLAS come from PyPI)::

    python3.11 -m venv ../amici-venv
    ../amici-venv/bin/pip install "amici[petab,jax]" pypesto petab fides
    # optional, for the JAX backend of AMICI 0.34 (PEtab v1):
    python3.11 -m venv ../amici034-venv
    ../amici034-venv/bin/pip install "amici[petab,jax]==0.34.2" "pandas<3"

Run (from the repository root; the script puts its venv's bin on PATH so that AMICI's
model build finds the swig that pip installed there)::

    ../amici-venv/bin/python benchmarks/_amici_peer.py \\
        --problems Boehm_JProteomeRes2014 Fujita_SciSignal2010 Brannmark_JBC2010 \\
        Borghans_BiophysChem1997 Elowitz_Nature2000 Zheng_PNAS2012 \\
        --out benchmarks/results/amici_peer.json
    ../amici-venv/bin/python benchmarks/_amici_peer.py \\
        --problems Boehm_JProteomeRes2014 Fujita_SciSignal2010 --no-jax \\
        --no-sundials-timing --multistart 100 --out benchmarks/results/amici_peer_multistart.json
    ../amici034-venv/bin/python benchmarks/_amici_peer.py --jax-only \\
        --problems <the same six> --compare benchmarks/results/amici_peer.json \\
        --out benchmarks/results/amici_peer_jax_amici034.json

All timings are on whatever machine runs the script (``machine`` = os.cpu_count(),
``cpu``, and the load average before and after each problem are recorded: a busy
machine inflates wall times, less so AMICI's own CPU times).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# This folder holds odeinfer's own benchmarks/petab.py, which would shadow the
# `petab` package that AMICI and pyPESTO import: drop the folder from sys.path.
sys.path[:] = [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]
MODEL_ROOT = Path("/tmp/amici_models")

# AMICI's reference log-likelihoods at the nominal parameters
# (AMICI tests/benchmark_models/benchmark_models.yaml).
REFERENCE_LLH = {
    "Boehm_JProteomeRes2014": -138.22199693517703,
    "Borghans_BiophysChem1997": 83.3237191357272,
    "Brannmark_JBC2010": -141.889113770537,
    "Elowitz_Nature2000": 63.20279991419332,
    "Fujita_SciSignal2010": 53.08377736998929,
    "Zheng_PNAS2012": 278.33353271001477,
}

# AMICI's benchmark test computes steady-state sensitivities by integration for
# these problems (Newton's method is unreliable for them).
SS_SENSITIVITY_INTEGRATION_ONLY = {"Brannmark_JBC2010"}

RTOL = ATOL = 1e-8


# --------------------------------------------------------------------------- setup


def _ensure_tools_on_path() -> None:
    """AMICI's model build calls `swig`, which pip installs next to this python."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", "2")


def _quiet_logs() -> None:
    for name in ("amici", "pypesto", "petab", "fides"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in (
        "amici",
        "pypesto",
        "petab",
        "fides",
        "jax",
        "jaxlib",
        "diffrax",
        "equinox",
        "numpy",
        "scipy",
        "sympy",
        "python-libsbml",
    ):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _median_time(
    fn, repeats: int, warmup: bool = True, budget_s: float | None = None
) -> tuple[float, list[float]]:
    """Median wall time of `repeats` calls, after one warm-up call (unless the
    caller has made it). With `budget_s`, calls stop once the budget is spent,
    but never before 3 calls: the number made is len(times)."""
    if warmup:
        fn()
    times: list[float] = []
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= 3 and sum(times) > budget_s:
            break
    return statistics.median(times), times


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def load_problem(data: Path, problem_id: str):
    """The PEtab v1 problem, with timepoint-specific overrides flattened as AMICI
    requires (does not change the estimated parameters)."""
    import petab.v1 as petab
    from petab.v1.lint import measurement_table_has_timepoint_specific_mappings

    problem = petab.Problem.from_yaml(data / problem_id / f"{problem_id}.yaml")
    if measurement_table_has_timepoint_specific_mappings(problem.measurement_df):
        petab.flatten_timepoint_specific_output_overrides(problem)
    return problem


def import_model(petab_problem, problem_id: str):
    """Import + compile with AMICI's PEtab v1 importer (always from scratch)."""
    from amici.importers.petab.v1 import import_petab_problem

    outdir = MODEL_ROOT / problem_id
    shutil.rmtree(outdir, ignore_errors=True)
    t0 = time.perf_counter()
    model = import_petab_problem(
        petab_problem,
        output_dir=outdir,
        model_name=problem_id,
        compile_=True,
        verbose=False,
    )
    return model, time.perf_counter() - t0


def make_solver(model, problem_id: str, max_steps: int):
    from amici.sim.sundials import SteadyStateSensitivityMode

    solver = model.create_solver()
    solver.set_relative_tolerance(RTOL)
    solver.set_absolute_tolerance(ATOL)
    solver.set_max_steps(max_steps)
    if problem_id in SS_SENSITIVITY_INTEGRATION_ONLY:
        model.set_steady_state_sensitivity_mode(
            SteadyStateSensitivityMode.integrationOnly
        )
    return solver


# ---------------------------------------------------------------- AMICI (CVODES)


def bench_sundials(petab_problem, model, problem_id: str, args) -> dict:
    """llh, forward and adjoint gradients and their timings with AMICI's C++ core."""
    import amici.sim.sundials as asd
    from amici.sim.sundials.petab.v1 import (
        LLH,
        RDATAS,
        SLLH,
        create_edatas,
        fill_in_parameters,
        simulate_petab,
    )
    from amici.sim.sundials.petab.v1._parameter_mapping import (
        create_parameter_mapping,
    )

    x_ids = list(petab_problem.x_free_ids)
    x_scaled = dict(zip(x_ids, petab_problem.x_nominal_free_scaled, strict=True))
    out = {
        "parameter_ids": x_ids,
        "parameter_scales": [
            petab_problem.parameter_df.loc[i, "parameterScale"] for i in x_ids
        ],
        "x_nominal_scaled": [float(x_scaled[i]) for i in x_ids],
        "n_parameters": len(x_ids),
        "n_conditions": None,
        "n_states": model.nx_rdata,
        "settings": {
            "rtol": RTOL,
            "atol": ATOL,
            "max_steps": args.max_steps,
            "steady_state_sensitivity_mode": (
                "integrationOnly"
                if problem_id in SS_SENSITIVITY_INTEGRATION_ONLY
                else "default"
            ),
        },
    }

    solver = make_solver(model, problem_id, args.max_steps)
    conditions = petab_problem.get_simulation_conditions_from_measurement_df()
    mapping = create_parameter_mapping(
        petab_problem=petab_problem,
        simulation_conditions=conditions,
        scaled_parameters=True,
        amici_model=model,
    )
    edatas = create_edatas(
        amici_model=model,
        petab_problem=petab_problem,
        simulation_conditions=conditions,
    )
    out["n_conditions"] = len(edatas)
    fill_in_parameters(
        edatas=edatas,
        problem_parameters=x_scaled,
        scaled_parameters=True,
        parameter_mapping=mapping,
        amici_model=model,
    )

    def simulate():
        return simulate_petab(
            petab_problem,
            amici_model=model,
            solver=solver,
            problem_parameters=x_scaled,
            scaled_parameters=True,
            scaled_gradients=True,
            edatas=edatas,
            parameter_mapping=mapping,
            log_level=logging.ERROR,
        )

    modes = {
        "llh": (asd.SensitivityOrder.none, asd.SensitivityMethod.none),
        "grad_forward": (asd.SensitivityOrder.first, asd.SensitivityMethod.forward),
        "grad_adjoint": (asd.SensitivityOrder.first, asd.SensitivityMethod.adjoint),
    }
    for label, (order, method) in modes.items():
        entry = {}
        try:
            solver.set_sensitivity_order(order)
            solver.set_sensitivity_method(method)
            res = simulate()
            rdatas = res[RDATAS]
            status = [int(r.status) for r in rdatas]
            entry["status_ok"] = all(s == asd.AMICI_SUCCESS for s in status)
            entry["llh"] = float(res[LLH])
            if res[SLLH] is not None:
                entry["gradient"] = [float(res[SLLH][i]) for i in x_ids]
            entry["simulate_petab_s"], _ = _median_time(simulate, args.repeats)

            def run():
                return asd.run_simulations(model, solver, edatas)

            entry["run_simulations_s"], _ = _median_time(run, args.repeats)
            cpu, cpu_total = [], []
            for _ in range(args.repeats):
                rds = run()
                cpu.append(sum(r.cpu_time + r.cpu_time_b for r in rds) / 1e3)
                cpu_total.append(sum(r.cpu_time_total for r in rds) / 1e3)
            entry["solver_cpu_s"] = statistics.median(cpu)
            entry["cpu_total_s"] = statistics.median(cpu_total)
            # numsteps / numsteps_b are cumulative over the output times:
            # the largest entry is the number of steps of that condition.
            entry["n_steps"] = int(sum(np.max(r.numsteps) for r in rdatas))
            if method == asd.SensitivityMethod.adjoint:
                entry["n_steps_backward"] = int(
                    sum(np.max(r.numsteps_b) for r in rdatas)
                )
        except Exception as exc:  # recorded, never fatal
            entry["error"] = _error(exc)
        out[label] = entry

    # Untimed reference at tight tolerances (the defaults of AMICI's gradient
    # check: rtol = 1e-12, atol = 1e-16), to judge the accuracy of the 1e-8
    # gradients above (and of any other tool's gradient).
    tight = {"rtol": 1e-12, "atol": 1e-16, "max_steps": 200_000}
    try:
        solver.set_relative_tolerance(tight["rtol"])
        solver.set_absolute_tolerance(tight["atol"])
        solver.set_max_steps(tight["max_steps"])
        solver.set_sensitivity_order(asd.SensitivityOrder.first)
        solver.set_sensitivity_method(asd.SensitivityMethod.forward)
        res = simulate()
        tight["status_ok"] = all(
            int(r.status) == asd.AMICI_SUCCESS for r in res[RDATAS]
        )
        tight["llh"] = float(res[LLH])
        tight["gradient"] = [float(res[SLLH][i]) for i in x_ids]
        g_ref = np.asarray(tight["gradient"])
        for label in ("grad_forward", "grad_adjoint"):
            g = out[label].get("gradient")
            if g is not None:
                d = np.abs(np.asarray(g) - g_ref)
                out[label]["max_abs_err_vs_tight"] = float(np.max(d))
                out[label]["max_rel_err_vs_tight"] = float(
                    np.max(d / np.maximum(np.abs(g_ref), 1e-3))
                )
    except Exception as exc:
        tight["error"] = _error(exc)
    finally:
        solver.set_relative_tolerance(RTOL)
        solver.set_absolute_tolerance(ATOL)
        solver.set_max_steps(args.max_steps)
    out["reference_tight"] = tight

    llh = out["llh"].get("llh")
    ref = REFERENCE_LLH.get(problem_id)
    out["llh_reference"] = ref
    out["llh_minus_reference"] = None if llh is None or ref is None else llh - ref
    # AMICI's benchmark test accepts np.isclose(llh, ref, rtol=1e-3, atol=1e-3).
    out["llh_matches_reference"] = (
        None
        if llh is None or ref is None
        else bool(np.isclose(llh, ref, rtol=1e-3, atol=1e-3))
    )
    gf = out["grad_forward"].get("gradient")
    ga = out["grad_adjoint"].get("gradient")
    if gf is not None and ga is not None:
        gf, ga = np.asarray(gf), np.asarray(ga)
        out["grad_forward_vs_adjoint_max_abs_diff"] = float(np.max(np.abs(gf - ga)))
        out["grad_forward_vs_adjoint_max_rel_diff"] = float(
            np.max(np.abs(gf - ga) / np.maximum(np.abs(gf), 1e-3))
        )
    return out


# ------------------------------------------------------------------ AMICI (JAX)


def _import_jax_problem(data: Path, problem_id: str, petab_problem):
    """Import a PEtab problem with AMICI's JAX backend, for either API generation.

    Returns (JAXProblem, run_simulations, api description, parameter scale), where
    the scale is "petab" (the PEtab v1 parameterScale) or "lin".
    """
    outdir = MODEL_ROOT / f"{problem_id}_jax"
    shutil.rmtree(outdir, ignore_errors=True)
    try:  # AMICI >= 1.0: JAX only through the PEtab v2 importer.
        import petab.v2 as petab_v2
        from amici.importers.petab import PetabImporter
        from amici.sim.jax import run_simulations
    except ImportError:
        pass
    else:
        problem_v2 = petab_v2.Problem.from_yaml(
            data / problem_id / f"{problem_id}.yaml"
        )
        importer = PetabImporter(problem_v2, jax=True, output_dir=outdir, verbose=False)
        api = (
            "amici.importers.petab.PetabImporter(petab.v2.Problem.from_yaml(v1 yaml),"
            " jax=True).create_simulator() -> amici.sim.jax.run_simulations"
        )
        return importer.create_simulator(), run_simulations, api, "lin"
    # AMICI 0.3x: amici.jax with PEtab v1 problems, parameters on the PEtab scale.
    from amici.jax import JAXProblem, run_simulations
    from amici.petab.petab_import import import_petab_problem

    model = import_petab_problem(
        petab_problem, model_output_dir=outdir, compile_=True, jax=True
    )
    api = (
        "amici.petab.petab_import.import_petab_problem(..., jax=True) -> "
        "amici.jax.JAXProblem -> amici.jax.run_simulations"
    )
    return JAXProblem(model, petab_problem), run_simulations, api, "petab"


def bench_jax(data: Path, problem_id: str, petab_problem, sundials: dict, args) -> dict:
    """AMICI's experimental JAX backend (diffrax Kvaerno5 + PID controller at
    rtol = atol = 1e-8): import time, first call (trace + XLA compile + run), then
    median times of the jitted llh and gradient (jax.grad, reverse mode through
    diffrax's default checkpointed adjoint)."""
    out: dict = {}
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import diffrax
        import equinox as eqx
    except Exception as exc:
        return {"error": "JAX backend unavailable: " + _error(exc)}
    try:
        t0 = time.perf_counter()
        jax_problem, run_simulations, out["api"], scale = _import_jax_problem(
            data, problem_id, petab_problem
        )
        out["import_s"] = time.perf_counter() - t0
    except Exception as exc:
        out["error"] = "import failed: " + _error(exc)
        return out

    controller = diffrax.PIDController(rtol=RTOL, atol=ATOL)
    ids = list(jax_problem.parameter_ids)
    out["parameter_ids"] = ids
    out["parameter_scale"] = (
        "PEtab parameterScale" if scale == "petab" else "lin (PEtab v2 upgrade)"
    )
    p0 = jax_problem.parameters

    def llh_fn(p):
        problem = eqx.tree_at(lambda x: x.parameters, jax_problem, p)
        return run_simulations(
            problem, controller=controller, max_steps=args.max_steps
        )[0]

    llh_jit = jax.jit(llh_fn)
    grad_jit = jax.jit(jax.grad(llh_fn))
    try:
        t0 = time.perf_counter()
        llh = float(jax.block_until_ready(llh_jit(p0)))
        out["llh_first_call_s"] = time.perf_counter() - t0
        out["llh"] = llh
        out["llh_s"], times = _median_time(
            lambda: jax.block_until_ready(llh_jit(p0)),
            args.repeats,
            warmup=False,  # the first call above was the warm-up
            budget_s=args.jax_budget,
        )
        out["llh_repeats"] = len(times)
        ref = sundials.get("llh", {}).get("llh")
        if ref is not None:
            out["llh_minus_sundials"] = llh - ref
        if problem_id in REFERENCE_LLH:
            out["llh_minus_reference"] = llh - REFERENCE_LLH[problem_id]
    except Exception as exc:
        out["llh_error"] = _error(exc)
        return out
    try:
        t0 = time.perf_counter()
        g = np.asarray(jax.block_until_ready(grad_jit(p0)))
        out["grad_first_call_s"] = time.perf_counter() - t0
        out["gradient_raw"] = g.tolist()
        out["grad_s"], times = _median_time(
            lambda: jax.block_until_ready(grad_jit(p0)),
            args.repeats,
            warmup=False,
            budget_s=args.jax_budget,
        )
        out["grad_repeats"] = len(times)
        if not np.any(g):
            out["warning"] = "gradient is identically zero"
        # Gradient on the PEtab v1 scale, in the order of the sundials gradient:
        # d/d log10(t) = t ln(10) d/dt, d/d ln(t) = t d/dt.
        x_ids = sundials.get("parameter_ids") or list(petab_problem.x_free_ids)
        scales = {i: petab_problem.parameter_df.loc[i, "parameterScale"] for i in x_ids}
        vals = dict(zip(ids, np.asarray(p0, dtype=float), strict=True))
        gd = dict(zip(ids, g, strict=True))
        factor = {"lin": 0.0, "log": 1.0, "log10": np.log(10.0)}
        if all(i in gd for i in x_ids):
            gs = np.array(
                [
                    gd[i]
                    if scale == "petab" or scales[i] == "lin"
                    else gd[i] * vals[i] * factor[scales[i]]
                    for i in x_ids
                ]
            )
            out["gradient"] = gs.tolist()
            for label in ("grad_forward", "reference_tight"):
                g_ref = sundials.get(label, {}).get("gradient")
                if g_ref is not None:
                    d = np.abs(gs - np.asarray(g_ref))
                    out[f"max_abs_diff_vs_sundials_{label}"] = float(np.max(d))
    except Exception as exc:
        out["grad_error"] = _error(exc)
    return out


# -------------------------------------------------------------- pyPESTO multistart


# Tasks of the running multistart, read by forked workers (see _TimedEngine).
_FORKED_TASKS: list = []


def _run_forked_task(i: int):
    return _FORKED_TASKS[i].execute()


class _TimedEngine:
    """Runs pyPESTO tasks on a pool of forked worker processes (or in-process for
    n_procs = 1) and records, for every task, the wall time (since the start of
    execute) at which its result arrived, which pyPESTO's own engines do not.

    pyPESTO's MultiProcessEngine pickles each task, and pickling an AMICI
    objective needs AMICI built with HDF5; forked workers instead inherit the
    tasks, so only the task index goes out and only the result comes back."""

    def __init__(self, n_procs: int):
        self.n_procs = n_procs
        self.finish_times: list[float] = []
        self.kind = None

    def execute(self, tasks, progress_bar=None):
        global _FORKED_TASKS
        t0 = time.perf_counter()
        results = [None] * len(tasks)
        self.finish_times = [float("nan")] * len(tasks)
        if self.n_procs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            _FORKED_TASKS = list(tasks)  # set before the workers are forked
            try:
                with ProcessPoolExecutor(
                    max_workers=min(self.n_procs, len(tasks)),
                    mp_context=multiprocessing.get_context("fork"),
                ) as pool:
                    futures = {
                        pool.submit(_run_forked_task, i): i for i in range(len(tasks))
                    }
                    for fut in as_completed(futures):
                        i = futures[fut]
                        results[i] = fut.result()
                        self.finish_times[i] = time.perf_counter() - t0
                self.kind = f"process pool, {self.n_procs} forked workers"
                return results
            except Exception as exc:  # fall back to one process
                self.kind = f"single process (pool failed: {_error(exc)})"
                t0 = time.perf_counter()
            finally:
                _FORKED_TASKS = []
        else:
            self.kind = "single process"
        for i, task in enumerate(tasks):
            results[i] = task.execute()
            self.finish_times[i] = time.perf_counter() - t0
        return results


def multistart(petab_problem, model, problem_id: str, args) -> dict:
    import pypesto
    import pypesto.optimize
    import pypesto.petab

    out: dict = {"n_starts": args.multistart, "seed": args.seed}
    optimizer_name = args.optimizer
    if optimizer_name == "auto":
        try:
            import fides  # noqa: F401

            optimizer_name = "fides"
        except ImportError:
            optimizer_name = "L-BFGS-B"
    if optimizer_name == "fides":
        optimizer = pypesto.optimize.FidesOptimizer(verbose=logging.ERROR)
        out["optimizer"] = (
            "pypesto FidesOptimizer, defaults (Fisher information as Hessian, "
            "switching to BFGS later; maxiter 1000)"
        )
    else:
        optimizer = pypesto.optimize.ScipyOptimizer(method="L-BFGS-B")
        out["optimizer"] = "pypesto ScipyOptimizer(method='L-BFGS-B')"

    importer = pypesto.petab.PetabImporter(
        petab_problem,
        output_folder=str(MODEL_ROOT / problem_id),
        model_name=problem_id,
        validate_petab=False,
    )
    solver = make_solver(model, problem_id, args.max_steps)
    objective = importer.create_objective(model=model, solver=solver, verbose=False)
    problem = importer.create_problem(objective)
    out["objective"] = (
        "AMICI objective, forward sensitivities, rtol = atol = 1e-8; "
        "fval = negative log-likelihood on the PEtab parameter scale"
    )
    out["startpoints"] = (
        "pyPESTO PEtab startpoints: uniform within the PEtab bounds on the "
        "parameter scale, np.random.seed(seed)"
    )

    engine = _TimedEngine(args.n_procs)
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    result = pypesto.optimize.minimize(
        problem=problem,
        optimizer=optimizer,
        n_starts=args.multistart,
        engine=engine,
        progress_bar=False,
    )
    total = time.perf_counter() - t0
    out["engine"] = engine.kind
    out["total_wall_s"] = total

    # result.optimize_result is sorted by fval; map back to task order by id.
    runs = {r.id: r for r in result.optimize_result.list}
    ids = [str(i) for i in range(args.multistart)]
    fvals = np.array(
        [runs[i].fval if runs[i].fval is not None else np.inf for i in ids]
    )
    finish = np.array(engine.finish_times)
    best = float(np.nanmin(fvals))
    out["best_fval"] = best
    out["best_llh"] = -best
    out["best_x"] = [float(v) for v in result.optimize_result.list[0].x]
    out["parameter_ids"] = list(problem.x_names)
    hits = np.flatnonzero(fvals <= best + 0.1)
    out["n_starts_within_0.1"] = int(hits.size)
    # Time at which the first start within 0.1 of the best finished.
    out["time_to_within_0.1_s"] = float(np.min(finish[hits]))
    out["time_to_within_0.1_method"] = (
        "measured: wall time from the start of the multistart at which the "
        "earliest-finishing start with fval <= best + 0.1 returned its result "
        f"({engine.kind}; starts dispatched in order)"
    )
    order = np.argsort(finish)
    first_rank = int(np.min(np.flatnonzero(np.isin(order, hits))))
    out["time_to_within_0.1_by_rank_s"] = total * (first_rank + 1) / args.multistart
    out["time_to_within_0.1_by_rank_method"] = (
        "approximation: total_wall * (completion rank of that start + 1) / n_starts"
    )
    out["fvals_sorted"] = [float(v) for v in np.sort(fvals)]
    # Start by start, in task order: for other targets than this run's own best.
    out["fvals"] = [float(v) for v in fvals]
    out["finish_s"] = [float(v) for v in finish]
    out["fun_evals"] = [int(runs[i].n_fval or 0) for i in ids]
    out["n_failed"] = int(np.sum(~np.isfinite(fvals)))
    out["total_fun_evals"] = int(sum(r.n_fval or 0 for r in runs.values()))
    out["total_grad_evals"] = int(sum(r.n_grad or 0 for r in runs.values()))
    out["optimizer_time_sum_s"] = float(sum(r.time or 0.0 for r in runs.values()))
    return out


# ------------------------------------------------------------------------ main


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def print_table(results: dict) -> None:
    head = (
        f"{'problem':28s} {'np':>3s} {'import s':>9s} {'llh':>14s} {'llh-ref':>9s} "
        f"{'llh ms':>8s} {'fwd ms':>8s} {'adj ms':>8s} {'fwd/adj':>8s} "
        f"{'jax llh ms':>10s} {'jax grad ms':>11s} {'jax dllh':>9s}"
    )
    print(head)
    print("-" * len(head))
    for pid, r in results.items():
        s = r.get("sundials", {})
        j = r.get("jax", {})

        def ms(key, s=s):
            v = s.get(key, {}).get("run_simulations_s")
            return None if v is None else 1e3 * v

        gdiff = s.get("grad_forward_vs_adjoint_max_abs_diff")
        print(
            f"{pid:28s} {s.get('n_parameters', 0):3d} "
            f"{_fmt(r.get('import_s'), '9.1f')} "
            f"{_fmt(s.get('llh', {}).get('llh'), '14.6f')} "
            f"{_fmt(s.get('llh_minus_reference'), '9.1e')} "
            f"{_fmt(ms('llh'), '8.2f')} {_fmt(ms('grad_forward'), '8.2f')} "
            f"{_fmt(ms('grad_adjoint'), '8.2f')} {_fmt(gdiff, '8.1e')} "
            f"{_fmt(None if 'llh_s' not in j else 1e3 * j['llh_s'], '10.2f')} "
            f"{_fmt(None if 'grad_s' not in j else 1e3 * j['grad_s'], '11.2f')} "
            f"{_fmt(j.get('llh_minus_sundials'), '9.1e')}"
        )
    print(
        "times: median wall time of amici.sim.sundials.run_simulations; "
        "fwd/adj: max |forward - adjoint gradient|; jax dllh: JAX llh - CVODES llh"
    )
    for pid, r in results.items():
        if "error" in r.get("jax", {}) or "llh_error" in r.get("jax", {}):
            j = r["jax"]
            print(f"  JAX {pid}: {j.get('error') or j.get('llh_error')}"[:300])
        m = r.get("multistart")
        if m and "best_fval" in m:
            print(
                f"  multistart {pid}: {m['n_starts']} starts, {m['optimizer']}, "
                f"total {m['total_wall_s']:.1f} s, best fval {m['best_fval']:.6f}, "
                f"{m['n_starts_within_0.1']} within 0.1, first after "
                f"{m['time_to_within_0.1_s']:.1f} s"
            )
        elif m:
            print(f"  multistart {pid}: {m.get('error')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", required=True)
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data" / "petab",
        help="folder holding <id>/<id>.yaml (default ../shared/data/petab)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "amici_peer.json"
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX backend")
    parser.add_argument(
        "--no-sundials-timing",
        action="store_true",
        help="skip the CVODES timings (e.g. for a multistart-only run)",
    )
    parser.add_argument(
        "--jax-only",
        action="store_true",
        help="only the JAX backend (e.g. with an older AMICI whose "
        "CVODES API this script does not speak)",
    )
    parser.add_argument(
        "--jax-budget",
        type=float,
        default=120.0,
        metavar="S",
        help="stop repeating a JAX timing after S seconds (at least "
        "3 calls; the count is recorded)",
    )
    parser.add_argument(
        "--update", action="store_true", help="keep the other problems already in --out"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="JSON of an earlier run whose CVODES llh and gradients "
        "the JAX results are compared with",
    )
    parser.add_argument(
        "--multistart",
        type=int,
        default=0,
        metavar="N",
        help="pyPESTO multistart with N starts (default 0: skipped)",
    )
    parser.add_argument(
        "--multistart-problems",
        nargs="+",
        default=["Boehm_JProteomeRes2014", "Fujita_SciSignal2010"],
    )
    parser.add_argument(
        "--optimizer", choices=["auto", "fides", "L-BFGS-B"], default="auto"
    )
    parser.add_argument("--n-procs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    _ensure_tools_on_path()
    _quiet_logs()
    import warnings

    warnings.filterwarnings("ignore")

    out_path = args.out if args.out.is_absolute() else REPO / args.out
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "description": "AMICI / pyPESTO peer timings, see benchmarks/_amici_peer.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": _versions(),
        "machine": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "repeats": args.repeats,
        "problems": {},
    }
    if args.update and out_path.exists():
        previous = json.loads(out_path.read_text())
        report["problems"] = {
            k: v for k, v in previous["problems"].items() if k not in args.problems
        }
        commands = previous.get("command")
        commands = commands if isinstance(commands, list) else [commands]
        report["command"] = [*commands, report["command"]]
    earlier = {}
    if args.compare is not None:
        earlier = json.loads(args.compare.read_text())["problems"]
        report["compared_with"] = str(args.compare)
    for pid in args.problems:
        print(f"== {pid}", flush=True)
        r: dict = {"loadavg_before": os.getloadavg()}
        report["problems"][pid] = r
        try:
            petab_problem = load_problem(args.data, pid)
            if not args.jax_only:
                model, r["import_s"] = import_model(petab_problem, pid)
                print(f"   import + compile {r['import_s']:.1f} s", flush=True)
        except Exception as exc:
            r["error"] = "import failed: " + _error(exc)
            traceback.print_exc()
            continue
        if not (args.no_sundials_timing or args.jax_only):
            r["sundials"] = bench_sundials(petab_problem, model, pid, args)
            print(f"   llh {r['sundials']['llh'].get('llh')}", flush=True)
        if not args.no_jax or args.jax_only:
            sundials = r.get("sundials") or earlier.get(pid, {}).get("sundials", {})
            r["jax"] = bench_jax(args.data, pid, petab_problem, sundials, args)
            print(f"   jax llh {r['jax'].get('llh')}", flush=True)
        if args.jax_only:
            r["loadavg_after"] = os.getloadavg()
            out_path.write_text(json.dumps(report, indent=1, default=str))
            continue
        if args.multistart and pid in args.multistart_problems:
            try:
                r["multistart"] = multistart(petab_problem, model, pid, args)
            except Exception as exc:
                r["multistart"] = {"error": _error(exc)}
                traceback.print_exc()
        r["loadavg_after"] = os.getloadavg()
        out_path.write_text(json.dumps(report, indent=1, default=str))
    out_path.write_text(json.dumps(report, indent=1, default=str))
    print()
    print_table(report["problems"])
    print(f"\nwrote {out_path}")


if __name__ == "__main__":
    main()
