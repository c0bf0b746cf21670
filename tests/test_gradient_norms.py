"""The training loss' gradient norms: ``rstg_tf.training.gradient_norms`` and the second
table of ``python -m train.inspect``."""

import json

import keras
import numpy as np
import pytest

from rstg_tf.models import ModelConfig, build_model
from rstg_tf.training.gradient_norms import (gradient_norms, loss_gradients, markdown_table,
                                             weight_part)
from tests.helpers import run_python, tiny_config, without_tensorflow
from tests.syncmnist_fixtures import write_fake_npz

FRAMES = 4


def _model(seed=0, **rstg):
    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(num_frames=FRAMES, num_filters=4, hidden=8,
                                   num_classes=5, rstg=tiny_config(**rstg)))


def _batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, FRAMES, 64, 64, 1), np.uint8),
            rng.integers(0, 5, n))


def _loss(model, clips, labels):
    logits = model(clips, training=True)
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(
        labels, keras.ops.convert_to_numpy(logits), from_logits=True)))


@pytest.fixture
def float64_weights():
    # float32 is too coarse for a finite difference through this model (layer norms over a
    # few mostly-zero ReLU channels, ReLU kinks): float64 weights make it a derivative
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(policy)


def test_gradients_are_the_loss_derivative_and_leave_the_model_as_it_was(float64_weights):
    model, (clips, labels) = _model(schedule="all_temp", norm="layer"), _batch()
    assert model.trainable_variables[0].dtype == "float64"
    state = [np.array(v) for v in model.non_trainable_variables]
    grads = loss_gradients(model, clips, labels)
    # the batch norms' moving statistics are put back after the training-mode call
    for before, v in zip(state, model.non_trainable_variables):
        np.testing.assert_array_equal(before, np.array(v))
    # a central difference along a random direction of every weight at once
    rng = np.random.default_rng(1)
    weights = [np.array(v) for v in model.trainable_variables]
    direction = [rng.standard_normal(w.shape) for w in weights]
    eps = 1e-5

    def loss_at(sign):
        for v, w, d in zip(model.trainable_variables, weights, direction):
            v.assign(w + sign * eps * d)
        return _loss(model, clips, labels)

    numeric = (loss_at(1) - loss_at(-1)) / (2 * eps)
    analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
    assert numeric == pytest.approx(analytic, rel=1e-2)
    assert abs(analytic) > 1.0           # a direction the loss does move along


def test_parts_add_up_to_the_global_norm_and_the_clip_counts_batches():
    model, (clips, labels) = _model(schedule="all_temp"), _batch(6)
    r = gradient_norms(model, clips, labels, batch_size=2)
    assert r["batches"] == 3 and len(r["global"]) == 3 and r["clipped_share"] is None
    assert list(r["parts"]) == ["backbone", "rstg/input_bn", "rstg/space", "rstg/time_intern",
                                "rstg/time_final", "rstg/project_in", "classifier"]
    for b, total in enumerate(r["global"]):
        squares = sum(norms[b] ** 2 for norms in r["parts"].values())
        assert total == pytest.approx(np.sqrt(squares), rel=1e-9) and total > 0
    # the first batch alone, straight from the gradients
    grads = loss_gradients(model, clips[:2], labels[:2])
    assert r["global"][0] == pytest.approx(
        np.sqrt(sum(np.sum(np.square(g.astype(np.float64))) for g in grads)), rel=1e-6)
    # a clip between the smallest and the largest norm rescales some batches, not all
    low, high = min(r["global"]), max(r["global"])
    assert low < high
    middle = gradient_norms(model, clips, labels, 2, clip_grad_norm=(low + high) / 2)
    assert 0 < middle["clipped_share"] < 1
    assert gradient_norms(model, clips, labels, 2, clip_grad_norm=high * 2)["clipped_share"] == 0
    # a leftover clip beyond the whole batches is not used
    assert gradient_norms(model, clips[:5], labels[:5], 2)["batches"] == 2
    table = markdown_table({"all_temp": middle}).splitlines()
    assert table[0].startswith("| row | batches | grad norm median | grad norm max | "
                               "backbone median |") and table[0].endswith("clipped share |")
    assert table[2].startswith("| all_temp | 3 | ")


def test_weight_parts():
    assert weight_part("backbone/conv0/kernel") == "backbone"
    assert weight_part("rstg/space/send2/kernel") == "rstg/space"
    assert weight_part("rstg/time_final/bias") == "rstg/time_final"
    assert weight_part("classifier/kernel") == "classifier"
    assert weight_part("head/lstm/kernel", block_names=("head",)) == "head/lstm"


