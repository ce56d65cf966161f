"""JAX configuration applied when `odeinfer` is imported: float64, the persistent
compilation cache and XLA:CPU's faster-compiling fusion emitter.

**Float64.** ODE parameter estimation needs float64: tolerances of 1e-8 and below,
finite-difference gradient checks and Hessians are meaningless in float32. Importing
`odeinfer` therefore turns on `jax_enable_x64`, once, before any odeinfer array is
created. Set the environment variable `ODEINFER_NO_X64=1` before importing to leave JAX's
setting alone (for example to run float32 on an accelerator); odeinfer then warns once.

**Compilation cache.** Compiling a solve and its gradient takes seconds; JAX can keep
compiled programs on disk so that the next process loads them instead. Importing
`odeinfer` points JAX's persistent compilation cache at `$XDG_CACHE_HOME/odeinfer/jax`
(`~/.cache/odeinfer/jax` when `XDG_CACHE_HOME` is unset), unless
- the environment variable `ODEINFER_COMPILATION_CACHE` is `0` (or `false`, `off`,
  `no`): no cache; any other value that is not `1` (`true`, `on`, `yes`) is taken as
  the directory to use;
- JAX's cache directory is already set (`JAX_COMPILATION_CACHE_DIR`, or
  `jax.config.update("jax_compilation_cache_dir", ...)` before the import): the
  user's choice stands;
- the directory cannot be created or written: no cache (and no warning per program).

The setting is JAX's, so it applies to every JAX program of the process, not only to
odeinfer's. Only programs without host callbacks are written (JAX's rule), and only
those that took at least `jax_persistent_cache_min_compile_time_secs` to compile: where
odeinfer sets the directory it lowers that threshold from JAX's 1 s to 0.1 s (unless
`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` is set or `jax.config` has another value), because the fused solvers'
programs compile in 0.3–1 s and were never written: the README's first gradient took
1.2 s in every process, and 0.26 s from the cache. See the
[performance page](performance.md).

**XLA:CPU fusion emitter.** With jaxlib 0.10, importing `odeinfer` adds
`--xla_cpu_use_fusion_emitters=false` to `XLA_FLAGS`: XLA:CPU then generates each fused
kernel with its elemental emitter rather than its MLIR fusion emitters. An ODE
program has hundreds of small kernels (the vector field and its derivatives, inlined at
several places of the solver's step), and the MLIR emitters took half of its compile
time. Measured on the PEtab benchmark problems (2-core machine, process CPU seconds of
`.compile()`, same process; llh / gradient): Zheng 11.6 -> 5.3 / 16.5 -> 9.8,
Brannmark 8.7 -> 4.3 / 10.5 -> 5.8, Laske 6.1 -> 3.8 / 13.0 -> 7.7, Alkan llh
10.0 -> 6.0, Boehm 1.6 -> 0.8 / 3.0 -> 1.8; run times unchanged (medians of 20, ms:
Zheng 7.8 / 27.0 against 11.1 / 26.7, Brannmark 10.0 / 33.5 against 9.9 / 33.2, Laske
216 / 255 against 224 / 252, Boehm 0.74 / 2.44 against 0.70 / 2.28), values equal to
1e-11 relative. On the diffrax path (SBML events) the gain is smaller and Liu's
gradient runs ~10% slower (compile 20.4 -> 15.7 s, run 11.5 -> 12.8 ms median).
It is not done
- where `ODEINFER_XLA_CPU_FLAGS` is `0` (or `false`, `off`, `no`), or where `XLA_FLAGS`
  already names `xla_cpu_use_fusion_emitters` (the user's choice stands);
- with another jaxlib (XLA aborts on a flag it does not know; 0.10 is where it was
  checked).
XLA reads `XLA_FLAGS` when JAX first starts its backend: if a JAX computation ran before
`odeinfer` was imported, the flag has no effect in that process. Like the cache, it
applies to every JAX program of the process that runs on the CPU.
"""

