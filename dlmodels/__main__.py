"""``python -m dlmodels ...`` is the ``dlmodels`` command."""

import sys

from dlmodels.cli import main

sys.exit(main())
