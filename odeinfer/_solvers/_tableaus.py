"""Coefficients of the Rosenbrock methods, in the transformed form of Hairer & Wanner.

A step of size `h` from `(t, y)` solves, for the stages `i = 1..s`,

    (I / (h γ) - J) U_i = f(t + c_i h, y + Σ_j a_ij U_j) + Σ_j (C_ij / h) U_j + h d_i ∂f/∂t

with `J = ∂f/∂y(t, y)`, then `y_next = y + Σ_j b_j U_j` and the error estimate
`Σ_j e_j U_j`. The dense output is `y(t + θh) = (1 - θ) y + θ (y_next + (1 - θ)
(D_1 + θ (D_2 + θ D_3 …)))` with `D_k = Σ_j H_kj U_j` (Hairer & Wanner, *Solving ODEs
II*, §IV.7, eq. (7.4'); the form used by RODAS and by OrdinaryDiffEq.jl).

The numbers are published facts: each tableau names its source.
"""

import numpy as np


class RosenbrockTableau:
    """Coefficients of one Rosenbrock method (immutable numpy arrays).

    `order` is the order of the propagated solution, `embedded_order` that of the
    solution the error estimate compares against. `stiffly_accurate` methods return
    the last stage's input plus its increment (`b` is the last row of `a` plus the
    unit vector of the last stages), which makes them L-stable and accurate for
    differential-algebraic limits.
    """

    def __init__(self, *, name, gamma, a, C, c, d, b, e, H, order, embedded_order):
        s = len(c)
        self.name = name
        self.gamma = float(gamma)
        self.a = _lower(a, s)
        self.C = _lower(C, s)
        self.c = np.asarray(c, dtype=np.float64)
        self.d = np.asarray(d, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.e = np.asarray(e, dtype=np.float64)
        self.H = np.asarray(H, dtype=np.float64).reshape(-1, s)
        self.order = order
        self.embedded_order = embedded_order
        for vector, label in ((self.d, "d"), (self.b, "b"), (self.e, "e")):
            if vector.shape != (s,):
                raise ValueError(f"{name}: `{label}` has {vector.shape}, need ({s},).")

    @property
    def num_stages(self) -> int:
        return len(self.c)


def _lower(rows, s):
    """A strictly lower-triangular `(s, s)` array from its rows 2..s."""
    out = np.zeros((s, s))
    for i, row in enumerate(rows, start=1):
        out[i, : len(row)] = row
    return out


def _stiffly_accurate(a_last, s):
    """`b` of a stiffly accurate method written in the 'a' form: the input of the stage
    that first reaches `t + h` (whose `a` row is `a_last`), plus all later increments."""
    b = np.zeros(s)
    b[: len(a_last)] = a_last
    b[len(a_last) :] = 1.0
    return b


def _rodas5p() -> RosenbrockTableau:
    # Steinebach, "Construction of Rosenbrock–Wanner method Rodas5P and numerical
    # benchmarks within the Julia Differential Equations package", BIT Numer. Math. 63
    # (2023) 27; coefficients as published with OrdinaryDiffEq.jl (`Rodas5PTableau`).
    a6 = [
        -7.502846399306121,
        2.561846144803919,
        -11.627539656261098,
        -0.18268767659942256,
        0.030198172008377946,
    ]
    a = [
        [3.0],
        [2.849394379747939, 0.45842242204463923],
        [-6.954028509809101, 2.489845061869568, -10.358996098473584],
        [
            2.8029986275628964,
            0.5072464736228206,
            -0.3988312541770524,
            -0.04721187230404641,
        ],
        a6,
        a6 + [1.0],  # stages 7 and 8 start from the previous stage's input + increment
        a6 + [1.0, 1.0],
    ]
    C = [
        [-14.155112264123755],
        [-17.97296035885952, -2.859693295451294],
        [147.12150275711716, -1.41221402718213, 71.68940251302358],
        [
            165.43517024871676,
            -0.4592823456491126,
            42.90938336958603,
            -5.961986721573306,
        ],
        [
            24.854864614690072,
            -3.0009227002832186,
            47.4931110020768,
            5.5814197821558125,
            -0.6610691825249471,
        ],
        [
            30.91273214028599,
            -3.1208243349937974,
            77.79954646070892,
            34.28646028294783,
            -19.097331116725623,
            -28.087943162872662,
        ],
        [
            37.80277123390563,
            -3.2571969029072276,
            112.26918849496327,
            66.9347231244047,
            -40.06618937091002,
            -54.66780262877968,
            -9.48861652309627,
        ],
    ]
    c = [0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716]
    c += [0.4288403609558664, 1.0, 1.0, 1.0]
    d = [0.21193756319429014, -0.42387512638858027, -0.3384627126235924]
    d += [1.8046452872882734, 2.325825639765069, 0.0, 0.0, 0.0]
    H = [
        [
            25.948786856663858,
            -2.5579724845846235,
            10.433815404888879,
            -2.3679251022685204,
            0.524948541321073,
            1.1241088310450404,
            0.4272876194431874,
            -0.17202221070155493,
        ],
        [
            -9.91568850695171,
            -0.9689944594115154,
            3.0438037242978453,
            -24.495224566215796,
            20.176138334709044,
            15.98066361424651,
            -6.789040303419874,
            -6.710236069923372,
        ],
        [
            11.419903575922262,
            2.8879645146136994,
            72.92137995996029,
            80.12511834622643,
            -52.072871366152654,
            -59.78993625266729,
            -0.15582684282751913,
            4.883087185713722,
        ],
    ]
    e = np.zeros(8)
    e[-1] = 1.0  # the last increment is the difference to the embedded solution
    return RosenbrockTableau(
        name="Rodas5P",
        gamma=0.21193756319429014,
        a=a,
        C=C,
        c=c,
        d=d,
        b=_stiffly_accurate(a6, 8),
        e=e,
        H=H,
        order=5,
        embedded_order=4,
    )


def _rodas4() -> RosenbrockTableau:
    # Hairer & Wanner, Solving ODEs II (1996), §VI.4, Table 4.1 (RODAS), with the
    # dense output of their code RODAS; numbers as in OrdinaryDiffEq.jl `Rodas4Tableau`.
    a5 = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]
    a = [
        [1.544],
        [0.9466785280815826, 0.2557011698983284],
        [3.314825187068521, 2.896124015972201, 0.9986419139977817],
        a5,
        a5 + [1.0],
    ]
    C = [
        [-5.6688],
        [-2.430093356833875, -0.2063599157091915],
        [-0.1073529058151375, -9.594562251023355, -20.47028614809616],
        [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160],
        [
            8.083246795921522,
            -7.981132988064893,
            -31.52159432874371,
            16.31930543123136,
            -6.058818238834054,
        ],
    ]
    H = [
        [
            10.12623508344586,
            -7.487995877610167,
            -34.80091861555747,
            -7.992771707568823,
            1.025137723295662,
            0.0,
        ],
        [
            -0.6762803392801253,
            6.087714651680015,
            16.43084320892478,
            24.76722511418386,
            -6.594389125716872,
            0.0,
        ],
    ]
    e = np.zeros(6)
    e[-1] = 1.0
    return RosenbrockTableau(
        name="Rodas4",
        gamma=0.25,
        a=a,
        C=C,
        c=[0.0, 0.386, 0.21, 0.63, 1.0, 1.0],
        d=[0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0],
        b=_stiffly_accurate(a5, 6),
        e=e,
        H=H,
        order=4,
        embedded_order=3,
    )


