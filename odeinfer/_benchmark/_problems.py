"""The benchmark suite shipped with odeinfer: non-stiff, stiff (Bari IVP test set) and event
problems.

Each vector field is written once against an array module `xp` so that the JAX version
(`xp=jax.numpy`, used by odeinfer) and the numpy version (used by the scipy and SUNDIALS
peers, which would otherwise pay a JAX dispatch per call) are the same formula.
"""

import difflib
import functools
import json
from collections.abc import Callable
from importlib import resources

import jax.numpy as jnp
import numpy as np

from .._events import Crossing
from .._model import ODEModel
from ._problem import BenchmarkProblem, Reference

# ---------------------------------------------------------------- vector fields


def _lotka_volterra(t, y, p, xp=jnp):
    u, v = y[0], y[1]
    return xp.stack([(p["a"] - p["b"] * v) * u, (-p["c"] + p["d"] * u) * v])


def _spring(t, s, p, xp=jnp):
    x, y, z, vx, vy, vz = (s[i] for i in range(6))
    c = (1 / xp.sqrt(x**2 + y**2 + z**2) - 1) * p["k"]
    return xp.stack([vx, vy, vz, c * x, c * y, c * z - p["g"]])


def _kepler(t, y, p, xp=jnp):
    q1, q2, p1, p2 = (y[i] for i in range(4))
    r3 = (q1**2 + q2**2) ** 1.5
    return xp.stack([p1, p2, -p["mu"] * q1 / r3, -p["mu"] * q2 / r3])


def _hires(t, y, p, xp=jnp):
    y1, y2, y3, y4, y5, y6, y7, y8 = (y[i] for i in range(8))
    return xp.stack(
        [
            -p["k1"] * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
            p["k1"] * y1 - 8.75 * y2,
            -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
            8.32 * y2 + 1.71 * y3 - 1.12 * y4,
            -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
            -p["k6"] * y6 * y8 + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
            p["k6"] * y6 * y8 - 1.81 * y7,
            -p["k6"] * y6 * y8 + 1.81 * y7,
        ]
    )


def _rober(t, y, p, xp=jnp):
    y1, y2, y3 = y[0], y[1], y[2]
    r1, r2, r3 = p["k1"] * y1, p["k3"] * y2 * y3, p["k2"] * y2**2
    return xp.stack([-r1 + r2, r1 - r2 - r3, r3])


_POLLU_K = (
    0.35, 26.6, 12300.0, 0.00086, 0.00082, 15000.0, 0.00013, 24000.0, 16500.0, 9000.0,
    0.022, 12000.0, 1.88, 16300.0, 4800000.0, 0.00035, 0.0175, 1e8, 4.44e11, 1240.0,
    2.1, 5.78, 0.0474, 1780.0, 3.12,
)  # fmt: skip


def _pollu(t, y, p, xp=jnp):
    k = [p.get(f"k{i + 1}", _POLLU_K[i]) for i in range(25)]
    y = [y[i] for i in range(20)]
    r = [
        k[0] * y[0], k[1] * y[1] * y[3], k[2] * y[4] * y[1], k[3] * y[6], k[4] * y[6],
        k[5] * y[6] * y[5], k[6] * y[8], k[7] * y[8] * y[5], k[8] * y[10] * y[1],
        k[9] * y[10] * y[0], k[10] * y[12], k[11] * y[9] * y[1], k[12] * y[13],
        k[13] * y[0] * y[5], k[14] * y[2], k[15] * y[3], k[16] * y[3], k[17] * y[15],
        k[18] * y[15], k[19] * y[16] * y[5], k[20] * y[18], k[21] * y[18],
        k[22] * y[0] * y[3], k[23] * y[18] * y[0], k[24] * y[19],
    ]  # fmt: skip
    r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13 = r[:13]
    r14, r15, r16, r17, r18, r19, r20, r21, r22, r23, r24, r25 = r[13:]
    return xp.stack(
        [
            -r1 - r10 - r14 - r23 - r24 + r2 + r3 + r9 + r11 + r12 + r22 + r25,
            -r2 - r3 - r9 - r12 + r1 + r21,
            -r15 + r1 + r17 + r19 + r22,
            -r2 - r16 - r17 - r23 + r15,
            -r3 + 2 * r4 + r6 + r7 + r13 + r20,
            -r6 - r8 - r14 - r20 + r3 + 2 * r18,
            -r4 - r5 - r6 + r13,
            r4 + r5 + r6 + r7,
            -r7 - r8,
            -r12 + r7 + r9,
            -r9 - r10 + r8 + r11,
            r9,
            -r11 + r10,
            -r13 + r12,
            r14,
            -r18 - r19 + r16,
            -r20,
            r20,
            -r21 - r22 - r24 + r23 + r25,
            -r25 + r24,
        ]
    )


