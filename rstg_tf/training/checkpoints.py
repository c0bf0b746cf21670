"""Checkpoint callbacks that survive a kill at any instant.

Keras' ``ModelCheckpoint`` and ``BackupAndRestore`` write their files in place: a SIGKILL
(pre-emption, OOM killer) during a save leaves a truncated HDF5 file, and the restarted
run dies on ``OSError: Unable to synchronously open file``. These subclasses keep Keras'
behaviour and only change how files are written:

* ``AtomicModelCheckpoint`` writes ``best.keras`` / ``last.keras`` under a temporary name
  and renames it into place, so the previous checkpoint stays whole until the new one is.
* ``AtomicBackupAndRestore`` writes each backup's weights to a new file named by its
  epoch and batch, then atomically rewrites ``training_metadata.json`` to point at it
  (one rename commits weights and epoch together), then deletes older weight files. A
  backup file that is unreadable anyway (disk fault, hand edits) is reported by name.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
from typing import Optional

import keras

from rstg_tf.data.atomic import atomic_path, atomic_write_text
from rstg_tf.errors import TrainingDiverged

METADATA = "training_metadata.json"
CHECKPOINTS = ("best", "last")
# What a resumed run needs of ReduceLROnPlateau and ModelCheckpoint(save_best_only=True).
STATE_ATTRIBUTES = ("best", "wait", "cooldown_counter")


def _plain(value):
    """A callback counter as JSON: numbers (NumPy's too) as floats or ints."""
    if value is None or isinstance(value, (bool, int)):
        return value
    return float(value)


def finite_loss(logs) -> bool:
    """False when an epoch's logs carry a NaN or infinite training loss (a diverged epoch,
    whose weights must not replace a good checkpoint)."""
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' ``TerminateOnNaN`` that remembers where it stopped (``stopped_at``: epoch and
    batch, or None), so a program can exit non-zero and say so."""

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_at is None and not finite_loss(logs):
            self.stopped_at = (self._epoch + 1, batch + 1)


def check_diverged(callbacks, work_dir: str) -> None:
    """Raises ``TrainingDiverged`` naming the epoch and batch where a ``StopOnNaN`` among
    ``callbacks`` stopped the run."""
    for callback in callbacks:
        if isinstance(callback, StopOnNaN) and callback.stopped_at:
            epoch, batch = callback.stopped_at
            raise TrainingDiverged(
                f"training stopped: the loss became NaN or infinite at epoch {epoch}, batch "
                f"{batch}; {work_dir} keeps the last good epoch's best.keras, last.keras and "
                f"backup (try a lower --learning_rate).")


def backup_dir(work_dir: str) -> str:
    """Where a run in ``work_dir`` keeps its ``AtomicBackupAndRestore`` backup."""
    return os.path.join(work_dir, "backup")


def read_backup_metadata(backup_dir: str) -> Optional[dict]:
    """The ``training_metadata.json`` of a backup directory (``{"epoch", ...}``: epochs
    finished), or None where there is no backup yet.

    Raises:
      ValueError: the file exists but is not a backup's metadata.
    """
    path = os.path.join(backup_dir, METADATA)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            metadata = json.load(f)
        metadata["epoch"] = int(metadata["epoch"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"backup metadata {path} is unreadable ({e}); delete "
                         f"{backup_dir} to start the run afresh") from e
    return metadata


def epochs_backed_up(model_dir: str) -> int:
    """Epochs finished by the run whose backup is in ``model_dir`` (0 without one): where a
    resumed fit starts."""
    metadata = read_backup_metadata(backup_dir(model_dir))
    return metadata["epoch"] if metadata else 0


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``keras.callbacks.ModelCheckpoint`` whose files appear whole or not at all."""

    def _save_model(self, epoch, batch, logs):
        if not finite_loss(logs):
            return                        # a diverged epoch: keep the last good file
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        with atomic_path(filepath) as tmp:
            if self.save_weights_only:
                self.model.save_weights(tmp, overwrite=True)
            else:
                self.model.save(tmp, overwrite=True)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saved {filepath}")


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` with crash-consistent backups.

    Layout of ``backup_dir``: ``training_metadata.json`` (``{"epoch", "batch",
    "weights", "callbacks"}``) and the one ``backup-e{epoch}-b{batch}.weights.h5`` it
    names. A directory written by Keras' own callback (``latest.weights.h5``) is still
    restored.

    ``stateful``: {name: callback} whose progress counters (``STATE_ATTRIBUTES``: a
    plateau's best loss, wait and cooldown, a best-only checkpoint's best score) are
    backed up with the weights and restored on resume. Put this callback after them in
    ``fit``'s list: it then saves what they decided at an epoch's end, and restores their
    counters after their own ``on_train_begin`` has reset them.
    """

    def __init__(self, backup_dir, stateful: Optional[dict] = None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.stateful = dict(stateful or {})

    def on_train_begin(self, logs=None):
        # Temporary files are left only by a run killed mid-save; they are never read.
        for stale in glob.glob(os.path.join(self.backup_dir, ".tmp-*")):
            os.remove(stale)
        self._load_model()

    def on_epoch_end(self, epoch, logs=None):
        if finite_loss(logs):             # a diverged epoch: keep the last good backup
            super().on_epoch_end(epoch, logs)

    def _metadata_path(self) -> str:
        return os.path.join(self.backup_dir, METADATA)

    def _load_model(self):
        if not self.model.built:
            raise ValueError("AtomicBackupAndRestore needs a built model before fit().")
        metadata = read_backup_metadata(self.backup_dir)
        if metadata is None:
            return
        path, epoch = self._metadata_path(), metadata["epoch"]
        weights = os.path.join(self.backup_dir,
                               metadata.get("weights", os.path.basename(self._weights_path)))
        if not os.path.exists(weights):
            raise FileNotFoundError(f"backup weights {weights} named by {path} are missing; "
                                    f"delete {self.backup_dir} to start the run afresh")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(weights)
        except OSError as e:
            raise OSError(f"backup weights {weights} are unreadable ({e}); delete "
                          f"{self.backup_dir} to start the run afresh") from e
        self.model._initial_epoch = epoch  # pylint: disable=protected-access
        for name, values in metadata.get("callbacks", {}).items():
            if name in self.stateful:
                for attribute, value in values.items():
                    setattr(self.stateful[name], attribute, value)

    def _save_model(self):
        name = f"backup-e{self._current_epoch}-b{self._last_batch_seen}.weights.h5"
        weights = os.path.join(self.backup_dir, name)
        with atomic_path(weights) as tmp:
            self.model.save_weights(tmp, overwrite=True)
        states = {key: {a: _plain(getattr(callback, a)) for a in STATE_ATTRIBUTES
                        if hasattr(callback, a)} for key, callback in self.stateful.items()}
        atomic_write_text(self._metadata_path(), json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen,
             "weights": name, "callbacks": states}))
        for old in glob.glob(os.path.join(self.backup_dir, "*.weights.h5")):  # not .tmp-*
            if os.path.basename(old) != name:
                os.remove(old)


class AppendingCSVLogger(keras.callbacks.CSVLogger):
    """Keras' ``CSVLogger(append=True)`` that keeps the columns of the ``log.csv`` it
    appends to. Keras takes the columns from the first epoch's logs of each ``fit`` and
    writes no header when the file has one, so a resumed run whose logs gained or lost a
    key (``--grad_norm_batches`` turned on, say) would write its rows shifted under the
    old header. Here a resumed run's rows follow the file's header: a key the header lacks
    is not written, one the logs lack is ``NA``."""

    def __init__(self, filename: str):
        super().__init__(filename, append=True)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f), None)
            if header and header[0] == "epoch":
                self.keys = header[1:]


def load_trained_model(model_dir: str, checkpoint: str = "best") -> keras.Model:
    """Loads ``best.keras`` or ``last.keras`` from a model directory, for inference (no
    TensorFlow needed: also under JAX)."""
    from rstg_tf import register_keras_objects

    register_keras_objects()
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}; got {checkpoint!r}.")
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model directory {model_dir} does not exist.")
    path = os.path.join(model_dir, f"{checkpoint}.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; train first (python -m train "
                                f"--model_dir={model_dir} ...).")
    return keras.models.load_model(path, compile=False)
