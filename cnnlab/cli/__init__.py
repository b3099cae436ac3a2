"""The ``cnnlab`` command line (``cnnlab ...`` or ``python -m cnnlab ...``).

Each subcommand lives in its own module of this package and registers itself: a module
that defines ``register(subparsers)`` (and optionally ``ORDER``, an int for the position
in ``--help``) is picked up by :func:`cnnlab.cli.main.main` without editing main.py.
``register`` adds an ``argparse`` sub-parser and sets its ``func(args) -> int``.
User mistakes raise :class:`cnnlab.cli.common.CLIError` (or a ValueError / OSError /
bad-zip error from the library), which main prints as ``cnnlab: error: ...`` on stderr
(wrapped to the terminal, no traceback) with exit status 2; other messages go through
:func:`cnnlab.cli.common.message` in the same format. The library never imports this
package.
"""