def _vdpol(t, y, p, xp=jnp):
    return xp.stack([y[1], ((1 - y[0] ** 2) * y[1] - y[0]) / p["eps"]])


def _orego(t, y, p, xp=jnp):
    y1, y2, y3 = y[0], y[1], y[2]
    return xp.stack(
        [
            p["s"] * (y2 + y1 * (1 - p["q"] * y1 - y2)),
            (y3 - (1 + y1) * y2) / p["s"],
            p["w"] * (y1 - y3),
        ]
    )


def _e5(t, y, p, xp=jnp):
    y1, y2, y3, y4 = y[0], y[1], y[2], y[3]
    a, b, c, m = p["A"], p["B"], p["C"], p["M"]
    f1 = -a * y1 - b * y1 * y3
    f2 = a * y1 - m * c * y2 * y3
    f4 = b * y1 * y3 - c * y4
    return xp.stack([f1, f2, f2 - f4, f4])


def _ball(t, y, p, xp=jnp):
    return xp.stack([y[1], -p["g"] + 0.0 * y[0]])


def _logistic(t, y, p, xp=jnp):
    return p["k"] * y * (1 - y)


def _first_event_time(y_final, event_times):
    del y_final
    return event_times[0]


# ---------------------------------------------------------------- the problems


def _published(name: str) -> dict:
    text = resources.files("odeinfer").joinpath("data/ivp_testset.json").read_text()
    for entry in json.loads(text)["problems"]:
        if entry["problem"].split(" ")[0] == name:
            return entry
    raise KeyError(name)


def _bari(name, field, params, **kwargs) -> BenchmarkProblem:
    entry = _published(name)
    reference = Reference(
        y_final=np.asarray(entry["y_final"], dtype=float),
        source=f"Bari IVP test set ({entry['reference_method']})",
    )
    return BenchmarkProblem(
        name.lower(),
        ODEModel(field, name=name.lower()),
        entry["y0"],
        params,
        t0=entry["t0"],
        t1=entry["t_final"],
        reference=reference,
        stiff=True,
        numpy_vector_field=functools.partial(field, xp=np),
        description=entry["problem"] + " (Bari IVP test set)",
        **kwargs,
    )


def _lotka_volterra_problem():
    return BenchmarkProblem(
        "lotka_volterra",
        ODEModel(_lotka_volterra, name="lotka_volterra"),
        [33.956, 5.933],
        {"a": 0.55, "b": 0.028, "c": 0.84, "d": 0.024},
        t0=0.0,
        t1=20.0,
        saveat=np.arange(1.0, 21.0),
        numpy_vector_field=functools.partial(_lotka_volterra, xp=np),
        error_floor=1e-6,
        description="Lotka–Volterra predator–prey (lynx–hare scale), saved yearly",
    )


def _spring_problem():
    length = Crossing(
        lambda t, s, p: jnp.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2), 0.85, name="F=0.85"
    )
    return BenchmarkProblem(
        "spring3d",
        ODEModel(_spring, name="spring3d"),
        [0.0, 0.0, 0.7, 0.1, 1.5, 0.0],
        {"k": 250.0, "g": 10.0},
        t0=0.0,
        t1=5.0,
        events=length,
        max_events=64,
        numpy_vector_field=functools.partial(_spring, xp=np),
        error_floor=1e-3,
        description="3-D spring pendulum, every crossing of F = |r| = 0.85 on 0 < t < 5",
    )


def _kepler_problem():
    e = 0.6
    y0 = np.array([1 - e, 0.0, 0.0, np.sqrt((1 + e) / (1 - e))])
    return BenchmarkProblem(
        "kepler",
        ODEModel(_kepler, name="kepler"),
        y0,
        {"mu": 1.0},
        t0=0.0,
        t1=6 * np.pi,
        reference=Reference(y_final=y0, source="closed form (three full periods)"),
        numpy_vector_field=functools.partial(_kepler, xp=np),
        error_floor=0.1,
        description="Kepler two-body orbit, eccentricity 0.6, three periods",
    )


def _ball_problem():
    g, e, h0, t1 = 9.81, 0.8, 1.0, 3.0
    t_hit = np.sqrt(2 * h0 / g)
    times, speed = [t_hit], e * g * t_hit
    while times[-1] + 2 * speed / g < t1:
        times.append(times[-1] + 2 * speed / g)
        speed *= e
    tau = t1 - times[-1]
    y_final = np.array([speed * tau - g * tau**2 / 2, speed - g * tau])
    bounce = Crossing(
        lambda t, y, p: y[0],
        0.0,
        direction="falling",
        reset=lambda t, y, p: jnp.stack([y[0], -p["e"] * y[1]]),
        name="floor",
    )
    return BenchmarkProblem(
        "bouncing_ball",
        ODEModel(_ball, name="bouncing_ball"),
        [h0, 0.0],
        {"g": g, "e": e},
        t0=0.0,
        t1=t1,
        events=bounce,
        reference=Reference(
            y_final=y_final, event_times=np.array(times), source="closed form"
        ),
        numpy_vector_field=functools.partial(_ball, xp=np),
        quantity=_first_event_time,
        error_floor=1e-3,
        description="Bouncing ball, restitution 0.8: a reset at every bounce",
    )


