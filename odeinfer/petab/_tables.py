"""Reading a PEtab v1 problem with the `petab` library and checking it, row by row,
before anything is compiled: every error names the file, the row or id, and the fix."""

import math
import os
from typing import NamedTuple, cast

import numpy as np
import pandas as pd
import petab.v1 as petab
from petab.v1 import C
from petab.v1.observables import get_formula_placeholders

from ._errors import PEtabError

SCALES = ("lin", "log", "log10")
TRANSFORMATIONS = ("lin", "log", "log10")
DISTRIBUTIONS = ("normal", "laplace")
PRIORS = (
    "uniform",
    "normal",
    "laplace",
    "logNormal",
    "logLaplace",
    "parameterScaleUniform",
    "parameterScaleNormal",
    "parameterScaleLaplace",
)


class Observable(NamedTuple):
    id: str
    formula: str
    noise_formula: str
    transformation: str
    distribution: str
    observable_placeholders: tuple[str, ...]
    noise_placeholders: tuple[str, ...]


class Tables(NamedTuple):
    """The checked tables of one problem (pandas frames with default indices)."""

    yaml: str
    sbml_file: str
    parameters: pd.DataFrame  # indexed by parameterId
    conditions: pd.DataFrame  # indexed by conditionId
    observables: dict[str, Observable]
    measurements: pd.DataFrame
    files: dict[str, str]  # table kind -> file name, for messages


def _files(config: dict, key: str) -> list[str]:
    value = config.get(key) or []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def read(path: "str | os.PathLike") -> Tables:
    """Reads the problem at `path` (its yaml file) and checks it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PEtabError(
            f"PEtab: no file {path!r}. Give the path of the problem's yaml file."
        )
    try:
        import yaml

        with open(path) as stream:
            config = yaml.safe_load(stream)
    except Exception as error:
        raise PEtabError(f"{path}: not a readable yaml file ({error}).") from None
    if not isinstance(config, dict) or "problems" not in config:
        raise PEtabError(
            f"{path}: not a PEtab problem file (no `problems` entry). Give the yaml "
            "file of a PEtab v1 problem."
        )
    version = str(config.get("format_version", "1"))
    if not version.startswith("1"):
        raise PEtabError(
            f"{path}: format_version {version}; odeinfer imports PEtab v1 problems. "
            "Convert with `petab` (petablint) or write a v1 problem."
        )
    if len(config["problems"]) != 1:
        raise PEtabError(
            f"{path}: {len(config['problems'])} problems in one file; odeinfer imports "
            "one model per problem."
        )
    entry = config["problems"][0]
    base = os.path.dirname(path)
    sbml_files = _files(entry, "sbml_files")
    if len(sbml_files) != 1:
        raise PEtabError(
            f"{path}: the problem lists {len(sbml_files)} SBML files; odeinfer imports "
            "one model per problem."
        )
    listed = {
        "sbml": sbml_files,
        "conditions": _files(entry, "condition_files"),
        "measurements": _files(entry, "measurement_files"),
        "observables": _files(entry, "observable_files"),
        "parameters": _files(config, "parameter_file"),
    }
    for kind, names in listed.items():
        if not names:
            raise PEtabError(f"{path}: no {kind} file is listed.")
        for name in names:
            if not os.path.isfile(os.path.join(base, name)):
                raise PEtabError(
                    f"{path}: the {kind} file {name!r} does not exist next to it."
                )
    # For messages: the file (or files, merged by the petab library) of each table.
    files = {kind: " + ".join(names) for kind, names in listed.items()}
    if entry.get("mapping_files"):
        raise PEtabError(
            f"{path}: uses a mapping table ({entry['mapping_files']}); odeinfer does "
            "not support PEtab mapping tables yet. Use the model's ids in the tables."
        )
    try:
        problem = petab.Problem.from_yaml(path)
    except Exception as error:
        raise PEtabError(f"{path}: the petab library cannot read it: {error}") from None
    parameters, conditions = problem.parameter_df, problem.condition_df
    observables, measurements = problem.observable_df, problem.measurement_df
    if parameters is None or conditions is None or observables is None:
        raise PEtabError(
            f"{path}: a parameter, condition or observable table is missing."
        )
    if measurements is None:
        raise PEtabError(f"{path}: the measurement table is missing.")
    tables = Tables(
        yaml=path,
        sbml_file=os.path.join(base, files["sbml"]),
        parameters=parameters,
        conditions=conditions,
        observables=_observables(observables, files["observables"]),
        measurements=measurements.reset_index(drop=True),
        files=files,
    )
    _check_parameters(tables)
    _check_measurements(tables)
    return tables


def _text(value, default: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    text = str(value).strip()
    return text or default


def _observables(frame: pd.DataFrame, file: str) -> dict[str, Observable]:
    out = {}
    for oid, row in frame.iterrows():
        where = f"{file}, observable {oid!r}"
        formula = _text(row.get(C.OBSERVABLE_FORMULA), "")
        noise = _text(row.get(C.NOISE_FORMULA), "")
        if not formula:
            raise PEtabError(f"{where}: empty observableFormula.")
        if not noise:
            raise PEtabError(
                f"{where}: empty noiseFormula. Give a number, a parameter id or a "
                f"formula (e.g. noiseParameter1_{oid})."
            )
        transformation = _text(row.get(C.OBSERVABLE_TRANSFORMATION), "lin")
        distribution = _text(row.get(C.NOISE_DISTRIBUTION), "normal")
        if transformation not in TRANSFORMATIONS:
            raise PEtabError(
                f"{where}: observableTransformation {transformation!r}; use one of "
                f"{TRANSFORMATIONS}."
            )
        if distribution not in DISTRIBUTIONS:
            raise PEtabError(
                f"{where}: noiseDistribution {distribution!r}; odeinfer supports "
                f"{DISTRIBUTIONS} (with log/log10 transformations for log-normal and "
                "log-Laplace)."
            )
        out[str(oid)] = Observable(
            id=str(oid),
            formula=formula,
            noise_formula=noise,
            transformation=transformation,
            distribution=distribution,
            observable_placeholders=tuple(
                get_formula_placeholders(formula, str(oid), "observable")
            ),
            noise_placeholders=tuple(
                get_formula_placeholders(noise, str(oid), "noise")
            ),
        )
    return out


def _number(row, column: str, where: str) -> float:
    """The row's entry in `column` as a float (NaN where empty)."""
    try:
        return float(row[column])
    except (TypeError, ValueError):
        raise PEtabError(
            f"{where}: {column} {row[column]!r} is not a number."
        ) from None


