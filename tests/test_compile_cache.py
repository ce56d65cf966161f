"""JAX's persistent compilation cache: on by default at import, the opt-out, the user's
own setting kept, and `throw` checked outside the compiled program (a program with a host
callback is never written to the cache, so odeinfer's programs carry none).

The import-time behaviour is checked in subprocesses (the setting is process-wide)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import odeinfer as oi
from odeinfer._config import default_cache_dir

_VARIABLES = (
    "ODEINFER_COMPILATION_CACHE",
    "JAX_COMPILATION_CACHE_DIR",
    "XDG_CACHE_HOME",
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
)


def _run(code: str, **env) -> str:
    """Run `code` in a fresh interpreter with `env` on top of a clean environment;
    return its last line of stdout."""
    base = {k: v for k, v in os.environ.items() if k not in _VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=base | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


_PRINT_DIR = "import odeinfer, jax; print(jax.config.jax_compilation_cache_dir)"


def test_default_cache_dir_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "odeinfer" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "odeinfer" / "jax"


def test_import_sets_the_cache_directory(tmp_path):
    printed = _run(_PRINT_DIR, XDG_CACHE_HOME=str(tmp_path))
    assert printed == str(tmp_path / "odeinfer" / "jax")
    assert (tmp_path / "odeinfer" / "jax").is_dir()


# The scenarios below run in one fresh interpreter: each resets JAX's two settings to
# their defaults, sets the environment, then applies odeinfer's import-time rule
# (`use_compilation_cache`, what `import odeinfer` calls) and records the result. One
# import instead of one per scenario (each ~2 s); `test_import_sets_the_cache_directory`
# and the `JAX_COMPILATION_CACHE_DIR` case check the import itself.
_SCENARIOS = """
import json, os, sys
import jax
from odeinfer import _config

