"""The `odeinfer bench` command line on tiny settings (scipy peers only: no compilation)."""

import numpy as np
import pandas as pd

from odeinfer._cli import main


def test_bench_list(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "rober" in out and "bouncing_ball" in out and "stiff" in out


def test_bench_writes_table_csv_json_png(tmp_path, capsys):
    code = main(["bench", "kepler", "--solvers", "scipy/DOP853", "scipy/LSODA",
                 "--rtols", "1e-6", "1e-9", "--repeats", "1", "--quiet",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    table = pd.read_csv(tmp_path / "benchmark.csv")
    assert len(table) == 4 and set(table.solver) == {"scipy/DOP853", "scipy/LSODA"}
    dop853 = table[table.solver == "scipy/DOP853"].sort_values("rtol")
    # Kepler returns to its initial state after three periods (closed form).
    assert (
        dop853.error.iloc[0] < 1e-4
        and dop853.error.iloc[0] < dop853.error.iloc[1] / 100
    )
    assert np.all(table.success)
    assert (tmp_path / "benchmark.json").exists() and (
        tmp_path / "wp_kepler.png"
    ).exists()
    assert "scipy/DOP853" in capsys.readouterr().out


def test_bench_bad_input_exits_2(capsys):
    assert main(["bench", "kepler", "--solvers", "Tsit6", "--quiet"]) == 2
    assert "Unknown solver 'Tsit6'" in capsys.readouterr().err
    assert main(["bench", "kepler", "--rtols", "0", "--quiet"]) == 2
    assert "tolerances" in capsys.readouterr().err
    assert main(["bench"]) == 2