def test_bad_arguments_name_the_problem():
    model, (clips, labels) = _model(schedule="time_only"), _batch(4)
    with pytest.raises(ValueError, match=r"batch_size must be in 1\.\.4"):
        gradient_norms(model, clips, labels, batch_size=5)
    with pytest.raises(ValueError, match="clip_grad_norm must be a finite number > 0"):
        gradient_norms(model, clips, labels, 2, clip_grad_norm=0.0)
    with pytest.raises(ValueError, match="clip_grad_norm must be a finite number > 0"):
        gradient_norms(model, clips, labels, 2, clip_grad_norm=float("inf"))
    with pytest.raises(ValueError, match=r"one label per clip \(4\)"):
        loss_gradients(model, clips, labels[:3])
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.4 \(the model's classes\); "
                                         r"got 0\.\.5"):
        loss_gradients(model, clips, np.array([0, 1, 2, 5]))


@pytest.mark.heavy
def test_the_program_gives_the_same_norms_under_tensorflow_and_jax(tmp_path):
    npz = write_fake_npz(tmp_path / "mnist.npz")
    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(0)
    build_model(ModelConfig(num_frames=FRAMES, num_filters=4, hidden=8, num_classes=46,
                            rstg=tiny_config(schedule="all_temp", norm="layer"))
                ).save(run / "last.keras")
    args = [f"--model_dir={run}", "--checkpoint=last", "--num_clips=2", "--grad_batches=2",
            "--batch_size=3", "--clip_grad_norm=1", f"--mnist={npz}"]
    reports = {}
    for backend in ("tensorflow", "jax"):
        out = tmp_path / f"{backend}.json"
        program = ["-m", "train.inspect"] if backend == "tensorflow" else without_tensorflow(
            "train.inspect")
        result = run_python([*program, *args, f"--output={out}"], KERAS_BACKEND=backend)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "| run (last) | 2 | " in result.stdout, result.stdout
        assert "on 2 batch(es) of 3 training clips" in result.stdout
        reports[backend] = json.loads(out.read_text())["gradients"]["run (last)"]
    tf_norms, jax_norms = reports["tensorflow"], reports["jax"]
    assert tf_norms["batches"] == 2 and tf_norms["clip_grad_norm"] == 1.0
    np.testing.assert_allclose(jax_norms["global"], tf_norms["global"], rtol=1e-4)
    for part, norms in tf_norms["parts"].items():
        np.testing.assert_allclose(jax_norms["parts"][part], norms, rtol=1e-4, atol=1e-7)


def _log_rows(model_dir):
    import csv

    with open(model_dir / "log.csv") as f:
        return list(csv.DictReader(f))


