"""``python -m tcpevent``: the ``tcpevent`` command."""

import sys

from tcpevent.cli import main

sys.exit(main())
