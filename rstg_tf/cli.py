"""What every program (``train/``, ``export/``, ``benchmarks/``, ``experiments/``) shares:
``run(main)``, under which a user error is one line and exit code 2, never a traceback;
and ``program_environment()``, the environment defaults those programs run TensorFlow
with. Library code the programs call explicitly: importing it changes nothing.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable, Sequence

from absl import app, flags

from rstg_tf.errors import TrainingDiverged


def program_environment() -> None:
    """Sets the programs' TensorFlow defaults where the environment has none; it must run
    before TensorFlow loads, so each program package's ``__init__`` calls it first.

    ``TF_CPP_MIN_LOG_LEVEL=3``: no C++ start-up chatter. ``TF_ENABLE_ONEDNN_OPTS=1``:
    TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 or AMX
    features; on an AVX2-only CPU (such as this project's 2-core CI machine) it runs
    Eigen's, and oneDNN's make the backbone pretraining ~2x and an All-temp train step
    ~1.3x faster there (docs/performance.md). ``TF_ENABLE_ONEDNN_OPTS=0`` in the
    environment keeps Eigen's kernels.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)


def fail(message: str) -> None:
    """Prints ``error: message`` to stderr and exits with code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# tf.debugging.Assert's message for a corrupt shard (rstg_tf.data.pipeline).
_CORRUPT = re.compile(r"corrupt or truncated shard\]\s*\[([^\]]+)\]\s*\[read\]\s*\[(\d+)\]"
                      r"\s*\[of\]\s*\[(\d+)\]")


def corrupt_shard_message(error: BaseException):
    """One line for TensorFlow's error about a corrupt or truncated shard, else None."""
    match = _CORRUPT.search(str(error))
    if not match:
        return None
    path, read, expected = match.group(1), int(match.group(2)), int(match.group(3))
    return (f"corrupt or truncated shard {path}: record {read} (0-based) of {expected} is "
            f"unreadable, and TF's reader loses the rest of the file with it; re-make the "
            f"split (its command finishes the damaged shard), or pass --on_corrupt=skip.")


def require_paths(directories: Sequence[str] = (), files: Sequence[str] = (),
                  paths: Sequence[str] = (), flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Registers validators: each flag named in ``directories`` (``files``, ``paths``), when
    set, must name an existing directory (file, either). absl checks them as it parses the
    flags, so a wrong path is one error line (``run``) before a program loads TensorFlow."""

    def validator(kind: str, exists: Callable[[str], bool]):
        def check(value):
            if value is not None and not exists(value):
                raise flags.ValidationError(f"{kind} {value} does not exist.")
            return True
        return check

    for names, kind, exists in ((directories, "directory", os.path.isdir),
                                (files, "file", os.path.isfile),
                                (paths, "path", os.path.exists)):
        for name in names:
            flags.register_validator(name, validator(kind, exists), flag_values=flag_values)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:            # absl lists every failed validator, a line each
        first, *more = str(e).splitlines() or [""]
        fail(first + (f" (and {len(more)} more flag errors)" if more else ""))


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
        except TrainingDiverged as e:  # a run that went wrong, not a user error: exit 1
            if os.environ.get("RSTG_TRACEBACK"):
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except Exception as e:         # TensorFlow's error for a corrupt shard: the data's
            message = corrupt_shard_message(e)
            if message is None or os.environ.get("RSTG_TRACEBACK"):
                raise
            fail(message)

    app.run(guarded, flags_parser=_parse_flags)


def report_fit(history, config) -> None:
    """Prints a training program's last line: the final logs, and how to go on if the run
    stopped early (time limit)."""
    final = {k: round(v[-1], 4) for k, v in history.history.items() if v}
    print(f"done: {final}  (model_dir: {config.model_dir})")
    if history.epoch and history.epoch[-1] + 1 < config.epochs:
        print(f"stopped after epoch {history.epoch[-1] + 1} of {config.epochs}; run the same "
              "command again to continue from there.")
