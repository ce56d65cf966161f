"""The `odeinfer` command line. Subcommands (argparse): `odeinfer bench` and
`odeinfer petab` (in `_cli_petab.py`).

```
odeinfer bench --list
odeinfer bench rober --solvers Rodas5P Kvaerno5 scipy/LSODA --rtols 1e-4 1e-6 --out results/
odeinfer petab Boehm_JProteomeRes2014.yaml --llh --fit 20
```
"""

import argparse
import math
import sys
from pathlib import Path

from . import _cli_petab


def _bench(args) -> int:
    from .benchmarking import benchmark, benchmark_problem, benchmark_suite

    if args.list:
        for name, problem in benchmark_suite().items():
            kind = "stiff" if problem.stiff else "non-stiff"
            print(f"{name:20s} {kind:9s} {problem.description}")
        return 0
    if not args.problem:
        print(
            "odeinfer bench: give a PROBLEM (see `odeinfer bench --list`).",
            file=sys.stderr,
        )
        return 2
    # The options, every name and the output folder are checked before the first
    # (long) run.
    bad = [r for r in args.rtols if not (math.isfinite(r) and 0.0 < r < 1.0)]
    if bad:
        print(
            "odeinfer bench: error: `--rtols` (the tolerances) must be finite numbers "
            f"in (0, 1), e.g. 1e-4 1e-6 1e-8; got {bad}.",
            file=sys.stderr,
        )
        return 2
    if args.repeats < 1:
        print(
            f"odeinfer bench: error: `--repeats` must be >= 1; got {args.repeats}.",
            file=sys.stderr,
        )
        return 2
    problems = {name: benchmark_problem(name) for name in args.problem}
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(
                f"odeinfer bench: error: `--out {args.out}` is not a folder that can be "
                f"created or written: {error}",
                file=sys.stderr,
            )
            return 2
    results = None
    for name, problem in problems.items():
        solvers = args.solvers or (
            ["Rodas5P", "Kvaerno5", "scipy/Radau", "scipy/LSODA"]
            if problem.stiff
            else ["Tsit5", "scipy/DOP853", "scipy/LSODA"]
        )
        part = benchmark(
            problem,
            solvers,
            args.rtols,
            repeats=args.repeats,
            gradients=args.gradients,
            progress=not args.quiet,
        )
        results = part if results is None else results + part
        if args.out is not None:
            part.plot(args.out / f"wp_{name}.png")
    assert results is not None  # at least one problem (checked above)
    print(results)
    if args.out is not None:
        results.to_csv(args.out / "benchmark.csv")
        results.to_json(args.out / "benchmark.json")
        print(f"wrote {args.out}/benchmark.csv, benchmark.json, wp_*.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odeinfer", description="odeinfer command line tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser(
        "bench",
        help="benchmark solvers on the shipped problem suite",
        description="Work-precision benchmark: odeinfer/diffrax solvers against scipy "
        "and SUNDIALS on the shipped problems.",
    )
    bench.add_argument("problem", nargs="*", help="problem names (see --list)")
    bench.add_argument("--list", action="store_true", help="list the problems and exit")
    bench.add_argument(
        "--solvers",
        nargs="+",
        default=None,
        help="e.g. Tsit5 Rodas5P Kvaerno5 scipy/LSODA sundials/CVODE-BDF (default: by stiffness)",
    )
    bench.add_argument(
        "--rtols", nargs="+", type=float, default=[1e-4, 1e-6, 1e-8], help="rtol grid"
    )
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per setting")
    bench.add_argument("--gradients", action="store_true", help="also time gradients")
    bench.add_argument("--out", type=Path, default=None, help="folder for CSV/JSON/PNG")
    bench.add_argument("--quiet", action="store_true", help="no progress output")
    bench.set_defaults(handler=_bench)
    _cli_petab.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Entry point of the `odeinfer` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError) as error:
        print(f"odeinfer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
