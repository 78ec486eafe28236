"""``python -m bench``: the strategy benchmark (see :mod:`bench.strategy`)."""

import sys

from bench.strategy import main

sys.exit(main())
