"""Reading an SBML document with libsbml: the parsed model, or an error naming the
file and the line."""

import os

import libsbml

from ._errors import SBMLError, UnsupportedSBMLError


def read_document(source: "str | os.PathLike") -> tuple[libsbml.SBMLDocument, str]:
    """Parses `source` (a path, or an SBML document as a string starting with `<`).

    **Returns:** the libsbml document and a label for messages (the path or
    `"<string>"`).
    """
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and not source.lstrip().startswith("<")
    ):
        label = os.fspath(source)
        if not os.path.isfile(label):
            raise FileNotFoundError(
                f"odeinfer.sbml.load: no file at {label!r}. Pass the path of an SBML "
                "file, or the document itself as a string starting with '<'."
            )
        document = libsbml.readSBMLFromFile(label)
    elif isinstance(source, str):
        label = "<string>"
        document = libsbml.readSBMLFromString(source)
    else:
        raise TypeError(
            "odeinfer.sbml.load: `source` must be a path or an SBML string; got "
            f"{type(source).__name__}."
        )
    problems = [
        document.getError(i)
        for i in range(document.getNumErrors())
        if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if problems:
        lines = "\n".join(
            f"  line {e.getLine()}: {e.getMessage().strip()}" for e in problems[:10]
        )
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise SBMLError(f"{label}: the SBML document is malformed:\n{lines}{more}")
    if document.getModel() is None:
        raise SBMLError(f"{label}: the SBML document contains no <model>.")
    if document.getLevel() < 2:
        raise UnsupportedSBMLError(
            f"{label}: SBML Level {document.getLevel()} is not supported; convert it "
            "to Level 2 Version 3 or later (libsbml's SBMLDocument.setLevelAndVersion)."
        )
    namespaces = document.getNamespaces()
    for i in range(namespaces.getNumNamespaces()):
        prefix = namespaces.getPrefix(i)
        if document.getLevel() < 3 or not prefix:
            continue
        if not document.getPackageRequired(prefix):
            continue
        if prefix == "comp" and _flatten(document):
            continue
        raise UnsupportedSBMLError(
            f"{label}: the model requires the SBML package {prefix!r} "
            f"({namespaces.getURI(i)}), which odeinfer does not support."
        )
    return document, label


def _flatten(document: libsbml.SBMLDocument) -> bool:
    """Flattens hierarchical (comp) models with libsbml's converter; True if done."""
    properties = libsbml.ConversionProperties()
    properties.addOption("flatten comp", True)
    return document.convert(properties) == libsbml.LIBSBML_OPERATION_SUCCESS