def _logistic_problem():
    k, y0, t1 = 0.5, 0.1, 20.0
    t_star = np.log(36.0) / k  # (1/y0 - 1) / (1/0.8 - 1) = 36
    y_final = 1 / (1 + (1 / y0 - 1) * np.exp(-k * t1))
    reach = Crossing(lambda t, y, p: y[0], 0.8, direction="rising", name="y=0.8")
    return BenchmarkProblem(
        "logistic_threshold",
        ODEModel(_logistic, name="logistic_threshold"),
        [y0],
        {"k": k},
        t0=0.0,
        t1=t1,
        events=reach,
        reference=Reference(
            y_final=np.array([y_final]),
            event_times=np.array([t_star]),
            gradient=np.array([-np.log(36.0) / k**2]),
            source="closed form",
        ),
        numpy_vector_field=functools.partial(_logistic, xp=np),
        quantity=_first_event_time,
        description="Logistic growth, the time y reaches 0.8 (closed form)",
    )


_SUITE: dict[str, Callable[[], BenchmarkProblem]] = {
    "lotka_volterra": _lotka_volterra_problem,
    "spring3d": _spring_problem,
    "kepler": _kepler_problem,
    "hires": lambda: _bari(
        "HIRES", _hires, {"k1": 1.71, "k6": 280.0}, atol_scale=1e-4, error_floor=1e-12
    ),
    "rober": lambda: _bari(
        "ROBER",
        _rober,
        {"k1": 0.04, "k2": 3e7, "k3": 1e4},
        atol_scale=1e-8,
        error_floor=1e-20,
    ),
    "pollu": lambda: _bari(
        "POLLU", _pollu, {"k1": 0.35}, atol_scale=1e-6, error_floor=1e-12
    ),
    "vdpol": lambda: _bari("VDPOL", _vdpol, {"eps": 1e-6}, atol_scale=1.0),
    "orego": lambda: _bari(
        "OREGO", _orego, {"s": 77.27, "q": 8.375e-6, "w": 0.161}, atol_scale=1.0
    ),
    "e5": lambda: _bari(
        "E5",
        _e5,
        {"A": 7.89e-10, "B": 1.1e7, "C": 1.13e3, "M": 1e6},
        atol_scale=1e-18,
        error_floor=1e-30,
    ),
    "bouncing_ball": _ball_problem,
    "logistic_threshold": _logistic_problem,
}

_KINDS = {
    "nonstiff": ("lotka_volterra", "spring3d", "kepler"),
    "stiff": ("hires", "rober", "pollu", "vdpol", "orego", "e5"),
    "events": ("spring3d", "bouncing_ball", "logistic_threshold"),
}

_CACHE: dict[str, BenchmarkProblem] = {}


def benchmark_problem(name: str) -> BenchmarkProblem:
    """One problem of the shipped suite, by name.

    **Arguments:**

    - `name`: one of `odeinfer.benchmarking.benchmark_suite()`'s keys: `lotka_volterra`,
        `spring3d`, `kepler` (non-stiff); `hires`, `rober`, `pollu`, `vdpol`, `orego`,
        `e5` (stiff, Bari IVP test set with its published reference values);
        `bouncing_ball`, `logistic_threshold` (events, closed-form references).

    **Returns:**

    A [`odeinfer.benchmarking.BenchmarkProblem`][]. The same instance is returned on every call,
    so jitted solves are reused.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"`name` must be a problem name (str), one of {', '.join(_SUITE)}; got "
            f"{name!r}."
        )
    if name not in _SUITE:
        close = difflib.get_close_matches(name, list(_SUITE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown benchmark problem {name!r}.{hint} Known problems: "
            f"{', '.join(_SUITE)}."
        )
    if name not in _CACHE:
        _CACHE[name] = _SUITE[name]()
    return _CACHE[name]


def benchmark_suite(kind: str | None = None) -> dict[str, BenchmarkProblem]:
    """The shipped problems, by name.

    **Arguments:**

    - `kind`: `None` (all), `"nonstiff"`, `"stiff"` or `"events"`.

    **Returns:**

    A dict `name -> BenchmarkProblem`.
    """
    if kind is None:
        names = tuple(_SUITE)
    elif kind in _KINDS:
        names = _KINDS[kind]
    else:
        raise ValueError(
            f"Unknown `kind` {kind!r}; use None, 'nonstiff', 'stiff' or 'events'."
        )
    return {name: benchmark_problem(name) for name in names}
