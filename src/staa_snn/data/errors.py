"""The data layer's errors: bad input, one line each, found before any long work starts.

Every error the data layer raises about what it was given (a dataset name or option, a folder's
layout, a file's contents) is a :class:`DataError`; the command line reports it in one line and
exits 2, as it does for a bad config key. A ``ValueError`` of any other kind is a defect."""

from __future__ import annotations

__all__ = ["CorruptFileError", "DataError"]


class DataError(ValueError):
    """Data, or a request for data, that is not what was expected; the message says what was
    wrong and what was expected."""


class CorruptFileError(DataError):
    """A data file that cannot be parsed; the message names the file."""
