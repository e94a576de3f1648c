"""The errors every layer may raise, in a leaf module that imports nothing of the package.

:class:`ConfigError` is raised by the config, the builders and the device and memory checks
(``staa-snn`` exits 2 on it with one line); it is re-exported by :mod:`staa_snn.training`.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config key or value that is not valid; the message names the key."""
