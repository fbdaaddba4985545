"""Imported by the fork server of virtual units (:func:`experiments.matrix._unit_context`,
first in its preload list) and nowhere else: the server ends with the runner that started
it (``PR_SET_PDEATHSIG``, :func:`experiments.orphans.die_with_parent`).

Without it a runner killed outright (SIGKILL) left the server and its workers running:
the server ends by itself only when every holder of its "alive" pipe has gone, and each
worker it forks holds one (multiprocessing passes it on, for the worker's own children);
a worker gets SIGTERM when its parent, the server, dies."""

from __future__ import annotations

import os

from experiments.orphans import die_with_parent

die_with_parent(os.getppid())
