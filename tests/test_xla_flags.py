"""The XLA:CPU flag set on import (`odeinfer._config.use_fast_cpu_compilation`): added
to `XLA_FLAGS` with jaxlib 0.10, left out on opt-out or where the user set it; checked in
subprocesses (the environment is process-wide)."""

import os
import subprocess
import sys
from importlib.metadata import version

import pytest

_CODE = (
    "import os, odeinfer, jax.numpy as jnp; "
    "assert float(jnp.ones(3).sum()) == 3.0; "
    "print(repr(os.environ.get('XLA_FLAGS')))"
)


def _flags(**env) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "ODEINFER_XLA_CPU_FLAGS")
    }
    done = subprocess.run(
        [sys.executable, "-c", _CODE],
        env=base | {"ODEINFER_COMPILATION_CACHE": "0"} | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(
    not version("jaxlib").startswith("0.10."), reason="set with jaxlib 0.10 only"
)
def test_import_adds_the_emitter_flag():
    assert _flags() == repr("--xla_cpu_use_fusion_emitters=false")
    assert _flags(XLA_FLAGS="--xla_cpu_multi_thread_eigen=false") == repr(
        "--xla_cpu_multi_thread_eigen=false --xla_cpu_use_fusion_emitters=false"
    )


def test_opt_out_and_the_users_own_flag_stand():
    assert _flags(ODEINFER_XLA_CPU_FLAGS="0") == "None"
    own = "--xla_cpu_use_fusion_emitters=true"
    assert _flags(XLA_FLAGS=own) == repr(own)
