"""``python -m experiments``: see :mod:`experiments.cli`."""

import sys

try:
    from experiments.cli import main
except KeyboardInterrupt:  # a Ctrl-C while it starts: said as one, not a traceback
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
