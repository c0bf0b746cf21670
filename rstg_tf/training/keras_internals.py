"""The private Keras names this project relies on, and the Keras version they are tested on.

Two places reach into Keras' internals, because its public API cannot do what they need:

* ``checkpoints.py`` overrides ``ModelCheckpoint._save_model`` (it calls
  ``_get_file_path`` and ``_should_save_model``) and ``BackupAndRestore._load_model`` /
  ``_save_model`` (it reads ``_weights_path``, ``_current_epoch``, ``_last_batch_seen`` and
  sets ``model._initial_epoch``) to write files atomically and back up callback state;
* ``trainer.py`` replaces ``keras.src.backend.tensorflow.trainer.reduce_per_replica`` under
  MultiWorkerMirroredStrategy (keras-team/keras#20585).

So ``setup.py`` pins Keras to the minor version below, and ``tests/test_keras_internals.py``
fails, naming what changed, when the installed Keras is another minor version or lacks one of
these names. Moving to a new Keras: update the pin and ``TESTED_KERAS``, run the suite (the
resume and multi-worker tests exercise every name).
"""

from __future__ import annotations

import importlib
from typing import List

TESTED_KERAS = "3.15"
# object path -> the private attributes used on it.
PRIVATE_NAMES = {
    "keras.callbacks.ModelCheckpoint": ("_save_model", "_get_file_path",
                                        "_should_save_model"),
    "keras.callbacks.BackupAndRestore": ("_load_model", "_save_model"),
    "keras.src.backend.tensorflow.trainer": ("reduce_per_replica",
                                             "_collective_all_reduce_multi_worker"),
}


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ImportError:
        return getattr(importlib.import_module(module), name)


def missing_private_names() -> List[str]:
    """The private names of ``PRIVATE_NAMES`` the installed Keras lacks ([] when all are
    there); a BackupAndRestore instance's attributes are checked too."""
    import tempfile

    import keras

    missing = [f"{path}.{name}" for path, names in PRIVATE_NAMES.items()
               for name in names if not hasattr(_resolve(path), name)]
    with tempfile.TemporaryDirectory() as backup:
        callback = keras.callbacks.BackupAndRestore(backup)
        missing += [f"keras.callbacks.BackupAndRestore().{name}"
                    for name in ("_weights_path", "_current_epoch", "_last_batch_seen")
                    if not hasattr(callback, name)]
    return missing


def installed_minor() -> str:
    import keras
    return ".".join(keras.__version__.split(".")[:2])
