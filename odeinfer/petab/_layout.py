"""The checked tables as arrays: which value every model parameter, initial species
value and placeholder takes in every experiment, as references into one vector of all
PEtab parameters (or constants), so that one compiled function serves every condition.

A *reference* is a pair `(index, constant)`: `index >= 0` reads the PEtab parameter
vector (linear scale), `index = -1` means the constant."""

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from petab.v1 import C

from ._errors import PEtabError
from ._tables import Tables, split

_SCALE_CODE = {"lin": 0, "log": 1, "log10": 2}


class Refs(NamedTuple):
    index: np.ndarray  # int, -1 for a constant
    constant: np.ndarray  # float (NaN where "not set")


class ObservableRows(NamedTuple):
    """The measurement rows of one observable."""

    rows: np.ndarray  # row numbers in the measurement table
    experiment: np.ndarray  # experiment index
    slot: np.ndarray  # index into the experiment's saved times (T = steady state)
    time: np.ndarray
    measurement: np.ndarray
    observable_refs: Refs  # (n_rows, n_observable_placeholders)
    noise_refs: Refs  # (n_rows, n_noise_placeholders)


class Experiment(NamedTuple):
    preequilibration: str | None
    condition: str


class Layout(NamedTuple):
    parameter_ids: tuple[str, ...]  # every row of the parameter table
    model_ids: tuple[str, ...]  # the model parameters each experiment sets
    estimated_model_ids: tuple[str, ...]  # those that read an estimated parameter
    nominal: np.ndarray  # linear scale, every row
    estimated: tuple[str, ...]
    estimated_index: np.ndarray  # positions of `estimated` in `parameter_ids`
    scale_code: np.ndarray  # per estimated: 0 lin, 1 log, 2 log10
    scales: tuple[str, ...]
    lower: np.ndarray  # per estimated, on the parameter scale
    upper: np.ndarray
    experiments: tuple[Experiment, ...]
    has_preequilibration: bool
    has_steady_state_data: bool
    main: Refs  # (n_exp, n_model_parameters)
    pre: Refs  # (n_exp, n_model_parameters)
    species: tuple[str, ...]  # species that some condition sets
    main_species: Refs  # (n_exp, n_species); NaN constant and index -1: not set
    pre_species: Refs
    from_steady_state: np.ndarray  # (n_exp, n_states) bool: preequilibrated value kept
    times: np.ndarray  # (n_exp, T) saved times, padded with the last one
    t1: np.ndarray  # (n_exp,)
    observables: dict[str, ObservableRows]
    extra_ids: tuple[str, ...]  # PEtab parameters that are not model parameters
    extra_index: np.ndarray


def _ref(value, positions: dict[str, int], where: str) -> tuple[int, float]:
    if isinstance(value, str):
        value = value.strip()
        if value in positions:
            return positions[value], math.nan
        try:
            return -1, float(value)
        except ValueError:
            raise PEtabError(
                f"{where}: {value!r} is neither a number nor a parameter of the "
                "parameter table. Add it to the parameter table or give a number."
            ) from None
    if value is None:
        return -1, math.nan
    return -1, float(value)


