"""The `odeinfer petab` command line on the Boehm problem of the shared PEtab
collection: the log-likelihood at the nominal parameters against AMICI's, the tables
and plots it writes, and one-line errors (no traceback) for bad input.

One Boehm load and compilation (about 10-30 s on 2 busy cores) in the default tier;
the multistart in the slow tier."""

import json
import os
import re
import sys

import numpy as np
import pytest

pytest.importorskip("libsbml")
pytest.importorskip("petab")
pd = pytest.importorskip("pandas")

from _paths import PETAB  # noqa: E402  (tests/data/petab)

from odeinfer._cli import main  # noqa: E402

BOEHM = os.path.join(PETAB, "Boehm_JProteomeRes2014", "Boehm_JProteomeRes2014.yaml")
OVERVIEW = os.path.join(PETAB, "benchmark_collection_overview.json")
needs_boehm = pytest.mark.skipif(
    not (os.path.isfile(BOEHM) and os.path.isfile(OVERVIEW)),
    reason="the PEtab collection (tests/data/petab) is not here",
)


def amici_llh(problem_id: str) -> float:
    with open(OVERVIEW) as f:
        models = json.load(f)["models"]
    (entry,) = [m for m in models if m["problem_id"] == problem_id]
    return float(entry["amici_reference_llh_at_nominal"])


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("odeinfer petab: error: ")
    return lines[0]