def _check_parameters(tables: Tables) -> None:
    file = tables.files["parameters"]
    frame = tables.parameters
    for column in (
        C.PARAMETER_SCALE,
        C.LOWER_BOUND,
        C.UPPER_BOUND,
        C.NOMINAL_VALUE,
        C.ESTIMATE,
    ):
        if column not in frame.columns:
            raise PEtabError(f"{file}: no column {column!r}.")
    for pid, row in frame.iterrows():
        where = f"{file}, parameter {pid!r}"
        scale = _text(row[C.PARAMETER_SCALE], "lin")
        if scale not in SCALES:
            raise PEtabError(f"{where}: parameterScale {scale!r}; use one of {SCALES}.")
        nominal = _number(row, C.NOMINAL_VALUE, where)
        if not math.isfinite(nominal):
            raise PEtabError(f"{where}: nominalValue {nominal} is not a finite number.")
        estimate = _number(row, C.ESTIMATE, where)
        if estimate not in (0, 1):
            raise PEtabError(
                f"{where}: estimate must be 0 or 1; got {row[C.ESTIMATE]}."
            )
        if estimate == 0:
            continue
        lower = _number(row, C.LOWER_BOUND, where)
        upper = _number(row, C.UPPER_BOUND, where)
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise PEtabError(
                f"{where}: need finite lowerBound < upperBound for an estimated "
                f"parameter; got ({lower}, {upper})."
            )
        if scale != "lin" and lower <= 0:
            raise PEtabError(
                f"{where}: parameterScale {scale} needs lowerBound > 0; got {lower}. "
                "Give a positive lower bound or parameterScale lin."
            )
        if not lower <= nominal <= upper:
            raise PEtabError(
                f"{where}: nominalValue {nominal} lies outside its bounds "
                f"[{lower}, {upper}]. Fix the value or the bounds."
            )
        prior = _text(row.get(C.OBJECTIVE_PRIOR_TYPE), "")
        if prior and prior not in PRIORS:
            raise PEtabError(
                f"{where}: objectivePriorType {prior!r}; use one of {PRIORS}."
            )
        if prior:
            values = split(row.get(C.OBJECTIVE_PRIOR_PARAMETERS))
            if len(values) != 2 or not all(isinstance(v, float) for v in values):
                raise PEtabError(
                    f"{where}: objectivePriorParameters must be two numbers "
                    f"'a;b' for {prior}; got {row.get(C.OBJECTIVE_PRIOR_PARAMETERS)!r}."
                )


