"""``python -m monitor``: see :mod:`monitor.cli`."""

import sys

from monitor.cli import main

sys.exit(main())
