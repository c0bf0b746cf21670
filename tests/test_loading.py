"""After a plain ``import rstg_tf``, Keras loads every kind of model the project saves."""

import textwrap

import pytest

from tests.helpers import run_python


def _save_models(tmp_path):
    from rstg_tf.config import PRESETS
    from rstg_tf.models import ModelConfig, build_model
    from rstg_tf.models.video_resnet import VideoModelConfig, build_video_model

    models = {
        "syncmnist": build_model(ModelConfig(num_frames=2, num_filters=8, rstg=PRESETS[
            "syncmnist"].replace(node_dim=8, message_dim=8))),
        "baseline": build_model(ModelConfig(name="non_local", num_frames=2, num_filters=8,
                                            hidden=16)),
        "smth": build_video_model(VideoModelConfig(
            num_classes=5, num_frames=2, frame_size=(64, 64), width=4, rstg_final=True,
            rstg_stages=("res3",), non_local_stages=("res4",),
            rstg=PRESETS["ssv1"].replace(node_dim=8, message_dim=8))),
    }
    for name, model in models.items():
        model.save(tmp_path / f"{name}.keras")
    return models


@pytest.mark.heavy
def test_plain_import_makes_saved_models_loadable(tmp_path):
    models = _save_models(tmp_path)
    code = textwrap.dedent(f"""
        import sys
        import rstg_tf                                  # nothing else of ours
        assert "keras" not in sys.modules               # NumPy-only until Keras is needed
        import keras
        for name in {sorted(models)!r}:
            model = keras.saving.load_model({str(tmp_path)!r} + "/" + name + ".keras")
            print(name, model.count_params())
    """)
    for env in ({}, {"KERAS_BACKEND": "jax"}):
        result = run_python(["-c", code], **env)
        assert result.returncode == 0, result.stderr[-3000:]
        for name, model in models.items():
            assert f"{name} {model.count_params()}" in result.stdout
    # Keras first, then the package: registered at once. Keras imported by one of our own
    # modules (here the block's, through the package's lazy name): registered once that
    # import is over (importing the rest during it would be circular).
    for first in ("import keras\nimport rstg_tf", "from rstg_tf import RSTG\nimport keras"):
        code = first + f"\nkeras.saving.load_model({str(tmp_path / 'smth.keras')!r})\n"
        result = run_python(["-c", code])
        assert result.returncode == 0, result.stderr[-3000:]


def test_numpy_parts_import_without_keras():
    # ... and the configs: a program checks its flags before TensorFlow loads
    code = ("import sys, rstg_tf.data.syncmnist, rstg_tf.graph, train.train_flags; "
            "from rstg_tf.training.config import TrainConfig; "
            "TrainConfig(data_dir='d', model_dir='m'); "
            "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]
