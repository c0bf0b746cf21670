"""SyncMNIST shards: records, manifest, resume, workers, corrupt shards, the tf.data reader
and the make_syncmnist program."""

import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from rstg_tf.data import pipeline, preview, shards, syncmnist_records
from rstg_tf.data.mnist import load_mnist
from rstg_tf.data.syncmnist import SyncMnistConfig, SyncMnistGenerator
from rstg_tf.data.video_records import encode_video, parse_video
from tests.helpers import run_python
from tests.syncmnist_fixtures import write_fake_npz

CONFIG = SyncMnistConfig(num_digits=3)


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory):
    return write_fake_npz(tmp_path_factory.mktemp("mnist") / "mnist.npz")


def _make(output_dir, mnist_npz, **kwargs):
    options = dict(num_videos=24, num_shards=3, mnist_source=mnist_npz, expected_counts=None,
                   verbose=False)
    options.update(kwargs)
    return syncmnist_records.make_split(str(output_dir), "train", CONFIG, **options)


def _generator(mnist_npz, split="train"):
    mnist = load_mnist(mnist_npz, expected_counts=None)
    return SyncMnistGenerator(*mnist.split(split), split, CONFIG)


def _read_all(data_dir, split="train", **kwargs):
    files, counts, entry = pipeline.split_files(str(data_dir), split)
    spec = syncmnist_records.spec_from_dict(entry["record_spec"])
    return list(pipeline.video_dataset(files, spec, batch_size=None, counts=counts,
                                       **kwargs).as_numpy_iterator())


def test_record_round_trip_and_shape_checks():
    spec = syncmnist_records.record_spec(CONFIG)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 64, 64), dtype=np.uint8)
    coords = rng.integers(0, 72, (10, 6))
    record = encode_video(spec, frames, 17, "clip-1", {"syncmnist/digits": [4, 2, 9]},
                          {"syncmnist/coords": coords})
    parsed = {k: v.numpy() for k, v in parse_video(spec, tf.constant(record)).items()}
    assert np.array_equal(parsed["frames"][..., 0], frames)        # PNG is lossless
    assert parsed["label"] == 17 and parsed["media_id"] == b"clip-1"
    assert parsed["syncmnist/digits"].tolist() == [4, 2, 9]
    assert np.array_equal(parsed["syncmnist/coords"], coords)
    with pytest.raises(ValueError, match="frames must be uint8"):
        encode_video(spec, frames[:9], 1, "x", {"syncmnist/digits": [1, 2, 3]},
                     {"syncmnist/coords": coords[:9]})
    with pytest.raises(ValueError, match="3 values"):
        encode_video(spec, frames, 1, "x", {"syncmnist/digits": [1, 2]},
                     {"syncmnist/coords": coords})
    short = syncmnist_records.record_spec(SyncMnistConfig(num_digits=3, num_frames=9))
    record9 = encode_video(short, frames[:9], 1, "x", {"syncmnist/digits": [1, 2, 3]},
                           {"syncmnist/coords": coords[:9]})
    with pytest.raises(tf.errors.InvalidArgumentError, match="10 'image/encoded' frames"):
        parse_video(spec, tf.constant(record9))


def test_split_round_trip_and_manifest(tmp_path, mnist_npz):
    entry = _make(tmp_path, mnist_npz, compression="GZIP")
    assert entry["complete"] and len(entry["shards"]) == 3
    assert sum(s["count"] for s in entry["shards"].values()) == 24
    assert sum(entry["class_histogram"]) == 24 and len(entry["class_histogram"]) == 46
    assert entry["settings"]["generator_version"] and entry["settings"]["seed"] == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["splits"]["train"]["settings"] == entry["settings"]
    for name, info in entry["shards"].items():
        assert name.endswith(".tfrecord.gz")
        assert shards.file_sha256(str(tmp_path / name)) == info["sha256"]
    items = _read_all(tmp_path)
    assert len(items) == 24
    generator = _generator(mnist_npz)
    labels = np.zeros(46, int)
    for item in items:
        index = int(item["media_id"].decode().rsplit("/", 1)[1])
        video = generator.video(index)
        assert np.array_equal(item["frames"][..., 0], video.frames)   # written == read
        assert item["label"] == video.label
        assert np.array_equal(item["syncmnist/coords"], video.coords.reshape(10, 6))
        assert np.array_equal(item["syncmnist/digits"], video.digits)
        labels[video.label] += 1
    assert labels.tolist() == entry["class_histogram"]
    # the evaluation order is fixed: every read gives the same sequence
    assert [i["media_id"] for i in items] == [i["media_id"] for i in _read_all(tmp_path)]


