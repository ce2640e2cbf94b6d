"""``python -m bilinear_core``: the command line of :mod:`bilinear_core.cli`."""

import sys

from .cli import main

sys.exit(main())