def scenario(env, user_dir=None):
    for name in %(variables)r:
        os.environ.pop(name, None)
    os.environ.update(env)
    jax.config.update("jax_compilation_cache_dir", user_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    _config.use_compilation_cache()
    return [jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs]

print(json.dumps([scenario(env, user) for env, user in json.loads(sys.argv[1])]))
"""


def _scenarios(cases: list[tuple[dict, str | None]]) -> list:
    code = _SCENARIOS % {"variables": _VARIABLES}
    base = {k: v for k, v in os.environ.items() if k not in _VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cases)],
        env=base | {"ODEINFER_COMPILATION_CACHE": "0"},  # the import itself: no cache
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_opt_out_the_chosen_directory_the_users_own_and_the_threshold(tmp_path):
    home = str(tmp_path / "home")
    chosen = str(tmp_path / "chosen")
    mine = str(tmp_path / "mine")
    off = [
        ({"XDG_CACHE_HOME": home, "ODEINFER_COMPILATION_CACHE": v}, None)
        for v in ("0", "off", "false")
    ]
    cases = off + [
        ({"ODEINFER_COMPILATION_CACHE": chosen}, None),
        # A cache directory configured for JAX before the import stands.
        ({"ODEINFER_COMPILATION_CACHE": chosen}, mine),
        # The user's threshold stands.
        (
            {
                "ODEINFER_COMPILATION_CACHE": chosen,
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2.5",
            },
            None,
        ),
    ]
    results = _scenarios(cases)
    # Opted out: no directory, JAX's threshold, nothing created.
    assert results[:3] == [[None, 1.0]] * 3
    assert not (tmp_path / "home").exists()
    # odeinfer's directory: programs from 0.1 s on are written (the fused solvers'
    # compile in 0.3-1 s, under JAX's 1 s default).
    assert results[3] == [chosen, 0.1]
    assert (tmp_path / "chosen").is_dir()
    # The user's directory and JAX's threshold untouched.
    assert results[4] == [mine, 1.0]
    # The environment variable is JAX's own: it is read when jax is imported, so here
    # it only keeps odeinfer from lowering the threshold.
    assert results[5] == [chosen, 1.0]


def test_jax_own_variables_stand(tmp_path):
    # JAX reads its variables when it is imported: odeinfer keeps both.
    mine = str(tmp_path / "mine")
    printed = _run(
        "import odeinfer, jax; print(jax.config.jax_compilation_cache_dir, "
        "jax.config.jax_persistent_cache_min_compile_time_secs)",
        JAX_COMPILATION_CACHE_DIR=mine,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2.5",
    )
    assert printed.split() == [mine, "2.5"]


# --- `throw`: the same loud failure, checked after the compiled call ---------------

_MODEL = oi.ODEModel(lambda t, y, p: -p["k"] * y)
_MESSAGE = r"^odeinfer.solve failed at t = .*increasing `max_steps`"


def _final(k, **options):
    return oi.solve(_MODEL, 1.0, {"k": k}, t0=0.0, t1=50.0, **options).y_final


def test_a_failed_solve_raises_solve_error_outside_and_under_grad():
    with pytest.raises(oi.SolveError, match=_MESSAGE) as concrete:
        _final(0.5, max_steps=2)
    # Under jax.grad (no jax.jit around it) the result code is concrete after the
    # compiled call: the same exception and message.
    with pytest.raises(oi.SolveError, match=_MESSAGE) as traced:
        jax.grad(lambda k: _final(k, max_steps=2))(0.5)
    assert str(traced.value) == str(concrete.value)
    forward = diffrax.ForwardMode()
    with pytest.raises(oi.SolveError, match=_MESSAGE):
        jax.jacfwd(lambda k: _final(k, max_steps=2, adjoint=forward))(0.5)


def test_a_failed_solve_raises_inside_jit_and_vmap():
    # No host to check on until the caller's program has run: the check is compiled
    # into it (equinox's error, the RESULTS message), as before.
    with pytest.raises(eqx.EquinoxRuntimeError, match="increasing `max_steps`"):
        eqx.filter_jit(lambda k: _final(k, max_steps=2))(jnp.array(0.5))
    with pytest.raises(eqx.EquinoxRuntimeError, match="increasing `max_steps`"):
        jax.vmap(lambda k: _final(k, max_steps=2))(jnp.array([0.5, 0.6]))
    # throw=False never raises; the code says what happened.
    sol = oi.solve(_MODEL, 1.0, {"k": 0.5}, t0=0.0, t1=50.0, max_steps=2, throw=False)
    assert sol.result == oi.RESULTS.max_steps_reached


# --- programs that carried a host callback are now written --------------------------

_WRITTEN = """
import json, os, sys
import jax, numpy as np
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_explain_cache_misses", True)  # says why a program is not written
import odeinfer as oi

model = oi.ODEModel(lambda t, y, p: -p["k"] * y, name="decay")
times = np.linspace(0.1, 5.0, 8)
experiment = oi.Experiment(times, 2.0 * np.exp(-0.7 * times),
                           observables=lambda t, y, p: y, noise=oi.Gaussian(0.05),
                           y0=lambda p: p["a"])
space = oi.Parameters({"a": oi.Positive(init=1.0), "k": oi.Positive(init=1.0)})
directory = os.environ["ODEINFER_COMPILATION_CACHE"]
counts = []
for solver in (oi.FusedRodas5P(), None):
    problem = oi.Problem(model, experiment, space, solver=solver)
    jax.grad(lambda p: oi.log_likelihood(problem, p))({"a": 2.0, "k": 0.7})
    counts.append(len(os.listdir(directory)))
jax.grad(lambda k: oi.solve(model, 1.0, {"k": k}, t0=0.0, t1=1.0).y_final)(0.7)
counts.append(len(os.listdir(directory)))
print(json.dumps(counts))
"""


def test_gradient_programs_are_written_to_the_cache(tmp_path):
    # Before, each of these gradients compiled a program with a host callback, which
    # JAX does not write: lineax's tangent solves in the Rosenbrock stages (fused
    # Rodas5P), `throw=True` checked inside `oi.solve`'s program.
    base = {k: v for k, v in os.environ.items() if k not in _VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", _WRITTEN],
        env=base | {"ODEINFER_COMPILATION_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "because it uses host callbacks" not in done.stderr, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0 < counts[0] < counts[1] < counts[2], counts


_FAILS = """
import jax
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
import odeinfer as oi

model = oi.ODEModel(lambda t, y, p: -p["k"] * y)
try:
    jax.grad(
        lambda k: oi.solve(model, 1.0, {"k": k}, t0=0.0, t1=50.0, max_steps=2).y_final
    )(0.5)
except oi.SolveError as error:
    print("raised:", str(error).splitlines()[0][:60])
else:
    print("returned")
"""


def test_a_failure_loaded_from_the_cache_still_raises(tmp_path):
    first = _run(_FAILS, ODEINFER_COMPILATION_CACHE=str(tmp_path))
    assert any(tmp_path.iterdir())  # the programs were written
    second = _run(_FAILS, ODEINFER_COMPILATION_CACHE=str(tmp_path))  # and loaded
    assert first == second
    assert first.startswith("raised: odeinfer.solve failed at t = "), first
