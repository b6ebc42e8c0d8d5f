"""What every program shares: ``--debug`` and the one error style of ``keras-jepa``.

Bad input (a missing file or folder, a malformed file, an unknown name, options that do
not go together) prints ``error: <message>`` on stderr and exits with status 2;
``--debug`` shows the full traceback instead. Other exceptions are bugs and keep their
traceback.

A program is a module of ``keras_jepa.programs`` with ``add_arguments(parser)`` and
``run(args)`` (returning an exit status, ``None`` for 0); :func:`script_main` runs one as
a standalone script (``applications/*.py``).
"""

import argparse
import pickle
import sys
import zipfile

DEBUG_HELP = "on an error, show the full traceback instead of a one-line message"


def add_debug_argument(parser, default=False):
    """Adds ``--debug`` (re-raise errors with their traceback) to ``parser``."""
    parser.add_argument("--debug", action="store_true", default=default, help=DEBUG_HELP)
    return parser


def _user_errors():
    """Exception types that mean bad input (a path, a file, a name, option values), not a
    bug: ``ValueError`` (this package's checks, malformed JSON/CSV, bad text encodings),
    ``OSError`` (missing, unreadable or unwritable files and folders, corrupt HDF5), and
    malformed checkpoints or YAML. ``KeyError``, ``TypeError``, ``RuntimeError`` and the
    rest keep their traceback: this package reports bad input as ``ValueError``."""
    types = [ValueError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile]
    yaml = sys.modules.get("yaml")  # only raised once loaded
    if yaml is not None and hasattr(yaml, "YAMLError"):
        types.append(yaml.YAMLError)
    return tuple(types)


def error_message(error):
    """The one-line text of a user-input error (``OSError`` without the ``[Errno N]``)."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename!r}"
    return str(error) or type(error).__name__


def run_command(function, args):
    """Runs ``function(args)``; bad input (see :func:`_user_errors`) prints ``error:
    <message>`` on stderr and returns 2 (re-raised with ``args.debug``). Returns the exit
    status (0 when ``function`` returns ``None``)."""
    try:
        code = function(args)
    except _user_errors() as error:
        if getattr(args, "debug", False):
            raise
        print(f"error: {error_message(error)}", file=sys.stderr, flush=True)
        return 2
    return 0 if code is None else code


def script_main(program, argv=None, description=None, **defaults):
    """Runs ``program`` (a module with ``add_arguments`` and ``run``) as a script:
    parses ``argv`` (default ``sys.argv[1:]``) with its options plus ``--debug``, then
    :func:`run_command`. ``defaults`` replace option defaults (e.g. ``config=...``)."""
    parser = argparse.ArgumentParser(description=description or program.__doc__.split("\n\n")[0])
    program.add_arguments(parser)
    add_debug_argument(parser)
    if defaults:
        parser.set_defaults(**defaults)
    return run_command(program.run, parser.parse_args(argv))
