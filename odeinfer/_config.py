"""Float64 policy.

ODE parameter estimation needs float64: tolerances of 1e-8 and below, finite-difference
gradient checks and Hessians are meaningless in float32. Importing `odeinfer` therefore
turns on `jax_enable_x64`, once, before any odeinfer array is created.

Set the environment variable `ODEINFER_NO_X64=1` before importing to leave JAX's setting
alone (for example to run float32 on an accelerator); odeinfer then warns once.
"""

import os
import warnings

import jax


def enable_x64() -> None:
    if os.environ.get("ODEINFER_NO_X64", "") not in ("", "0"):
        if not jax.config.read("jax_enable_x64"):
            warnings.warn(
                "ODEINFER_NO_X64 is set and JAX runs in float32: event times, gradients "
                "and tolerances below ~1e-6 will be inaccurate.",
                stacklevel=3,
            )
        return
    jax.config.update("jax_enable_x64", True)
