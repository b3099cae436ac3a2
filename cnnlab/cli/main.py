"""``cnnlab`` entry point: builds the parser from the subcommand modules and turns user
mistakes into one-line errors.

    cnnlab train                       # LeNet-5 on the bundled MNIST subset
    cnnlab evaluate model.npz
    cnnlab predict model.npz digit.png --invert
    cnnlab summary vgg16
    cnnlab shape --n 32 --f 5 --p 2 --k 10 --c 3

Subcommands register themselves: every module of ``cnnlab.cli`` with a
``register(subparsers)`` function is loaded (sorted by its ``ORDER``, then name), so a new
``cnnlab/cli/viz.py`` needs no change here. Exit status: 0 success, 2 user error
(``cnnlab: error: ...`` on stderr, wrapped to the terminal, no traceback), 1 unexpected
internal error (the same prefix; ``--debug`` shows the traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import zipfile

from .. import keep_freed_memory
from .common import CLIError, message

#: Modules of this package that are not subcommands.
_NOT_COMMANDS = {"main", "common", "__main__"}


class _Parser(argparse.ArgumentParser):
    """argparse that raises CLIError (one line) instead of printing usage and exiting."""

    def error(self, message):
        # the prefix is main's 'cnnlab: error: '; argparse's own 'cnnlab train: error:' is not
        # repeated
        raise CLIError(f"{message} (see '{self.prog} --help')")


def command_modules():
    """The subcommand modules, in help order: every non-private module of cnnlab.cli
    that defines ``register`` (a broken optional module is skipped with a warning)."""
    from .. import cli

    mods = []
    for info in pkgutil.iter_modules(cli.__path__):
        name = info.name
        if name.startswith("_") or name in _NOT_COMMANDS:
            continue
        try:
            mod = importlib.import_module(f"{cli.__name__}.{name}")
        except ImportError as e:  # e.g. an optional dependency missing
            message(f"subcommand module {name!r} not loaded: {e}", "warning")
            continue
        if callable(getattr(mod, "register", None)):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def build_parser():
    """The full argparse parser (top level + every registered subcommand)."""
    parser = _Parser(prog="cnnlab",
                     description="Convolutional neural networks in readable NumPy: train, "
                                 "evaluate and inspect the classic nets.",
                     epilog="Run 'cnnlab COMMAND --help' for a command's options.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in command_modules():
        mod.register(sub)
    return parser


def _one_line(exc):
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return " ".join(text.split())


def _is_user_error(exc):
    """Bad input rather than a bug: bad arguments, unreadable or hostile files."""
    if isinstance(exc, (CLIError, ValueError, TypeError, OSError, EOFError, MemoryError,
                        FloatingPointError, zipfile.BadZipFile)):
        return True
    pil = sys.modules.get("PIL.Image")  # a decompression bomb; PIL is loaded if it was read
    if pil is not None and isinstance(exc, getattr(pil, "DecompressionBombError", ())):
        return True
    return False  # CheckpointError is a ValueError


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (the console script passes it to ``sys.exit``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("CNNLAB_DEBUG") == "1"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help / --version
            return int(e.code or 0) if not isinstance(e.code, str) else 2
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        # a program of its own: it runs with the allocator setting cnnlab's speed is
        # measured with (a library import changes nothing; see cnnlab.keep_freed_memory)
        keep_freed_memory()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(file=sys.stderr)  # off the ^C and any progress bar
        message("interrupted (Ctrl-C)", None)
        return 130
    except Exception as e:  # noqa: BLE001 - user errors exit 2, bugs 1; --debug re-raises
        if debug:
            raise
        if _is_user_error(e):
            message(_one_line(e))
            return 2
        message(f"internal error (a bug in cnnlab): {type(e).__name__}: {_one_line(e)} "
                f"(rerun with --debug for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
