"""The exceptions the SBML importer raises."""


class SBMLError(ValueError):
    """Malformed SBML, or an id referenced but not defined."""


class UnsupportedSBMLError(SBMLError):
    """Valid SBML that uses a construct odeinfer cannot honour exactly."""