def test_logging_the_norms_leaves_the_run_as_it_was_and_measures_its_model(tmp_path):
    """An in-memory run with ``grad_norm_batches`` trains exactly as one without (the
    dropout's random state and the batch norms' statistics are put back) and logs, per
    epoch, the norms of the model as it is at that epoch's end."""
    from rstg_tf.training.config import TrainConfig
    from rstg_tf.training.evaluation import load_trained_model
    from rstg_tf.training.in_memory import train_in_memory
    from tests.test_training import TINY

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, (12, 10, 64, 64, 1), dtype=np.uint8)
    labels = rng.integers(0, 46, 12)
    split = (clips[:8], labels[:8])

    def run(name, batches, dropout=0.5):
        config = TrainConfig(data_dir="", model_dir=str(tmp_path / name),
                             model=TINY.replace(dropout=dropout), batch_size=4, epochs=2,
                             steps_per_epoch=2, verbose=0, optimizer="adam",
                             learning_rate=1e-2, lr_schedule="constant",
                             grad_norm_batches=batches)
        return train_in_memory(config, (clips, labels), split, split)

    plain, logged = run("plain", 0), run("logged", 2)
    assert logged["loss"] == plain["loss"] and logged["val_top1"] == plain["val_top1"]
    for a, b in zip(load_trained_model(str(tmp_path / "plain"), "last").weights,
                    load_trained_model(str(tmp_path / "logged"), "last").weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    rows = _log_rows(tmp_path / "logged")
    assert "grad_norm" not in _log_rows(tmp_path / "plain")[0]
    assert len(rows) == 2
    for row in rows:
        assert 0 < float(row["grad_norm"]) <= float(row["grad_norm_max"]), row
    # the last epoch's figure is last.keras' norm on the first 2 x 4 training clips
    # (without dropout, whose masks follow the random state, which last.keras does not keep)
    run("no_dropout", 2, dropout=0.0)
    rows = _log_rows(tmp_path / "no_dropout")
    again = gradient_norms(load_trained_model(str(tmp_path / "no_dropout"), "last"),
                           clips[:8], labels[:8], 4)
    assert float(rows[-1]["grad_norm"]) == pytest.approx(again["global_median"], rel=1e-5)
    assert float(rows[-1]["grad_norm_max"]) == pytest.approx(again["global_max"], rel=1e-5)


@pytest.mark.heavy
def test_the_shard_trainer_and_the_oracle_log_the_norms_too(tmp_path):
    from rstg_tf.data import syncmnist_records
    from rstg_tf.data.syncmnist import SyncMnistConfig
    from rstg_tf.training.evaluation import load_trained_model

    npz = write_fake_npz(tmp_path / "mnist.npz")
    data = tmp_path / "sync3"
    for split, count in (("train", 16), ("val", 8)):
        syncmnist_records.make_split(str(data), split, SyncMnistConfig(num_digits=3),
                                     num_videos=count, num_shards=2, mnist_source=npz,
                                     expected_counts=None, verbose=False)

    def train(name, batches):
        result = run_python(["-m", "train", f"--data_dir={data}",
                             f"--model_dir={tmp_path / name}", "--num_filters=4", "--hidden=8",
                             "--node_dim=8", "--message_dim=6", "--num_iterations=2",
                             "--batch_size=4", "--epochs=2", "--steps_per_epoch=2",
                             f"--grad_norm_batches={batches}", "--verbose=0",
                             "--lr_schedule=constant", "--optimizer=adam",
                             "--learning_rate=1e-2"])
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return _log_rows(tmp_path / name)

    # the probe reads a pipeline of its own: the run's batches (shuffled files and clips)
    # and so its losses and weights are those of a run without it
    plain, rows = train("plain", 0), train("run", 3)
    assert [r["loss"] for r in rows] == [r["loss"] for r in plain]
    assert [r["val_loss"] for r in rows] == [r["val_loss"] for r in plain]
    for a, b in zip(load_trained_model(str(tmp_path / "plain"), "last").weights,
                    load_trained_model(str(tmp_path / "run"), "last").weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    assert len(rows) == 2 and all(0 < float(r["grad_norm"]) <= float(r["grad_norm_max"])
                                  for r in rows), rows
    from rstg_tf.training import curves

    x, y = curves.chart_series([curves.read_run(str(tmp_path / "run"))], "grad_norm")["run"]
    np.testing.assert_allclose(y, [float(r["grad_norm"]) for r in rows])
    out = tmp_path / "oracle.json"
    result = run_python(["-m", "experiments.sync_pair.oracle", "--digits=3",
                         "--schedules=time_only", "--train_videos=32", "--val_videos=8",
                         "--test_videos=8", "--epochs=2", "--steps_per_epoch=2",
                         "--batch_size=4", "--node_dim=8", "--message_dim=8",
                         "--grad_norm_batches=2", "--verbose=0", f"--mnist={npz}",
                         f"--output={out}"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    history = report["schedules"]["time_only"]
    assert report["grad_norm_batches"] == 2 and len(history["grad_norm"]) == 2
    assert all(0 < g <= m for g, m in zip(history["grad_norm"], history["grad_norm_max"]))


@pytest.mark.parametrize("args, message", [
    (["-m", "train", "--data_dir=x", "--model_dir=y", "--grad_norm_batches=17"],
     "--grad_norm_batches"),
    (["-m", "experiments.sync_pair.oracle", "--output=x.json", "--grad_norm_batches=17"],
     "--grad_norm_batches"),
])
def test_too_many_logged_batches_is_one_error_line(args, message):
    from rstg_tf.training.config import TrainConfig

    with pytest.raises(ValueError, match="grad_norm_batches must be in 0..16; got -1"):
        TrainConfig(data_dir="x", model_dir="y", grad_norm_batches=-1)
    # a distributed run's variables are not readable outside its replicas
    with pytest.raises(ValueError, match="grad_norm_batches needs strategy 'default' "
                                         "\\(got 'mirrored'\\)"):
        TrainConfig(data_dir="x", model_dir="y", grad_norm_batches=2, strategy="mirrored")
    result = run_python(args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_resumed_log_keeps_its_columns(tmp_path):
    """A run resumed with more (or fewer) logged keys appends under log.csv's own header:
    Keras' CSVLogger would shift every value after the new keys one column per key."""
    import types

    import keras

    from rstg_tf.training.checkpoints import AppendingCSVLogger
    from rstg_tf.training.run_log import read_log

    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,val_top1\n0,0.9,0.3\n")
    logs = {"grad_norm": 7.0, "grad_norm_max": 8.0, "loss": 0.8, "val_top1": 0.4}
    keras_logger = keras.callbacks.CSVLogger(str(tmp_path / "keras.csv"), append=True)
    for logger in (AppendingCSVLogger(str(path)), keras_logger):
        (tmp_path / "keras.csv").write_text(path.read_text().splitlines()[0] + "\n"
                                            "0,0.9,0.3\n")
        logger.set_model(types.SimpleNamespace(stop_training=False))
        logger.on_train_begin()
        logger.on_epoch_end(1, dict(logs))
        logger.on_train_end()
    assert read_log(str(tmp_path)) == {"epoch": [0.0, 1.0], "loss": [0.9, 0.8],
                                       "val_top1": [0.3, 0.4]}
    # what Keras alone writes: the new keys first, under the old header's names
    assert (tmp_path / "keras.csv").read_text().splitlines()[-1].startswith("1,7.0,8.0")
    # a key the logs lack is NA
    fewer = AppendingCSVLogger(str(path))
    fewer.set_model(types.SimpleNamespace(stop_training=False))
    fewer.on_train_begin()
    fewer.on_epoch_end(2, {"loss": 0.7})
    fewer.on_train_end()
    assert path.read_text().splitlines()[-1] == "2,0.7,NA"
