"""Training from in-memory videos: same videos as the shards, any backend, no TensorFlow."""

import csv
import json

import numpy as np
import pytest

from rstg_tf.data.syncmnist import SyncMnistConfig, SyncMnistGenerator
from rstg_tf.data.syncmnist_arrays import make_videos
from rstg_tf.training.array_inputs import ShuffledBatches
from tests.helpers import run_python, without_tensorflow
from tests.syncmnist_fixtures import fake_mnist, write_fake_npz


def test_videos_are_the_generators_whatever_the_workers():
    images, labels = fake_mnist(12, 0)
    config = SyncMnistConfig(num_digits=3)
    seen = []
    clips, y = make_videos(images, labels, "train", 1003, config, seed=5, progress=seen.append)
    assert clips.shape == (1003, 10, 64, 64, 1) and clips.dtype == np.uint8
    assert sum(seen) == 1003 and len(seen) == 3
    generator = SyncMnistGenerator(images, labels, "train", config, seed=5)
    for i in (0, 499, 500, 1002):
        video = generator.video(i)
        np.testing.assert_array_equal(clips[i, ..., 0], video.frames)
        assert y[i] == video.label
    clips2, y2, digits = make_videos(images, labels, "train", 1003, config, seed=5, workers=2,
                                     with_digits=True)
    np.testing.assert_array_equal(clips2, clips)
    np.testing.assert_array_equal(y2, y)
    assert digits.shape == (1003, 3)
    for i in (0, 500, 1002):
        np.testing.assert_array_equal(digits[i], generator.video(i).digits)
    with pytest.raises(ValueError, match="count must be in 1..1200"):
        make_videos(images, labels, "train", 1201, config)


def test_shuffled_batches_continue_across_epochs_and_cover_every_clip():
    x = np.arange(10)[:, None]
    batches = ShuffledBatches(x, np.arange(10), batch_size=4, steps=2, seed=1)
    seen = []
    for _ in range(5):                        # 5 epochs x 2 steps x 4 = 40 = 4 passes
        for i in range(len(batches)):
            xb, yb = batches[i]
            np.testing.assert_array_equal(xb[:, 0], yb)
            seen.extend(yb.tolist())
        batches.on_epoch_end()
    passes = [sorted(seen[k:k + 10]) for k in range(0, 40, 10)]
    assert all(p == list(range(10)) for p in passes)          # each pass a permutation
    assert seen[:10] != seen[10:20]                            # reshuffled per pass
    again = ShuffledBatches(x, np.arange(10), batch_size=4, steps=2, seed=1)
    np.testing.assert_array_equal(again[1][1], seen[4:8])      # deterministic
    with pytest.raises(ValueError, match="at least one batch"):
        ShuffledBatches(x[:3], np.arange(3), batch_size=4, steps=1)


def test_shuffled_batches_under_tensorflow_are_one_pipeline_of_every_epoch_without_autotune():
    """``fit_arguments`` under TF: the batches of epochs ``epoch..epochs-1`` in the order
    the PyDataset gives them, one iterator for the whole fit, no autotuning model."""
    x = np.arange(10, dtype=np.int32)[:, None]
    batches = ShuffledBatches(x, np.arange(10), batch_size=4, steps=2, seed=1, epoch=1)
    arguments = batches.fit_arguments(epochs=4)
    assert arguments["steps_per_epoch"] == 2 and arguments["shuffle"] is False
    data = arguments["x"]
    assert data.options().autotune.enabled is False
    read = [(xb[:, 0].tolist(), yb.tolist()) for xb, yb in data.as_numpy_iterator()]
    expected = [batches.batch(i, epoch) for epoch in (1, 2, 3) for i in (0, 1)]
    assert read == [(xb[:, 0].tolist(), yb.tolist()) for xb, yb in expected]
    fresh = ShuffledBatches(x, np.arange(10), batch_size=4, steps=2, seed=1)
    fresh.on_epoch_end()                      # the PyDataset, iterated by hand: epoch 1
    assert [yb.tolist() for _, yb in (fresh[0], fresh[1])] == [r[1] for r in read[:2]]


