"""``python -m lsray``: the same as the ``lsray`` console script."""

import sys

from lsray.cli import main

sys.exit(main())
