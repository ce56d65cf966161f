"""First-call latency in a new process, with an empty and with a warm persistent
compilation cache.

What a new user waits for, each step in a fresh Python process:

- `readme`: `import odeinfer`, then the README's logistic example: the first solve
  (`threshold_time(0.01)`, a `first_crossing` with `solver=oi.FusedDopri5()`) and the
  first gradient (`jax.grad(threshold_time)(0.01)`);
- `readme-tsit5`: the same with `solve`'s default solver, `diffrax.Tsit5()` (the
  README's example before it named the fused solver);
- `likelihood`: `import odeinfer`, then the first `jax.grad` of `oi.log_likelihood` for
  a small `Problem` (exponential decay, 20 Gaussian observations, two parameters), as
  on the estimation page.

Each repeat runs both with an empty cache directory (`cold`: everything compiles and is
written) and then again on that directory (`warm`: a second process on the same
machine). `--no-cache` runs a third phase with `ODEINFER_COMPILATION_CACHE=0`, the
behaviour before the cache. The load average is recorded before every process: on a
shared machine, compare the ratios measured in one run.

Run `python benchmarks/first_call.py [--repeats 3] [--no-cache] [--eqx-on-error nan]`.
Writes `benchmarks/results/first_call.json` (`--output` to change).
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

RESULTS_DIR = Path(__file__).parent / "results"

_CLOCK = """
import time
_start = time.perf_counter()
import jax
import odeinfer as oi
times = {"import": time.perf_counter() - _start}

def timed(name, thunk):
    start = time.perf_counter()
    value = jax.block_until_ready(thunk())
    times[name] = time.perf_counter() - start
    return value
"""

READMES = (
    _CLOCK
    + """
import numpy as np
logistic = oi.ODEModel(lambda t, y, p: p["k"] * y * (1 - y))
reach = oi.Crossing(lambda t, y, p: y, 0.8, direction="rising")

def threshold_time(k):
    return oi.first_crossing(logistic, 0.5, {"k": k}, reach, t0=0.0, t1=1000.0,
                             solver=SOLVER).time

value = timed("first solve", lambda: threshold_time(0.01))
grad = timed("first gradient", lambda: jax.grad(threshold_time)(0.01))
assert abs(float(value) - 100 * np.log(4)) < 1e-6 * float(value), value
assert abs(float(grad) + np.log(4) / 0.01**2) < 1e-5 * abs(float(grad)), grad
"""
)

LIKELIHOOD = (
    _CLOCK
    + """
import numpy as np
model = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
times_ = np.linspace(0.1, 5.0, 20)
data = 2.0 * np.exp(-0.7 * times_)
experiment = oi.Experiment(times_, data, observables=lambda t, y, p: y,
                           noise=oi.Gaussian(0.05), y0=lambda p: p["a"])
space = oi.Parameters({"a": oi.Bounded(0.0, 5.0, init=1.0), "k": oi.Positive(init=1.0)})
problem = oi.Problem(model, experiment, space, rtol=1e-10, atol=1e-12)
params = {"a": 2.0, "k": 0.7}
grad = timed("first log_likelihood gradient",
             lambda: jax.grad(lambda p: oi.log_likelihood(problem, p))(params))
assert all(abs(float(g)) < 1e-3 for g in grad.values()), grad
"""
)

SCRIPTS = {
    "readme": READMES.replace("SOLVER", "oi.FusedDopri5()"),
    "readme-tsit5": READMES.replace("SOLVER", "diffrax.Tsit5()").replace(
        "import numpy as np", "import diffrax\nimport numpy as np"
    ),
    "likelihood": LIKELIHOOD,
}

_REPORT = """
import json, sys
sys.stderr.write("FIRST_CALL " + json.dumps(times) + "\\n")
"""


def load_average() -> float:
    return os.getloadavg()[0]


def run_child(script: str, env: dict) -> dict:
    load = load_average()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPTS[script] + _REPORT],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    lines = [x for x in done.stderr.splitlines() if x.startswith("FIRST_CALL ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed:\n{done.stderr[-4000:]}")
    times = json.loads(lines[-1].removeprefix("FIRST_CALL "))
    return dict(times, process=wall, load=load)


def count_files(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cache", action="store_true", help="also without cache")
    parser.add_argument(
        "--eqx-on-error", default=None, help="EQX_ON_ERROR for the children (a probe)"
    )
    parser.add_argument("--output", default=str(RESULTS_DIR / "first_call.json"))
    args = parser.parse_args()

    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_COMPILATION_CACHE_DIR", "ODEINFER_COMPILATION_CACHE")
    }
    if args.eqx_on_error:
        base["EQX_ON_ERROR"] = args.eqx_on_error
    phases = ["cold", "warm"] + (["no cache"] if args.no_cache else [])
    runs: dict = {script: {phase: [] for phase in phases} for script in SCRIPTS}
    files: dict = {script: [] for script in SCRIPTS}
    for repeat in range(args.repeats):
        for script in SCRIPTS:
            directory = Path(tempfile.mkdtemp(prefix="odeinfer-first-call-"))
            try:
                env = dict(base, ODEINFER_COMPILATION_CACHE=str(directory))
                for phase in ("cold", "warm"):
                    runs[script][phase].append(run_child(script, env))
                    if phase == "cold":
                        files[script].append(count_files(directory))
                if args.no_cache:
                    env = dict(base, ODEINFER_COMPILATION_CACHE="0")
                    runs[script]["no cache"].append(run_child(script, env))
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            print(f"repeat {repeat + 1}/{args.repeats} {script} done", flush=True)

    medians: dict = {}
    for script, by_phase in runs.items():
        for phase, samples in by_phase.items():
            for step in samples[0]:
                values = [s[step] for s in samples]
                medians.setdefault(f"{script}: {step}", {})[phase] = statistics.median(
                    values
                )
    width = max(len(k) for k in medians)
    print(f"\n{'median seconds':<{width}}  " + "  ".join(f"{p:>9}" for p in phases))
    for key, row in medians.items():
        cells = "  ".join(f"{row[p]:9.2f}" for p in phases)
        print(f"{key:<{width}}  {cells}")
    print(f"cache files after a cold run: {files}")

    out = dict(
        description=(
            "First-call latency (s) in a fresh process: empty cache dir (cold), the "
            "same dir again (warm), ODEINFER_COMPILATION_CACHE=0 (no cache); medians "
            "over repeats, load = 1-min load average before each process."
        ),
        machine=dict(
            platform=platform.platform(),
            python=platform.python_version(),
            cpus=os.cpu_count(),
        ),
        eqx_on_error=args.eqx_on_error or os.environ.get("EQX_ON_ERROR", "raise"),
        repeats=args.repeats,
        medians=medians,
        cache_files_after_cold=files,
        runs=runs,
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
