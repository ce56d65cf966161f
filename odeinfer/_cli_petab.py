"""`odeinfer petab PROBLEM.yaml`: a PEtab v1 problem from the command line, through the
public functions only (`odeinfer.petab.load`, `oi.multistart`, `oi.sample`).

```
odeinfer petab Boehm_JProteomeRes2014.yaml --llh
odeinfer petab Boehm_JProteomeRes2014.yaml --fit 20 --seed 1 --out results/
odeinfer petab Boehm_JProteomeRes2014.yaml --sample --num-samples 500 --chains 4
```

Everything goes to `--out` (default `./petab_<problem id>`): tables as TSV (PEtab's
format), plots as PNG when matplotlib is installed (the `plot` extra).
"""

import importlib.util
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

_NAME = "odeinfer petab"


def _error(message: str | BaseException) -> int:
    """One line on stderr and exit status 2 (no traceback)."""
    text = " ".join(str(message).split())
    print(f"{_NAME}: error: {text}", file=sys.stderr)
    return 2


def _pyplot():
    """matplotlib's pyplot with the file-only Agg backend, or `None` with a message
    when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print(
            f"{_NAME}: matplotlib is not installed, so no plots are written "
            "(`pip install 'odeinfer[plot]'`).",
            file=sys.stderr,
        )
        return None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _check_options(args) -> str | None:
    """The numbers from the command line, checked before anything is loaded."""
    if args.fit is not None and args.fit < 1:
        return f"`--fit N` needs N >= 1 starts; got {args.fit}."
    if args.num_samples < 1:
        return f"`--num-samples` must be >= 1; got {args.num_samples}."
    if args.num_warmup < 0:
        return f"`--num-warmup` must be >= 0; got {args.num_warmup}."
    if args.chains < 1:
        return f"`--chains` must be >= 1; got {args.chains}."
    if args.max_steps < 1:
        return f"`--max-steps` must be >= 1; got {args.max_steps}."
    if args.workers < 1:
        return f"`--workers` must be >= 1; got {args.workers}."
    return None


def _write_table(frame, path: Path) -> None:
    frame.to_csv(path, sep="\t", index=False)


# --- --llh ---------------------------------------------------------------------------
def _llh(problem, out: Path) -> list[Path]:
    start = time.perf_counter()
    value = float(problem.log_likelihood(problem.nominal))
    first = time.perf_counter() - start
    start = time.perf_counter()
    float(problem.log_likelihood(problem.nominal))
    again = time.perf_counter() - start
    print(f"log-likelihood at the nominal parameters: {value:.10f}")
    print(f"  (pyPESTO fval = -llh = {-value:.10f})")
    print(
        f"import {problem.import_seconds:.2f} s (odeinfer.petab.load: tables, SBML); "
        f"first evaluation (compile + run) {first:.2f} s, then {1e3 * again:.2f} ms "
        "per evaluation"
    )
    path = out / "simulation_nominal.tsv"
    _write_table(problem.simulation_table(), path)
    return [path]


# --- --fit N ---------------------------------------------------------------------------
def _multistart_table(problem, result):
    """One row per start, best first: the log-likelihood, pyPESTO's fval, success and
    the end point on the PEtab scale."""
    import jax
    import pandas as pd

    optima = jax.vmap(problem.parameters.from_unconstrained)(result.optima)
    llh = np.asarray(result.log_objective, dtype=float)
    frame = pd.DataFrame(
        {
            "start": np.arange(len(llh)),
            "llh": llh,
            "fval": -llh,
            "success": np.asarray(result.converged, dtype=bool),
            "solve_failed": np.asarray(result.solve_failed, dtype=bool),
            "num_steps": np.asarray(result.num_steps, dtype=int),
        }
    )
    if result.num_evaluations is not None and result.seconds is not None:
        frame["num_evaluations"] = np.asarray(result.num_evaluations, dtype=int)
        frame["seconds"] = np.asarray(result.seconds, dtype=float)
    for name in result.names:
        frame[name] = np.asarray(optima[name], dtype=float)
    order = np.argsort(np.where(np.isfinite(llh), -llh, np.inf), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _waterfall(plt, table, title: str, path: Path) -> None:
    """pyPESTO's waterfall: the final fval (-llh) of every start, sorted, on a log axis
    with the offset `1 - best`, so the best start sits at 1."""
    finite = table[np.isfinite(table["fval"])]
    fval = finite["fval"].to_numpy()
    y = fval - fval.min() + 1.0
    x = np.arange(1, len(y) + 1)
    success = finite["success"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    ax.plot(x, y, color="0.6", lw=1, zorder=1)
    ax.scatter(x[success], y[success], color="C0", zorder=2, label="converged")
    if (~success).any():
        ax.scatter(x[~success], y[~success], color="C3", marker="x", zorder=2,
                   label="not converged")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("start, sorted by final objective")
    ax.set_ylabel("fval − best fval + 1   (fval = −log-likelihood)")
    failed = len(table) - len(finite)
    note = f"; {failed} start(s) ended where the solve fails" if failed else ""
    ax.set_title(f"{title}: best fval {fval.min():.6g}{note}", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _trajectories(plt, simulation, measurement, title: str, path: Path) -> None:
    """The simulation at the best fit (lines through the measurement times) against
    the data (points, error bars ±sigma): one panel per observable, one colour per
    experiment (preequilibration, condition)."""
    from matplotlib.lines import Line2D
    from petab.v1 import C

    frame = simulation.assign(measurement=np.asarray(measurement, dtype=float))
    frame = frame[np.isfinite(frame[C.TIME].to_numpy(dtype=float))]
    pre = (
        frame[C.PREEQUILIBRATION_CONDITION_ID].fillna("").astype(str)
        if C.PREEQUILIBRATION_CONDITION_ID in frame.columns
        else None
    )
    frame = frame.assign(
        _experiment=frame[C.SIMULATION_CONDITION_ID].astype(str)
        if pre is None
        else np.where(
            pre != "",
            pre + " → " + frame[C.SIMULATION_CONDITION_ID].astype(str),
            frame[C.SIMULATION_CONDITION_ID].astype(str),
        ),
        _curve=(
            frame[C.OBSERVABLE_PARAMETERS].fillna("").astype(str)
            if C.OBSERVABLE_PARAMETERS in frame.columns
            else ""
        ),
    )
    observables = list(dict.fromkeys(frame[C.OBSERVABLE_ID]))
    max_panels = 36
    if len(observables) > max_panels:
        print(
            f"{_NAME}: {len(observables)} observables; plotting the first {max_panels}.",
            file=sys.stderr,
        )
        observables = observables[:max_panels]
    experiments = list(dict.fromkeys(frame["_experiment"]))
    colour = {e: f"C{i % 10}" for i, e in enumerate(experiments)}
    ncols = min(3, len(observables))
    nrows = math.ceil(len(observables) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for ax, oid in zip(axes.flat, observables, strict=False):
        rows = frame[frame[C.OBSERVABLE_ID] == oid]
        for (experiment, _), curve in rows.groupby(
            ["_experiment", "_curve"], sort=False
        ):
            curve = curve.sort_values(C.TIME)
            c = colour[experiment]
            ax.errorbar(curve[C.TIME], curve["measurement"], yerr=curve["sigma"],
                        fmt="o", ms=3, color=c, alpha=0.6, lw=0.8)  # fmt: skip
            line = curve.drop_duplicates(C.TIME)
            ax.plot(line[C.TIME], line[C.SIMULATION], color=c, lw=1.5)
        values = np.concatenate([rows["measurement"], rows[C.SIMULATION]])
        if np.all(values > 0) and values.max() / values.min() > 1e3:
            ax.set_yscale("log")
        ax.set_title(str(oid), fontsize=9)
        ax.set_xlabel("time")
    for ax in list(axes.flat)[len(observables) :]:
        ax.set_visible(False)
    if 1 < len(experiments) <= 12:
        handles = [Line2D([], [], color=colour[e], label=e) for e in experiments]
        fig.legend(handles=handles, loc="outside lower center", fontsize=7,
                   ncols=min(4, len(experiments)))  # fmt: skip
    fig.suptitle(
        f"{title}: data (points, ±sigma) and the best fit (lines)", fontsize=10
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fit(problem, args, out: Path, title: str) -> tuple[list[Path], dict | None]:
    from petab.v1 import C

    import odeinfer as oi
    from odeinfer.petab import PEtabError

    n_starts = args.fit
    optimizer = args.optimizer
    if optimizer == "fides" and importlib.util.find_spec("fides") is None:
        raise PEtabError(
            "`--optimizer fides` needs the fides package: pip install fides"
        )
    if optimizer == "auto":
        optimizer = "fides" if importlib.util.find_spec("fides") else "trf"
    solver = {
        "interior": oi.InteriorTrustRegion,
        "fides": oi.Fides,
        "trf": oi.TrustRegionReflective,
    }[optimizer]()
    workers = args.workers
    try:
        problem.check_residuals()
        at_a_time = (
            "one start after another"
            if workers == 1
            else f"{workers} starts at a time (threads)"
        )
        compiles = (
            "each start one compiled program, compiled first"
            if isinstance(solver, oi.InteriorTrustRegion)
            else "the first start compiles the residuals and their Jacobian"
        )
        how = (
            f"bounded least squares on the PEtab box (oi.{type(solver).__name__}), at "
            f"most {args.max_steps} evaluations each, {at_a_time} ({compiles})"
        )
    except PEtabError as error:
        solver = None
        ignored = (
            ""
            if workers == 1
            else f"; --workers {workers} applies to least squares only, not here"
        )
        workers = 1
        how = (
            f"BFGS on the log-likelihood ({error}), at most {args.max_steps} steps "
            "each, one start after another in one compiled call (no per-start "
            f"progress{ignored})"
        )
    print(
        f"multistart: {n_starts} start(s) (start 0 = the nominal values, the others "
        f"uniform within the bounds on the PEtab scale) by {how} ...",
        flush=True,
    )
    start = time.perf_counter()
    # The problem itself: `oi.multistart` fits it by trust-region least squares when
    # every noise model is normal, by BFGS otherwise. One start at a time
    # (`batch_size=1` for BFGS): memory does not grow with N, and no start waits for
    # the slowest of a vmapped batch (a start in a stiff region).
    result = oi.multistart(
        problem,
        n_starts,
        key=args.seed,
        solver=solver,
        max_steps=args.max_steps,
        batch_size=1,
        workers=workers,
        progress_bar=True,
        throw=False,
    )
    seconds = time.perf_counter() - start
    table = _multistart_table(problem, result)
    written = [out / "multistart.tsv"]
    _write_table(table, written[0])
    clusters = ", ".join(f"{v:.6g} (x{c})" for v, c in result.clusters()[:5])
    print(
        f"multistart: {result.num_converged}/{n_starts} converged in {seconds:.1f} s; "
        f"optima of the converged starts (llh, count): {clusters or 'none'}"
    )
    simulation = best = None
    if np.isfinite(table["llh"].iloc[0]):
        # The best start is the one with the highest log-likelihood, converged or
        # not (pyPESTO's choice; oi.multistart's `best` counts converged ones only).
        top = table.iloc[0]
        state = (
            "converged"
            if top["success"]
            else f"not converged after {int(top['num_steps'])} steps"
        )
        print(
            f"best start: {int(top['start'])}, llh {top['llh']:.6f} "
            f"(fval {top['fval']:.6f}), {state}; its parameters (PEtab scale):"
        )
        width = max(len(n) for n in result.names)
        for name in result.names:
            print(f"  {name:<{width}}  {float(top[name]): .6g}")
        best = {n: float(top[n]) for n in result.names}
        try:
            simulation = problem.simulation_table(best)
        except RuntimeError as error:
            print(
                f"{_NAME}: no simulation table at the best fit: {error}",
                file=sys.stderr,
            )
    else:
        print(f"{_NAME}: every start ended where the solve fails.", file=sys.stderr)
    if simulation is not None:
        path = out / "simulation_best.tsv"
        _write_table(simulation, path)
        written.append(path)
    plt = _pyplot()
    if plt is not None:
        if np.isfinite(table["fval"]).any():
            _waterfall(plt, table, title, out / "waterfall.png")
            written.append(out / "waterfall.png")
        if simulation is not None:
            measurement = problem.measurements[C.MEASUREMENT].to_numpy()
            _trajectories(
                plt, simulation, measurement, title, out / "fit_trajectories.png"
            )
            written.append(out / "fit_trajectories.png")
    return written, best


# --- --sample -----------------------------------------------------------------------------
def _sample(problem, args, out: Path, best: dict | None) -> list[Path]:
    import odeinfer as oi

    priors = problem.priors()
    init = None
    if best is not None:
        # The best start, moved 0.1% of the range inside the bounds: a value on a
        # bound is at infinity on the sampler's (logit) scale.
        init = {}
        for name, value in best.items():
            spec = problem.parameters.specs[name]
            margin = 1e-3 * (spec.upper - spec.lower)
            init[name] = float(np.clip(value, spec.lower + margin, spec.upper - margin))
        # A prior narrower than the bounds may exclude it: then oi.sample's default.
        if not all(bool(priors[n].support(v)) for n, v in init.items()):
            init = None
    print(
        f"NUTS: {args.chains} chain(s), {args.num_warmup} warm-up and "
        f"{args.num_samples} draws each, started from "
        + (
            "the best start of the multistart"
            if init
            else "uniform(-2, 2) on the unconstrained scale"
        )
        + "; priors from the parameter table (uniform within the bounds where it "
        "gives none) ...",
        flush=True,
    )
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        posterior = oi.sample(
            problem.log_likelihood,
            priors,
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.chains,
            key=args.seed,
            init=init,
            progress_bar=True,
        )
    seconds = time.perf_counter() - start
    for warning in caught:
        if issubclass(warning.category, oi.SamplingWarning):
            print(f"{_NAME}: warning: {warning.message}", file=sys.stderr)
    summary = posterior.summary()
    summary.index.name = "parameterId"
    path = out / "posterior_summary.tsv"
    summary.to_csv(path, sep="\t")
    posterior.save(out / "posterior.npz")
    columns = [c for c in ("mean", "sd", "q5", "q50", "q95", "ess_bulk", "r_hat")
               if c in summary.columns]  # fmt: skip
    print(f"sampling took {seconds:.1f} s; {posterior.num_divergences} divergences")
    print(summary.to_string(columns=columns, float_format=lambda v: f"{v:.4g}"))
    return [path, out / "posterior.npz"]


# --- the subcommand ----------------------------------------------------------------------
def run(args) -> int:
    message = _check_options(args)
    if message:
        return _error(message)
    try:
        import odeinfer.petab as petab
    except ImportError as error:
        return _error(error)
    yaml = Path(args.problem)
    try:
        problem = petab.load(yaml)
    except petab.PEtabError as error:
        return _error(error)
    title = yaml.stem
    out = args.out if args.out is not None else Path(f"petab_{title}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _error(f"`--out {out}` is not a folder that can be created: {error}")
    print(problem)
    do_llh = args.llh or (args.fit is None and not args.sample)
    written: list[Path] = []
    try:
        if do_llh:
            written += _llh(problem, out)
        best = None
        if args.fit is not None:
            files, best = _fit(problem, args, out, title)
            written += files
        if args.sample:
            written += _sample(problem, args, out, best)
    except petab.PEtabError as error:
        return _error(error)
    except RuntimeError as error:
        return _error(error)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def add_parser(commands) -> None:
    """Registers `odeinfer petab` on the `odeinfer` subcommand parsers."""
    parser = commands.add_parser(
        "petab",
        help="log-likelihood, multistart fit or NUTS sampling of a PEtab problem",
        description="Import a PEtab v1 problem (its yaml file) with "
        "odeinfer.petab.load and evaluate, fit or sample it. Without --llh, --fit or "
        "--sample: --llh. Needs the petab extra (pip install 'odeinfer[petab]').",
    )
    parser.add_argument("problem", help="the PEtab problem's yaml file")
    parser.add_argument(
        "--llh",
        action="store_true",
        help="print the log-likelihood at the nominal parameters and the import and "
        "compile times; write simulation_nominal.tsv",
    )
    parser.add_argument(
        "--fit",
        type=int,
        default=None,
        metavar="N",
        help="multistart with N starts; write multistart.tsv (one row per start), "
        "simulation_best.tsv, waterfall.png and fit_trajectories.png",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help="NUTS with the problem's priors, the chains started uniform(-2, 2) on the "
        "unconstrained scale (from the best start with --fit); write "
        "posterior_summary.tsv and posterior.npz",
    )
    parser.add_argument(
        "--num-samples", type=int, default=100, help="draws per chain (100)"
    )
    parser.add_argument(
        "--num-warmup", type=int, default=100, help="warm-up per chain (100)"
    )
    parser.add_argument("--chains", type=int, default=2, help="chains (2)")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=256,
        help="optimiser steps per start for --fit (residual evaluations for the "
        "trust-region least squares; 256, oi.multistart's default)",
    )
    parser.add_argument(
        "--optimizer",
        choices=("auto", "interior", "fides", "trf"),
        default="auto",
        help="--fit's optimiser when every noise model is normal: oi.Fides (the fides "
        "package: about 9x fewer evaluations per start on Boehm), "
        "oi.InteriorTrustRegion (interior: Fides' algorithm, each start one compiled "
        "program) or oi.TrustRegionReflective (scipy); auto (default): fides where it "
        "is installed, else trf",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="--fit's starts at a time, in threads, for the least-squares optimisers "
        "(oi.multistart's `workers`; 1). 2 on two free cores takes about half the "
        "time, with the same results",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: ./petab_<problem id>)",
    )
    parser.set_defaults(handler=run)
