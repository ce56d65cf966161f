"""The error raised for a PEtab problem odeinfer cannot import as written."""


class PEtabError(ValueError):
    """A PEtab problem that is malformed, refers to ids that do not exist, or uses a
    feature odeinfer does not support; the message names the file, the row or id, and
    the fix. Raised by [`odeinfer.petab.load`][] before any compilation."""