def _ros3p() -> RosenbrockTableau:
    # Lang & Verwer, "ROS3P — an accurate third-order Rosenbrock solver designed for
    # parabolic problems", BIT 41 (2001) 731–738, in the transformed form of
    # OrdinaryDiffEq.jl (`ROS3PTableau`). Not stiffly accurate; no dense-output
    # coefficients of its own, so the dense output is the linear one (H empty).
    gamma = 0.5 + np.sqrt(3.0) / 6.0
    ig = 1.0 / gamma
    C21 = -(ig**2)
    tmp = -ig * (2.0 - 0.5 * ig)
    C31 = -ig * (1.0 - tmp)
    C32 = tmp
    tmp = ig * (2.0 / 3.0 - ig / 6.0)
    b = np.array([ig * (1.0 + tmp), tmp, ig / 3.0])
    b_hat = np.array([2.113248654051871, 1.0, 0.4226497308103742])
    return RosenbrockTableau(
        name="ROS3P",
        gamma=gamma,
        a=[[ig], [ig, 0.0]],
        C=[[C21], [C31, C32]],
        c=[0.0, 1.0, 1.0],
        d=[0.7886751345948129, -0.2113248654051871, -1.077350269189626],
        b=b,
        e=b - b_hat,
        H=np.zeros((0, 3)),
        order=3,
        embedded_order=2,
    )


RODAS5P = _rodas5p()
RODAS4 = _rodas4()
ROS3P = _ros3p()
