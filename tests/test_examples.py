"""The examples run and pass their own checks (the demo exits non-zero on a failed check)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_demo(tmp_path):
    output = tmp_path / "spring_crossings.png"
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "all checks passed" in run.stdout
    assert output.stat().st_size > 10_000
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
