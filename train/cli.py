"""What every program in ``train/`` and ``export/`` shares: a user error is one line and
exit code 2, never a traceback."""

from __future__ import annotations

import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)


def fail(message: str) -> None:
    """Prints ``error: message`` to stderr and exits with code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e))


def run(main) -> None:
    """``absl.app.run`` with flag errors and user errors reported as one line, exit 2
    (``RSTG_TRACEBACK=1`` shows the traceback of a user error instead)."""

    def guarded(argv):
        if len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; every setting is a --flag.")
        if os.environ.get("RSTG_TRACEBACK"):
            import keras
            keras.config.disable_traceback_filtering()
        try:
            return main(argv)
        except USER_ERRORS as e:
            if os.environ.get("RSTG_TRACEBACK"):
                raise
            fail(str(e))

    app.run(guarded, flags_parser=_parse_flags)
