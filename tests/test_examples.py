"""The examples run and pass their own checks (the demo exits non-zero on a failed check).

The default tier runs the demo without its lynx–hare NUTS part: that part's check (the
posterior means against posteriordb's reference) is the same as
`tests/test_lynx_hare_posterior.py`'s, which runs in the default tier; the slow tier runs
the whole demo, as `make demo` does."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run_demo(tmp_path, *flags):
    output = tmp_path / "spring_crossings.png"
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--output", str(output)]
        + list(flags),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "all checks passed" in run.stdout
    assert output.stat().st_size > 10_000
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return run.stdout


def test_demo_without_nuts(tmp_path):
    run_demo(tmp_path, "--no-nuts")


@pytest.mark.slow
def test_demo(tmp_path):
    assert "lynx-hare NUTS" in run_demo(tmp_path)