def test_same_shards_for_any_worker_count(tmp_path, mnist_npz):
    one = _make(tmp_path / "one", mnist_npz, workers=1)
    two = _make(tmp_path / "two", mnist_npz, workers=2)
    assert {k: v["sha256"] for k, v in one["shards"].items()} == \
        {k: v["sha256"] for k, v in two["shards"].items()}


def test_resume_after_kill_keeps_finished_shards(tmp_path, mnist_npz, monkeypatch):
    real_call = syncmnist_records.ShardJob.__call__

    def dies_on_second_shard(self, task, report):
        if task.index == 1:
            open(shards.temp_path(task.path), "wb").write(b"half a shard")
            raise KeyboardInterrupt("killed")
        return real_call(self, task, report)

    monkeypatch.setattr(syncmnist_records.ShardJob, "__call__", dies_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        _make(tmp_path, mnist_npz)
    names = sorted(os.listdir(tmp_path))
    assert "train-00000-of-00003.tfrecord.gz" in names
    assert "train-00001-of-00003.tfrecord.gz" not in names      # no final name half-written
    with pytest.raises(ValueError, match="incomplete"):
        pipeline.split_files(str(tmp_path), "train")
    first = tmp_path / "train-00000-of-00003.tfrecord.gz"
    stamp = first.stat().st_mtime_ns

    made = []
    monkeypatch.setattr(syncmnist_records.ShardJob, "__call__",
                        lambda self, task, report: made.append(task.index) or
                        real_call(self, task, report))
    entry = _make(tmp_path, mnist_npz)
    assert entry["complete"] and sorted(made) == [1, 2]          # shard 0 was kept
    assert first.stat().st_mtime_ns == stamp
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]  # stale temp removed
    assert len(_read_all(tmp_path)) == 24

    # a shard damaged after the fact no longer matches its checksum and is made again
    first.write_bytes(first.read_bytes()[:100])
    made.clear()
    _make(tmp_path, mnist_npz)
    assert made == [0] and len(_read_all(tmp_path)) == 24


def test_other_settings_refused_unless_overwrite(tmp_path, mnist_npz):
    _make(tmp_path, mnist_npz)
    with pytest.raises(ValueError, match="seed"):
        _make(tmp_path, mnist_npz, seed=5)
    entry = _make(tmp_path, mnist_npz, seed=5, num_shards=2, overwrite=True)
    assert entry["settings"]["seed"] == 5
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".gz")) == [
        "train-00000-of-00002.tfrecord.gz", "train-00001-of-00002.tfrecord.gz"]


@pytest.mark.parametrize("compression", ["GZIP", "NONE"])
def test_corrupt_shard_named_or_skipped(tmp_path, mnist_npz, compression):
    entry = _make(tmp_path, mnist_npz, compression=compression)
    name = sorted(entry["shards"])[1]
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])                      # truncated
    with pytest.raises(tf.errors.InvalidArgumentError, match=name) as raised:
        _read_all(tmp_path)
    # The programs turn it into one line naming the file and the first unreadable record.
    from rstg_tf.cli import corrupt_shard_message
    message = corrupt_shard_message(raised.value)
    assert message.startswith(f"corrupt or truncated shard {path}: record ")
    assert "of 8 is unreadable" in message and "--on_corrupt=skip" in message
    assert corrupt_shard_message(ValueError("something else")) is None
    # skip: the readable records are kept; the loss is counted once per shard, however
    # many epochs read it.
    corrupt = pipeline.CorruptRecords()
    kept = _read_all(tmp_path, on_corrupt="skip", corrupt=corrupt)
    _read_all(tmp_path, on_corrupt="skip", corrupt=corrupt)          # a second epoch
    lost = corrupt.counts()
    assert list(lost) == [str(path)] and lost[str(path)] > 0
    assert len(kept) + lost[str(path)] == 24
    assert corrupt.summary().startswith(f"skipped {lost[str(path)]} unreadable records in 1 "
                                        f"shard files: {name}")
    assert pipeline.CorruptRecords().summary() is None
    with pytest.raises(ValueError, match="on_corrupt"):
        _read_all(tmp_path, on_corrupt="ignore")


def test_reader_errors_name_the_problem(tmp_path, mnist_npz):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pipeline.split_files(str(tmp_path / "nope"), "train")
    with pytest.raises(FileNotFoundError, match="make_syncmnist"):
        pipeline.split_files(str(tmp_path), "train")
    _make(tmp_path, mnist_npz)
    with pytest.raises(ValueError, match="no 'test' split"):
        pipeline.split_files(str(tmp_path), "test")
    os.remove(tmp_path / "train-00002-of-00003.tfrecord.gz")
    with pytest.raises(FileNotFoundError, match="train-00002-of-00003"):
        pipeline.split_files(str(tmp_path), "train")


