"""Checkpoint callbacks: a kill in the middle of a save never leaves an unreadable run."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from rstg_tf.training.checkpoints import AtomicBackupAndRestore, AtomicModelCheckpoint

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = (X.sum(axis=1) > 0).astype("int64")


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing catches it on the way out."""


class _EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def _fit(model, epochs, *callbacks):
    counter = _EpochCounter()
    model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, callbacks=[*callbacks, counter])
    return counter.epochs


def _die_half_way_through_next_save(model, monkeypatch):
    """The next save writes half a file, then the process 'dies'."""
    def save_weights(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        raise _Killed()
    monkeypatch.setattr(model, "save_weights", save_weights)


def test_backup_killed_mid_save_resumes_from_previous_backup(tmp_path, monkeypatch):
    backup = str(tmp_path / "backup")
    model = _model()
    assert _fit(model, 2, AtomicBackupAndRestore(backup, delete_checkpoint=False)) == [0, 1]
    saved = [w.numpy().copy() for w in model.weights]
    files = sorted(os.listdir(backup))
    assert files == ["backup-e2-b0.weights.h5", "training_metadata.json"]

    _die_half_way_through_next_save(model, monkeypatch)
    with pytest.raises(_Killed):
        _fit(model, 4, AtomicBackupAndRestore(backup, delete_checkpoint=False))
    assert sorted(os.listdir(backup)) == files      # the half-written file was never renamed
    monkeypatch.undo()

    # A kill that skips all cleanup leaves a temporary file: it is ignored and removed.
    with open(os.path.join(backup, ".tmp-abc-backup-e3-b0.weights.h5"), "wb") as f:
        f.write(b"truncated")
    fresh = _model()
    restore = AtomicBackupAndRestore(backup, delete_checkpoint=False)
    restore.set_model(fresh)
    restore.on_train_begin()
    assert fresh._initial_epoch == 2
    for got, want in zip(fresh.weights, saved):
        np.testing.assert_array_equal(got.numpy(), want)
    assert sorted(os.listdir(backup)) == files
    assert _fit(_model(), 4, AtomicBackupAndRestore(backup, delete_checkpoint=False)) == [2, 3]
    assert json.load(open(os.path.join(backup, "training_metadata.json")))["epoch"] == 4
    assert sorted(os.listdir(backup)) == ["backup-e4-b0.weights.h5", "training_metadata.json"]


@pytest.mark.parametrize("damage, error, message", [
    ("weights", OSError, "backup-e1-b0.weights.h5 are unreadable"),
    ("missing", FileNotFoundError, "are missing"),
    ("metadata", ValueError, "training_metadata.json is unreadable"),
])
def test_damaged_backup_is_named(tmp_path, damage, error, message):
    backup = str(tmp_path / "backup")
    _fit(_model(), 1, AtomicBackupAndRestore(backup, delete_checkpoint=False))
    weights = os.path.join(backup, "backup-e1-b0.weights.h5")
    if damage == "weights":
        with open(weights, "r+b") as f:
            f.truncate(200)
    elif damage == "missing":
        os.remove(weights)
    else:
        with open(os.path.join(backup, "training_metadata.json"), "w") as f:
            f.write('{"epoch": ')
    with pytest.raises(error, match=message) as info:
        _fit(_model(), 2, AtomicBackupAndRestore(backup, delete_checkpoint=False))
    assert "delete" in str(info.value) and backup in str(info.value)


def test_keras_backup_layout_is_still_restored(tmp_path):
    backup = str(tmp_path / "backup")
    model = _model()
    _fit(model, 3, keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False))
    assert _fit(_model(), 5, AtomicBackupAndRestore(backup, delete_checkpoint=False)) == [3, 4]


def test_model_checkpoint_killed_mid_save_keeps_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "last.keras")
    model = _model()
    _fit(model, 1, AtomicModelCheckpoint(path))
    before = keras.models.load_model(path).predict(X, verbose=0)

    def save(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04" + b"\0" * 50)
        raise _Killed()
    monkeypatch.setattr(model, "save", save)
    with pytest.raises(_Killed):
        _fit(model, 1, AtomicModelCheckpoint(path))
    assert os.listdir(tmp_path) == ["last.keras"]
    np.testing.assert_array_equal(keras.models.load_model(path).predict(X, verbose=0), before)


def test_best_only_checkpoint_tracks_the_monitor(tmp_path):
    path = str(tmp_path / "best.keras")
    callback = AtomicModelCheckpoint(path, monitor="loss", mode="min", save_best_only=True)
    _fit(_model(), 3, callback)
    assert os.path.exists(path) and np.isfinite(callback.best)


def test_a_backup_resumes_only_with_its_own_settings(tmp_path):
    from rstg_tf.models import ModelConfig
    from rstg_tf.training.config import TrainConfig, check_resume

    model_dir = tmp_path / "run"
    config = TrainConfig(data_dir="data/a", model_dir=str(model_dir),
                         model=ModelConfig(num_filters=4, hidden=8), epochs=3)
    check_resume(config)                                       # nothing there yet
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(config.to_dict()))
    check_resume(dataclasses.replace(config, learning_rate=1.0))   # no backup: a new run
    (model_dir / "backup").mkdir()
    (model_dir / "backup" / "training_metadata.json").write_text('{"epoch": 1}')
    # how long, how fast and from where may change on resumption
    check_resume(dataclasses.replace(config, epochs=9, data_dir="elsewhere", verbose=2,
                                     max_train_minutes=5.0, steps_per_execution=3))
    with pytest.raises(ValueError) as e:
        check_resume(dataclasses.replace(
            config, learning_rate=1.0,
            model=dataclasses.replace(config.model, hidden=16)))
    assert "other settings" in str(e.value) and "model.hidden: 8 -> 16" in str(e.value)
    assert "learning_rate: 0.0001 -> 1.0" in str(e.value)
    (model_dir / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="config.json is unreadable"):
        check_resume(config)


class _PoisonAt(keras.callbacks.Callback):
    """Makes a weight NaN when epoch ``epoch`` (0-based) begins: its loss is NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_a_diverged_run_keeps_its_last_good_checkpoints_and_says_where(tmp_path):
    from rstg_tf.errors import TrainingDiverged
    from rstg_tf.training.checkpoints import StopOnNaN, check_diverged

    model = _model()
    stop = StopOnNaN()
    callbacks = [stop, AtomicModelCheckpoint(str(tmp_path / "last.keras")),
                 AtomicBackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)]
    model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[_PoisonAt(1), *callbacks])
    assert stop.stopped_at == (2, 1)
    saved = keras.saving.load_model(tmp_path / "last.keras")
    assert all(np.isfinite(w).all() for w in saved.get_weights())
    metadata = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1                         # epoch 1's backup, not epoch 2's
    with pytest.raises(TrainingDiverged, match="epoch 2, batch 1"):
        check_diverged(callbacks, str(tmp_path))
    check_diverged([StopOnNaN()], str(tmp_path))          # not stopped: no error


def test_diverged_training_exits_1_with_one_line(tmp_path):
    from tests.helpers import run_python

    code = ("from rstg_tf import cli\n"
            "from rstg_tf.errors import TrainingDiverged\n"
            "def main(argv):\n"
            "    raise TrainingDiverged('training stopped: the loss became NaN')\n"
            "cli.run(main)\n")
    result = run_python(["-c", code])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == \
        "error: training stopped: the loss became NaN"
