"""The PEtab benchmark collection with odeinfer, side by side with AMICI (C++/SUNDIALS).

For every problem in `../shared/data/petab/`, each in a fresh process (persistent
compilation cache as configured; `ODEINFER_COMPILATION_CACHE=0` for cold numbers):
import time (`odeinfer.petab.load`), compile time of the gradient and then of the value
(trace + lowering + XLA, without running; the first gradient's run apart), import +
gradient compile against issue 10's 10 s, time per log-likelihood and per gradient
(median of repeats, after the compile), the log-likelihood at the nominal parameters against AMICI's published
reference (`benchmark_collection_overview.json`), and the simulation against the
collection's `simulatedData_*.tsv` (matched on observable, condition and time), and
the error of the gradient (odeinfer's and AMICI's, both at 1e-8) against AMICI's tight
reference gradient: a per-gradient time compares only at similar errors. AMICI always
includes the sensitivities in its error test; odeinfer's default does not
(`--sensitivity-error-control` runs odeinfer with it).

Peers, in the same run: AMICI 1.x (C++ with SUNDIALS CVODES, its default BDF, exact
Jacobian, rtol = atol = 1e-8, forward and adjoint sensitivities) through
`benchmarks/_amici_peer.py`, run by the Python of a separate environment that has
amici/pypesto (`--amici-python`, default `$AMICI_PYTHON` or `<repo>/../amici-venv/bin/python` when
present;
`pip install amici pypesto` builds AMICI from source in a few minutes). Without it the
peer columns are empty. odeinfer runs at the same tolerances (FusedRodas5P: fused
forward sensitivities).

Also: compile time against the number of conditions (Fujita's six conditions replicated
to 6·k; one `jax.vmap` over conditions), and with `--multistart N` a vmapped multistart of
Boehm and Fujita from N starts, against the best values published by Hass et al. 2019.

Run `python benchmarks/petab_collection.py` (not `petab.py`: a script of that name
would shadow the petab library it imports) (add `--multistart 100`, `--problems Boehm_JProteomeRes2014
...`, `--quick` to skip the scaling study). Writes `benchmarks/results/petab.json`,
`petab_times.png` and `petab_scaling.png`.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import odeinfer as oi
import odeinfer.petab as op

RESULTS_DIR = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
# The PEtab benchmark collection next to the checkout (or under $ODEINFER_SHARED_DATA).
DATA_DIRS = (
    Path(os.environ.get("ODEINFER_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "petab",
)
WITH_REFERENCE = (
    "Boehm_JProteomeRes2014", "Borghans_BiophysChem1997", "Brannmark_JBC2010",
    "Elowitz_Nature2000", "Fujita_SciSignal2010", "Zheng_PNAS2012",
)  # fmt: skip


def data_dir() -> Path:
    for d in DATA_DIRS:
        if d.is_dir():
            return d.resolve()
    raise FileNotFoundError("../shared/data/petab")


def yaml_of(folder: Path) -> Path:
    own = folder / f"{folder.name}.yaml"
    if own.exists():
        return own
    found = sorted(
        p for p in folder.glob("*.yaml") if not p.name.startswith("petab_test")
    )
    return found[0]


def median_time(fn, *args, repeats=20) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gradient_of(problem, names):
    """The jitted gradient of the log-likelihood in the vector of estimated
    parameters (PEtab scale)."""
    return jax.jit(
        jax.grad(lambda x: problem.log_likelihood(dict(zip(names, x, strict=True))))
    )


def simulation_error(problem, folder: Path):
    """Max relative difference to the collection's simulation table, matched on keys;
    None when there is none or it does not match the measurement table's rows."""
    files = sorted(folder.glob("simulatedData_*.tsv")) + sorted(
        folder.glob("simulations.tsv")
    )
    if not files:
        return None
    ref = pd.read_csv(files[0], sep="\t")
    column = "simulation" if "simulation" in ref.columns else "measurement"
    ours = problem.simulation_table()
    keys = [k for k in ("observableId", "simulationConditionId", "preequilibrationConditionId", "time")
            if k in ref.columns and k in ours.columns]  # fmt: skip
    if len(ref) != len(ours):
        return {"note": f"{len(ref)} reference rows, {len(ours)} measurements"}
    a = ours.sort_values(keys + ["simulation"], kind="stable")["simulation"].to_numpy(
        float
    )
    b = ref.sort_values(keys + [column], kind="stable")[column].to_numpy(float)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    return {"max_rel": float(np.max(rel)), "max_abs": float(np.max(np.abs(a - b)))}