def build(tables: Tables, sbml) -> Layout:
    """`sbml` is the problem's [`odeinfer.sbml.SBMLModel`][]."""
    frame = tables.parameters
    pids = tuple(map(str, frame.index))
    positions = {p: i for i, p in enumerate(pids)}
    nominal = frame[C.NOMINAL_VALUE].to_numpy(dtype=float)
    estimate = frame[C.ESTIMATE].to_numpy(dtype=int) == 1
    estimated = tuple(p for p, e in zip(pids, estimate, strict=True) if e)
    scales = tuple(
        str(frame.loc[p, C.PARAMETER_SCALE])
        if isinstance(frame.loc[p, C.PARAMETER_SCALE], str)
        else "lin"
        for p in estimated
    )
    code = np.array([_SCALE_CODE[s] for s in scales], dtype=int)
    lower = frame.loc[list(estimated), C.LOWER_BOUND].to_numpy(dtype=float)
    upper = frame.loc[list(estimated), C.UPPER_BOUND].to_numpy(dtype=float)
    lower, upper = scale(lower, code), scale(upper, code)

    assigned = set(sbml.assigned_constant_ids)
    conditions = tables.conditions
    cfile = tables.files["conditions"]
    # Constants with an initial assignment join the model parameters when the
    # condition table sets them, in every condition (the assignment is replaced).
    replaced = []
    for column in conditions.columns:
        if column in assigned:
            values = conditions[column]
            unset = [
                str(c)
                for c, v in values.items()
                if not isinstance(v, str) and math.isnan(v)  # pyright: ignore[reportArgumentType]
            ]
            if unset:
                raise PEtabError(
                    f"{cfile}: column {column!r} sets a constant whose SBML initial "
                    f"assignment it replaces, but leaves it empty for conditions "
                    f"{unset}; give a value in every condition."
                )
            replaced.append(column)
    model_ids = tuple(sbml.parameter_ids) + tuple(replaced)
    model_set = set(model_ids)
    species_set = set(sbml.species_ids)
    state_ids = sbml.state_ids

    # What the condition table sets.
    columns = [c for c in tables.conditions.columns if c != C.CONDITION_NAME]
    set_parameters, set_species = [], []
    for column in columns:
        if column in positions:
            raise PEtabError(
                f"{cfile}: column {column!r} is also a row of the parameter table "
                f"({tables.files['parameters']}); PEtab forbids setting an id in both. "
                "Remove it from one of them (to vary it by condition, put parameter ids "
                "in the condition table's cells)."
            )
        if column in model_set:
            set_parameters.append(column)
        elif column in species_set:
            set_species.append(column)
        else:
            known = "a parameter or compartment" if column in state_ids else "an id"
            raise PEtabError(
                f"{cfile}: column {column!r} is not {known} the condition table can "
                f"set: it is not a constant parameter, constant compartment or species "
                f"of the SBML model ({tables.files['sbml']}). Fix the column name."
            )

    def defaults() -> tuple[np.ndarray, np.ndarray]:
        index = np.full(len(model_ids), -1, dtype=int)
        constant = np.array(
            [sbml.parameters.get(m, math.nan) for m in model_ids], dtype=float
        )
        for j, m in enumerate(model_ids):
            if m in positions:
                index[j], constant[j] = positions[m], math.nan
        return index, constant

    def condition_refs(cid: str | None):
        index, constant = defaults()
        sp_index = np.full(len(set_species), -1, dtype=int)
        sp_constant = np.full(len(set_species), math.nan)
        if cid is None:
            return index, constant, sp_index, sp_constant
        row = tables.conditions.loc[cid]
        for column in set_parameters:
            value = row[column]
            if not isinstance(value, str) and (value is None or math.isnan(value)):
                continue
            j = model_ids.index(column)
            index[j], constant[j] = _ref(
                value, positions, f"{cfile}, condition {cid!r}, column {column!r}"
            )
        for j, column in enumerate(set_species):
            sp_index[j], sp_constant[j] = _ref(
                row[column], positions, f"{cfile}, condition {cid!r}, column {column!r}"
            )
        return index, constant, sp_index, sp_constant

    # Experiments: (preequilibration, simulation) pairs in order of appearance.
    m = tables.measurements
    pre_column = (
        m[C.PREEQUILIBRATION_CONDITION_ID]
        if C.PREEQUILIBRATION_CONDITION_ID in m.columns
        else pd.Series([None] * len(m))
    )
    keys = []
    for pre, sim in zip(pre_column, m[C.SIMULATION_CONDITION_ID], strict=True):
        pre = pre if isinstance(pre, str) and pre.strip() else None
        keys.append(Experiment(pre, str(sim)))
    order = list(dict.fromkeys(keys))
    # With any preequilibration, the one compiled batch preequilibrates every
    # experiment; those without one ignore the result (`from_steady_state` is False).
    has_pre = any(e.preequilibration is not None for e in order)
    index_of = {e: i for i, e in enumerate(order)}

    main_i, main_c, pre_i, pre_c = [], [], [], []
    msp_i, msp_c, psp_i, psp_c, keep = [], [], [], [], []
    flags = set(sbml.switch_state_ids)
    for e in order:
        a, b, c, d = condition_refs(e.condition)
        for column, value in zip(
            (main_i, main_c, msp_i, msp_c), (a, b, c, d), strict=True
        ):
            column.append(value)
        pre = condition_refs(e.preequilibration or e.condition)
        for column, value in zip((pre_i, pre_c, psp_i, psp_c), pre, strict=True):
            column.append(value)
        overridden = {
            s
            for s, i, v in zip(set_species, c, d, strict=True)
            if i >= 0 or not math.isnan(v)
        }
        keep.append(
            [
                e.preequilibration is not None
                and sid not in flags
                and sid not in overridden
                for sid in state_ids
            ]
        )

    # Saved times per experiment.
    times = m[C.TIME].to_numpy(dtype=float)
    experiment_of_row = np.array([index_of[k] for k in keys], dtype=int)
    per_experiment = [
        np.unique(times[(experiment_of_row == i) & np.isfinite(times)])
        for i in range(len(order))
    ]
    width = max(1, max(len(t) for t in per_experiment))
    padded = np.zeros((len(order), width))
    t1 = np.ones(len(order))
    for i, t in enumerate(per_experiment):
        if len(t):
            padded[i, : len(t)] = t
            padded[i, len(t) :] = t[-1]
            t1[i] = max(t[-1], 1e-6)  # a solve needs t1 > t0 = 0
    has_inf = bool(np.any(np.isinf(times)))

    # Rows per observable.
    observables = {}
    for oid, observable in tables.observables.items():
        rows = np.flatnonzero(m[C.OBSERVABLE_ID].astype(str).to_numpy() == oid)
        if not len(rows):
            continue
        slots = []
        for r in rows:
            e = experiment_of_row[r]
            t = times[r]
            slots.append(
                width if np.isinf(t) else int(np.searchsorted(per_experiment[e], t))
            )
        refs = {}
        for column, names in (
            (C.OBSERVABLE_PARAMETERS, observable.observable_placeholders),
            (C.NOISE_PARAMETERS, observable.noise_placeholders),
        ):
            index = np.full((len(rows), len(names)), -1, dtype=int)
            constant = np.full((len(rows), len(names)), math.nan)
            for k, r in enumerate(rows):
                values = split(m.loc[r, column]) if column in m.columns else []
                for j, v in enumerate(values[: len(names)]):
                    index[k, j], constant[k, j] = _ref(
                        v, positions, f"{tables.files['measurements']}, row {r + 2}"
                    )
            refs[column] = Refs(index, constant)
        observables[oid] = ObservableRows(
            rows=rows,
            experiment=experiment_of_row[rows],
            slot=np.array(slots, dtype=int),
            time=times[rows],
            measurement=m[C.MEASUREMENT].to_numpy(dtype=float)[rows],
            observable_refs=refs[C.OBSERVABLE_PARAMETERS],
            noise_refs=refs[C.NOISE_PARAMETERS],
        )

    extra = tuple(p for p in pids if p not in model_set)
    estimated_positions = {positions[p] for p in estimated}
    reads_estimated = [
        model_ids[j]
        for j in range(len(model_ids))
        if any(
            int(refs[e][j]) in estimated_positions
            for refs in (main_i, pre_i)
            for e in range(len(order))
        )
    ]
    return Layout(
        estimated_model_ids=tuple(reads_estimated),
        parameter_ids=pids,
        model_ids=model_ids,
        nominal=nominal,
        estimated=estimated,
        estimated_index=np.array([positions[p] for p in estimated], dtype=int),
        scale_code=code,
        scales=scales,
        lower=lower,
        upper=upper,
        experiments=tuple(order),
        has_preequilibration=has_pre,
        has_steady_state_data=has_inf,
        main=Refs(np.array(main_i), np.array(main_c)),
        pre=Refs(np.array(pre_i), np.array(pre_c)),
        species=tuple(set_species),
        main_species=Refs(
            np.array(msp_i).reshape(len(order), -1),
            np.array(msp_c).reshape(len(order), -1),
        ),
        pre_species=Refs(
            np.array(psp_i).reshape(len(order), -1),
            np.array(psp_c).reshape(len(order), -1),
        ),
        from_steady_state=np.array(keep, dtype=bool).reshape(
            len(order), len(state_ids)
        ),
        times=padded,
        t1=t1,
        observables=observables,
        extra_ids=extra,
        extra_index=np.array([positions[p] for p in extra], dtype=int),
    )


def scale(values: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Linear values → PEtab parameter scale (numpy, for bounds and reports)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            code == 1, np.log(values), np.where(code == 2, np.log10(values), values)
        )
