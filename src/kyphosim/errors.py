"""Exception types. Each subclasses ``ValueError`` so plain ``except ValueError`` callers still work.

The CLI turns any :class:`KyphosimError` into one readable line on stderr and exit code 2.
"""

__all__ = ["KyphosimError", "InputError", "LabelError", "GridMismatchError", "NotCTError"]


class KyphosimError(ValueError):
    """Base class for errors a user can fix (bad input, bad option)."""


class InputError(KyphosimError):
    """An input file or value that cannot be used (missing, unreadable, wrong dimensionality, ...)."""


class LabelError(InputError):
    """A label map without vertebrae, with unknown ids, or a missing level."""


class GridMismatchError(InputError):
    """Labels and image are not on the same voxel grid."""


class NotCTError(InputError):
    """Image values that cannot be Hounsfield units of a CT."""
