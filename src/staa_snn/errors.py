"""The errors every layer may raise, in a leaf module that imports nothing of the package.

:class:`ConfigError` is raised by the config, the builders and the device and memory checks
(``staa-snn`` exits 2 on it with one line); it is re-exported by :mod:`staa_snn.training`.

:class:`DataError` is every refusal of the data layer about what it was given (a dataset name
or option, a folder's layout, a file's contents; :class:`CorruptFileError`, a file that cannot
be parsed, is one): bad input, found before any long work starts, which ``staa-snn`` reports in
one line with exit 2 as it does a bad config key. Both are re-exported by :mod:`staa_snn.data`.
A ``ValueError`` of any other kind from the data layer is a defect. The models layer raises them
too for the weights it is given to load (a file of another kind, a foreign or damaged
``config.json`` or ``model.safetensors``, weights that do not fit the net).
"""

from __future__ import annotations

__all__ = ["ConfigError", "CorruptFileError", "DataError"]


class ConfigError(ValueError):
    """A config key or value that is not valid; the message names the key."""


class DataError(ValueError):
    """Data, or a request for data, that is not what was expected; the message says what was
    wrong and what was expected."""


class CorruptFileError(DataError):
    """A data file that cannot be parsed; the message names the file."""
