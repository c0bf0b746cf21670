"""Models registry, backbone pretraining, training with model.fit (resume after a kill,
bad flags), evaluation outputs, and the two-worker run — at tiny sizes."""

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import shutil
import sys
import time

import keras
import numpy as np
import pytest

from rstg_tf.config import RSTGConfig
from rstg_tf.data import syncmnist_records
from rstg_tf.data.mnist import load_mnist
from rstg_tf.data.syncmnist import SyncMnistConfig
from rstg_tf.models import MODELS, ModelConfig, build_model
from rstg_tf.training.pretrain import (PretrainRecipe, load_backbone_weights,
                                       pretrain_backbone)
from rstg_tf.training.config import steps_per_epoch
from rstg_tf.training.fit_setup import jit_compile
from rstg_tf.training.trainer import TrainConfig, train
from tests.helpers import ROOT, run_python
from tests.syncmnist_fixtures import write_fake_npz

TINY = ModelConfig(num_filters=4, hidden=8, rstg=RSTGConfig(node_dim=8, message_dim=6,
                                                            num_iterations=2))
TINY_FLAGS = ["--num_filters=4", "--hidden=8", "--node_dim=8", "--message_dim=6",
              "--num_iterations=2", "--batch_size=4", "--val_videos=8", "--verbose=2"]


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory):
    return write_fake_npz(tmp_path_factory.mktemp("mnist") / "mnist.npz")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, mnist_npz):
    out = str(tmp_path_factory.mktemp("sync3"))
    for split, count in (("train", 32), ("val", 16), ("test", 16)):
        syncmnist_records.make_split(out, split, SyncMnistConfig(num_digits=3),
                                     num_videos=count, num_shards=2, mnist_source=mnist_npz,
                                     expected_counts=None, verbose=False)
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registry_entry_builds_and_trains_one_step(name):
    config = TINY.replace(name=name)
    model = build_model(config)
    clips = np.random.default_rng(0).integers(0, 256, (2, 10, 64, 64, 1)).astype("uint8")
    logits = model(clips)
    assert logits.shape == (2, 46) and model.get_layer("backbone").output.shape[2:4] == (6, 6)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    loss = model.train_on_batch(clips, np.array([3, 45]))
    assert np.isfinite(loss) and model.count_params() > 0


def test_model_config_round_trip_and_errors(tmp_path):
    config = TINY.replace(name="non_local", dropout=0.3)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown model"):
        ModelConfig(name="transformer")
    # the light config (no Keras) knows the registry's names, and a registered head's
    from rstg_tf.config import MODEL_NAMES
    from rstg_tf.models import MODELS, register

    assert set(MODEL_NAMES) == set(MODELS)
    try:
        register("extra_head")(MODELS["mean_lstm"])
        assert ModelConfig(name="extra_head").name == "extra_head"
    finally:
        MODELS.pop("extra_head")
        MODEL_NAMES.remove("extra_head")
    model = build_model(TINY)
    path = str(tmp_path / "m.keras")
    model.save(path)
    clips = np.random.default_rng(1).integers(0, 256, (1, 10, 64, 64, 1)).astype("uint8")
    np.testing.assert_allclose(keras.models.load_model(path)(clips), model(clips), atol=1e-5)


