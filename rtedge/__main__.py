import sys

from rtedge.cli import main

sys.exit(main())
