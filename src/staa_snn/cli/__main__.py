"""``python -m staa_snn.cli`` (the form ``torchrun`` needs): the ``staa-snn`` command."""

import sys

from .main import main

sys.exit(main())
