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
    with pytest.raises(ValueError, match="clip_grad_norm must be > 0"):
        gradient_norms(model, clips, labels, 2, clip_grad_norm=0.0)
    with pytest.raises(ValueError, match=r"one label per clip \(4\)"):
        loss_gradients(model, clips, labels[:3])


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