def split(value) -> list:
    """`"a;0.1;b"` → `["a", 0.1, "b"]`; empty or NaN → `[]`."""
    return list(petab.split_parameter_replacement_list(value))


def _check_measurements(tables: Tables) -> None:
    file = tables.files["measurements"]
    frame = tables.measurements
    for column in (C.OBSERVABLE_ID, C.SIMULATION_CONDITION_ID, C.MEASUREMENT, C.TIME):
        if column not in frame.columns:
            raise PEtabError(f"{file}: no column {column!r}.")
    conditions = set(map(str, tables.conditions.index))
    parameters = set(map(str, tables.parameters.index))
    for i, row in frame.iterrows():
        where = f"{file}, row {cast(int, i) + 2}"  # +2: the header and 1-based rows
        oid = str(row[C.OBSERVABLE_ID])
        if oid not in tables.observables:
            raise PEtabError(
                f"{where}: observableId {oid!r} is not in the observable table "
                f"({tables.files['observables']}); known: {sorted(tables.observables)}."
            )
        for column in (C.SIMULATION_CONDITION_ID, C.PREEQUILIBRATION_CONDITION_ID):
            cid = _text(row.get(column), "")
            if column == C.SIMULATION_CONDITION_ID and not cid:
                raise PEtabError(f"{where}: empty simulationConditionId.")
            if cid and cid not in conditions:
                raise PEtabError(
                    f"{where}: {column} {cid!r} is not in the condition table "
                    f"({tables.files['conditions']})."
                )
        value, time = _number(row, C.MEASUREMENT, where), _number(row, C.TIME, where)
        if not math.isfinite(value):
            raise PEtabError(f"{where}: measurement {value} is not a finite number.")
        if np.isnan(time) or time < 0:
            raise PEtabError(
                f"{where}: time {time}; PEtab times are >= 0 (inf for steady state)."
            )
        observable = tables.observables[oid]
        if observable.transformation != "lin" and value <= 0:
            raise PEtabError(
                f"{where}: measurement {value} of observable {oid!r}, whose "
                f"observableTransformation is {observable.transformation}: a "
                "log-transformed measurement must be positive. Remove the row or use "
                "a lin transformation."
            )
        for column, names in (
            (C.OBSERVABLE_PARAMETERS, observable.observable_placeholders),
            (C.NOISE_PARAMETERS, observable.noise_placeholders),
        ):
            values = split(row.get(column))
            if len(values) != len(names) and not (len(values) == 1 and not names):
                raise PEtabError(
                    f"{where}: {column} gives {len(values)} value(s) {values} but "
                    f"observable {oid!r} has {len(names)} placeholder(s) {list(names)}."
                )
            for v in values:
                if isinstance(v, str) and v not in parameters:
                    raise PEtabError(
                        f"{where}: {column} refers to {v!r}, which is not in the "
                        f"parameter table ({tables.files['parameters']}). Add it there "
                        "or give a number."
                    )