@pytest.mark.heavy
def test_table_in_memory_runs_under_jax_without_tensorflow(tmp_path):
    mnist = write_fake_npz(tmp_path / "mnist.npz")
    work_dir = tmp_path / "table"
    args = [*without_tensorflow("train.table"), "--in_memory", f"--mnist={mnist}",
            "--nomnist_check",
            "--rows=rstg_all_temp,mean_lstm", f"--work_dir={work_dir}", "--workers=2",
            "--time_budget_minutes=60",
            "--extra_flags=--epochs=2,--steps_per_epoch=2,--val_videos=8,--batch_size=4,"
            "--verbose=2,--num_iterations=2,--node_dim=8,--message_dim=8,--hidden=8,"
            "--steps_per_execution=2,--grad_norm_batches=2"]
    result = run_python(args, timeout=600, KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for row in ("rstg_all_temp", "mean_lstm"):
        report = json.load(open(work_dir / row / "result.json"))
        assert report["backend"] == "jax" and report["epochs_run"] == report["epochs"] == 2
        # jitted by default under JAX (Keras would run the step op by op otherwise)
        assert report["jit_compile"] is True and report["steps_per_execution"] == 2
        assert report["stopped_by_time_limit"] is False and report["train_minutes"] > 0
        limit = json.load(open(work_dir / row / "config.json"))["max_train_minutes"]
        assert 0 < limit < 0.85 * 60, limit
        assert report["num_videos"] == 40 and 0.0 <= report["top1"] <= report["top5"] <= 1.0
        assert 0 < report["sync_pair_videos"] <= 40 and 0.0 <= report["sync_pair_top1"] <= 1.0
        assert 0.0 <= report["present_pair_top1"] <= 1.0
        assert 1 <= report["predicted_classes"] <= 40 and 0 < report["top_class_share"] <= 1
        assert (work_dir / row / "best.keras").stat().st_size > 0
        assert len((work_dir / row / "log.csv").read_text().splitlines()) == 3
        # the gradient norms, differentiated by JAX between fit's jitted calls
        with open(work_dir / row / "log.csv") as f:
            logged = list(csv.DictReader(f))
        assert all(0 < float(r["grad_norm"]) <= float(r["grad_norm_max"]) for r in logged)
    # the quick budget's backbone, pretrained in this process and named by its recipe
    assert [p.name for p in work_dir.glob("backbone*")] == [
        "backbone32_60000x2_cosine0.002.weights.h5"]
    table = (work_dir / "table.md").read_text()
    assert "| rstg_all_temp |" in table and "98.9" in table
    assert "sync pair %" in table
    assert "- rstg_all_temp > mean_lstm (paper +21.9)" in table, table
    # finished rows are skipped: no pretraining, no videos, no training
    again = run_python(args, KERAS_BACKEND="jax")
    assert again.returncode == 0 and "generating" not in again.stdout, again.stderr[-2000:]
    # a row whose result.json is lost (killed after its last epoch) resumes from its backup
    # under JAX too: no epoch trained again, the same final weights
    before = json.load(open(work_dir / "mean_lstm" / "result.json"))
    (work_dir / "mean_lstm" / "result.json").unlink()
    again = run_python(args, KERAS_BACKEND="jax")
    assert again.returncode == 0, again.stderr[-2000:]
    after = json.load(open(work_dir / "mean_lstm" / "result.json"))
    assert after["resumed_from_epoch"] == after["epochs_run"] == 2
    assert after["loss"] == pytest.approx(before["loss"], abs=1e-6)
    bad = run_python([*args[:-1], "--extra_flags=--schedule=sideways",
                      f"--work_dir={tmp_path / 'bad'}"], KERAS_BACKEND="jax")
    assert bad.returncode == 2 and "row rstg_all_temp" in bad.stderr, bad.stderr[-2000:]
    bad = run_python([*args[:-1], "--extra_flags=--strategy=mirrored",
                      f"--work_dir={tmp_path / 'bad'}"], KERAS_BACKEND="jax")
    assert bad.returncode == 2 and "needs the tf.data trainer" in bad.stderr, bad.stderr[-2000:]


def test_in_memory_rows_honour_mixed_precision_and_refuse_distribution(tmp_path):
    from rstg_tf.training.config import TrainConfig
    from rstg_tf.training.in_memory import train_in_memory
    from tests.test_training import TINY

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, (8, 10, 64, 64, 1), dtype=np.uint8)
    labels = rng.integers(0, 46, 8)
    policies = []
    for mixed in (True, False):      # one process, two rows: the second is float32 again
        config = TrainConfig(data_dir="", model_dir=str(tmp_path / f"row{mixed}"), model=TINY,
                             batch_size=4, epochs=1, steps_per_epoch=2, verbose=0,
                             mixed_precision=mixed)
        result = train_in_memory(config, (clips, labels), (clips, labels), (clips, labels))
        policies.append(result["dtype_policy"])
        assert np.isfinite(result["loss"])
    assert policies == ["mixed_float16", "float32"]
    config = TrainConfig(data_dir="", model_dir=str(tmp_path / "mirrored"), model=TINY,
                         strategy="mirrored")
    with pytest.raises(ValueError, match="needs the tf.data trainer"):
        train_in_memory(config, (clips, labels), (clips, labels), (clips, labels))
    assert not (tmp_path / "mirrored").exists()          # refused before writing anything


