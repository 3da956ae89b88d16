"""The ``preserve`` command line: parse options, call :class:`preserve.Archive`, print, exit.

No archive logic lives here. Human output goes to stdout (errors and progress to stderr);
``--json`` prints exactly one envelope object on stdout. Exit statuses are documented in
``docs/cli.md`` and in :data:`~preserve.cli.app.EXIT_STATUSES`. One module per group of
commands, imported when one of its commands runs (``main.load_all()`` imports them all);
:mod:`.app` holds the ``main`` group and what the commands share.
"""

from preserve.cli.app import EXIT_STATUSES, main

__all__ = ["EXIT_STATUSES", "main"]