import os
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

CACHE_VARIABLE = "ODEINFER_COMPILATION_CACHE"
XLA_VARIABLE = "ODEINFER_XLA_CPU_FLAGS"
_EMITTER_FLAG = "xla_cpu_use_fusion_emitters"
MIN_COMPILE_SECONDS = 0.1
_JAX_DEFAULT_MIN = 1.0
_OFF = ("0", "false", "off", "no")
_ON = ("", "1", "true", "on", "yes")


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


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/odeinfer/jax`, or `~/.cache/odeinfer/jax`."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".cache"
    return root / "odeinfer" / "jax"


def _writable_dir(path: Path) -> bool:
    try:
        # Owner-only: JAX loads executables from this directory, so whoever can write
        # to it can run code in this process (JAX's warning on `set_cache_dir`).
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def set_compilation_cache(path: str | os.PathLike | None) -> None:
    """Keep compiled programs in `path` (created if missing), or turn the persistent
    compilation cache off with `None`.

    odeinfer calls this on import with its default directory (see
    [`odeinfer`'s configuration](../performance.md#the-compilation-cache)); call it to
    choose another directory. It takes effect for programs compiled afterwards. The
    setting is JAX's own (`jax_compilation_cache_dir`), for every JAX program of the
    process.

    **Arguments:**

    - `path`: a directory, or `None` for no persistent cache.

    !!! Example

        ```python
        import odeinfer as oi

        oi.set_compilation_cache("/scratch/me/jax-cache")  # a fast local disk
        oi.set_compilation_cache(None)  # compile everything afresh in this process
        ```
    """
    if path is not None:
        path = Path(path).expanduser()
        if not _writable_dir(path):
            raise ValueError(
                f"The compilation cache directory {str(path)!r} cannot be created or "
                "written; give a writable directory, or None for no cache."
            )
        path = str(path)
    # JAX opens its cache once, at the first compilation; reset so that the new
    # directory (or none) is the one used from now on.
    compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", path)
    if path is not None:
        _cache_small_programs()


def _cache_small_programs() -> None:
    """Write programs that compiled in 0.1 s or more (JAX's default threshold, 1 s,
    leaves out the fused solvers' programs), unless the user chose a threshold (the
    environment variable, or a value other than JAX's default in `jax.config`)."""
    name = "jax_persistent_cache_min_compile_time_secs"
    if name.upper() in os.environ or jax.config.values[name] != _JAX_DEFAULT_MIN:
        return
    jax.config.update(name, MIN_COMPILE_SECONDS)


def use_compilation_cache() -> None:
    """On import: the default cache directory unless opted out or already configured
    (see the module docstring)."""
    setting = os.environ.get(CACHE_VARIABLE, "").strip()
    if setting.lower() in _OFF:
        return
    if jax.config.values["jax_compilation_cache_dir"] is not None:
        return  # configured by the user (JAX_COMPILATION_CACHE_DIR or jax.config)
    if setting.lower() in _ON:
        path = default_cache_dir()
    else:
        path = Path(setting).expanduser()
    if _writable_dir(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
        _cache_small_programs()
    elif setting.lower() not in _ON:
        warnings.warn(
            f"{CACHE_VARIABLE}={setting!r} is not a writable directory: JAX programs "
            "are compiled afresh in this process.",
            stacklevel=3,
        )


def use_fast_cpu_compilation() -> None:
    """On import: XLA:CPU's elemental fusion emitter, unless opted out, chosen by the
    user or with a jaxlib where the flag was not checked (see the module docstring)."""
    if os.environ.get(XLA_VARIABLE, "").strip().lower() in _OFF:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if _EMITTER_FLAG in flags:
        return
    try:
        major, minor = (int(v) for v in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return
    if (major, minor) != (0, 10):
        return
    os.environ["XLA_FLAGS"] = f"{flags} --{_EMITTER_FLAG}=false".strip()
