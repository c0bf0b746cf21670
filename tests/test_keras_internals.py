"""Fails loudly when the installed Keras is not the one our private overrides are tested on."""

from rstg_tf.training import keras_internals


def test_installed_keras_is_the_tested_minor_version():
    assert keras_internals.installed_minor() == keras_internals.TESTED_KERAS, (
        f"Keras {keras_internals.installed_minor()} is installed, but checkpoints.py and "
        f"trainer.py override private Keras names tested on {keras_internals.TESTED_KERAS} "
        f"(rstg_tf/training/keras_internals.py): check them, then move the pin in setup.py "
        f"and TESTED_KERAS.")


def test_every_private_name_exists():
    assert keras_internals.missing_private_names() == []


def test_missing_names_are_reported(monkeypatch):
    monkeypatch.setitem(keras_internals.PRIVATE_NAMES, "keras.callbacks.ModelCheckpoint",
                        ("_save_model", "_no_such_private_name"))
    assert keras_internals.missing_private_names() == [
        "keras.callbacks.ModelCheckpoint._no_such_private_name"]
