"""Gradient clipping (--clip_grad_norm): the optimizer scales all gradients together to the
given global L2 norm; the flag reaches the compiled model of python -m train and of the
oracle program, and bad values are one line and exit 2."""

import numpy as np
import pytest
from absl import flags

from tests.helpers import ROOT, run_python


def _config(**fields):
    from rstg_tf.training.config import TrainConfig

    return TrainConfig(data_dir="/tmp/unused", model_dir="/tmp/unused", **fields)


def _sgd_update(clip):
    """The change of two variables after one plain SGD step (rate 1, no momentum) on
    gradients whose global norm is 13."""
    import keras
    from rstg_tf.training.fit_setup import make_optimizer

    optimizer = make_optimizer(_config(optimizer="sgd", learning_rate=1.0, momentum=0.0,
                                       clip_grad_norm=clip))
    variables = [keras.Variable(np.zeros(2, "float32")), keras.Variable(np.zeros(1, "float32"))]
    grads = [np.array([3.0, 4.0], "float32"), np.array([12.0], "float32")]
    optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    return np.concatenate([np.asarray(keras.ops.convert_to_numpy(v)) for v in variables])


def test_the_global_norm_is_clipped_and_the_direction_kept():
    unclipped = _sgd_update(None)
    np.testing.assert_allclose(unclipped, [-3.0, -4.0, -12.0], rtol=1e-6)
    clipped = _sgd_update(1.3)                     # the whole step scaled by 1.3 / 13
    np.testing.assert_allclose(clipped, [-0.3, -0.4, -1.2], rtol=1e-5)
    np.testing.assert_allclose(_sgd_update(100.0), unclipped, rtol=1e-6)   # under the cap


def test_the_flag_reaches_the_compiled_optimizer(monkeypatch):
    from rstg_tf.training.fit_setup import make_optimizer
    from train.train_flags import config_from_flags, define_flags

    monkeypatch.chdir(ROOT)
    fv = flags.FlagValues()
    define_flags(fv, required=False)
    fv(["prog", "--flagfile=configs/syncmnist3_rstg_all_temp.flags",
        "--flagfile=configs/budget_device.flags", "--model_dir=/tmp/unused",
        "--clip_grad_norm=2.5"])
    config = config_from_flags(fv)
    assert config.clip_grad_norm == 2.5
    assert make_optimizer(config).global_clipnorm == 2.5
    fv.unparse_flags()
    fv(["prog", "--flagfile=configs/syncmnist3_rstg_all_temp.flags", "--model_dir=/tmp/unused"])
    default = config_from_flags(fv)
    assert default.clip_grad_norm is None and make_optimizer(default).global_clipnorm is None


def test_the_oracle_fit_clips_too():
    import keras
    from experiments.sync_pair.feature_probe import fit_adam

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.arange(32) % 3
    history = fit_adam(model, (x, y), (x, y), epochs=1, steps_per_epoch=2, batch_size=8,
                       learning_rate=1e-3, top_k=(1,), clip_grad_norm=0.75)
    assert model.optimizer.global_clipnorm == 0.75
    assert len(history["loss"]) == 1


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_bad_values_are_one_line_and_exit_2(tmp_path, value):
    for args in (["-m", "train", "--flagfile=configs/syncmnist3_rstg_all_temp.flags",
                  f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'run'}"],
                 ["-m", "experiments.sync_pair.oracle", f"--output={tmp_path / 'o.json'}"]):
        result = run_python([*args, f"--clip_grad_norm={value}"])
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
        assert len(lines) == 1 and "clip_grad_norm must be" in lines[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())
