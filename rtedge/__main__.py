"""``python -m rtedge``: the same command line as ``rtedge`` (``rtedge.cli``)."""

import sys

from rtedge.cli import main

sys.exit(main())