@pytest.mark.parametrize("pipeline, schedule", [("tf.data", "plateau"), ("PyDataset", "plateau"),
                                                ("tf.data", "cosine"), ("tf.data", "constant")])
def test_in_memory_run_resumes_from_its_backup_on_the_same_batches(tmp_path, monkeypatch,
                                                                   pipeline, schedule):
    """Run again after an epoch (as a killed run would be), a 3-epoch run resumes with the
    weights, optimizer state, batch order, learning rate and schedule state (a plateau's
    counters, the best score behind best.keras) of an unbroken run; epoch e trains on the
    batches of epoch e, through tf.data (TensorFlow) or with Keras reading the PyDataset
    (other backends; counting its ``on_epoch_end`` alone was one ahead)."""
    import csv

    from rstg_tf.training import array_inputs
    from rstg_tf.training.config import TrainConfig
    from rstg_tf.training.in_memory import train_in_memory
    from tests.test_training import TINY

    read = []
    batch = ShuffledBatches.batch

    def logged(self, i, epoch=None):
        read.append((self.epoch if epoch is None else epoch, i))
        return batch(self, i, epoch)

    monkeypatch.setattr(ShuffledBatches, "batch", logged)
    if pipeline == "PyDataset":
        monkeypatch.setattr(array_inputs, "_tensorflow", lambda: False)

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, (12, 10, 64, 64, 1), dtype=np.uint8)
    labels = rng.integers(0, 46, 12)
    val = (clips[::-1][:8], rng.integers(0, 46, 8))      # never improves much: plateau cuts

    import keras

    from rstg_tf.training import in_memory

    class StopAfterFirstEpoch(keras.callbacks.Callback):      # as a kill would, after it
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    common = in_memory.common_callbacks

    def run(name, epochs):
        config = TrainConfig(data_dir="", model_dir=str(tmp_path / name),
                             model=TINY.replace(name="mean_lstm"), batch_size=4,
                             epochs=3, steps_per_epoch=2, verbose=0, optimizer="adam",
                             learning_rate=1e-2, lr_schedule=schedule, plateau_patience=0,
                             min_lr=1e-5, warmup_steps=1)
        stop = [StopAfterFirstEpoch()] if epochs == 1 else []
        monkeypatch.setattr(in_memory, "common_callbacks",
                            lambda *a, **k: [*common(*a, **k), *stop])
        return train_in_memory(config, (clips, labels), val, (clips[:8], labels[:8]))

    unbroken = run("unbroken", 3)
    assert read[-6:] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    first = run("resumed", 1)
    read.clear()
    resumed = run("resumed", 3)
    assert read[-4:] == [(1, 0), (1, 1), (2, 0), (2, 1)] and all(e >= 1 for e, _ in read)
    assert unbroken["resumed_from_epoch"] == first["resumed_from_epoch"] == 0
    assert first["epochs_run"] == 1
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_run"] == 3
    assert resumed["val_top1_curve"] == pytest.approx(unbroken["val_top1_curve"], abs=1e-6)
    assert resumed["learning_rate_curve"] == pytest.approx(unbroken["learning_rate_curve"],
                                                           rel=1e-6)
    assert len(resumed["learning_rate_curve"]) == 3          # both runs' epochs (log.csv)
    rates = unbroken["learning_rate_curve"]
    if schedule == "plateau":
        assert rates[-1] < rates[0], rates                  # the plateau did cut
    if schedule == "cosine":
        assert rates[0] > rates[-1] and unbroken["final_lr"] == pytest.approx(1e-5)
    assert resumed["final_lr"] == pytest.approx(unbroken["final_lr"], rel=1e-6)
    assert resumed["loss"] == pytest.approx(unbroken["loss"], abs=1e-5)
    assert resumed["val_top1"] == pytest.approx(unbroken["val_top1"], abs=1e-6)  # best.keras
    with open(tmp_path / "resumed" / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]