def test_training_pipeline_batches_and_shuffles(tmp_path, mnist_npz):
    _make(tmp_path, mnist_npz)

    def labels_of(**options):
        data = syncmnist_records.dataset(str(tmp_path), "train", 5, training=True, **options)
        return list(data.as_numpy_iterator())

    batches = labels_of(seed=3)
    assert len(batches) == 4                                     # 24 // 5, remainder dropped
    assert batches[0][0].shape == (5, 10, 64, 64, 1) and batches[0][0].dtype == np.uint8
    again = labels_of(seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))   # seeded
    eval_order = [i["label"] for i in _read_all(tmp_path)]
    train_order = np.concatenate([b[1] for b in batches]).tolist()
    assert train_order != eval_order[:20]
    repeated = syncmnist_records.dataset(str(tmp_path), "train", 5, training=True,
                                         repeat=True).take(10)
    assert sum(1 for _ in repeated) == 10                        # repeats past one epoch
    # tf.data's autotuning model is off (its thread stalled each epoch's validation),
    # unless asked for
    assert repeated.options().autotune.enabled is False
    tuned = syncmnist_records.dataset(str(tmp_path), "train", 5, autotune=True)
    assert tuned.options().autotune.enabled is True and len(list(tuned)) == 5


def test_array_dataset_batches_every_clip_once_per_pass_in_a_fresh_order():
    x = np.arange(11 * 2, dtype=np.uint8).reshape(11, 2)
    y = np.arange(11) * 10
    data = pipeline.array_dataset((x, y), 4, shuffle_seed=5)
    first, second = ([b for b in data.as_numpy_iterator()] for _ in range(2))
    assert [len(b[1]) for b in first] == [4, 4, 3]               # last batch partial
    for batches in (first, second):
        xs, ys = (np.concatenate(part) for part in zip(*batches))
        assert sorted(ys.tolist()) == y.tolist()                  # every clip once
        np.testing.assert_array_equal(xs[:, 0], ys // 5)          # x and y stay paired
    orders = [np.concatenate([b[1] for b in passed]) for passed in (first, second)]
    assert not np.array_equal(*orders)                            # reshuffled per pass
    again = np.concatenate([b[1] for b in pipeline.array_dataset(
        (x, y), 4, shuffle_seed=5).as_numpy_iterator()])
    np.testing.assert_array_equal(again, orders[0])               # seeded
    in_order = pipeline.array_dataset((x, y), 4)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in in_order]), y)
    assert in_order.options().autotune.enabled is False           # no stalls between epochs
    with pytest.raises(ValueError, match="one length"):
        pipeline.array_dataset((x, y[:5]), 4)


def test_preview_files(tmp_path):
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (10, 64, 64), dtype=np.uint8) for _ in range(3)]
    paths = preview.write_preview(clips, ["3-7|digits 3 7 1", "no sync", "0-1"],
                                  str(tmp_path / "p.png"), str(tmp_path / "p.gif"))
    sheet = cv2.imread(paths[0], cv2.IMREAD_GRAYSCALE)
    assert sheet.shape == (3 * (128 + 2), 120 + 10 * (128 + 2))
    assert np.array_equal(sheet[0:128:2, 120:248:2], clips[0][0])     # frames, 2x zoom
    ok, animation = cv2.imdecodeanimation(np.fromfile(paths[1], np.uint8))
    assert ok and len(animation.frames) == 10


def test_make_syncmnist_program(tmp_path, mnist_npz):
    out = tmp_path / "sync3"
    result = run_python(["-m", "train.make_syncmnist", "--digits=3", "--split=test",
                         f"--output_dir={out}", "--num_videos=12", "--num_shards=2",
                         "--workers=1", f"--mnist={mnist_npz}", "--mnist_check=false",
                         "--preview=4", "--quiet"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test: 12 videos in 2 shards" in result.stdout
    assert (out / "preview-test.png").exists() and (out / "preview-test.gif").exists()
    assert len(_read_all(out, "test")) == 12
    again = run_python(["-m", "train.make_syncmnist", "--split=test", f"--output_dir={out}",
                        "--num_videos=12", "--num_shards=2", f"--mnist={mnist_npz}",
                        "--mnist_check=false", "--quiet"])
    assert again.returncode == 0 and "nothing left to make" in again.stdout
    for bad, message in ((["--split=valid"], "--split"),
                         (["--output_dir=" + str(out), "--mnist=/no/such.npz"], "does not exist"),
                         (["--output_dir=" + str(out), "--digits=1"], "--digits")):
        failed = run_python(["-m", "train.make_syncmnist", *bad])
        assert failed.returncode == 2, failed.stderr
        lines = [l for l in failed.stderr.splitlines() if l.startswith("error:")]
        assert lines and message in lines[0] and "Traceback" not in failed.stderr