def run_problem(
    folder: Path, reference: dict, repeats: int, sensitivity_error_control=False
) -> dict:
    out = {
        "problem": folder.name,
        "sensitivity_error_control": sensitivity_error_control,
    }
    start = time.perf_counter()
    solver = (
        oi.FusedRodas5P(sensitivity_error_control=True)
        if sensitivity_error_control
        else None  # the PEtab default
    )
    try:
        problem = op.load(yaml_of(folder), solver=solver)
    except op.PEtabError as error:
        out["refused"] = str(error)
        return out
    out["import_s"] = time.perf_counter() - start
    names = list(problem.nominal)
    x0 = problem.vector(problem.nominal)
    value = jax.jit(lambda x: problem.log_likelihood(dict(zip(names, x, strict=True))))
    # The gradient first (what a fit needs), then the value: each its trace, lowering
    # and XLA compilation (`compile_*_s`), and its first call apart (`first_*_run_s`).
    start = time.perf_counter()
    grad = gradient_of(problem, names).lower(x0).compile()
    out["compile_grad_s"] = time.perf_counter() - start
    out["import_and_compile_s"] = out["import_s"] + out["compile_grad_s"]
    start = time.perf_counter()
    g = np.asarray(grad(x0))
    out["first_grad_run_s"] = time.perf_counter() - start
    start = time.perf_counter()
    value = value.lower(x0).compile()
    out["compile_llh_s"] = time.perf_counter() - start
    llh = float(value(x0))
    out.update(
        states=len(problem.sbml.state_ids),
        experiments=len(problem.experiments),
        measurements=len(problem.measurements),
        parameters=len(names),
        llh=llh,
        gradient=g.tolist(),
        llh_ms=1e3 * median_time(value, x0, repeats=repeats),
        grad_ms=1e3 * median_time(grad, x0, repeats=repeats),
    )
    ref = reference.get(folder.name, {}).get("amici_reference_llh_at_nominal")
    if ref is not None:
        out["amici_reference_llh"] = ref
        out["abs_error_llh"] = abs(llh - ref)
    try:
        out["simulation_vs_collection"] = simulation_error(problem, folder)
    except RuntimeError as error:
        out["simulation_vs_collection"] = {"note": str(error)}
    return out