def test_baseline_heads_see_batch_normalised_features(tmp_path):
    """Baselines normalise the backbone features (raw scale saturated Conv+LSTM's LSTM): in
    training mode the head's output does not depend on the features' scale; RSTG has its
    own input batch norm and no feature_bn; the layer round-trips through .keras."""
    config = TINY.replace(name="conv_lstm")
    model = build_model(config)
    bn, head = model.get_layer("feature_bn"), model.get_layer("conv_lstm")
    clips = np.random.default_rng(2).integers(0, 256, (4, 10, 64, 64, 1)).astype("uint8")
    # Features at the raw backbone's scale (mean ~11, std ~23): every channel's variance is
    # far above BatchNormalization's epsilon, so the output is scale-free up to float error.
    shape = model.get_layer("backbone")(clips).shape
    features = np.random.default_rng(3).normal(11.0, 23.0, shape).astype("float32")
    scaled = [head(bn(s * features, training=True)) for s in (1.0, 100.0)]
    np.testing.assert_allclose(scaled[1], scaled[0], rtol=1e-3, atol=1e-5)
    raw = [head(s * features) for s in (1.0, 100.0)]
    assert np.abs(raw[1] - raw[0]).max() > 1e-2
    plain = build_model(config.replace(feature_batch_norm=False))
    assert "feature_bn" not in [layer.name for layer in plain.layers]
    assert "feature_bn" not in [layer.name for layer in build_model(TINY).layers]
    path = str(tmp_path / "conv_lstm.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(clips), model(clips), atol=1e-5)


def test_pretrained_backbone_loads(tmp_path, mnist_npz):
    mnist = load_mnist(mnist_npz, expected_counts=None)
    path = str(tmp_path / "bb.weights.h5")
    result = pretrain_backbone(TINY, mnist, path, num_images=64, epochs=1, batch_size=16,
                               verbose=0)
    assert os.path.exists(path) and 0.0 <= result["test_accuracy"] <= 1.0
    model = build_model(TINY)
    load_backbone_weights(model, path, TINY, trainable=False)
    conv = model.get_layer("backbone").convs[0]
    reference = build_model(TINY)
    load_backbone_weights(reference, path, TINY)
    np.testing.assert_array_equal(conv.kernel.numpy(),
                                  reference.get_layer("backbone").convs[0].kernel.numpy())
    assert not model.get_layer("backbone").trainable
    with pytest.raises(ValueError, match="do not fit"):
        load_backbone_weights(build_model(TINY.replace(num_filters=6)), path,
                              TINY.replace(num_filters=6))
    with pytest.raises(FileNotFoundError, match="train.pretrain"):
        load_backbone_weights(model, str(tmp_path / "none.weights.h5"), TINY)


def test_pretrain_recipes_are_named_and_the_cosine_rate_decays_to_zero(tmp_path, mnist_npz):
    # weights are named by their recipe, so another recipe's file is never reused
    assert PretrainRecipe(32, 60000, 6).file_name() == "backbone32_60000x6.weights.h5"
    cosine = PretrainRecipe(32, 60000, 2, learning_rate=2e-3, lr_schedule="cosine")
    assert cosine.file_name() == "backbone32_60000x2_cosine0.002.weights.h5"
    assert PretrainRecipe(32, 60000, 2, 2e-3).file_name() != cosine.file_name()
    with pytest.raises(ValueError, match="schedule 'linear'"):
        PretrainRecipe(32, lr_schedule="linear")
    mnist = load_mnist(mnist_npz, expected_counts=None)
    path = str(tmp_path / "bb.weights.h5")
    for schedule, final in (("cosine", 0.0), ("constant", 2e-3)):
        result = pretrain_backbone(TINY, mnist, path, num_images=48, epochs=2, batch_size=16,
                                   learning_rate=2e-3, lr_schedule=schedule, verbose=0)
        assert result["final_learning_rate"] == pytest.approx(final, abs=1e-9), schedule
    with pytest.raises(ValueError, match="schedule 'step'"):
        pretrain_backbone(TINY, mnist, path, num_images=48, lr_schedule="step")
    bad = run_python(["-m", "train.pretrain", "--output=x.weights.h5", "--lr_schedule=step"])
    assert bad.returncode == 2 and "--lr_schedule" in bad.stderr, bad.stderr[-2000:]


def test_few_step_fit_lowers_the_loss(tmp_path, data_dir):
    config = TrainConfig(data_dir=data_dir, model_dir=str(tmp_path / "run"),
                         model=TINY.replace(name="mean_lstm"), batch_size=8, epochs=6,
                         steps_per_epoch=4, optimizer="adam", learning_rate=3e-3,
                         verbose=0)
    history = train(config).history
    assert history["loss"][-1] < history["loss"][0]
    for name in ("best.keras", "last.keras", "log.csv", "config.json"):
        assert os.path.exists(tmp_path / "run" / name), name
    assert TrainConfig.from_dict(json.load(open(tmp_path / "run" / "config.json"))) == config


def _epochs_logged(model_dir):
    with open(os.path.join(model_dir, "log.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.heavy
def test_resume_after_sigkill(tmp_path, data_dir):
    model_dir = str(tmp_path / "run")
    command = [sys.executable, "-m", "train", f"--data_dir={data_dir}",
               f"--model_dir={model_dir}", "--model=mean_lstm", "--epochs=12",
               "--steps_per_epoch=2", *TINY_FLAGS]
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(model_dir, "log.csv")) and \
                len(_epochs_logged(model_dir)) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _epochs_logged(model_dir)
    assert 2 <= len(before) < 12
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _epochs_logged(model_dir)[len(before):]
    assert after and after[0] >= before[-1] >= 1          # resumed, not from epoch 0
    assert after[-1] == 11 and len(after) <= 12 - len(before) + 1
    stored = open(os.path.join(model_dir, "config.json")).read()
    other = subprocess.run([*command, "--hidden=16"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)   # another run's flags, same model_dir
    assert other.returncode == 2 and "model.hidden: 8 -> 16" in other.stderr, other.stderr
    assert open(os.path.join(model_dir, "config.json")).read() == stored


def test_time_limited_run_stops_and_the_same_command_continues(tmp_path, data_dir):
    config = TrainConfig(data_dir=data_dir, model_dir=str(tmp_path / "run"), model=TINY,
                         batch_size=4, epochs=3, steps_per_epoch=2, val_videos=8, verbose=0,
                         max_train_minutes=1e-6)
    assert train(config).epoch == [0]             # past the limit after its first batch
    assert train(config).epoch == [1]             # again: from the backup, not epoch 0
    assert _epochs_logged(config.model_dir) == [0, 1]


def test_steps_per_execution_runs_the_same_steps(tmp_path, data_dir):
    """Two steps per compiled call train and validate exactly as one (3 validation
    batches: the last call is short); one pass over 32 videos in batches of 4 at 3 steps
    per call rounds down to 6 steps (Keras would run whole calls: 9)."""
    histories = [train(TrainConfig(data_dir=data_dir, model_dir=str(tmp_path / f"run{n}"),
                                   model=TINY, batch_size=4, epochs=2, steps_per_epoch=4,
                                   val_videos=12, steps_per_execution=n, verbose=0)).history
                 for n in (1, 2)]
    for key in ("loss", "val_loss", "val_top5"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-6)
    config = TrainConfig(data_dir=data_dir, model_dir="m", batch_size=4, steps_per_execution=3)
    assert steps_per_epoch(config, 32, 4) == 6
    with pytest.raises(ValueError, match="fewer than steps_per_execution"):
        steps_per_epoch(config, 8, 4)
    assert jit_compile(config) is False          # TensorFlow: graph mode, XLA opt-in
    assert jit_compile(dataclasses.replace(config, jit_compile=True)) is True


@pytest.mark.parametrize("args, message", [
    (["--model=transformer"], "--model"),
    (["--data_dir=/no/such/dir", "--model_dir=/tmp/x"], "does not exist"),
    (["--flagfile=/no/such.flags"], "such.flags"),
    (["--strategy=multi_worker", "--model_dir=/tmp/x"], "TF_CONFIG"),
    (["--max_train_minutes=0", "--model_dir=/tmp/x"], "max_train_minutes must be > 0"),
    (["--steps_per_epoch=5", "--steps_per_execution=2", "--model_dir=/tmp/x"],
     "multiple of steps_per_execution"),
])
def test_bad_flags_are_one_line_exit_2(args, message, data_dir):
    if "--data_dir=/no/such/dir" not in args:
        args = [f"--data_dir={data_dir}", *args]
    result = run_python(["-m", "train", *args])
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and message in errors[0] and "Traceback" not in result.stderr


@pytest.mark.heavy
def test_evaluate_writes_json_and_plots(tmp_path, data_dir):
    model_dir = str(tmp_path / "run")
    train(TrainConfig(data_dir=data_dir, model_dir=model_dir, model=TINY, batch_size=4,
                      epochs=2, steps_per_epoch=2, val_videos=8, verbose=0))
    result = run_python(["-m", "train.evaluate", f"--model_dir={model_dir}",
                         f"--data={data_dir}", "--batch_size=5"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top-1" in result.stdout
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    for key in ("top1", "top5", "per_class_accuracy", "confusion", "num_videos", "parameters",
                "chance", "files"):
        assert key in report, key
    assert report["num_videos"] == 16 and 0.0 <= report["top1"] <= report["top5"] <= 1.0
    confusion = np.array(report["confusion"])
    assert confusion.shape == (46, 46) and confusion.sum() == 16
    assert np.isclose(np.trace(confusion) / 16, report["top1"])
    assert len(report["per_class_accuracy"]) == 46
    # sync pair: every clip with a synchronous pair counted, against the 1/3 sync-blind level
    assert report["sync_pair_videos"] == 16 - confusion[45].sum()
    assert 0.0 <= report["sync_pair_top1"] <= 1.0 and report["sync_pair_chance"] == 1 / 3
    assert "sync pair" in result.stdout
    # present pair: the top-1 class is a pair of the clip's own digits, so at least every
    # clip with a synchronous pair whose top-1 is right
    right = np.trace(confusion) - confusion[45, 45]
    assert right / report["sync_pair_videos"] - 1e-9 <= report["present_pair_top1"] <= 1.0
    assert "present pair" in result.stdout
    # how many classes the top-1 uses (1: a collapsed model, which evaluate warns about)
    assert report["predicted_classes"] == int((confusion.sum(axis=0) > 0).sum())
    assert report["top_class_share"] == confusion.sum(axis=0).max() / 16
    assert ("every clip" in result.stdout) == (report["predicted_classes"] == 1)
    for path in report["files"]:
        assert os.path.getsize(path) > 0
    assert os.path.exists(os.path.join(model_dir, "learning_curves.png"))
    missing = run_python(["-m", "train.evaluate", f"--model_dir={tmp_path / 'nope'}",
                          f"--data={data_dir}"])
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.heavy
def test_two_worker_multi_worker_mirrored_run(tmp_path, data_dir):
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = str(tmp_path / "run")
    procs = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": ROOT,
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "train", f"--data_dir={data_dir}",
             f"--model_dir={model_dir}", "--model=mean_lstm", "--strategy=multi_worker",
             "--epochs=2", "--steps_per_epoch=2", *TINY_FLAGS],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    # the chief writes model_dir; the other worker its own workers/worker-1
    assert _epochs_logged(model_dir) == [0, 1]
    worker_dir = os.path.join(model_dir, "workers", "worker-1")
    assert _epochs_logged(worker_dir) == [0, 1]
    # synchronous training: both workers end with the same trained weights (batch-norm
    # moving statistics are each worker's own: Keras' BatchNormalization is not synchronised)
    chief = keras.models.load_model(os.path.join(model_dir, "last.keras"))
    other = keras.models.load_model(os.path.join(worker_dir, "last.keras"))
    assert len(chief.trainable_weights) > 4
    for a, b in zip(chief.trainable_weights, other.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert {w.path.split("/")[-1] for w in chief.non_trainable_weights} <= {
        "moving_mean", "moving_variance"}


@pytest.mark.heavy
def test_table_runner_end_to_end(tmp_path, data_dir, mnist_npz):
    work_dir = tmp_path / "table"
    work_dir.mkdir()
    # the quick budget's backbone (32 filters, 60k digits x 2 epochs, cosine-decayed Adam
    # 2e-3; named by that recipe), pretrained briefly here so the runner reuses it
    backbone = work_dir / "backbone32_60000x2_cosine0.002.weights.h5"
    pretrain_backbone(ModelConfig(num_filters=32), load_mnist(mnist_npz, expected_counts=None),
                      str(backbone), num_images=32, epochs=1, verbose=0)
    result = run_python(["-m", "train.table", "--digits=3", "--budget=quick",
                         "--rows=mean_lstm,rstg_space_only", f"--work_dir={work_dir}",
                         f"--data_dir={data_dir}", "--time_budget_minutes=60",
                         "--extra_flags=--epochs=1,--steps_per_epoch=2,--val_videos=8,"
                         "--batch_size=4,--verbose=2"], timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # each row trains under its share of the budget's time left
    assert "mean_lstm: training limited to" in result.stdout
    limits = [json.load(open(work_dir / row / "config.json"))["max_train_minutes"]
              for row in ("mean_lstm", "rstg_space_only")]
    assert 0 < limits[1] < 60 and 0 < limits[0] <= 0.85 * 60 / 2, limits
    table = (work_dir / "table.md").read_text()
    assert "| mean_lstm |" in table and "| 77.0 |" in table       # paper's Mean+LSTM
    # val top-1 (the validation split's, from log.csv), then the test split's top-1, top-5,
    # present pair and sync pair, then the paper's figure
    assert re.search(r"\| mean_lstm \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ "
                     r"\| 77\.0 \|", table), table
    assert "## Per-epoch validation" in table and "| epoch | val top-1 % |" in table
    assert "| rstg_space_only |" in table and "61.3" in table
    # each row's note: at chance, or where its sync pair stands against sync-blind
    assert len(re.findall(r"\| (at chance within this budget|sync-blind: sync pair|finds "
                          r"the sync pair)[^|]* \|\n", table)) == 2, table
    # the paper puts Mean+LSTM 15.7 points above Space-only: that pair is checked
    assert "## The paper's order (pairs it separates by >= 5 points)" in table
    assert re.search(r"- mean_lstm > rstg_space_only \(paper \+15\.7\): ours [-+][\d.]+ "
                     r"points, [-+][\d.]+ s\.e\.: \*\*(holds|reversed|within noise)\*\*",
                     table), table
    assert (work_dir / "table.png").stat().st_size > 0
    # the quick rows keep the backbone frozen: its sync-blind probes ran with their steps
    probe = json.load(open(work_dir / "probe.json"))
    assert (probe["epochs"], probe["steps_per_epoch"], probe["batch_size"]) == (1, 2, 4)
    assert sorted(probe["probes"]) == ["cells", "mean", "nodes"]
    assert sorted(probe["rows_val_top1"]) == ["mean_lstm", "rstg_space_only"]
    assert "Sync-blind probes (`python -m experiments.sync_pair.probe`" in table
    assert sorted(work_dir.glob("backbone*")) == [backbone]      # reused, none pretrained
    for row in ("mean_lstm", "rstg_space_only"):
        report = json.load(open(work_dir / row / "eval_test.json"))
        assert report["num_videos"] == 16
    bad = run_python(["-m", "train.table", "--digits=5", "--rows=mean_lstm",
                      f"--work_dir={work_dir}"])
    assert bad.returncode == 2 and "unknown rows" in bad.stderr


@pytest.mark.heavy
def test_mixed_precision_and_xla_flags_train(tmp_path, data_dir):
    model_dir = str(tmp_path / "run")
    result = run_python(["-m", "train", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                         "--epochs=1", "--steps_per_epoch=2", "--mixed_precision",
                         "--jit_compile", "--optimizer=adam", *TINY_FLAGS])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done:" in result.stdout and _epochs_logged(model_dir) == [0]
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["mixed_precision"] and config["jit_compile"]


def test_training_reads_val_and_never_the_test_split(tmp_path, mnist_npz):
    """A data dir without a test split trains (fit never reads it); one without a val
    split is refused with the command that makes it."""
    out = str(tmp_path / "data")
    for split, count in (("train", 8), ("val", 4)):
        syncmnist_records.make_split(out, split, SyncMnistConfig(num_digits=3),
                                     num_videos=count, num_shards=1, mnist_source=mnist_npz,
                                     expected_counts=None, verbose=False)
    train(TrainConfig(data_dir=out, model_dir=str(tmp_path / "run"), model=TINY, batch_size=4,
                      epochs=1, steps_per_epoch=1, val_videos=4, verbose=0))
    assert json.load(open(tmp_path / "run" / "config.json"))["val_split"] == "val"
    no_val = str(tmp_path / "no_val")
    syncmnist_records.make_split(no_val, "train", SyncMnistConfig(num_digits=3), num_videos=8,
                                 num_shards=1, mnist_source=mnist_npz, expected_counts=None,
                                 verbose=False)
    result = run_python(["-m", "train", "--flagfile=configs/syncmnist3_rstg_all_temp.flags",
                         f"--data_dir={no_val}", f"--model_dir={tmp_path / 'run2'}",
                         *TINY_FLAGS])
    assert result.returncode == 2 and "--split=val" in result.stderr, result.stderr[-2000:]


@pytest.mark.heavy
def test_a_corrupt_shard_is_one_line_or_one_total(tmp_path, data_dir):
    """raise: exit 2 with one line naming the shard and record; skip: one total at the end."""
    damaged = tmp_path / "data"
    shutil.copytree(data_dir, damaged)
    shard = sorted(damaged.glob("train-*"))[1]
    shard.write_bytes(shard.read_bytes()[:len(shard.read_bytes()) // 2])
    common = [f"--data_dir={damaged}", *TINY_FLAGS, "--epochs=2", "--steps_per_epoch=3"]
    result = run_python(["-m", "train", *common, f"--model_dir={tmp_path / 'raise'}"])
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert f"corrupt or truncated shard {shard}: record " in errors[0]
    result = run_python(["-m", "train", *common, "--on_corrupt=skip",
                         f"--model_dir={tmp_path / 'skip'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    totals = [line for line in result.stdout.splitlines() if "unreadable records" in line]
    assert len(totals) == 1 and f"in 1 shard files: {shard.name}" in totals[0]
    assert "WARNING: corrupt" not in result.stdout + result.stderr
