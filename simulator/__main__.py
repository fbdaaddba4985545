"""``python -m simulator``: synth | import-trades | record | serve | inspect."""

from simulator.cli import main

raise SystemExit(main())