def run_isolated(
    name: str, repeats: int, timeout: float, sensitivity_error_control=False
) -> dict:
    """`run_problem` in a fresh process (own compile cache and memory), stopped after
    `timeout` seconds: the large problems of the collection may take longer to compile
    than this study can wait, and that is reported, not hidden."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "row.json"
        command = [sys.executable, __file__, "--one", name, "--repeats", str(repeats),
                   "--row-out", str(target)]  # fmt: skip
        if sensitivity_error_control:
            command.append("--sensitivity-error-control")
        try:
            subprocess.run(command, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {
                "problem": name,
                "not_timed": f"did not finish within {timeout:.0f} s",
            }
        if not target.exists():
            return {"problem": name, "not_timed": "the run failed"}
        return json.loads(target.read_text())


def run_amici(python: str, problems, data: Path, repeats: int) -> dict | None:
    if not python or not Path(python).exists():
        return None
    target = Path(tempfile.mkdtemp()) / "amici.json"
    command = [python, str(Path(__file__).parent / "_amici_peer.py"), "--problems", *problems,
               "--data", str(data), "--out", str(target), "--repeats", str(repeats)]  # fmt: skip
    print("peer:", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not target.exists():
        print(done.stdout[-2000:], done.stderr[-2000:])
        return {"error": done.stderr[-2000:]}
    return json.loads(target.read_text())


def gradient_errors(row: dict, peer: dict | None) -> dict:
    """The error of odeinfer's gradient and of AMICI's forward-sensitivity gradient
    (both at rtol = atol = 1e-8) against AMICI's tight reference gradient (rtol 1e-12,
    atol 1e-16, forward sensitivities with error control): max over the parameters of
    |g - g_ref| and of |g - g_ref| / max(|g_ref|, 1e-3), the measure of
    `_amici_peer.py`. Per-gradient times compare only at similar errors."""
    name = row["problem"]
    if not peer or name not in peer.get("problems", {}) or "gradient" not in row:
        return {}
    entry = peer["problems"][name].get("sundials", {})
    g_ref = (entry.get("reference_tight") or {}).get("gradient")
    if g_ref is None:
        return {}
    g_ref = np.asarray(g_ref)
    out = {}
    for label, g in (
        ("", row["gradient"]),
        ("amici_", (entry.get("grad_forward") or {}).get("gradient")),
    ):
        if g is None or len(g) != len(g_ref):
            continue
        d = np.abs(np.asarray(g) - g_ref)
        out[f"{label}grad_max_abs_err"] = float(np.max(d))
        out[f"{label}grad_max_rel_err"] = float(
            np.max(d / np.maximum(np.abs(g_ref), 1e-3))
        )
    return out


def amici_times(peer: dict | None, name: str) -> dict:
    if not peer or name not in peer.get("problems", {}):
        return {}
    entry = peer["problems"][name].get("sundials", {})
    out = {}
    for key, field in (
        ("llh", "llh"),
        ("grad_forward", "grad_forward"),
        ("grad_adjoint", "grad_adjoint"),
    ):
        part = entry.get(field) or {}
        if "run_simulations_s" in part:
            out[f"amici_{key}_ms"] = 1e3 * part["run_simulations_s"]
    if "import_s" in peer["problems"][name]:
        out["amici_import_s"] = peer["problems"][name]["import_s"]
    jax_part = peer["problems"][name].get("jax")
    if isinstance(jax_part, dict):
        for key in ("llh_s", "grad_s", "compile_s"):
            if key in jax_part:
                out[f"amici_jax_{key}"] = jax_part[key]
    elif jax_part is not None:
        out["amici_jax"] = str(jax_part)[:200]
    return out


def replicate(folder: Path, copies: int, target: Path) -> Path:
    """Fujita with every condition repeated `copies` times (new ids, same data)."""
    shutil.copytree(folder, target)
    yaml = yaml_of(target)
    conditions = pd.read_csv(next(target.glob("experimentalCondition_*.tsv")), sep="\t")
    measurements_file = next(target.glob("measurementData_*.tsv"))
    measurements = pd.read_csv(measurements_file, sep="\t")
    used = set(measurements["simulationConditionId"])
    conditions = conditions[conditions["conditionId"].isin(used)]
    c_frames, m_frames = [], []
    for k in range(copies):
        c = conditions.copy()
        c["conditionId"] = c["conditionId"] + f"_copy{k}"
        m = measurements.copy()
        m["simulationConditionId"] = m["simulationConditionId"] + f"_copy{k}"
        c_frames.append(c)
        m_frames.append(m)
    pd.concat(c_frames).to_csv(
        next(target.glob("experimentalCondition_*.tsv")), sep="\t", index=False
    )
    pd.concat(m_frames).to_csv(measurements_file, sep="\t", index=False)
    return yaml


def scaling(data: Path, copies=(1, 2, 4, 8)) -> list[dict]:
    rows = []
    for k in copies:
        with tempfile.TemporaryDirectory() as tmp:
            yaml = replicate(data / "Fujita_SciSignal2010", k, Path(tmp) / "Fujita")
            start = time.perf_counter()
            problem = op.load(yaml)
            names = list(problem.nominal)
            grad = gradient_of(problem, names)
            x0 = problem.vector(problem.nominal)
            t_import = time.perf_counter() - start
            start = time.perf_counter()
            llh = float(problem.log_likelihood(problem.nominal))
            t_llh = time.perf_counter() - start
            start = time.perf_counter()
            jax.block_until_ready(grad(x0))
            t_grad = time.perf_counter() - start
            rows.append(dict(conditions=len(problem.experiments), import_s=t_import,
                             compile_llh_s=t_llh, compile_grad_s=t_grad,
                             llh=llh, grad_ms=1e3 * median_time(grad, x0, repeats=5)))  # fmt: skip
            print(f"  {rows[-1]['conditions']:4d} conditions: compile llh {t_llh:6.1f} s, "
                  f"grad {t_grad:6.1f} s, per gradient {rows[-1]['grad_ms']:8.1f} ms", flush=True)  # fmt: skip
    return rows


def multistart(
    data: Path, name: str, n_starts: int, reference: dict, seed: int
) -> dict:
    problem = op.load(yaml_of(data / name))
    start = time.perf_counter()
    result = oi.multistart(problem.log_likelihood, n_starts, key=seed,
                           parameters=problem.parameters, throw=False)  # fmt: skip
    seconds = time.perf_counter() - start
    values = np.sort(np.asarray(result.log_objective))[::-1]
    values = values[np.isfinite(values)]
    best = float(values[0])
    hass = reference.get(name, {}).get("hass2019_general_info", {})
    published = hass.get("reported_neg2loglik_field_labelled_2xLogLik")
    return dict(problem=name, n_starts=n_starts, seconds=seconds, best_llh=best,
                converged=int(np.sum(np.asarray(result.converged))),
                within_0_1=int(np.sum(values >= best - 0.1)),
                hass2019_field=published, sorted_llh=values.tolist())  # fmt: skip


def plot(rows, scale_rows, path_times: Path, path_scaling: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots")
        return
    done = [r for r in rows if "grad_ms" in r]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(done))
    ax.bar(x - 0.2, [r["grad_ms"] for r in done], 0.4, label="odeinfer gradient")
    ax.bar(x + 0.2, [r.get("amici_grad_forward_ms", np.nan) for r in done], 0.4,
           label="AMICI forward-sensitivity gradient")  # fmt: skip
    ax.set_xticks(x, [r["problem"].split("_")[0] for r in done], rotation=60)
    ax.set_yscale("log")
    ax.set_ylabel("ms per gradient (median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path_times, dpi=120)
    if scale_rows:
        fig, ax = plt.subplots(figsize=(5, 4))
        n = [r["conditions"] for r in scale_rows]
        ax.plot(
            n,
            [r["compile_llh_s"] for r in scale_rows],
            "o-",
            label="first llh (compile)",
        )
        ax.plot(
            n,
            [r["compile_grad_s"] for r in scale_rows],
            "s-",
            label="first gradient (compile)",
        )
        ax.set_xlabel("conditions (Fujita replicated)")
        ax.set_ylabel("seconds")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path_scaling, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--amici-python",
        default=os.environ.get(
            "AMICI_PYTHON", str(ROOT.parent / "amici-venv" / "bin" / "python")
        ),
    )
    parser.add_argument("--multistart", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="skip the scaling study")
    parser.add_argument("--amici-json", default=None,
                        help="reuse the peer's JSON from an earlier run of _amici_peer.py")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0, help="per problem, s")
    parser.add_argument("--out", default=None,
                        help="write the JSON here (no plots) instead of results/petab.json")  # fmt: skip
    parser.add_argument(
        "--sensitivity-error-control",
        action="store_true",
        help="odeinfer with FusedRodas5P(sensitivity_error_control=True) (AMICI "
        "always includes the sensitivities in its error test)",
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--row-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = data_dir()
    overview = json.loads((data / "benchmark_collection_overview.json").read_text())
    reference = {m["problem_id"]: m for m in overview["models"]}
    if args.one:
        row = run_problem(
            data / args.one, reference, args.repeats, args.sensitivity_error_control
        )
        Path(args.row_out).write_text(json.dumps(row, default=str))
        return
    names = args.problems or sorted(p.name for p in data.iterdir() if p.is_dir())
    if args.amici_json:
        peer = json.loads(Path(args.amici_json).read_text())
    else:
        with_reference = [n for n in names if n in WITH_REFERENCE]
        peer = run_amici(args.amici_python, with_reference, data, args.repeats)
    rows = []
    header = (f"{'problem':36s} {'import':>7s} {'compile':>8s} {'sum':>6s} {'llh ms':>8s} {'grad ms':>8s} "
              f"{'AMICI llh':>9s} {'AMICI fwd':>9s} {'grad/AMICI':>10s} {'|Δllh|':>9s} "
              f"{'grad err':>9s} {'AMICI err':>9s}")  # fmt: skip
    print(header)
    for name in names:
        row = run_isolated(
            name, args.repeats, args.timeout, args.sensitivity_error_control
        )
        row.update(amici_times(peer, name))
        row.update(gradient_errors(row, peer))
        rows.append(row)
        if "refused" in row or "not_timed" in row:
            why = row.get("refused") or row["not_timed"]
            print(f"{name:36s} {'refused' if 'refused' in row else 'not timed'}: "
                  f"{why[:100]}", flush=True)  # fmt: skip
            continue
        ratio = (
            row["grad_ms"] / row["amici_grad_forward_ms"]
            if "amici_grad_forward_ms" in row
            else np.nan
        )
        print(f"{name:36s} {row['import_s']:7.2f} {row['compile_grad_s']:8.1f} "
              f"{row['import_and_compile_s']:6.1f} {row['llh_ms']:8.2f} "
              f"{row['grad_ms']:8.2f} {row.get('amici_llh_ms', np.nan):9.2f} "
              f"{row.get('amici_grad_forward_ms', np.nan):9.2f} {ratio:10.2f} "
              f"{row.get('abs_error_llh', np.nan):9.1e} "
              f"{row.get('grad_max_abs_err', np.nan):9.1e} "
              f"{row.get('amici_grad_max_abs_err', np.nan):9.1e}", flush=True)  # fmt: skip
    scale_rows = (
        []
        if args.quick
        else (print("compile time against conditions:") or scaling(data))
    )
    starts = []
    if args.multistart:
        for name in ("Boehm_JProteomeRes2014", "Fujita_SciSignal2010"):
            starts.append(multistart(data, name, args.multistart, reference, args.seed))
            s = starts[-1]
            print(f"multistart {name}: {s['n_starts']} starts in {s['seconds']:.1f} s, best llh "
                  f"{s['best_llh']:.4f}, {s['within_0_1']} within 0.1", flush=True)  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    out = dict(
        machine=dict(
            platform=platform.platform(),
            cpu_count=os.cpu_count(),
            python=sys.version.split()[0],
            jax=jax.__version__,
            odeinfer=oi.__version__,
        ),  # fmt: skip
        settings=dict(
            rtol=1e-8,
            atol=1e-8,
            solver="odeinfer.petab default (FusedRodas5P / Rodas5P+crossings)"
            + (
                ", FusedRodas5P(sensitivity_error_control=True)"
                if args.sensitivity_error_control
                else ""
            ),
            repeats=args.repeats,
        ),  # fmt: skip
        problems=rows,
        amici=peer,
        scaling=scale_rows,
        multistart=starts,
    )
    target = Path(args.out) if args.out else RESULTS_DIR / "petab.json"
    out["command"] = " ".join(sys.argv)
    out["loadavg"] = os.getloadavg()
    target.write_text(json.dumps(out, indent=1, default=str))
    if not args.out:
        plot(
            rows,
            scale_rows,
            RESULTS_DIR / "petab_times.png",
            RESULTS_DIR / "petab_scaling.png",
        )
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