@needs_boehm
def test_llh_matches_amici_and_writes_the_simulation_table(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["petab", BOEHM, "--llh", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    match = re.search(r"log-likelihood at the nominal parameters: (\S+)", stdout)
    assert match, stdout
    llh = float(match.group(1))
    assert abs(llh - amici_llh("Boehm_JProteomeRes2014")) < 1e-3
    assert re.search(
        r"import \d+\.\d+ s .*; first evaluation \(compile \+ run\)", stdout
    )
    table = pd.read_csv(out / "simulation_nominal.tsv", sep="\t")
    assert len(table) == 48
    assert {"observableId", "simulation", "time", "sigma", "llh"} <= set(table.columns)
    assert "measurement" not in table.columns
    # The table's per-row terms add up to the printed log-likelihood.
    assert abs(table["llh"].sum() - llh) < 1e-6
    assert np.all(np.isfinite(table["simulation"]))


def test_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "nope.yaml"
    assert main(["petab", str(missing), "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "no file" in line and "nope.yaml" in line
    assert not out.exists()  # nothing written before the problem loads


def test_unsupported_problem_is_one_line_and_exit_2(tmp_path, capsys):
    yaml = tmp_path / "v2.yaml"
    yaml.write_text("format_version: 2.0.0\nproblems:\n- sbml_files: [m.xml]\n")
    assert main(["petab", str(yaml), "--out", str(tmp_path / "out")]) == 2
    assert "format_version" in one_line_error(capsys.readouterr().err)


def test_bad_options_exit_2_before_loading(capsys):
    assert main(["petab", "/nowhere.yaml", "--fit", "0"]) == 2
    assert "--fit N" in one_line_error(capsys.readouterr().err)
    assert main(["petab", "/nowhere.yaml", "--sample", "--chains", "0"]) == 2
    assert "--chains" in one_line_error(capsys.readouterr().err)
    assert main(["petab", "/nowhere.yaml", "--fit", "2", "--workers", "0"]) == 2
    assert "--workers" in one_line_error(capsys.readouterr().err)


def test_missing_petab_library_is_one_line(monkeypatch, capsys):
    # A fresh `import odeinfer.petab` with the petab library unavailable.
    monkeypatch.delitem(sys.modules, "odeinfer.petab", raising=False)
    for name in ("petab", "petab.v1"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["petab", "/nowhere.yaml"]) == 2
    assert "pip install 'odeinfer[petab]'" in one_line_error(capsys.readouterr().err)


@needs_boehm
def test_fit_runs_the_starts_one_at_a_time(tmp_path, monkeypatch, capsys):
    """`--fit N` passes the problem itself to `oi.multistart` (trust-region least
    squares, one start after another with a progress bar, or `--workers` at a time;
    `batch_size=1` for the BFGS fallback: memory flat in N); the fake multistart stops
    the run before any compilation."""
    import odeinfer as oi

    calls = []

    def fake_multistart(*args, **kwargs):
        calls.append((args, kwargs))
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(oi, "multistart", fake_multistart)
    assert main(["petab", BOEHM, "--fit", "3", "--out", str(tmp_path)]) == 2
    assert "stopped by the test" in one_line_error(capsys.readouterr().err)
    assert (
        main(["petab", BOEHM, "--fit", "3", "--workers", "2", "--out", str(tmp_path)])
        == 2
    )
    assert "2 starts at a time" in capsys.readouterr().out
    (args, kwargs), (_, kwargs_2) = calls
    assert args[1] == 3 and kwargs["batch_size"] == 1
    assert isinstance(args[0], oi.AbstractResidualLikelihood)
    assert kwargs["progress_bar"] is True
    assert kwargs["workers"] == 1 and kwargs_2["workers"] == 2
    assert isinstance(kwargs["solver"], oi.Fides | oi.TrustRegionReflective)


@pytest.mark.slow
@needs_boehm
def test_fit_two_starts_writes_table_and_plots(tmp_path, capsys):
    # Trust-region least squares: the residuals, their Jacobian and the Laplace
    # step compile.
    out = tmp_path / "out"
    assert main(["petab", BOEHM, "--fit", "2", "--seed", "0", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "multistart: 2 start(s)" in stdout and "best start: " in stdout
    table = pd.read_csv(out / "multistart.tsv", sep="\t")
    assert len(table) == 2 and sorted(table["start"]) == [0, 1]
    names = ["Epo_degradation_BaF3", "k_exp_hetero", "k_exp_homo", "k_imp_hetero",
             "k_imp_homo", "k_phos", "sd_pSTAT5A_rel", "sd_pSTAT5B_rel",
             "sd_rSTAT5A_rel"]  # fmt: skip
    assert {"llh", "fval", "success", "num_steps", *names} <= set(table.columns)
    assert table["success"].dtype == bool
    np.testing.assert_allclose(table["fval"], -table["llh"])
    assert list(table["llh"]) == sorted(table["llh"], reverse=True)  # best first
    # Start 0 is the nominal point, next to the optimum (-138.222).
    best = table.iloc[0]
    assert best["llh"] > amici_llh("Boehm_JProteomeRes2014") - 1e-3
    assert np.all((table[names] >= -5 - 1e-9) & (table[names] <= 5 + 1e-9))
    # The simulation table is at the best start's parameters.
    simulation = pd.read_csv(out / "simulation_best.tsv", sep="\t")
    assert abs(simulation["llh"].sum() - best["llh"]) < 1e-6
    pytest.importorskip("matplotlib")
    for png in ("waterfall.png", "fit_trajectories.png"):
        assert (out / png).stat().st_size > 10_000


@pytest.mark.slow
@needs_boehm
def test_sample_writes_summary_and_draws(tmp_path, capsys):
    # The sampling path on a token run (the draws are not meant to be converged).
    import odeinfer as oi

    out = tmp_path / "out"
    code = main(["petab", BOEHM, "--sample", "--num-warmup", "5", "--num-samples",
                 "5", "--chains", "1", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "NUTS: 1 chain(s), 5 warm-up and 5 draws each" in capsys.readouterr().out
    summary = pd.read_csv(out / "posterior_summary.tsv", sep="\t", index_col=0)
    assert len(summary) == 9 and {"mean", "sd", "ess_bulk"} <= set(summary.columns)
    assert np.all((summary["mean"] >= -5) & (summary["mean"] <= 5))
    posterior = oi.load_posterior(out / "posterior.npz")
    assert posterior.draws["k_phos"].shape == (1, 5)
