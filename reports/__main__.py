"""``python -m reports``: see :mod:`reports.cli`."""

from reports.cli import main

raise SystemExit(main())
