"""The ``staa-snn`` command line, one module per command (:data:`~.main.COMMANDS`: ``train``,
``eval``, ``predict``, ``stream``, ``profile``, ``visualize``, ``plot``, ``export``, ``ablate``,
``configs``), each with ``add_arguments(parser)`` and ``run(args)``; :mod:`.common` holds the
argument groups they share, :mod:`.main` the parser, the dispatch and the exit codes.

Also runs as ``python -m staa_snn.cli`` (the form ``torchrun`` needs). Bad input gets one line on
stderr and exit code 2 (a traceback only with ``--debug``). A command imports what it runs inside
``run`` (torch, the trainer), so that ``staa-snn --help`` and argument errors answer at once.
"""

from .common import DEFAULT_CONFIG, bundled_configs, resolve_config
from .configs import describe_configs
from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "DEFAULT_CONFIG", "build_parser", "bundled_configs", "describe_configs", "main",
           "resolve_config"]
